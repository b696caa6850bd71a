"""Every PromQL expression of the dashboards, in one place.

They read the metrics a worker and a sink export today (counters and `psmon_ratio` gauges), not
recording rules, so a Prometheus that only scrapes psmon can serve every panel. Gauges are
aggregated with `max by (province, ...)`: each province is owned by one worker at a time, and
`max` hides the short overlap after a rebalance. Counter-based rates `sum` across workers.

`$window`, `$province` and Grafana's `$__rate_interval` are template variables; the tests
substitute them and run every expression against a real Prometheus.
"""

from psmon.metrics import SINK_JOB, WORKER_JOB
from psmon.schemas.catalog_metrics import CATALOG_METRICS, CATALOG_WINDOW

RATE = "$__rate_interval"
#: The catalog shares (`schemas.catalog_metrics`) share `psmon_ratio` with the six dossier ratios
#: but only exist for window="month": the six-ratio panels leave them out, their own panels read
#: the month whatever `$window` says.
_CATALOG_RE = "|".join(CATALOG_METRICS)
SIX = f'metric!~"{_CATALOG_RE}"'
CATALOG = f'metric=~"{_CATALOG_RE}", window="{CATALOG_WINDOW}"'


def ratio_by_province() -> str:
    return f'max by (province, metric) (psmon_ratio{{{SIX}, window="$window"}})'


def ratio_national_from_counters(num: str, den: str, range_: str = "1h") -> str:
    return f"sum(increase({num}[{range_}])) / sum(increase({den}[{range_}]))"


NATIONAL = {
    "online_submission": ratio_national_from_counters(
        'psmon_dossiers_submitted_total{channel="online"}', "psmon_dossiers_submitted_total"
    ),
    "online_payment": ratio_national_from_counters('psmon_payments_total{method="online"}', "psmon_payments_total"),
    "on_time": ratio_national_from_counters(
        'psmon_dossiers_resolved_total{on_time="true"}', "psmon_dossiers_resolved_total"
    ),
}

EVENTS_PER_S = f'sum(rate(psmon_events_processed_total{{stage="validate"}}[{RATE}]))'
DOSSIERS_PER_S = f"sum(rate(psmon_dossiers_submitted_total[{RATE}]))"
PROVINCES_REPORTING = 'count(count by (province) (psmon_ratio{window="$window"}))'
FIRING_ALERTS = 'count(ALERTS{alertstate="firing"}) or vector(0)'
DOSSIERS_PER_MIN_BY_PROVINCE = f"sum by (province) (rate(psmon_dossiers_submitted_total[{RATE}])) * 60"

# -- province drill-down -----------------------------------------------------------------------
P = 'province="$province"'
PROVINCE_RATIOS = f'max by (metric) (psmon_ratio{{{P}, {SIX}, window="$window"}})'
PROVINCE_ONLINE_BY_WINDOW = f'max by (window) (psmon_ratio{{{P}, metric="online_submission"}})'
PROVINCE_VOLUME = f'max by (metric) (psmon_ratio_denominator{{{P}, {SIX}, window="$window"}})'
PROVINCE_BY_CHANNEL = f"sum by (channel) (rate(psmon_dossiers_submitted_total{{{P}}}[{RATE}])) * 60"
PROVINCE_BY_MODE = f"sum by (service_mode) (rate(psmon_dossiers_submitted_total{{{P}}}[{RATE}])) * 60"
PROVINCE_PAYMENTS = f"sum by (method) (rate(psmon_payments_total{{{P}}}[{RATE}])) * 60"
PROVINCE_RESOLVED = f"sum by (on_time) (rate(psmon_dossiers_resolved_total{{{P}}}[{RATE}])) * 60"
PROVINCE_LATE_SHARE = f'1 - max(psmon_ratio{{{P}, metric="on_time", window="$window"}})'
# `or 0 * total`: 0 when the province resolved dossiers but none late (the on_time="false"
# series does not exist until the first late one), still no data when it resolved nothing
PROVINCE_LATE_24H = (
    f'sum(increase(psmon_dossiers_resolved_total{{{P}, on_time="false"}}[24h]))'
    f" or 0 * sum(increase(psmon_dossiers_resolved_total{{{P}}}[24h]))"
)

# -- procedure catalog (month to date) ---------------------------------------------------------
CATALOG_BY_PROVINCE = f"max by (province, metric) (psmon_ratio{{{CATALOG}}})"
PROVINCE_CATALOG = f"max by (metric) (psmon_ratio{{{P}, {CATALOG}}})"
PROVINCE_CATALOG_VOLUME = f"max by (metric) (psmon_ratio_denominator{{{P}, {CATALOG}}})"


def province_catalog(metric: str) -> str:
    return f'max(psmon_ratio{{{P}, metric="{metric}", window="{CATALOG_WINDOW}"}})'


# -- pipeline health ---------------------------------------------------------------------------
THROUGHPUT_BY_STAGE = f"sum by (stage) (rate(psmon_events_processed_total[{RATE}]))"
EVENT_TIME_LAG = "max by (instance) (psmon_event_time_lag_seconds)"
DEAD_LETTERS_BY_REASON = f"sum by (reason) (rate(psmon_events_invalid_total[{RATE}])) * 60"
# `or 0 * ...`: duplicates are counted per province, so no series exists before the first one;
# 0 while the pipeline validates events, still no data when nothing runs
DUPLICATES_LATE = (
    f"sum(rate(psmon_events_duplicate_total[{RATE}])) * 60"
    f' or 0 * sum(rate(psmon_events_processed_total{{stage="validate"}}[{RATE}]))',
    f"sum(rate(psmon_events_late_total[{RATE}])) * 60",
)
SINK_ROWS_BY_TABLE = f"sum by (table) (rate(psmon_sink_rows_total[{RATE}]))"
SINK_LATENCY = tuple(
    f"histogram_quantile({q}, sum by (le) (rate(psmon_sink_batch_seconds_bucket[{RATE}])))" for q in (0.5, 0.95)
)
SINK_BATCH_ROWS = f"histogram_quantile(0.5, sum by (le) (rate(psmon_sink_batch_rows_bucket[{RATE}])))"
# only the sinks write to ClickHouse: other processes' `psmon_clickhouse_up` says nothing about it
CLICKHOUSE_UP = f'min(psmon_clickhouse_up{{job="{SINK_JOB}"}})'
CLICKHOUSE_ERRORS = f"sum(rate(psmon_clickhouse_errors_total[{RATE}])) * 60"
WORKERS_UP = f'sum(up{{job="{WORKER_JOB}"}})'
SINKS_UP = f'sum(up{{job="{SINK_JOB}"}})'
UP_BY_INSTANCE = f'up{{job=~"{WORKER_JOB}|{SINK_JOB}"}}'
PROVINCES_OWNED = "sum by (instance) (psmon_provinces_owned)"


def province_ratio(metric: str) -> str:
    return f'max(psmon_ratio{{{P}, metric="{metric}", window="$window"}})'
