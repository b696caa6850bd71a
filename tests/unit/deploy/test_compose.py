"""docker-compose.yml and Dockerfile, checked without a Docker engine.

- the compose file validates against the vendored Compose Specification schema (compose-spec.json);
- every file or directory it references (build context, Dockerfile, bind mounts) exists, and the
  Grafana, Prometheus and Alertmanager configs it mounts are the ones psmon builds/ships;
- every psmon service's command parses as a real `psmon` command (the Typer app itself);
- no two services publish the same host port, and the scalable services publish none;
- every stateful service has a named volume and a health check;
- the Dockerfile passes hadolint and leaves out the chDB and dev extras.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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
PSMON_SERVICES = {"migrate", "worker", "sink", "simulator"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the x-psmon anchors
    return doc


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults (no variables set in CI)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


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
    assert "grafana-clickhouse-datasource" in env["GF_INSTALL_PLUGINS"]
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
    assert (config_dir / "rules").is_dir()
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
        assert svc["build"]["context"] == ".", name
        path = _parse_psmon(svc["command"])
        assert path[1] == svc["command"][0], name
        # the settings each psmon service gets are real Settings fields
        from psmon.settings import Settings

        env = {k: _interpolate(str(v)) for k, v in svc["environment"].items()}
        fields = {f"PSMON_{f.upper()}" for f in Settings.model_fields}
        assert set(env) <= fields, f"{name}: unknown settings {set(env) - fields}"
        # production: the ClickHouse server over HTTP, the Kafka service; values Settings accepts
        assert env["PSMON_CLICKHOUSE_DSN"].startswith("http://") and "@clickhouse:8123" in env["PSMON_CLICKHOUSE_DSN"]
        assert env["PSMON_KAFKA_BOOTSTRAP"] == "kafka:9092"
        settings = Settings(**{k.removeprefix("PSMON_").lower(): v for k, v in env.items()})
        assert not settings.embedded_clickhouse and settings.metrics_host == "0.0.0.0"


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


def test_dockerfile_passes_hadolint() -> None:
    run = subprocess.run(
        [str(_hadolint()), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
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
