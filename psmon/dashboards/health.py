"""Pipeline health: throughput per stage, event-time lag, dead letters by reason, duplicates and
late events, sink rows and latency, ClickHouse errors, and which workers and sinks are up."""

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, timeseries

from psmon.dashboards import promql as q
from psmon.dashboards.datasources import PROMETHEUS
from psmon.dashboards.panels import count_thresholds, grid, prom, reduce_last, steps, ts

__all__ = ["UID", "pipeline_health"]

UID = "psmon-health"


def pipeline_health() -> db.Dashboard:
    d = (
        db.Dashboard("psmon · Pipeline health")
        .uid(UID)
        .tags(["psmon"])
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("Asia/Ho_Chi_Minh")
    )
    up = steps([(None, "red"), (1, "green")])
    stats = [
        (1, "Workers up", q.WORKERS_UP, "none", up),
        (2, "Sinks up", q.SINKS_UP, "none", up),
        (3, "ClickHouse writes OK", q.CLICKHOUSE_UP, "bool_yes_no", up),
        (4, "Max event-time lag", "max(psmon_event_time_lag_seconds)", "s", count_thresholds(60, 300)),
    ]
    for pid, title, expr, unit, th in stats:
        d = d.with_panel(
            stat.Panel()
            .id(pid)
            .title(title)
            .datasource(PROMETHEUS)
            .grid_pos(grid(6 * (pid - 1), 0, 6, 4))
            .with_target(prom(expr, instant=True))
            .unit(unit)
            .thresholds(th)
            .reduce_options(reduce_last())
        )

    def series(pid: int, title: str, exprs: list[tuple[str, str]], x: int, y: int, unit: str) -> timeseries.Panel:
        p = ts().id(pid).title(title).datasource(PROMETHEUS).grid_pos(grid(x, y, 12, 8)).unit(unit)
        for i, (expr, legend) in enumerate(exprs):
            p = p.with_target(prom(expr, legend=legend, ref_id=chr(ord("A") + i)))
        return p

    d = d.with_panel(series(10, "Throughput by stage (msg/s)", [(q.THROUGHPUT_BY_STAGE, "{{stage}}")], 0, 4, "reqps"))
    d = d.with_panel(series(11, "Event-time lag per worker", [(q.EVENT_TIME_LAG, "{{instance}}")], 12, 4, "s"))
    d = d.with_panel(
        series(12, "Dead letters/min by reason", [(q.DEAD_LETTERS_BY_REASON, "{{reason}}")], 0, 12, "none")
    )
    d = d.with_panel(
        series(
            13,
            "Duplicates and late events/min",
            [(q.DUPLICATES_LATE[0], "duplicates"), (q.DUPLICATES_LATE[1], "late")],
            12,
            12,
            "none",
        )
    )
    d = d.with_panel(series(14, "Sink rows/s by table", [(q.SINK_ROWS_BY_TABLE, "{{table}}")], 0, 20, "reqps"))
    d = d.with_panel(
        series(15, "Sink batch write latency", [(q.SINK_LATENCY[0], "p50"), (q.SINK_LATENCY[1], "p95")], 12, 20, "s")
    )
    d = d.with_panel(series(16, "Rows per sink batch (p50)", [(q.SINK_BATCH_ROWS, "p50")], 0, 28, "none"))
    d = d.with_panel(series(17, "ClickHouse write errors/min", [(q.CLICKHOUSE_ERRORS, "errors")], 12, 28, "none"))
    d = d.with_panel(series(18, "Up, per process", [(q.UP_BY_INSTANCE, "{{job}} {{instance}}")], 0, 36, "none"))
    d = d.with_panel(series(19, "Provinces owned per worker", [(q.PROVINCES_OWNED, "{{instance}}")], 12, 36, "none"))
    return d
