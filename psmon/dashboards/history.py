"""History: monthly and quarterly rates, rankings and the computable part of the 766 index (the
event items, and the procedure-catalog items when a catalog is loaded), from ClickHouse through
the official Grafana ClickHouse plugin. SQL lives in `history_sql.py`.

The province picker lists the 34 provinces by name (the code is the value); with "All" or a
selection, every query filters with `history_sql.PROVINCE_FILTER`, which a crafted value cannot
break out of."""

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import dashboard as dm

from psmon.dashboards.datasources import CLICKHOUSE
from psmon.dashboards.history_sql import HistoryQueries
from psmon.dashboards.panels import ClickHouseQuery, grid, override_props, ts
from psmon.dashboards.thresholds import CATALOG_METRICS, MetricThreshold
from psmon.schemas.index766 import CATALOG_ITEMS

__all__ = ["UID", "history"]

UID = "psmon-history"

# column name in the SQL → metric whose thresholds colour it
_RATIO_COLUMNS = {
    "online_submission": "online_submission",
    "full_online_ratio": "full_online",
    "online_payment": "online_payment",
    "dossier_digitization": "dossier_digitization",
    "result_digitization": "result_digitization",
    "on_time": "on_time",
}


def history(thresholds: dict[str, MetricThreshold], *, database: str = "psmon") -> db.Dashboard:
    sql = HistoryQueries(database)
    province = (
        db.QueryVariable("province")
        .label("Province")
        .datasource(CLICKHOUSE)
        .query(sql.province_variable())
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )
    d = (
        db.Dashboard("psmon · History")
        .uid(UID)
        .tags(["psmon"])
        .time("now-2y", "now")
        .timezone("Asia/Ho_Chi_Minh")
        .with_variable(province)
    )

    def ratio_table(pid: int, title: str, query: str, pos: dm.GridPos, description: str) -> table.Panel:
        p = (
            table.Panel()
            .id(pid)
            .title(title)
            .description(description)
            .datasource(CLICKHOUSE)
            .grid_pos(pos)
            .with_target(ClickHouseQuery(query))
            .show_header(True)
        )
        for column, metric in _RATIO_COLUMNS.items():
            p = p.override_by_name(
                column,
                [
                    *override_props(thresholds[metric]),
                    dm.DynamicConfigValue(id_val="unit", value="percentunit"),
                    dm.DynamicConfigValue(id_val="decimals", value=1),
                ],
            )
        return p

    d = d.with_panel(
        ts()
        .id(1)
        .title("Monthly rates (selected provinces)")
        .datasource(CLICKHOUSE)
        .grid_pos(grid(0, 0, 24, 9))
        .with_target(ClickHouseQuery(sql.monthly_national(), query_type="timeSeries"))
        .unit("percentunit")
        .min(0)
    )
    d = d.with_panel(
        ts()
        .id(2)
        .title("Dossiers per month by channel")
        .datasource(CLICKHOUSE)
        .grid_pos(grid(0, 9, 24, 8))
        .with_target(ClickHouseQuery(sql.monthly_volume(), query_type="timeSeries"))
        .unit("none")
    )
    d = d.with_panel(
        table.Panel()
        .id(3)
        .title("766 index, computable part (42 of 100 points)")
        .datasource(CLICKHOUSE)
        .grid_pos(grid(0, 17, 12, 14))
        .with_target(ClickHouseQuery(sql.index_766()))
        .show_header(True)
        .description(
            "Items 2.1 on time (20, linear; psmon divides by resolved dossiers, the portal also counts "
            "dossiers still within their deadline), 3.3 online submission (6, full at 50%), 3.6 paid online "
            "(6, linear, over fee-bearing dossiers), 4.1 results digitized (6, linear), 4.2 dossiers "
            "digitized (4, linear). The other 58 points need data portal events do not carry."
        )
        .decimals(2)
    )
    d = d.with_panel(
        ratio_table(
            4,
            "Ranking by online submission",
            sql.ranking(),
            grid(12, 17, 12, 14),
            "Provinces ranked by online submission over the time range.",
        )
    )
    d = d.with_panel(
        ratio_table(
            5,
            "Monthly rates by province",
            sql.monthly_by_province(),
            grid(0, 31, 12, 14),
            "Calendar months in local time (UTC+7).",
        )
    )
    d = d.with_panel(
        ratio_table(
            6,
            "Quarterly rates by province",
            sql.quarterly_by_province(),
            grid(12, 31, 12, 14),
            "Calendar quarters in local time (UTC+7).",
        )
    )
    catalog = (
        table.Panel()
        .id(7)
        .title("766 index, catalog items (3.1, 3.2, 3.5a, 3.5b; 10 points)")
        .datasource(CLICKHOUSE)
        .grid_pos(grid(0, 45, 24, 12))
        .with_target(ClickHouseQuery(sql.catalog_items()))
        .show_header(True)
        .description(
            "Scored against the procedure catalog (`psmon catalog load`) in force over the time range: 3.1 "
            "procedures offered online (2, full at 80%), 3.2 online procedures with an online dossier (4, "
            "linear; national target 80%), 3.5a fee-bearing online procedures integrated with online payment "
            "(2, full at 80%), 3.5b integrated procedures with an online payment (2, full at 80%). 3.5a and "
            "3.5b are psmon's reading of the index (assumptions). Empty without a catalog."
        )
        .decimals(2)
    )
    for item, metric in zip(CATALOG_ITEMS, CATALOG_METRICS, strict=True):
        t = thresholds.get(metric)
        catalog = catalog.override_by_name(
            f"{item.column}_ratio",
            [
                *(override_props(t) if t is not None else []),
                dm.DynamicConfigValue(id_val="unit", value="percentunit"),
                dm.DynamicConfigValue(id_val="decimals", value=1),
            ],
        )
    return d.with_panel(catalog)
