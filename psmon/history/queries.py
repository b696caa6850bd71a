"""The named questions of `psmon query`, answered from the metric views of schema version 2.

- `rates`: one metric per province per period (day/month/quarter/year) within a range.
- `rank`: provinces ordered by one metric over one period (missing ratios last).
- `below`: the (period, province) pairs whose ratio is under a threshold.
- `index766`: the computable Decision 766 points per province, ranked, with the missing items.
- `raw_sql`: any SQL, for what the named questions do not cover.

In 34-province terms (the default) the answers read `metrics_<grain>`, so the CLI shows exactly
what the views hold. With `historical_codes=True` they read `rollup_day` grouped by the code as
sent and by side of the 1 Jul 2025 merger, and name each code as it was then named (code 80 is
Long An before the merger and Tây Ninh after), so a year spanning the merger can show one code
twice, under both names. Metric names accept the BRIEF §1 spelling (`online_submission_ratio`)
and the short one (`online_submission`).
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from psmon.errors import PsmonError
from psmon.history.periods import Grain, Period
from psmon.history.tables import ResultTable
from psmon.schemas.index766 import ITEMS, MISSING_ITEMS, IndexItem, index_select_sql
from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.rollups import GRAINS
from psmon.sinks.clickhouse.schema import current_version
from psmon.timeutil import MERGER_EFFECTIVE

__all__ = ["History", "QueryError", "metric_name"]

_MERGER_DAY: Final = MERGER_EFFECTIVE.date()


class QueryError(PsmonError):
    """A question that cannot be answered as asked (unknown metric, schema too old, bad SQL)."""


def metric_name(text: str) -> Metric:
    """`online_submission_ratio` or `online_submission` → `online_submission`."""
    name = text.strip().removesuffix("_ratio")
    if name not in METRICS:
        known = ", ".join(METRICS)
        raise QueryError(f"unknown metric {text!r}; one of {known} (optionally with _ratio)")
    return name


@dataclass(frozen=True)
class MetricRow:
    period: str
    period_start: date
    province_code: str
    province: str
    numerator: int
    denominator: int

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


class History:
    """Read-only questions over one psmon database."""

    def __init__(self, client: Client, *, database: str):
        self._client = client
        self._db = database

    def check_schema(self) -> None:
        version = current_version(self._client, self._db)
        if version < 2:
            raise QueryError(
                f"database {self._db} has schema version {version}; run `psmon migrate` (history needs version 2)"
            )

    # -- building blocks ----------------------------------------------------------------------
    def metric_rows(
        self,
        metric: Metric,
        grain: Grain,
        start: date,
        end: date,
        *,
        provinces: list[str] | None = None,
        historical_codes: bool = False,
    ) -> list[MetricRow]:
        """One row per (period, province) with data in [start, end), ordered by period then code."""
        params: dict[str, Any] = {"metric": metric, "start": start, "end": end}
        where_province = ""
        if provinces:
            params["provinces"] = provinces
            col = "raw_province_code" if historical_codes else "province_code"
            where_province = f" AND {col} IN {{provinces:Array(String)}}"
        if not historical_codes:
            rows = self._client.query(
                f"SELECT period, period_start, province_code, province_name, numerator, denominator "
                f"FROM {self._db}.metrics_{grain} "
                f"WHERE metric = {{metric:String}} AND period_start >= {{start:Date}} AND period_start < {{end:Date}}"
                f"{where_province} ORDER BY period_start, province_code",
                parameters=params,
            ).result_rows
            return [MetricRow(p, ps, c, n or "", int(num), int(den)) for p, ps, c, n, num, den in rows]
        num, den = METRICS[metric]
        label, period_start = GRAINS[grain]
        rows = self._client.query(
            f"SELECT {label} AS period, {period_start} AS period_start, raw_province_code, "
            f"day < {{merger:Date}} AS before_merger, sum({num}), sum({den}) "
            f"FROM {self._db}.rollup_day "
            f"WHERE day >= {{start:Date}} AND day < {{end:Date}}{where_province} "
            "GROUP BY period, period_start, raw_province_code, before_merger "
            "ORDER BY period_start, raw_province_code, before_merger DESC",
            parameters={**params, "merger": _MERGER_DAY},
        ).result_rows
        reg = registry()
        out = []
        for p, ps, code, before, n, d in rows:
            when = MERGER_EFFECTIVE - timedelta(seconds=1) if before else MERGER_EFFECTIVE
            out.append(MetricRow(p, ps, code, reg.name_at(code, when), int(n), int(d)))
        return out

    # -- named questions ----------------------------------------------------------------------
    def rates(
        self,
        metric: Metric,
        *,
        by: Grain,
        period: Period,
        provinces: list[str] | None = None,
        historical_codes: bool = False,
    ) -> ResultTable:
        rows = self.metric_rows(
            metric, by, period.start, period.end, provinces=provinces, historical_codes=historical_codes
        )
        return ResultTable(
            title=f"{metric} by {by}, {period.label}" + (" (codes as sent)" if historical_codes else ""),
            columns=["period", "province_code", "province", "numerator", "denominator", "ratio"],
            rows=[(r.period, r.province_code, r.province, r.numerator, r.denominator, r.ratio) for r in rows],
        )

    def rank(self, metric: Metric, *, period: Period, historical_codes: bool = False) -> ResultTable:
        rows = self.metric_rows(metric, period.grain, period.start, period.end, historical_codes=historical_codes)
        # Highest ratio first; provinces without a denominator last; ties by code.
        rows.sort(key=lambda r: (r.ratio is None, -(r.ratio or 0.0), r.province_code))
        return ResultTable(
            title=f"rank by {metric}, {period.label}",
            columns=["rank", "province_code", "province", "numerator", "denominator", "ratio"],
            rows=[(i, r.province_code, r.province, r.numerator, r.denominator, r.ratio) for i, r in enumerate(rows, 1)],
        )

    def below(
        self,
        metric: Metric,
        *,
        threshold: float,
        by: Grain,
        period: Period,
        historical_codes: bool = False,
    ) -> ResultTable:
        rows = self.metric_rows(metric, by, period.start, period.end, historical_codes=historical_codes)
        low = [r for r in rows if r.ratio is not None and r.ratio < threshold]
        return ResultTable(
            title=f"{metric} below {threshold:.2%} by {by}, {period.label}",
            columns=["period", "province_code", "province", "numerator", "denominator", "ratio"],
            rows=[(r.period, r.province_code, r.province, r.numerator, r.denominator, r.ratio) for r in low],
            notes=["periods without a denominator have no ratio and are never listed"],
        )

    def index766(self, *, period: Period, items: tuple[IndexItem, ...] = ITEMS) -> ResultTable:
        """Computable 766 points per province for one period, ranked by their total."""
        sql = index_select_sql(f"{self._db}.counters_{period.grain}", items)
        item_cols = [i.column for i in items]
        res = self._client.query(
            f"SELECT rank, province_code, {', '.join(item_cols)}, total, max_points "
            f"FROM ({sql}) WHERE period = {{label:String}} ORDER BY rank",
            parameters={"label": period.label},
        ).result_rows
        reg = registry()
        rows = [(r[0], r[1], reg.name(r[1]), *r[2:]) for r in res]
        max_points = sum(i.points for i in items)
        notes = [
            f"Computable from events: {max_points:g} of 100 points; the rank orders these points only, "
            "not the portal's total.",
            *(f"item {i.item} {i.title}: {i.rule}" + (f" {i.full_at:.0%}" if i.rule == "full_at" else "")
              + (f"; {i.note}" if i.note else "") for i in items),
            *(f"not computed: {name} ({pts:g} pts): {why}" for name, pts, why in MISSING_ITEMS),
        ]  # fmt: skip
        return ResultTable(
            title=f"Decision 766 index (computable items), {period.label}",
            columns=["rank", "province_code", "province", *item_cols, "total", "max_points"],
            rows=rows,
            notes=notes,
        )

    def raw_sql(self, sql: str) -> ResultTable:
        try:
            res = self._client.query(sql)
        except Exception as exc:  # the driver's own error says what is wrong with the SQL
            raise QueryError(f"query failed: {exc}") from exc
        return ResultTable(title="", columns=list(res.column_names), rows=[tuple(r) for r in res.result_rows])
