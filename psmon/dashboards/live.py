"""Live operations: the 34-province table of live rates with threshold colours, throughput and
firing alerts. Rates are the workers' `psmon_ratio` gauges for the chosen `$window`; the
procedure-catalog shares have their own table, month to date."""

from collections.abc import Iterable
from typing import Final

from grafana_foundation_sdk.builders import alertgroups, stat, table
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from psmon.dashboards import promql as q
from psmon.dashboards.datasources import ALERTMANAGER, PROMETHEUS
from psmon.dashboards.panels import (
    count_thresholds,
    grid,
    override_props,
    prom,
    province_display_names,
    province_mappings,
    ratio_thresholds,
    reduce_last,
    steps,
    ts,
)
from psmon.dashboards.thresholds import CATALOG_METRICS, METRICS, TITLES, MetricThreshold
from psmon.dashboards.variables import window_variable

__all__ = ["UID", "live_operations"]

UID = "psmon-live"

#: Firing alerts from which the count turns red (amber from 1): several provinces or the pipeline.
FIRING_ALERTS_RED = 5


#: An instant table of `psmon_ratio` as one row per province and one column per metric.
_PROVINCE_ROWS: Final = dm.DataTransformerConfig(
    id_val="groupingToMatrix",
    options={"columnField": "metric", "rowField": "province", "valueField": "Value", "emptyValue": "null"},
)


def _metric_columns(metrics: Iterable[str]) -> dm.DataTransformerConfig:
    """The province column first, named "Province", then `metrics` in their order."""
    return dm.DataTransformerConfig(
        id_val="organize",
        options={
            "renameByName": {"province\\metric": "Province"},
            "indexByName": {"province\\metric": 0, **{m: i + 1 for i, m in enumerate(metrics)}},
        },
    )


def live_operations(thresholds: dict[str, MetricThreshold]) -> db.Dashboard:
    d = (
        db.Dashboard("psmon · Live operations")
        .uid(UID)
        .tags(["psmon"])
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("Asia/Ho_Chi_Minh")
        .with_variable(window_variable())
    )

    def simple_stat(pid: int, title: str, expr: str, x: int, w: int, unit: str) -> stat.Panel:
        return (
            stat.Panel()
            .id(pid)
            .title(title)
            .datasource(PROMETHEUS)
            .grid_pos(grid(x, 0, w, 4))
            .with_target(prom(expr, instant=True))
            .unit(unit)
            .reduce_options(reduce_last())
        )

    d = d.with_panel(simple_stat(1, "Events/s (validated)", q.EVENTS_PER_S, 0, 3, "reqps"))
    d = d.with_panel(simple_stat(2, "Dossiers/s", q.DOSSIERS_PER_S, 3, 3, "reqps"))
    d = d.with_panel(
        simple_stat(3, "Provinces reporting ($window)", q.PROVINCES_REPORTING, 6, 3, "none").thresholds(
            steps([(None, "red"), (30, "orange"), (34, "green")])
        )
    )
    d = d.with_panel(
        simple_stat(4, "Firing alerts", q.FIRING_ALERTS, 9, 3, "none")
        .thresholds(count_thresholds(1, FIRING_ALERTS_RED))
        .description(
            f"Alerts firing in Prometheus: green none, amber at least one, red {FIRING_ALERTS_RED} or more "
            "(a problem across several provinces or the pipeline)."
        )
    )
    for i, metric in enumerate(("online_submission", "online_payment", "on_time")):
        t = thresholds[metric]
        d = d.with_panel(
            simple_stat(
                5 + i, f"National {t.title.lower()}, last 1 h", q.NATIONAL[metric], 12 + 4 * i, 4, "percentunit"
            )
            .thresholds(ratio_thresholds(t))
            .description(f"From the contract counters; target {t.target:.0%}: {t.source}")
        )

    rates = (
        table.Panel()
        .id(10)
        .title("Province rates ($window)")
        .datasource(PROMETHEUS)
        .grid_pos(grid(0, 4, 16, 22))
        .description(
            "Live ratio per province over the selected window; red below the alert floor, "
            "amber below the target, green at or above the target. Click a province to drill down."
        )
        .with_target(prom(q.ratio_by_province(), instant=True, table=True))
        .with_transformation(_PROVINCE_ROWS)
        .with_transformation(_metric_columns(METRICS))
        .unit("percentunit")
        .decimals(1)
        .show_header(True)
        .override_by_name(
            "Province",
            [
                dm.DynamicConfigValue(id_val="mappings", value=province_mappings()),
                dm.DynamicConfigValue(
                    id_val="links",
                    value=[
                        {
                            "title": "Province drill-down",
                            "url": "/d/psmon-province?var-province=${__value.raw}&var-window=${window}",
                        }
                    ],
                ),
            ],
        )
    )
    for metric in METRICS:
        t = thresholds[metric]
        rates = rates.override_by_name(
            metric, [*override_props(t), dm.DynamicConfigValue(id_val="displayName", value=t.title)]
        )
    d = d.with_panel(rates)
    d = d.with_panel(
        alertgroups.Panel()
        .id(11)
        .title("Firing alerts (Alertmanager)")
        .datasource(ALERTMANAGER)
        .grid_pos(grid(16, 4, 8, 11))
        .alertmanager(ALERTMANAGER.uid or "")
        .labels("")
        .expand_all(True)
    )
    d = d.with_panel(
        ts()
        .id(12)
        .title("Events/s by stage")
        .datasource(PROMETHEUS)
        .grid_pos(grid(16, 15, 8, 11))
        .with_target(prom(q.THROUGHPUT_BY_STAGE, legend="{{stage}}"))
        .unit("reqps")
    )
    by_province = (
        ts()
        .id(13)
        .title("Dossiers/min by province")
        .datasource(PROMETHEUS)
        .grid_pos(grid(0, 26, 24, 9))
        .with_target(prom(q.DOSSIERS_PER_MIN_BY_PROVINCE, legend="{{province}}"))
        .unit("none")
    )
    for code, props in province_display_names():  # legend: names, not codes
        by_province = by_province.override_by_name(code, props)
    d = d.with_panel(by_province)
    return d.with_panel(catalog_table(thresholds, pid=14, pos=grid(0, 35, 24, 14)))


def catalog_table(thresholds: dict[str, MetricThreshold], *, pid: int, pos: dm.GridPos) -> table.Panel:
    """The procedure-catalog shares per province, month to date (whatever `$window` says)."""
    panel = (
        table.Panel()
        .id(pid)
        .title("Procedure catalog, month to date (766 items 3.1, 3.2, 3.5a, 3.5b)")
        .datasource(PROMETHEUS)
        .grid_pos(pos)
        .description(
            "Per province, this local month so far: procedures offered online (3.1), online procedures that "
            "received an online dossier (3.2; national target 80%), fee-bearing online procedures integrated "
            "with online payment (3.5a), integrated procedures with an online payment (3.5b). From the catalog "
            "loaded with `psmon catalog load` and this month's events; 3.5a and 3.5b are psmon's reading of "
            "the index. Empty without a catalog."
        )
        .with_target(prom(q.CATALOG_BY_PROVINCE, instant=True, table=True))
        .with_transformation(_PROVINCE_ROWS)
        .with_transformation(_metric_columns(CATALOG_METRICS))
        .unit("percentunit")
        .decimals(1)
        .show_header(True)
        .override_by_name("Province", [dm.DynamicConfigValue(id_val="mappings", value=province_mappings())])
    )
    for metric in CATALOG_METRICS:
        t = thresholds.get(metric)
        props = override_props(t) if t is not None else []
        title = t.title if t is not None else TITLES[metric]
        panel = panel.override_by_name(metric, [*props, dm.DynamicConfigValue(id_val="displayName", value=title)])
    return panel
