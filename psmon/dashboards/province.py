"""Province drill-down: one province (`$province`), its rates over time per window, its volumes
by channel, service mode and payment method, lateness of resolutions, and the shares of its
procedure catalog month to date (766 items 3.1, 3.2, 3.5a, 3.5b).

The province picker is a fixed list of the 34 provinces (name shown, code used), not a query of
Prometheus labels: it shows names, and it offers only real provinces (custom values are refused,
`build.py`)."""

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.models import dashboard as dm

from psmon.dashboards import promql as q
from psmon.dashboards.datasources import PROMETHEUS
from psmon.dashboards.panels import (
    grid,
    late_share_thresholds,
    prom,
    province_options,
    ratio_thresholds,
    reduce_last,
    ts,
)
from psmon.dashboards.thresholds import CATALOG_METRICS, METRICS, TITLES, MetricThreshold
from psmon.dashboards.variables import window_variable
from psmon.schemas.provinces import registry

__all__ = ["UID", "province_drilldown"]

UID = "psmon-province"


def province_variable() -> db.CustomVariable:
    first = registry().current[0]
    return (
        db.CustomVariable("province")
        .label("Province")
        .values(province_options())
        .current(dm.VariableOption(selected=True, text=first.name, value=first.code))
    )


def province_drilldown(thresholds: dict[str, MetricThreshold]) -> db.Dashboard:
    d = (
        db.Dashboard("psmon · Province drill-down")
        .uid(UID)
        .tags(["psmon"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("Asia/Ho_Chi_Minh")
        .with_variable(province_variable())
        .with_variable(window_variable())
    )
    for i, metric in enumerate(METRICS):
        t = thresholds[metric]
        d = d.with_panel(
            stat.Panel()
            .id(1 + i)
            .title(f"{t.title} ($window)")
            .datasource(PROMETHEUS)
            .grid_pos(grid(4 * i, 0, 4, 4))
            .with_target(prom(q.province_ratio(metric), instant=True))
            .unit("percentunit")
            .decimals(1)
            .thresholds(ratio_thresholds(t))
            .reduce_options(reduce_last())
            .description(f"Target {t.target:.0%}, alert floor {t.alert_below:.0%}: {t.source}")
        )

    def series(pid: int, title: str, expr: str, legend: str, x: int, y: int, unit: str) -> timeseries.Panel:
        return (
            ts()
            .id(pid)
            .title(title)
            .datasource(PROMETHEUS)
            .grid_pos(grid(x, y, 12, 8))
            .with_target(prom(expr, legend=legend))
            .unit(unit)
        )

    d = d.with_panel(series(10, "Rates over time ($window)", q.PROVINCE_RATIOS, "{{metric}}", 0, 4, "percentunit"))
    d = d.with_panel(
        series(11, "Online submission in every window", q.PROVINCE_ONLINE_BY_WINDOW, "{{window}}", 12, 4, "percentunit")
    )
    d = d.with_panel(series(12, "Dossiers/min by channel", q.PROVINCE_BY_CHANNEL, "{{channel}}", 0, 12, "none"))
    d = d.with_panel(series(13, "Dossiers/min by service mode", q.PROVINCE_BY_MODE, "{{service_mode}}", 12, 12, "none"))
    d = d.with_panel(series(14, "Payments/min by method", q.PROVINCE_PAYMENTS, "{{method}}", 0, 20, "none"))
    d = d.with_panel(
        series(15, "Resolutions/min, on time vs late", q.PROVINCE_RESOLVED, "on_time={{on_time}}", 12, 20, "none")
    )
    late_steps, late_mappings = late_share_thresholds(thresholds["on_time"])
    d = d.with_panel(
        stat.Panel()
        .id(16)
        .title("Late share of resolutions ($window)")
        .datasource(PROMETHEUS)
        .grid_pos(grid(0, 28, 6, 5))
        .with_target(prom(q.PROVINCE_LATE_SHARE, instant=True))
        .unit("percentunit")
        .decimals(1)
        .reduce_options(reduce_last())
        .thresholds(late_steps)
        .mappings(late_mappings)
    )
    d = d.with_panel(
        stat.Panel()
        .id(17)
        .title("Late resolutions, last 24 h")
        .datasource(PROMETHEUS)
        .grid_pos(grid(6, 28, 6, 5))
        .with_target(prom(q.PROVINCE_LATE_24H, instant=True))
        .unit("none")
        .decimals(0)
        .reduce_options(reduce_last())
    )
    d = d.with_panel(
        series(18, "Volume behind each rate ($window denominators)", q.PROVINCE_VOLUME, "{{metric}}", 12, 28, "none")
    )
    # The procedure catalog's shares, month to date (the month whatever `$window` says).
    for i, metric in enumerate(CATALOG_METRICS):
        ct = thresholds.get(metric)
        panel = (
            stat.Panel()
            .id(20 + i)
            .title(f"{TITLES[metric]}, month to date")
            .datasource(PROMETHEUS)
            .grid_pos(grid(6 * i, 36, 6, 4))
            .with_target(prom(q.province_catalog(metric), instant=True))
            .unit("percentunit")
            .decimals(1)
            .reduce_options(reduce_last())
        )
        if ct is not None:
            panel = panel.thresholds(ratio_thresholds(ct)).description(
                f"Target {ct.target:.0%}, alert floor {ct.alert_below:.0%}: {ct.source}"
            )
        d = d.with_panel(panel)
    d = d.with_panel(
        series(24, "Procedure catalog shares, month to date", q.PROVINCE_CATALOG, "{{metric}}", 0, 40, "percentunit")
    )
    d = d.with_panel(
        series(25, "Procedures behind each share", q.PROVINCE_CATALOG_VOLUME, "{{metric}}", 12, 40, "none")
    )
    d = d.link(
        db.DashboardLink("Live operations").type(dm.DashboardLinkType.DASHBOARDS).tags(["psmon"]).as_dropdown(True)
    )
    return d
