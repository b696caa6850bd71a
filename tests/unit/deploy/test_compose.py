"""docker-compose.yml and Dockerfile, checked without a Docker engine.

- the compose file validates against the vendored Compose Specification schema (compose-spec.json);
- every file or directory it references (build contexts, Dockerfiles, bind mounts) exists, and the
  Grafana, Prometheus, Alertmanager and ClickHouse configs it mounts are the ones psmon builds/ships;
- every psmon service's command parses as a real `psmon` command (the Typer app itself);
- no two services publish the same host port, and the scalable services publish none;
- every stateful service has a named volume and a health check;
- the production review: one build of the psmon image; Grafana starts offline (plugin pinned in
  its image); memory limits and bounded logs everywhere; stop grace longer than psmon's drain;
  topic replication set; ClickHouse without the entrypoint's init server, psmon users least
  privileged (Grafana and readers read-only); no default secret; the alert webhook's token is a
  secret on both ends; a per-site Kafka cluster id;
- the Dockerfiles pass hadolint and the psmon image leaves out the chDB and dev extras.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jsonschema
import pytest
import typer
import yaml

from psmon.cli.main import app
from psmon.dashboards.build import GRAFANA_DASHBOARDS_DIR, BuildOptions, provisioning
from psmon.metrics import SINK_JOB, WORKER_JOB

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
STATEFUL = {"kafka", "clickhouse", "prometheus", "alertmanager", "grafana"}
SCALABLE = {"worker", "sink"}
PSMON_SERVICES = {"migrate", "worker", "sink", "alerts", "simulator"}
#: psmon services that write ClickHouse (as `psmon_writer`); the others get no DSN at all
WRITERS = {"migrate", "sink", "alerts"}
ENV_EXAMPLE = ROOT / ".env.example"


def _env_example_names() -> list[str]:
    return [
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    ]


#: what an operator's .env holds: every variable of .env.example, set (hex, as it advises)
SITE_ENV = {name: f"{i:02x}c0ffee" for i, name in enumerate(_env_example_names())}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the x-psmon anchors
    return doc


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset: `docker compose` stops with the message."""


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        val = env.get(name)
        unset_or_empty = val is None or (val == "" and op.startswith(":"))
        if op.endswith("?") and unset_or_empty:
            raise MissingVariable(f"{name}: {arg}")
        if op.endswith("-") and unset_or_empty:
            return arg
        return val or ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", one, value)


def _env(svc: dict[str, Any], env: dict[str, str] = SITE_ENV) -> dict[str, str]:
    return {k: _interpolate(str(v), env) for k, v in svc.get("environment", {}).items()}


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    # guard against a schema that accepts anything
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = {
        **compose,
        "services": {**compose["services"], "worker": {**compose["services"]["worker"], "restart_policy": "always"}},
    }
    assert list(validator.iter_errors(broken))
    bad_dependency = {"x": {"image": "y", "depends_on": {"kafka": {"condition": "whenever"}}}}
    assert list(validator.iter_errors({**compose, "services": bad_dependency}))


def test_every_referenced_file_exists(compose: dict[str, Any]) -> None:
    missing = []
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            context = ROOT / build.get("context", ".")
            if not context.is_dir() or not (context / build.get("dockerfile", "Dockerfile")).is_file():
                missing.append(f"{name}: build {build}")
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")) and not (ROOT / source).exists():
                missing.append(f"{name}: volume source {source}")
        for env_file in svc.get("env_file", []):
            if not (ROOT / env_file).exists():
                missing.append(f"{name}: env_file {env_file}")
    assert missing == []
    # secrets are made per site, never committed: each lives where a .gitignore keeps it out of git
    for name, secret in compose["secrets"].items():
        path = ROOT / secret["file"]
        ignore = (path.parent / ".gitignore").read_text().splitlines()
        assert path.parent == ROOT / "deploy/secrets" and "*" in ignore and f"!{path.name}" not in ignore, name


def _mounts(svc: dict[str, Any]) -> dict[str, str]:
    """container path → host path of the bind mounts of a service."""
    out = {}
    for vol in svc.get("volumes", []):
        parts = vol.split(":")
        if parts[0].startswith("."):
            out[parts[1]] = parts[0]
    return out


def test_grafana_mounts_the_built_dashboards_and_provisioning(compose: dict[str, Any]) -> None:
    mounts = _mounts(compose["services"]["grafana"])
    assert mounts[GRAFANA_DASHBOARDS_DIR] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    # the provider reads the directory the dashboards are mounted at
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/psmon.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == GRAFANA_DASHBOARDS_DIR
    # the committed provisioning is what `psmon dashboards build` writes with the defaults
    for rel, doc in provisioning(BuildOptions()).items():
        assert yaml.safe_load((ROOT / "deploy/grafana" / rel).read_text()) == doc, rel
    env = compose["services"]["grafana"]["environment"]
    assert "PSMON_GRAFANA_CLICKHOUSE_PASSWORD" in env
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).relative_to(GRAFANA_DASHBOARDS_DIR)).is_file()


def test_prometheus_discovers_every_worker_and_sink_replica(compose: dict[str, Any]) -> None:
    mounts = _mounts(compose["services"]["prometheus"])
    config_dir = ROOT / mounts["/etc/prometheus"]
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, service in ((WORKER_JOB, "worker"), (SINK_JOB, "sink")):
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [service] and sd["type"] == "A"
        assert str(sd["port"]) == compose["services"][service]["environment"]["PSMON_METRICS_PORT"]
    assert any(
        "alertmanager:9093" in t
        for a in config["alerting"]["alertmanagers"]
        for s in a["static_configs"]
        for t in s["targets"]
    )
    for rule_file in config["rule_files"]:  # every rule file it loads is there (a glob: matches one)
        assert list(config_dir.glob(rule_file)), rule_file
    assert "/etc/prometheus/prometheus.yml" in " ".join(compose["services"]["prometheus"]["command"])
    am_dir = ROOT / _mounts(compose["services"]["alertmanager"])["/etc/alertmanager"]
    assert (am_dir / "alertmanager.yml").is_file()


def test_prometheus_config_is_valid_for_promtool() -> None:
    run = subprocess.run(
        ["promtool", "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_alertmanager_config_is_valid_for_amtool() -> None:
    run = subprocess.run(
        ["amtool", "check-config", str(ROOT / "deploy/alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _parse_psmon(args: list[str]) -> list[str]:
    """Parse `psmon ARGS` with the real Typer app, as the container's ENTRYPOINT would run it:
    each group resolves its subcommand and each command parses (and type-converts) its options.
    Returns the command path; raises typer.TyperException (Typer's click errors) when invalid."""
    cmd: Any = typer.main.get_command(app)
    path = ["psmon"]
    ctx = cmd.make_context("psmon", list(args))
    while hasattr(cmd, "resolve_command"):  # a group (Typer vendors click, so no isinstance)
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            raise typer.BadParameter(f"{' '.join(path)} needs a subcommand")
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        path.append(name)
        ctx = cmd.make_context(name, rest, parent=ctx)
    return path


def test_every_psmon_service_runs_a_valid_psmon_command(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= PSMON_SERVICES
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["psmon"]' in dockerfile
    for name in PSMON_SERVICES:
        svc = services[name]
        path = _parse_psmon(svc["command"])
        assert path[1] == svc["command"][0], name
        # the settings each psmon service gets are real Settings fields
        from psmon.settings import Settings

        env = _env(svc)
        fields = {f"PSMON_{f.upper()}" for f in Settings.model_fields}
        assert set(env) <= fields, f"{name}: unknown settings {set(env) - fields}"
        # production: the ClickHouse server over HTTP (writers only), the Kafka service
        if name in WRITERS:
            dsn = env["PSMON_CLICKHOUSE_DSN"]
            assert dsn.startswith("http://psmon_writer:") and dsn.endswith("@clickhouse:8123"), name
        else:
            assert "PSMON_CLICKHOUSE_DSN" not in env, f"{name} never touches ClickHouse: no credentials"
        assert env["PSMON_KAFKA_BOOTSTRAP"] == "kafka:9092"
        settings = Settings(**{k.removeprefix("PSMON_").lower(): v for k, v in env.items()})
        assert settings.embedded_clickhouse == (name not in WRITERS) and settings.metrics_host == "0.0.0.0"


def test_a_wrong_command_is_caught() -> None:
    with pytest.raises(typer.TyperException):
        _parse_psmon(["wokrer"])
    with pytest.raises(typer.TyperException):
        _parse_psmon(["simulate", "--rat", "5"])
    with pytest.raises(typer.TyperException):
        _parse_psmon(["dashboards"])
    assert _parse_psmon(["dashboards", "build", "--out", "x"]) == ["psmon", "dashboards", "build"]


def test_host_ports_do_not_clash_and_scaled_services_publish_none(compose: dict[str, Any]) -> None:
    seen: dict[tuple[str, int, str], str] = {}
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str), "use the short syntax"
            proto = port.split("/")[1] if "/" in port else "tcp"
            parts = port.split("/")[0].split(":")
            host_ip, host_port = (parts[0], parts[1]) if len(parts) == 3 else ("0.0.0.0", parts[0])
            key = (host_ip, int(host_port), proto)
            # 0.0.0.0 clashes with every address
            clashes = [
                s
                for (ip, p, pr), s in seen.items()
                if p == key[1] and pr == proto and (ip == host_ip or "0.0.0.0" in (ip, host_ip))
            ]
            assert not clashes, f"{name} publishes {port}, already used by {clashes}"
            seen[key] = name
    for name in SCALABLE:
        svc = compose["services"][name]
        assert "ports" not in svc and "container_name" not in svc, f"{name} must be scalable"


def test_stateful_services_have_volumes_and_health_checks(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name in STATEFUL:
        svc = compose["services"][name]
        vols = [v.split(":")[0] for v in svc["volumes"]]
        assert any(v in named for v in vols), f"{name} keeps its state in no named volume"
        assert svc["healthcheck"]["test"], name
    for name in ("worker", "sink"):
        assert "9108/metrics" in " ".join(compose["services"][name]["healthcheck"]["test"])
    assert compose["services"]["sink"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert compose["services"]["migrate"]["restart"] == "no"
    assert compose["services"]["simulator"]["profiles"] == ["simulator"]
    kafka = compose["services"]["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in compose["services"]
    assert compose["services"]["prometheus"]["image"].split(":v")[1].startswith("2.")


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/grafana/Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    run = subprocess.run(
        [str(_hadolint()), "--no-color", str(ROOT / dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout.strip() == "", run.stdout + run.stderr


def test_production_image_leaves_out_chdb_and_dev_extras() -> None:
    import tomllib

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "[chdb]" not in dockerfile and "[dev]" not in dockerfile
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("chdb") or "[chdb]" in d for d in project["dependencies"])
    assert any(d.startswith("chdb") for d in project["optional-dependencies"]["chdb"])
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") :] and "!psmon/" in ignored and "!tests/" not in ignored


# -- the production review ------------------------------------------------------------------------
def _bytes(size: str | int) -> int:
    """Compose's byte values: 512m, 4g, 1073741824."""
    text = str(size).lower().rstrip("b")
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def _seconds(duration: str) -> float:
    """Compose's durations: 45s, 1m30s, 1h."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_the_psmon_image_is_built_once(compose: dict[str, Any]) -> None:
    """Several services building one tag race on a first `up` ("image already exists")."""
    services = compose["services"]
    psmon = {n: s for n, s in services.items() if s["image"].startswith("psmon:")}
    assert set(psmon) == PSMON_SERVICES
    builders = [n for n, s in psmon.items() if "build" in s]
    assert builders == ["migrate"]  # always started, first: `docker compose up` builds it
    assert services["migrate"]["build"]["context"] == "."
    for name, svc in psmon.items():
        if name not in builders:
            assert svc["pull_policy"] == "never", f"{name} would try to pull psmon from a registry"
    tags = [s["image"] for s in services.values() if "build" in s]
    assert len(tags) == len(set(tags)), "two services build the same tag"


def test_grafana_starts_offline_with_a_pinned_plugin(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    dockerfile = (ROOT / grafana["build"]["context"] / grafana["build"]["dockerfile"]).read_text()
    assert "FROM grafana/grafana-oss:11.6.0" in dockerfile
    version = re.search(r"ARG CLICKHOUSE_PLUGIN_VERSION=(\d+\.\d+\.\d+)\n", dockerfile)
    assert version, "the plugin version is pinned"
    assert 'plugins install grafana-clickhouse-datasource "${CLICKHOUSE_PLUGIN_VERSION}"' in dockerfile
    plugins_dir = re.search(r"GF_PATHS_PLUGINS=(\S+)", dockerfile)
    assert plugins_dir and f"--pluginsDir {plugins_dir.group(1)}" in dockerfile
    # outside the grafana-data volume, where the first start's copy would shadow a newer image
    volume_paths = [v.split(":")[1] for v in grafana["volumes"]]
    assert not any(Path(plugins_dir.group(1)).is_relative_to(p) for p in volume_paths)
    env = _env(grafana)
    assert not env.get("GF_INSTALL_PLUGINS"), "no download at start"
    assert env["GF_PLUGINS_PREINSTALL_DISABLED"] == "true"


def test_every_service_has_a_memory_limit_and_bounded_logs(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert _bytes(svc["mem_limit"]) > 0, name
        logging = svc["logging"]
        assert logging["driver"] == "json-file", name
        assert _bytes(logging["options"]["max-size"]) <= 100 * 2**20 and int(logging["options"]["max-file"]) >= 1, name


def test_clickhouse_and_kafka_stay_inside_their_memory_limits(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in ch["volumes"] if v.startswith(".")}
    config = ElementTree.parse(ROOT / mounts["/etc/clickhouse-server/config.d/psmon.xml"]).getroot()
    server_max = int(config.findtext("max_server_memory_usage") or 0)
    caches = int(config.findtext("mark_cache_size") or 0)
    # its default is 90% of the host's RAM: the cap and the caches fit the container's limit
    assert 0 < server_max + caches < _bytes(ch["mem_limit"])
    heap = re.search(r"-Xmx(\d+[mg])", compose["services"]["kafka"]["environment"]["KAFKA_HEAP_OPTS"])
    assert heap and _bytes(heap.group(1)) < _bytes(compose["services"]["kafka"]["mem_limit"])


def test_stop_grace_outlasts_psmons_drain(compose: dict[str, Any]) -> None:
    from psmon.settings import Settings

    for name in PSMON_SERVICES:
        svc = compose["services"][name]
        drain_s = float(_env(svc).get("PSMON_SHUTDOWN_TIMEOUT_S", Settings().shutdown_timeout_s))
        # compose's default is 10 s: SIGKILL would cut the drain (commits, the last batch) short
        assert _seconds(svc["stop_grace_period"]) >= drain_s + 10, name


def test_topic_replication_is_set_and_fits_the_brokers(compose: dict[str, Any]) -> None:
    from psmon.settings import Settings

    brokers = len(compose["services"]["kafka"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
    for name in PSMON_SERVICES:
        env = _env(compose["services"][name])
        s = Settings(
            topic_replication_factor=env["PSMON_TOPIC_REPLICATION_FACTOR"],
            topic_min_insync_replicas=env["PSMON_TOPIC_MIN_INSYNC_REPLICAS"],
        )
        assert s.topic_replication_factor <= brokers, name


def _alertmanager_configs() -> dict[str, dict[str, Any]]:
    from psmon.alerting.alertmanager import build_alertmanager_config
    from psmon.alerting.thresholds import load_thresholds

    return {
        "deploy": yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text()),
        "psmon up": build_alertmanager_config(load_thresholds(), webhook_url="http://127.0.0.1:9095/alerts"),
    }


def test_alertmanager_groups_per_alert_and_scopes_inhibitions() -> None:
    for where, config in _alertmanager_configs().items():
        # one notification per kind of alert (and province), not every system alert in one
        assert config["route"]["group_by"] == ["alertname", "province"], where
        for rule in config["inhibit_rules"]:
            assert rule["equal"], f"{where}: an inhibition without `equal` mutes every site and province"
        (worker,) = [r for r in config["inhibit_rules"] if 'alertname="PsmonWorkerDown"' in r["source_matchers"]]
        # only "no worker up at all" blinds the ratios; one dead replica among several does not
        assert 'workers_up="0"' in worker["source_matchers"], where


def test_down_alerts_see_a_vanished_replica(compose: dict[str, Any]) -> None:
    """DNS discovery drops a dead container's target: the mounted rules count and check absence,
    and the sink job's presence marker is scraped so "no sink up" can fire."""
    from psmon.alerting.rules import SINK_PRESENCE_JOB

    config_dir = ROOT / _mounts(compose["services"]["prometheus"])["/etc/prometheus"]
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    presence = next(j for j in config["scrape_configs"] if j["job_name"] == SINK_PRESENCE_JOB)
    assert presence["static_configs"][0]["targets"] == ["sink:9108"]
    rules = yaml.safe_load((config_dir / "psmon-rules.yml").read_text())["groups"][0]["rules"]
    for alert in ("PsmonWorkerDown", "PsmonSinkDown"):
        exprs = [r["expr"] for r in rules if r.get("alert") == alert]
        assert any("absent(" in e for e in exprs), alert


def test_clickhouse_has_no_init_server_and_migrate_waits(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    # any of these makes the entrypoint run a loopback-only init server that answers the health
    # check while migrate cannot connect
    assert not {
        "CLICKHOUSE_DB",
        "CLICKHOUSE_USER",
        "CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT",
    } & set(ch["environment"])
    assert not any("docker-entrypoint-initdb.d" in v for v in ch["volumes"])
    health = " ".join(ch["healthcheck"]["test"])
    assert "localhost" not in health and "127.0.0.1" not in health and "hostname -i" in health
    migrate = compose["services"]["migrate"]
    assert migrate["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert float(_env(migrate)["PSMON_CLICKHOUSE_WAIT_S"]) >= 60


def _users() -> tuple[ElementTree.Element, ElementTree.Element]:
    root = ElementTree.parse(ROOT / "deploy/clickhouse/users.d/psmon.xml").getroot()
    return root.find("users"), root.find("profiles")  # type: ignore[return-value]


def test_clickhouse_users_are_least_privileged(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    assert any(
        v.startswith("./deploy/clickhouse/users.d/psmon.xml:/etc/clickhouse-server/users.d/") for v in ch["volumes"]
    )
    users, profiles = _users()
    reader, writer = users.find("psmon"), users.find("psmon_writer")
    assert reader is not None and writer is not None
    for user in (reader, writer):
        assert user.findtext("access_management") == "0"
        assert user.find("password").get("from_env") in ch["environment"]  # type: ignore[union-attr]
    # the reader: SELECT on psmon's database and nothing else (no CREATE TEMPORARY TABLE, no URL,
    # FILE, S3, REMOTE sources: no table function reaches a file, a URL or another server)
    assert [q.text for q in reader.iter("query")] == ["GRANT SELECT ON psmon.*"]
    profile = profiles.find(reader.findtext("profile") or "")
    assert profile is not None and int(profile.findtext("readonly") or 0) >= 1 and profile.findtext("allow_ddl") == "0"
    # the writer: psmon's schema and rows, on psmon.* only
    (grant,) = [q.text or "" for q in writer.iter("query")]
    assert grant.endswith(" ON psmon.*") and "ACCESS" not in grant and " ALL" not in grant
    # Grafana reads as the reader
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/psmon.yaml").read_text())["datasources"]
    (clickhouse,) = [d for d in ds if d["type"] == "grafana-clickhouse-datasource"]
    assert clickhouse["jsonData"]["username"] == reader.tag
    grafana_password = compose["services"]["grafana"]["environment"]["PSMON_GRAFANA_CLICKHOUSE_PASSWORD"]
    assert grafana_password == compose["services"]["clickhouse"]["environment"]["CLICKHOUSE_READER_PASSWORD"]
    # the writer's password only reaches the services that write
    writer_var = writer.find("password").get("from_env")  # type: ignore[union-attr]
    assert writer_var
    for name, svc in compose["services"].items():
        if name not in WRITERS | {"clickhouse"}:
            assert writer_var not in json.dumps(svc), name


def test_no_secret_has_a_default_and_env_example_lists_them(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?[^}]+\}", text))
    assert {"CLICKHOUSE_WRITER_PASSWORD", "CLICKHOUSE_READER_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert "KAFKA_CLUSTER_ID" in required
    defaulted = set(re.findall(r"\$\{([A-Z_]+):?-[^}]*\}", text))
    assert defaulted <= {"PSMON_VERSION"}, f"silent defaults: {defaulted}"
    assert required <= set(SITE_ENV), ".env.example must list every required variable"
    # without the .env, compose stops on each of them with its message
    for var in required:
        env = {k: v for k, v in SITE_ENV.items() if k != var}
        with pytest.raises(MissingVariable, match=var):
            _env_of_all(compose, env)


def _env_of_all(compose: dict[str, Any], env: dict[str, str]) -> None:
    for svc in compose["services"].values():
        _env(svc, env)


def test_kafka_cluster_id_is_per_site(compose: dict[str, Any]) -> None:
    cluster_id = compose["services"]["kafka"]["environment"]["CLUSTER_ID"]
    assert cluster_id.startswith("${KAFKA_CLUSTER_ID:?"), "a committed id is every site's id"


def test_the_alert_webhook_token_is_a_secret_on_both_ends(compose: dict[str, Any]) -> None:
    alerts, alertmanager = compose["services"]["alerts"], compose["services"]["alertmanager"]
    token_file = _env(alerts)["PSMON_ALERTS_TOKEN_FILE"]
    secret = Path(token_file).name
    assert token_file == f"/run/secrets/{secret}" and secret in compose["secrets"]
    assert secret in alerts["secrets"] and secret in alertmanager["secrets"]
    config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    webhooks = [w for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert webhooks
    for webhook in webhooks:
        auth = webhook["http_config"]["authorization"]
        assert auth == {"type": "Bearer", "credentials_file": token_file}  # the file, never the token


def test_docs_name_only_config_files_that_exist() -> None:
    """docs/deployment.md lists what the stack mounts and loads; each file it names is there
    (it once promised `rules/*.yml` that Prometheus never loaded)."""
    docs = (ROOT / "docs/deployment.md").read_text()
    section = docs.split("## Config files", 1)[1].split("\n## ", 1)[0]
    # repository paths (container paths start with /); `rules/*.yml` was one such promise
    named = [t for t in re.findall(r"`([^`\s]+)`", section) if "/" in t and not t.startswith(("/", "http"))]
    assert named
    for path in named:
        alternatives = re.search(r"\{([^}]*)\}", path)
        for alt in alternatives.group(1).split(",") if alternatives else [""]:
            expanded = re.sub(r"\{[^}]*\}", alt, path)
            assert list(ROOT.glob(expanded)), f"docs/deployment.md names {path}: no {expanded}"
