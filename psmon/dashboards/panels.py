"""Small helpers shared by the four dashboards: query builders, threshold colours, units.

The SDK has builders for Prometheus queries but none for the ClickHouse plugin, so
`ClickHouseQuery` is a tiny `Dataquery` of our own that emits the plugin's SQL-editor query model
(`editorType: sql`, `rawSql`, `queryType`, `format`). Everything else goes through the SDK.
"""

from decimal import Decimal
from typing import Literal

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from psmon.dashboards.datasources import CLICKHOUSE, PROMETHEUS
from psmon.dashboards.thresholds import MetricThreshold
from psmon.schemas.provinces import registry

__all__ = [
    "ClickHouseQuery",
    "count_thresholds",
    "grid",
    "late_share_thresholds",
    "override_props",
    "prom",
    "province_display_names",
    "province_mappings",
    "province_options",
    "ratio_thresholds",
    "reduce_last",
    "steps",
    "ts",
]

ChQueryType = Literal["table", "timeSeries"]


class _ChDataquery(cogvariants.Dataquery):
    def __init__(self, ref_id: str, sql: str, query_type: ChQueryType):
        self.ref_id, self.sql, self.query_type = ref_id, sql, query_type

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": CLICKHOUSE.to_json(),
            "editorType": "sql",
            "queryType": self.query_type,
            # sqlds format: 0 = time series, 1 = table (what the plugin's backend reads)
            "format": 0 if self.query_type == "timeSeries" else 1,
            "rawSql": self.sql,
        }


class ClickHouseQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw-SQL query for the official ClickHouse plugin."""

    def __init__(self, sql: str, *, ref_id: str = "A", query_type: ChQueryType = "table"):
        self._q = _ChDataquery(ref_id, sql, query_type)

    def build(self) -> cogvariants.Dataquery:
        return self._q


def prom(
    expr: str,
    *,
    ref_id: str = "A",
    legend: str | None = None,
    instant: bool = False,
    table: bool = False,
) -> pb.Dataquery:
    q = pb.Dataquery().expr(expr).ref_id(ref_id).datasource(PROMETHEUS).editor_mode(pm.QueryEditorMode.CODE)
    q = q.instant() if instant else q.range()
    if table:
        q = q.format(pm.PromQueryFormat.TABLE)
    if legend is not None:
        q = q.legend_format(legend)
    return q


def grid(x: int, y: int, w: int, h: int) -> dm.GridPos:
    return dm.GridPos(x=x, y=y, w=w, h=h)


def ratio_thresholds(t: MetricThreshold) -> db.ThresholdsConfig:
    """red below the alert floor, amber up to the target, green at or above it."""
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                dm.Threshold(value=None, color="red"),
                dm.Threshold(value=t.alert_below, color="orange"),
                dm.Threshold(value=t.target, color="green"),
            ]
        )
    )


def steps(points: list[tuple[float | None, str]]) -> db.ThresholdsConfig:
    """Absolute thresholds from (lower bound, colour) pairs; the first bound is None (base)."""
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in points])
    )


def count_thresholds(warn: float, bad: float) -> db.ThresholdsConfig:
    """green below `warn`, amber up to `bad`, red from `bad` on (lags, errors, dead letters)."""
    if not warn < bad:
        raise ValueError(f"count thresholds need warn < bad, got {warn} and {bad}: a colour would never show")
    return steps([(None, "green"), (warn, "orange"), (bad, "red")])


def _complement(ratio: float) -> float:
    """`1 - ratio` in decimal arithmetic: 1 - 0.7 is 0.3 here, not 0.30000000000000004."""
    return float(Decimal(1) - Decimal(str(ratio)))


def late_share_thresholds(on_time: MetricThreshold) -> tuple[db.ThresholdsConfig, list[dm.ValueMapping]]:
    """Colours of a late share (1 - on time) that agree with the on-time colours: green while the
    share of late resolutions is within the target (on time >= target), amber beyond it, red from
    the alert floor's complement on.

    Grafana paints a value with the highest step at or below it, so a step can only say "from x
    on". With the official target of 100% on time the warn level is 0, and a step at 0 would make
    a clean record amber (the panel could never be green): then exactly 0 is painted green by a
    value mapping, which takes precedence over thresholds, and any late resolution is amber.
    Steps are exact decimals (the thresholds file's numbers, not float artefacts)."""
    warn, bad = _complement(on_time.target), _complement(on_time.alert_below)
    if warn == bad:  # target == floor: nothing is amber
        return steps([(None, "green"), (bad, "red")]), _zero_is_green(bad)
    return count_thresholds(warn, bad), _zero_is_green(warn)


def _zero_is_green(first_step: float) -> list[dm.ValueMapping]:
    if first_step > 0:
        return []
    return [dm.ValueMap(options={"0": dm.ValueMappingResult(color="green", index=0)})]


def reduce_last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def province_mappings() -> list[dm.ValueMapping]:
    """Show "01 Hà Nội" where a query returns the code "01" (the metric label is the code)."""
    options = {
        p.code: dm.ValueMappingResult(text=f"{p.code} {p.name}", index=i) for i, p in enumerate(registry().current)
    }
    return [dm.ValueMap(options=options)]


def province_options() -> str:
    """A custom variable's options: the 34 provinces as `name : code` (text shown, value used)."""
    return ",".join(f"{p.name} : {p.code}" for p in registry().current)


def province_display_names() -> list[tuple[str, list[dm.DynamicConfigValue]]]:
    """Field overrides renaming a series named by its province code ("01") to the province's name,
    for legends keyed by `{{province}}` (Prometheus labels carry codes)."""
    return [(p.code, [dm.DynamicConfigValue(id_val="displayName", value=p.name)]) for p in registry().current]


def override_props(t: MetricThreshold) -> list[dm.DynamicConfigValue]:
    return [
        dm.DynamicConfigValue(id_val="thresholds", value=ratio_thresholds(t).build()),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
    ]


def ts() -> timeseries.Panel:
    """A time series panel with a list legend and a multi-series tooltip (options never null)."""
    return (
        timeseries.Panel()
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs([])
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
        .line_width(1)
        .fill_opacity(10)
        .span_nulls(False)
    )
