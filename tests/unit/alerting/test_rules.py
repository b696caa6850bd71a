"""Generated Prometheus/Alertmanager files pass Prometheus' own tools, and every alert passes
`promtool test rules` with tests generated from the same thresholds (see `ruletests`).

Runs the real `promtool` and `amtool` (Debian packages; `make sysdeps` installs them).
"""

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from psmon.alerting.generate import Targets, write_config
from psmon.alerting.rules import build_rules
from psmon.alerting.ruletests import RULE_TEST_FILES, build_rule_tests, expand, go_float, render_rule_tests
from psmon.alerting.thresholds import Thresholds, load_thresholds, parse_thresholds

FAST = Path(__file__).parents[2] / "data" / "thresholds-fast.yaml"
REPO = Path(__file__).parents[3]
VARIANTS = {"default": None, "fast": FAST}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make sysdeps` (Debian packages prometheus, prometheus-alertmanager)"
        )
    return path


def run(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def thresholds(variant: str) -> Thresholds:
    return load_thresholds(VARIANTS[variant])


@pytest.fixture(scope="module", params=list(VARIANTS))
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Thresholds, Path]:
    th = thresholds(request.param)
    out = tmp_path_factory.mktemp(f"rules-{request.param}")
    write_config(out, th, Targets(workers=["127.0.0.1:9108", "dns+worker:9108"], sinks=["dns+sink:9108"]))
    for name, text in render_rule_tests(th).items():
        (out / "prometheus" / name).write_text(text, encoding="utf-8")
    return th, out


def test_config_passes_promtool_and_amtool(generated: tuple[Thresholds, Path]) -> None:
    _th, out = generated
    text = run(tool("promtool"), "check", "config", str(out / "prometheus" / "prometheus.yml"))
    assert "SUCCESS" in text and "rules found" in text
    run(tool("promtool"), "check", "rules", str(out / "prometheus" / "psmon-rules.yml"))
    text = run(tool("amtool"), "check-config", str(out / "alertmanager" / "alertmanager.yml"))
    assert "SUCCESS" in text and "2 receivers" in text


@pytest.mark.parametrize("test_file", list(RULE_TEST_FILES))
def test_promtool_unit_tests_pass(generated: tuple[Thresholds, Path], test_file: str) -> None:
    _th, out = generated
    text = run(tool("promtool"), "test", "rules", test_file, cwd=out / "prometheus")
    assert "SUCCESS" in text


def test_generated_tests_are_not_vacuous() -> None:
    """The expectations themselves: what must fire does, what must not is absent."""
    th = thresholds("fast")
    docs = build_rule_tests(th)
    ratio = docs["psmon-rules.test.yml"]["tests"][0]
    t1, t2 = ratio["alert_rule_test"]
    firing_t1 = {(a["exp_labels"]["province"], a["exp_labels"]["metric"]) for a in t1["exp_alerts"]}
    firing_t2 = {(a["exp_labels"]["province"], a["exp_labels"]["metric"]) for a in t2["exp_alerts"]}
    codes = [s["series"].split('province="')[1][:2] for s in ratio["input_series"]]
    provinces = list(dict.fromkeys(codes))  # a, b, c, d per metric (then overrides), in order
    a, b, c, d = provinces[:4]
    assert (b, "online_submission") in firing_t1 and (d, "online_submission") in firing_t1
    assert (a, "online_submission") not in firing_t1 and (c, "online_submission") not in firing_t1
    assert ("01", "online_submission") in firing_t1  # the override, just under its own floor
    assert (b, "online_submission") not in firing_t2  # recovered
    # no-events: fires on Thursday 1970-01-01 (a working day), never on the holiday Friday or weekend
    cal = docs["psmon-calendar.test.yml"]["tests"][0]["alert_rule_test"]
    fired = [int(c["eval_time"].rstrip("s")) for c in cal if c["alertname"] == "PsmonNoEvents" and c["exp_alerts"]]
    friday_local = 86400 - 7 * 3600  # 1970-01-02 00:00 UTC+7, in seconds since the epoch
    assert fired and max(fired) < friday_local  # Friday (a holiday here) and the weekend: nothing


def test_default_calendar_fires_on_friday_too() -> None:
    cal = build_rule_tests(load_thresholds())["psmon-calendar.test.yml"]["tests"][0]["alert_rule_test"]
    fired = {
        int(c["eval_time"].rstrip("s")) // 86400 for c in cal if c["alertname"] == "PsmonNoEvents" and c["exp_alerts"]
    }
    assert fired == {0, 1}  # Thursday and Friday (UTC day numbers), not Saturday


def test_annotations_are_bilingual_and_carry_value_threshold_volume() -> None:
    rules = build_rules(load_thresholds())
    alert = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "PsmonRatioBelowFloor")
    labels = {"province": "25", "province_name": "Phú Thọ"}
    ann = {k: expand(v, labels=labels, value=0.123, volume=456) for k, v in alert["annotations"].items()}
    assert ann["summary_vi"].startswith("Phú Thọ (25): tỷ lệ hồ sơ nộp trực tuyến 12.3% dưới ngưỡng cảnh báo 25%")
    assert "456 hồ sơ tiếp nhận" in ann["summary_vi"]
    assert (
        "online submission ratio 12.3% is below the alert floor 25% (target 80%), over 456 dossiers"
        in ann["summary_en"]
    )
    assert (ann["value"], ann["threshold"], ann["volume"]) == ("0.123", "0.25", "456")


def test_go_float_matches_go_formatting() -> None:
    values = (0.0, 1.0, 0.25, 0.1 + 0.2, 60000.0, 2e9, 1234567.0, 1e-05, 0.00012, -3.5)
    assert [go_float(x) for x in values] == [
        "0",
        "1",
        "0.25",
        "0.30000000000000004",
        "60000",
        "2e+09",
        "1.234567e+06",
        "1e-05",
        "0.00012",
        "-3.5",
    ]


#: Where docker-compose.yml mounts the alert receiver's token (the `alerts_token` secret) in the
#: Alertmanager container; tests/unit/deploy checks the mount.
COMPOSE_ALERTS_TOKEN_FILE = "/run/secrets/alerts_token"
REGENERATE = f"psmon rules --out deploy --profile compose --webhook-token-file {COMPOSE_ALERTS_TOKEN_FILE}"


def test_deploy_copies_are_up_to_date(tmp_path: Path) -> None:
    """deploy/ holds what `psmon rules --out deploy --profile compose` writes (Docker Compose mounts it)."""
    from psmon.alerting.generate import COMPOSE_TARGETS

    write_config(tmp_path, load_thresholds(), replace(COMPOSE_TARGETS, webhook_token_file=COMPOSE_ALERTS_TOKEN_FILE))
    for rel in ("prometheus/prometheus.yml", "prometheus/psmon-rules.yml", "alertmanager/alertmanager.yml"):
        committed = REPO / "deploy" / rel
        assert committed.exists(), f"{committed} missing: run `{REGENERATE}`"
        assert committed.read_text(encoding="utf-8") == (tmp_path / rel).read_text(encoding="utf-8"), (
            f"{committed} is stale: run `{REGENERATE}`"
        )
    assert yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"][0][
        "dns_sd_configs"
    ]


def test_each_override_gets_its_own_rule_and_the_default_rule_skips_it() -> None:
    th = load_thresholds(FAST)
    text = "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, provinces: {'79': {target: 0.95}}}"
    from psmon.alerting.thresholds import parse_thresholds

    for thresholds, code, floor, target in ((th, "01", 0.5, "0.8"), (parse_thresholds(text), "79", 0.7, "0.95")):
        rules = [
            r for g in build_rules(thresholds)["groups"] for r in g["rules"] if r.get("alert") == "PsmonRatioBelowFloor"
        ]
        own = [r for r in rules if r["labels"].get("province") == code]
        assert len(own) == 1 and f'province="{code}"}} < {floor}' in own[0]["expr"]
        assert own[0]["annotations"]["target"] == target
        default = next(
            r for r in rules if "province" not in r["labels"] and r["labels"]["metric"] == own[0]["labels"]["metric"]
        )
        assert f'province!~"{code}"' in default["expr"]


def scaled() -> Thresholds:
    """The fast thresholds for a site that runs 3 workers and 2 sinks."""
    doc = yaml.safe_load(FAST.read_text(encoding="utf-8"))
    doc["pipeline"]["worker_down"]["expected"] = 3
    doc["pipeline"]["sink_down"]["expected"] = 2
    return parse_thresholds(yaml.safe_dump(doc, allow_unicode=True), source="scaled")


def _down_cases(th: Thresholds) -> dict[tuple[str, str], list[Any]]:
    """(start of the group's name, alert) -> the labels expected at each of its checks."""
    tests = build_rule_tests(th)["psmon-down.test.yml"]["tests"]
    cases: dict[tuple[str, str], list[Any]] = {}
    for g in tests:
        for c in g["alert_rule_test"]:
            key = (g["name"].split(":")[0], c["alertname"])
            cases.setdefault(key, []).append([a["exp_labels"] for a in c["exp_alerts"]])
    return cases


def test_down_alerts_fire_when_discovered_replicas_vanish(tmp_path: Path) -> None:
    """Compose discovers replicas by DNS: a dead one's target vanishes (its `up` goes stale) rather
    than reporting 0. With 3 workers and 2 sinks expected, losing one replica more than allowed
    fires the "fewer" form, losing all fires the "none up" form that inhibits the blind alerts."""
    th = scaled()
    write_config(tmp_path, th, Targets(workers=["dns+worker:9108"], sinks=["dns+sink:9108"]))
    (tmp_path / "prometheus" / "psmon-down.test.yml").write_text(
        render_rule_tests(th)["psmon-down.test.yml"], encoding="utf-8"
    )
    text = run(tool("promtool"), "test", "rules", "psmon-down.test.yml", cwd=tmp_path / "prometheus")
    assert "SUCCESS" in text
    cases = _down_cases(th)
    workers = cases[("replicas vanish from DNS discovery", "PsmonWorkerDown")]
    sinks = cases[("replicas vanish from DNS discovery", "PsmonSinkDown")]
    # 4 -> 3 workers: nothing; 3 -> 2: "fewer" (2 of 3); -> 0: none up, labelled for the inhibition
    assert workers == [[], [{"severity": "critical", "expected": "3"}], [{"severity": "critical", "workers_up": "0"}]]
    assert sinks == [[], [{"severity": "critical", "expected": "2"}], [{"severity": "critical", "sinks_up": "0"}]]


def test_the_only_sink_vanishing_fires_but_psmon_up_without_sinks_does_not() -> None:
    cases = _down_cases(load_thresholds())
    only_sink = cases[("replicas vanish from DNS discovery", "PsmonSinkDown")]
    assert only_sink[1:] == [[{"severity": "critical", "sinks_up": "0"}]] * 2
    assert cases[("no target at all", "PsmonSinkDown")] == [[]]
    assert cases[("no target at all", "PsmonWorkerDown")] == [[{"severity": "critical", "workers_up": "0"}]]
    rules = [
        r for g in build_rules(load_thresholds())["groups"] for r in g["rules"] if r.get("alert") == "PsmonSinkDown"
    ]
    assert any("absent(" in r["expr"] for r in rules)  # a vanished target is seen, not only `up == 0`
