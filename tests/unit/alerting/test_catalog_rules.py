"""The catalog shares' alerts: generated from `catalog:` of the thresholds, tested by promtool
(`test_rules.py` runs every generated test file); here, that those tests are not vacuous."""

from pathlib import Path

from psmon.alerting.rules import build_rules
from psmon.alerting.ruletests import build_rule_tests, expand
from psmon.alerting.thresholds import load_thresholds

FAST = Path(__file__).parents[2] / "data" / "thresholds-fast.yaml"


def firing(eval_time_s: int) -> set[tuple[str, str]]:
    tests = build_rule_tests(load_thresholds(FAST))["psmon-catalog.test.yml"]["tests"][0]["alert_rule_test"]
    case = next(t for t in tests if t["eval_time"] == f"{eval_time_s}s")
    return {(a["exp_labels"]["province"], a["exp_labels"]["metric"]) for a in case["exp_alerts"]}


def test_catalog_alerts_wait_for_from_day_and_for_and_respect_floor_and_min_volume() -> None:
    # fast thresholds: 3.2 floor 50% from the 3rd (local), for 2h; override 48 at 60%, min 5
    third = 2 * 86400 - 7 * 3600  # 1970-01-03 00:00 local, in promtool's seconds
    assert firing(5 * 3600) == set()  # noon on the 1st: too early in the month
    assert firing(third + 2 * 3600 - 3600) == set()  # `for:` not elapsed yet
    after = firing(third + 2 * 3600)
    assert ("48", "procedures_with_dossiers") in after  # the override, just under its own floor
    assert len(after) == 2  # plus the one default province just under; not at the floor, not under min_volume


def test_catalog_alert_reads_the_month_gauge_and_says_month_to_date() -> None:
    th = load_thresholds()
    rules = [r for g in build_rules(th)["groups"] for r in g["rules"] if r.get("alert") == "PsmonRatioBelowFloor"]
    rule = next(r for r in rules if r["labels"]["metric"] == "procedures_with_dossiers")
    assert rule["labels"]["window"] == "month"
    assert 'psmon_ratio{metric="procedures_with_dossiers",window="month"' in rule["expr"]
    assert "day_of_month" in rule["expr"] and ">= 20" in rule["expr"]
    labels = {"province": "25", "province_name": "Phú Thọ"}
    ann = {k: expand(v, labels=labels, value=0.25, volume=812) for k, v in rule["annotations"].items()}
    assert ann["summary_vi"].startswith("Phú Thọ (25): tỷ lệ DVC trực tuyến phát sinh hồ sơ 25% dưới ngưỡng")
    assert "(target 80%), over 812 online procedures, month to date" in ann["summary_en"]
    # a structural share has no from_day gate
    online = next(r for r in rules if r["labels"]["metric"] == "procedures_online")
    assert "day_of_month" not in online["expr"]
