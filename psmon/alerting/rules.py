"""Prometheus rules and `prometheus.yml`, generated from the thresholds.

Recording rules (first in the one group `psmon`, so each evaluation computes them before the alerts):
- `psmon:province_info{province, province_name} 1`, one per current province: the list of the
  34 that "no events" is checked against, and the Vietnamese name joined into alert labels.
- `psmon:office_hours` 1 while offices are open (UTC+7 weekday, period and holiday conditions
  generated from `office_hours`; PromQL has no time zone, so the clock is shifted by +7 h and
  holidays are local day numbers since 1970-01-01), 0 otherwise.
- `province:psmon_ratio_numerator:increase`, `..._denominator:increase` and `province:psmon_ratio:increase`
  with labels `metric` and `window`: the six ratios of the contract (docs/contract.md) per province, from the exported
  counters summed across workers (`sum by (province) (increase(...))`), for the dashboard
  windows plus every alert window. A zero denominator gives no value (not 0, not 1); a missing
  numerator series where the denominator exists counts as 0 (a province whose online filings
  stopped before the worker started must still alert).

Alerting rules (after the recording rules, same group):
- `PsmonRatioBelowFloor{metric}`: ratio strictly under `alert_below` while the denominator in the
  window is at least `min_volume`, for `for:`; one rule per metric for every province without an
  override, and one per overridden province. Cross-event ratios can exceed 1 in short windows;
  only a value under the floor alerts, so such values never do.
- The same `PsmonRatioBelowFloor` for the catalog shares (`catalog:` of the thresholds, metric
  `procedures_*`, window `month`): the worker's month-to-date gauge `psmon_ratio` itself under
  the floor, with at least `min_volume` procedures in its denominator, from day `from_day` of the
  local month on (a share that grows through the month is low on the 1st by nature).
- `PsmonNoEvents` (per province) and `PsmonNoEventsNationwide`: no dossier submitted during a
  window that lay entirely within office hours (`min_over_time(psmon:office_hours[w]) == 1`), so
  the first minutes after opening or lunch never alert.
- `PsmonWorkerDown` and `PsmonSinkDown`, each three rules: a target down (`up == 0`), fewer than
  `expected` up, none up at all (labelled `workers_up`/`sinks_up="0"`); see `_down_alerts`.
  `PsmonClickHouseWriteErrors`,
  `PsmonDeadLetterSpike`, `PsmonEventTimeLag` (office hours only: at night a quiet province
  rightly lets the watermark stand still).
Annotations are bilingual (`summary_vi`, `summary_en`, plus `summary` with both) and carry the
machine-readable `value`, `threshold`, `volume` that the webhook receiver stores.

Jobs: workers are scraped as job `psmon-worker` (required: absent means down), sinks as
`psmon-sink` (optional; `psmon up` runs everything in one `psmon-worker` target); where sinks are
configured, `psmon-sink-presence` marks that they are expected.
"""

from collections.abc import Iterable, Sequence
from datetime import date, time
from typing import Any, Final

import yaml

from psmon.alerting.thresholds import CatalogThreshold, MetricThreshold, Thresholds
from psmon.metrics import SINK_JOB, WORKER_JOB
from psmon.schemas.catalog_metrics import CATALOG_METRIC_LABELS, CATALOG_WINDOW, CatalogMetric
from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry
from psmon.timeutil import LOCAL_OFFSET_S

__all__ = [
    "COUNTER_SELECTORS",
    "COUNTER_SERIES",
    "METRIC_LABELS",
    "NONE_UP_LABELS",
    "RULES_FILE",
    "SINK_PRESENCE_JOB",
    "build_prometheus_config",
    "build_rules",
    "dump_yaml",
    "render_prometheus_config",
    "render_rules",
]

RULES_FILE: Final = "psmon-rules.yml"
#: Scrape job that only says "sinks are configured here" (see `_presence_job`).
SINK_PRESENCE_JOB: Final = "psmon-sink-presence"

#: Counter names of `schemas.metrics.COUNTERS` -> (exported counter, label matchers).
COUNTER_SERIES: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "submitted": ("psmon_dossiers_submitted_total", {}),
    "submitted_online": ("psmon_dossiers_submitted_total", {"channel": "online"}),
    "submitted_full_online": ("psmon_dossiers_submitted_total", {"channel": "online", "service_mode": "full_online"}),
    "submitted_fee_bearing": ("psmon_dossiers_fee_bearing_total", {}),
    "resolved": ("psmon_dossiers_resolved_total", {}),
    "resolved_on_time": ("psmon_dossiers_resolved_total", {"on_time": "true"}),
    "payments": ("psmon_payments_total", {}),
    "payments_online": ("psmon_payments_total", {"method": "online"}),
    "digitized_dossier": ("psmon_records_digitized_total", {"kind": "dossier"}),
    "digitized_result": ("psmon_records_digitized_total", {"kind": "result"}),
}
#: The same as PromQL selectors.
COUNTER_SELECTORS: Final[dict[str, str]] = {
    name: metric + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for name, (metric, labels) in COUNTER_SERIES.items()
}

#: metric -> (Vietnamese name, English name, Vietnamese volume unit, English volume unit)
_RECEIVED: Final = ("hồ sơ tiếp nhận", "dossiers received")
_RESOLVED: Final = ("hồ sơ đã giải quyết", "dossiers resolved")
METRIC_LABELS: Final[dict[Metric, tuple[str, str, str, str]]] = {
    "online_submission": ("tỷ lệ hồ sơ nộp trực tuyến", "online submission ratio", *_RECEIVED),
    "full_online": ("tỷ lệ hồ sơ trực tuyến toàn trình", "full-online ratio", *_RECEIVED),
    "online_payment": ("tỷ lệ thanh toán trực tuyến", "online payment ratio", "lượt thanh toán", "payments"),
    "dossier_digitization": ("tỷ lệ số hóa hồ sơ", "dossier digitization ratio", *_RECEIVED),
    "result_digitization": ("tỷ lệ số hóa kết quả", "result digitization ratio", *_RESOLVED),
    "on_time": ("tỷ lệ giải quyết đúng hạn", "on-time resolution ratio", *_RESOLVED),
}

_EPOCH: Final = date(1970, 1, 1)
_LOCAL = f"vector(time() + {LOCAL_OFFSET_S})"


def percent(x: float) -> str:
    """0.25 -> '25%' (as thresholds are shown in annotations)."""
    return f"{x * 100:.4g}%"


# -- calendar ------------------------------------------------------------------------------------
def _minute(t: time) -> int:
    return t.hour * 60 + t.minute + (1 if t.second else 0)


def _day_ranges(days: Iterable[date]) -> list[tuple[int, int]]:
    """Local day numbers (days since 1970-01-01) merged into inclusive ranges."""
    nums = sorted({(d - _EPOCH).days for d in days})
    out: list[tuple[int, int]] = []
    for n in nums:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def office_hours_expr(th: Thresholds) -> str:
    oh = th.office_hours
    dow = f"day_of_week({_LOCAL})"
    days = " or ".join(f"{dow} == {(d + 1) % 7}" for d in oh.weekday_numbers)  # PromQL: Sunday = 0
    mod = f"(hour({_LOCAL}) * 60 + minute({_LOCAL}))"
    periods = " or ".join(f"{mod} >= {_minute(a)} < {_minute(b)}" for a, b in oh.spans)
    expr = f"(\n  vector(1)\n  and on() ({days})\n  and on() ({periods})\n)"
    ranges = _day_ranges(oh.all_holidays)
    if ranges:
        day = f"floor({_LOCAL} / 86400)"
        closed = "\n  or ".join(f"{day} == {a}" if a == b else f"({day} >= {a} <= {b})" for a, b in ranges)
        expr += f"\nunless on() (\n  {closed}\n)"
    return f"(\n{expr}\n)\nor on() vector(0)"


def _province_info_rules() -> list[dict[str, Any]]:
    return [
        {"record": "psmon:province_info", "expr": "vector(1)", "labels": {"province": p.code, "province_name": p.name}}
        for p in registry().current
    ]


# -- ratios --------------------------------------------------------------------------------------
def _increase(counter: str, window: str) -> str:
    return f"sum by (province) (increase({COUNTER_SELECTORS[counter]}[{window}]))"


def _ratio_rules(windows: Sequence[str]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for window in windows:
        for metric, (num, den) in METRICS.items():
            labels = {"metric": metric, "window": window}
            sel = f'{{metric="{metric}",window="{window}"}}'
            rules += [
                {
                    # No numerator series (say, no online filing since the worker started) is a
                    # numerator of 0 wherever the denominator exists, not a missing ratio.
                    "record": "province:psmon_ratio_numerator:increase",
                    "expr": f"{_increase(num, window)}\nor on(province)\n0 * {_increase(den, window)}",
                    "labels": labels,
                },
                {
                    "record": "province:psmon_ratio_denominator:increase",
                    "expr": _increase(den, window),
                    "labels": labels,
                },
                {
                    "record": "province:psmon_ratio:increase",
                    "expr": f"province:psmon_ratio_numerator:increase{sel}\n"
                    f"  / on(province, metric, window)\n(province:psmon_ratio_denominator:increase{sel} > 0)",
                    "labels": labels,
                },
            ]
    return rules


# -- alerts --------------------------------------------------------------------------------------
_WITH_NAME = "* on(province) group_left(province_name) psmon:province_info"


def _ratio_alert(
    metric: Metric,
    t: MetricThreshold,
    *,
    floor: float,
    min_volume: int,
    target: float,
    province_filter: str,
    labels: dict[str, str],
) -> dict[str, Any]:
    vi, en, unit_vi, unit_en = METRIC_LABELS[metric]
    sel = f'metric="{metric}",window="{t.window}",{province_filter}'
    volume_query = (
        f'{{{{ with printf `province:psmon_ratio_denominator:increase{{metric="{metric}",window="{t.window}",'
        f'province="%s"}}` $labels.province | query }}}}{{{{ . | first | value | printf "%.0f" }}}}{{{{ end }}}}'
    )
    expr = (
        f"(\n  province:psmon_ratio:increase{{{sel}}} < {floor}\n"
        f"  and on(province)\n  province:psmon_ratio_denominator:increase{{{sel}}} >= {min_volume}\n)\n{_WITH_NAME}"
    )
    return _below_floor(
        (vi, en, unit_vi, unit_en),
        (f" trong {t.window} qua", f" in the last {t.window}"),
        expr=expr,
        for_=t.for_,
        labels={"severity": t.severity, "metric": metric, **labels},
        floor=floor,
        target=target,
        min_volume=min_volume,
        volume_query=volume_query,
    )


def _below_floor(
    words: tuple[str, str, str, str],
    span: tuple[str, str],
    *,
    expr: str,
    for_: str,
    labels: dict[str, str],
    floor: float,
    target: float,
    min_volume: int,
    volume_query: str,
) -> dict[str, Any]:
    """`PsmonRatioBelowFloor` with its texts in both languages: `words` names the share and its
    unit (vi, en, unit vi, unit en), `span` says over what time (vi, en)."""
    vi, en, unit_vi, unit_en = words
    where = "{{ $labels.province_name }} ({{ $labels.province }})"
    value = "{{ $value | humanizePercentage }}"
    summary_vi = (
        f"{where}: {vi} {value} dưới ngưỡng cảnh báo {percent(floor)} (mục tiêu {percent(target)}), "
        f"trên {volume_query} {unit_vi}{span[0]}"
    )
    summary_en = (
        f"{where}: {en} {value} is below the alert floor {percent(floor)} (target {percent(target)}), "
        f"over {volume_query} {unit_en}{span[1]}"
    )
    return {
        "alert": "PsmonRatioBelowFloor",
        "expr": expr,
        "for": for_,
        "labels": labels,
        "annotations": {
            "summary": f"{summary_vi} / {summary_en}",
            "summary_vi": summary_vi,
            "summary_en": summary_en,
            "value": "{{ $value }}",
            "threshold": f"{floor}",
            "target": f"{target}",
            "volume": volume_query,
            "min_volume": str(min_volume),
        },
    }


def _ratio_alerts(th: Thresholds) -> list[dict[str, Any]]:
    rules = []
    for metric, t in th.metrics.items():
        special = sorted(t.provinces)  # any override, even of the target alone, gets its own rule and texts
        others = f'province!~"{"|".join(special)}"' if special else 'province!=""'
        target = t.target
        rules.append(
            _ratio_alert(
                metric,
                t,
                floor=t.alert_below,
                min_volume=t.min_volume,
                target=target,
                province_filter=others,
                labels={},
            )
        )
        for code in special:
            rules.append(
                _ratio_alert(
                    metric,
                    t,
                    floor=th.floor(metric, code) or 0.0,
                    min_volume=th.min_volume(metric, code) or 1,
                    target=th.target(metric, code) or target,
                    province_filter=f'province="{code}"',
                    labels={"province": code},  # one rule per override: a distinct label set
                )
            )
    return rules


def _catalog_alert(
    metric: CatalogMetric,
    t: CatalogThreshold,
    *,
    floor: float,
    min_volume: int,
    target: float,
    province_filter: str,
    labels: dict[str, str],
) -> dict[str, Any]:
    """`PsmonRatioBelowFloor` for a catalog share: the worker's month-to-date gauge itself (one
    owner per province; `max by` drops the instance labels), from day `from_day` of the month."""
    vi, en, unit_vi, unit_en = CATALOG_METRIC_LABELS[metric]
    sel = f'metric="{metric}",window="{CATALOG_WINDOW}",{province_filter}'
    volume_query = (
        f'{{{{ with printf `max(psmon_ratio_denominator{{metric="{metric}",window="{CATALOG_WINDOW}",'
        f'province="%s"}})` $labels.province | query }}}}{{{{ . | first | value | printf "%.0f" }}}}{{{{ end }}}}'
    )
    expr = (
        f"(\n  max by (province) (psmon_ratio{{{sel}}}) < {floor}\n  and on(province)\n"
        f"  max by (province) (psmon_ratio_denominator{{{sel}}}) >= {min_volume}\n)\n{_WITH_NAME}"
    )
    if t.from_day > 1:
        expr += f"\nand on() (day_of_month({_LOCAL}) >= {t.from_day})"
    return _below_floor(
        (vi, en, unit_vi, unit_en),
        (", từ đầu tháng", ", month to date"),
        expr=expr,
        for_=t.for_,
        labels={"severity": t.severity, "metric": metric, "window": CATALOG_WINDOW, **labels},
        floor=floor,
        target=target,
        min_volume=min_volume,
        volume_query=volume_query,
    )


def _catalog_alerts(th: Thresholds) -> list[dict[str, Any]]:
    rules = []
    for metric, t in th.catalog.items():
        special = sorted(t.provinces)
        others = f'province!~"{"|".join(special)}"' if special else 'province!=""'
        rules.append(
            _catalog_alert(
                metric,
                t,
                floor=t.alert_below,
                min_volume=t.min_volume,
                target=t.target,
                province_filter=others,
                labels={},
            )
        )
        for code in special:
            rules.append(
                _catalog_alert(
                    metric,
                    t,
                    floor=th.floor(metric, code) or 0.0,
                    min_volume=th.min_volume(metric, code) or 1,
                    target=th.target(metric, code) or t.target,
                    province_filter=f'province="{code}"',
                    labels={"province": code},
                )
            )
    return rules


#: alert name -> (job, what it is in Vietnamese and English, what its loss means in each language)
_DOWN: Final = {
    "PsmonWorkerDown": (
        WORKER_JOB,
        ("worker", "worker"),
        ("mất số liệu trực tiếp và cảnh báo", "live rates and alerts are blind"),
    ),
    "PsmonSinkDown": (
        SINK_JOB,
        ("sink", "sink"),
        ("lịch sử ClickHouse ngừng cập nhật", "ClickHouse history is not updated"),
    ),
}
#: label that marks the "none up at all" form of each down alert (the inhibition keys on it)
NONE_UP_LABELS: Final = {"PsmonWorkerDown": "workers_up", "PsmonSinkDown": "sinks_up"}


def _down_alerts(th: Thresholds) -> list[dict[str, Any]]:
    """Three rules per job, one alert name: a scraped target down (`up == 0`, per instance), fewer
    than `expected` targets up, and none up at all. Compose discovers replicas by DNS, so a dead
    container's target vanishes rather than reporting 0: only the count and the absence see it.

    Workers are required everywhere (`psmon up` is one `psmon-worker` target). Sinks are their own
    job only where they run apart (Compose); there `SINK_PRESENCE_JOB` exists whatever the
    replicas do, and gates "no sink up", so `psmon up` (no sink job) never alerts on sinks."""
    p = th.pipeline
    out: list[dict[str, Any]] = []
    for alert, (job, (vi, en), (loss_vi, loss_en)) in _DOWN.items():
        down = p.worker_down if alert == "PsmonWorkerDown" else p.sink_down
        none_up = f'absent(up{{job="{job}"}} == 1)'
        if job == SINK_JOB:
            none_up += f'\nand on() count(up{{job="{SINK_PRESENCE_JOB}"}})'
        forms = [
            (
                f'up{{job="{job}"}} == 0',
                {},
                f"{vi.capitalize()} psmon {{{{ $labels.instance }}}} không phản hồi: {loss_vi}",
                f"psmon {en} {{{{ $labels.instance }}}} is not scraped: {loss_en}",
                f"{vi.capitalize()} psmon không chạy / psmon {en} down: {{{{ $labels.instance }}}}",
            ),
            (
                none_up,
                {NONE_UP_LABELS[alert]: "0"},
                f"Không có {vi} psmon nào hoạt động (cần {down.expected}): {loss_vi}",
                f"No psmon {en} is up (expected {down.expected}): {loss_en}",
                f"Không có {vi} psmon nào hoạt động / no psmon {en} is up",
            ),
        ]
        if down.expected > 1:  # with one expected, "fewer than one up" is the absence above
            forms.insert(
                1,
                (
                    f'count(up{{job="{job}"}} == 1) < {down.expected}',
                    {"expected": str(down.expected)},
                    f"Chỉ {{{{ $value }}}} {vi} psmon hoạt động, cần {down.expected}: {loss_vi}",
                    f"Only {{{{ $value }}}} of {down.expected} psmon {en}s are up: {loss_en}",
                    f"Thiếu {vi} psmon / too few psmon {en}s up: {{{{ $value }}}} of {down.expected}",
                ),
            )
        for expr, labels, summary_vi, summary_en, summary in forms:
            out.append(
                {
                    "alert": alert,
                    "expr": expr,
                    "for": down.for_,
                    "labels": {"severity": down.severity, **labels},
                    "annotations": {
                        "summary": summary,
                        "summary_vi": summary_vi,
                        "summary_en": summary_en,
                        "value": "{{ $value }}",
                    },
                }
            )
    return out


def _pipeline_alerts(th: Thresholds) -> list[dict[str, Any]]:
    ne, p = th.no_events, th.pipeline
    open_all_window = f"min_over_time(psmon:office_hours[{ne.window}]) == 1"
    dl, lag = p.dead_letter_spike, p.event_time_lag
    validated = f'sum(increase(psmon_events_processed_total{{stage="validate"}}[{dl.window}]))'
    where = "{{ $labels.province_name }} ({{ $labels.province }})"
    return [
        {
            "alert": "PsmonNoEvents",
            "expr": f"(\n  (\n    sum by (province) (increase(psmon_dossiers_submitted_total[{ne.window}]))\n"
            f"    or on(province) (0 * psmon:province_info)\n  ) == 0\n)\n{_WITH_NAME}\n"
            f"and on() ({open_all_window})",
            "for": ne.for_,
            "labels": {"severity": ne.severity},
            "annotations": {
                "summary": f"{where}: không có hồ sơ nào trong {ne.window} giờ hành chính / "
                f"no dossier submitted in {ne.window} of office hours",
                "summary_vi": f"{where}: không nhận được hồ sơ nào trong {ne.window} qua, trong giờ hành chính",
                "summary_en": f"{where}: no dossier submitted in the last {ne.window}, during office hours",
                "value": "{{ $value }}",
                "threshold": "0",
            },
        },
        {
            "alert": "PsmonNoEventsNationwide",
            "expr": f"(sum(increase(psmon_dossiers_submitted_total[{ne.window}])) or vector(0)) == 0\n"
            f"and on() ({open_all_window})",
            "for": ne.for_,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": f"Không tỉnh nào có hồ sơ trong {ne.window} giờ hành chính / "
                f"no dossier from any province in {ne.window} of office hours",
                "summary_vi": f"Cả nước: không nhận được hồ sơ nào trong {ne.window} qua, trong giờ hành chính",
                "summary_en": f"Nationwide: no dossier submitted in the last {ne.window}, during office hours",
                "value": "{{ $value }}",
                "threshold": "0",
            },
        },
        *_down_alerts(th),
        {
            "alert": "PsmonClickHouseWriteErrors",
            "expr": f"sum by (instance) (increase(psmon_clickhouse_errors_total[{p.clickhouse_errors.window}])) > 0",
            "for": p.clickhouse_errors.for_,
            "labels": {"severity": p.clickhouse_errors.severity},
            "annotations": {
                "summary": "Lỗi ghi ClickHouse / ClickHouse write errors on {{ $labels.instance }}",
                "summary_vi": f'{{{{ $value | printf "%.0f" }}}} lần ghi ClickHouse thất bại trong '
                f"{p.clickhouse_errors.window} ({{{{ $labels.instance }}}}); sink đang thử lại",
                "summary_en": f'{{{{ $value | printf "%.0f" }}}} failed ClickHouse writes in '
                f"{p.clickhouse_errors.window} ({{{{ $labels.instance }}}}); the sink keeps retrying",
                "value": "{{ $value }}",
                "threshold": "0",
            },
        },
        {
            "alert": "PsmonDeadLetterSpike",
            "expr": f"sum(increase(psmon_events_invalid_total[{dl.window}])) / {validated} > {dl.max_ratio}\n"
            f"and on() {validated} >= {dl.min_volume}",
            "for": dl.for_,
            "labels": {"severity": dl.severity},
            "annotations": {
                "summary": f"Tỷ lệ sự kiện lỗi {{{{ $value | humanizePercentage }}}} / dead letters "
                f"{{{{ $value | humanizePercentage }}}} of events (> {percent(dl.max_ratio)})",
                "summary_vi": f"{{{{ $value | humanizePercentage }}}} sự kiện trong {dl.window} bị loại "
                f"(dead letter), vượt {percent(dl.max_ratio)}",
                "summary_en": f"{{{{ $value | humanizePercentage }}}} of events in {dl.window} went to the "
                f"dead-letter topic, above {percent(dl.max_ratio)}",
                "value": "{{ $value }}",
                "threshold": f"{dl.max_ratio}",
            },
        },
        {
            "alert": "PsmonEventTimeLag",
            "expr": f'max(psmon_event_time_lag_seconds{{job="{WORKER_JOB}"}}) > {lag.max_s:g}\n'
            f"and on() psmon:office_hours == 1",
            "for": lag.for_,
            "labels": {"severity": lag.severity},
            "annotations": {
                "summary": "Số liệu trực tiếp bị trễ {{ $value | humanizeDuration }} / live event time lags "
                "{{ $value | humanizeDuration }}",
                "summary_vi": f"Thời gian sự kiện mới nhất chậm {{{{ $value | humanizeDuration }}}} so với "
                f"đồng hồ (ngưỡng {lag.max_s:g} s)",
                "summary_en": f"The newest event time is {{{{ $value | humanizeDuration }}}} behind the wall clock "
                f"(limit {lag.max_s:g} s)",
                "value": "{{ $value }}",
                "threshold": f"{lag.max_s:g}",
            },
        },
    ]


def build_rules(th: Thresholds) -> dict[str, Any]:
    """The Prometheus rule file as a dict (see module docstring)."""
    interval = th.prometheus.evaluation_interval
    recording = [
        *_province_info_rules(),
        {"record": "psmon:office_hours", "expr": office_hours_expr(th)},
        *_ratio_rules(th.ratio_windows),
    ]
    alerts = _ratio_alerts(th) + _catalog_alerts(th) + _pipeline_alerts(th)
    return {
        # One group: Prometheus evaluates the rules of a group in order at one instant, so every
        # alert reads the recorded series of that same evaluation. Separate groups run
        # concurrently (and promtool orders them at random), so an alert could read a
        # recording one interval old or not yet written, which made rule tests flaky.
        "groups": [{"name": "psmon", "interval": interval, "rules": [*recording, *alerts]}]
    }


# -- prometheus.yml ------------------------------------------------------------------------------
def _targets(targets: Sequence[str]) -> dict[str, Any]:
    """Scrape targets: `host:port` are static; `dns+name:port` use DNS service discovery
    (every A record of `name`, as Docker Compose gives for a scaled service)."""
    dns = [t.removeprefix("dns+") for t in targets if t.startswith("dns+")]
    static = [t for t in targets if not t.startswith("dns+")]
    out: dict[str, Any] = {}
    if static:
        out["static_configs"] = [{"targets": static}]
    if dns:
        out["dns_sd_configs"] = [
            {"names": [d.rsplit(":", 1)[0]], "type": "A", "port": int(d.rsplit(":", 1)[1]), "refresh_interval": "30s"}
            for d in dns
        ]
    return out


def _presence_job(targets: Sequence[str]) -> dict[str, Any]:
    """`SINK_PRESENCE_JOB`: the sink targets again, as static targets (a DNS name is resolved at
    each scrape), keeping no sample: its `up` series exists as long as the config names sinks,
    whether or not any replica runs, which is what "no sink up" is checked against."""
    return {
        "job_name": SINK_PRESENCE_JOB,
        "static_configs": [{"targets": [t.removeprefix("dns+") for t in targets]}],
        # `up` and the scrape_* series are not scraped samples: dropping every sample keeps them
        "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": ".+", "action": "drop"}],
    }


def build_prometheus_config(
    th: Thresholds,
    *,
    worker_targets: Sequence[str],
    sink_targets: Sequence[str] = (),
    alertmanager_targets: Sequence[str] = (),
) -> dict[str, Any]:
    scrape = [{"job_name": WORKER_JOB, **_targets(worker_targets)}]
    if sink_targets:
        scrape.append({"job_name": SINK_JOB, **_targets(sink_targets)})
        scrape.append(_presence_job(sink_targets))
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": th.prometheus.scrape_interval,
            "evaluation_interval": th.prometheus.evaluation_interval,
            "external_labels": {"monitor": "psmon"},
        },
        "rule_files": [RULES_FILE],  # relative to this file's directory
        "scrape_configs": scrape,
    }
    if alertmanager_targets:
        config["alerting"] = {"alertmanagers": [{"api_version": "v2", **_targets(alertmanager_targets)}]}
    return config


# -- YAML ----------------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a dict used twice is written out twice: generated files stay readable, no &id001


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Any, *, header: str = "") -> str:
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return header + body


_HEADER = "# Generated by `psmon rules` from thresholds.yaml ({what}); edit the thresholds, not this file.\n"


def render_rules(th: Thresholds) -> str:
    return dump_yaml(build_rules(th), header=_HEADER.format(what="Prometheus rules"))


def render_prometheus_config(th: Thresholds, **kwargs: Any) -> str:
    return dump_yaml(build_prometheus_config(th, **kwargs), header=_HEADER.format(what="Prometheus config"))
