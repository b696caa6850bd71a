"""thresholds.yaml: the shipped defaults load, and every kind of mistake fails with a clear line."""

from pathlib import Path

import pytest

from psmon.alerting.thresholds import (
    ThresholdsError,
    default_thresholds_text,
    duration_s,
    load_thresholds,
    parse_thresholds,
)
from psmon.errors import ConfigError
from psmon.schemas.metrics import METRICS
from psmon.workcalendar import HOLIDAYS

MINIMAL = """
metrics:
  on_time: {target: 0.9, alert_below: 0.7, source: "test"}
"""


def test_defaults_cover_every_metric_with_floor_under_target() -> None:
    th = load_thresholds()
    assert set(th.metrics) == set(METRICS)
    for metric, t in th.metrics.items():
        assert 0 < t.alert_below < t.target <= 1, metric
        assert t.source.strip()
    # official targets (docs/index766.md)
    assert th.metrics["online_submission"].target == 0.80
    assert th.metrics["full_online"].target == 0.80
    assert th.metrics["result_digitization"].target == 1.0
    # the Phú Thọ override, and the default elsewhere
    assert th.floor("online_submission", "25") == 0.50
    assert th.floor("online_submission", "01") == 0.25
    assert th.min_volume("online_submission", "25") == 30
    assert set(HOLIDAYS) <= set(th.office_hours.all_holidays)
    assert th.ratio_windows == ("5m", "1h", "24h")


def test_minimal_file_gets_documented_defaults() -> None:
    th = parse_thresholds(MINIMAL)
    t = th.metrics["on_time"]
    assert (t.window, t.min_volume, t.for_, t.severity) == ("1h", 30, "15m", "warning")
    assert th.floor("online_payment", "01") is None  # metrics not listed do not alert
    assert th.office_hours.periods == ("08:00-11:30", "13:30-17:00")
    assert th.office_hours.weekday_numbers == (0, 1, 2, 3, 4)


def test_integer_province_keys_are_zero_padded() -> None:
    th = parse_thresholds(
        """
metrics:
  on_time: {target: 0.9, alert_below: 0.7, source: s, provinces: {1: {alert_below: 0.8}, 79: {min_volume: 5}}}
"""
    )
    assert th.floor("on_time", "01") == 0.8
    assert th.min_volume("on_time", "79") == 5
    assert th.floor("on_time", "79") == 0.7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "metrics:\n  on_time: {target: 0.5, alert_below: 0.7, source: s}",
            "alert_below (0.7) must not exceed target (0.5)",
        ),
        (
            "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, provinces: {'01': {alert_below: 0.95}}}",
            "province 01: alert_below (0.95) must not exceed target (0.9)",
        ),
        ("metrics:\n  on_time: {target: 1.5, alert_below: 0.7, source: s}", "metrics.on_time.target"),
        (
            "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, provinces: {'17': {}}}",
            "province '17' is an old (63-province) code; use its current code '25'",
        ),
        (
            "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, provinces: {'99': {}}}",
            "unknown province '99'",
        ),
        (
            "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, window: 1 hour}",
            "not a Prometheus duration",
        ),
        ("metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, for: 0s}", None),
        ("metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, window: 0s}", "must be longer than 0"),
        ("metrics:\n  on_time: {target: 0.9, alert_below: 0.7}", "metrics.on_time.source: Field required"),
        (
            "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, min_volume: 0}",
            "metrics.on_time.min_volume",
        ),
        ("metrics:\n  on_tme: {target: 0.9, alert_below: 0.7, source: s}", "metrics.on_tme"),
        ("metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, severity: page}", "metrics.on_time.severity"),
        (
            "metrics:\n  on_time: {target: 0.9, alert_below: 0.7, source: s, floor: 0.5}",
            "metrics.on_time.floor: Extra inputs",
        ),
        (MINIMAL + "office_hours: {periods: ['08:00-12:00', '11:00-13:00']}", "periods overlap"),
        (MINIMAL + "office_hours: {periods: ['17:00-08:00']}", "must end after it starts"),
        (MINIMAL + "office_hours: {periods: ['8h-11h']}", "period must look like 08:00-11:30"),
        (MINIMAL + "office_hours: {weekdays: [mon, mon]}", "a weekday is listed twice"),
        (MINIMAL + "office_hours: {holidays: [2026-02-30]}", "day is out of range for month"),
        (MINIMAL + "prometheus: {scrape_interval: 1m, windows: [2m]}", "at least 4 scrape intervals"),
        (MINIMAL + "version: 2", "version"),
        ("metrics: [on_time]", "metrics"),
        ("- just a list", "expected a mapping at the top level"),
        ("metrics: {on_time: {target: 0.9", "not valid YAML"),
    ],
)
def test_invalid_files_fail_with_clear_messages(text: str, message: str | None) -> None:
    if message is None:  # `for: 0s` is valid: fire on the first evaluation
        parse_thresholds(text)
        return
    with pytest.raises(ThresholdsError) as exc:
        parse_thresholds(text, source="my.yaml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("my.yaml")
    assert isinstance(exc.value, ConfigError)


def test_all_problems_are_listed_at_once() -> None:
    text = "metrics:\n  on_time: {target: 0.9, alert_below: 7, source: s, window: x}\nno_events: {window: y}"
    with pytest.raises(ThresholdsError) as exc:
        parse_thresholds(text)
    assert "3 problems" in str(exc.value)


def test_load_from_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(default_thresholds_text().replace("alert_below: 0.25", "alert_below: 0.2"), encoding="utf-8")
    assert load_thresholds(path).floor("online_submission", "01") == 0.2
    with pytest.raises(ThresholdsError, match="cannot read thresholds file"):
        load_thresholds(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("500ms", 0.5)]
)
def test_duration_s(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


def test_down_alerts_expect_replicas() -> None:
    th = load_thresholds()
    assert th.pipeline.worker_down.expected == 1 and th.pipeline.sink_down.expected == 1
    scaled = parse_thresholds(
        MINIMAL + "pipeline:\n  worker_down: {expected: 3}\n  sink_down: {for: 5m, expected: 2}\n"
    )
    assert (scaled.pipeline.worker_down.expected, scaled.pipeline.sink_down.expected) == (3, 2)
    assert scaled.pipeline.sink_down.for_ == "5m"
    with pytest.raises(ThresholdsError, match=r"pipeline\.worker_down\.expected"):
        parse_thresholds(MINIMAL + "pipeline:\n  worker_down: {expected: 0}\n")
