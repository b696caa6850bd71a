r"""Every ClickHouse query of the History dashboard, in one place.

The 766 panel sums the daily rollups (`rollup_day`) over the selected range and scores them with
the history package's single 766 definition. The other panels read the raw `events` table with
`FINAL`; pointing them at the rollup views (`counters_month`, ...) would make them cheaper at
national scale, since the panels only depend on the column names produced here.

Months and quarters are calendar periods in local time (Asia/Ho_Chi_Minh), as the 766 index
publishes them. A ratio with an empty denominator is NULL (shown as no value), never 0 or 1.
`$__timeFilter(col)` and `${province:percentencode}` are expanded by Grafana and the ClickHouse
plugin; tests expand them the same way and run every query on chDB.

The province filter cannot be injected. A dashboard variable can arrive with any value (a crafted
`var-province=` in a URL), and none of Grafana's quoting formats is safe inside a ClickHouse string
literal: `singlequote` escapes only `'` and `sqlstring` doubles `'` but leaves `\` alone, so a
value ending in a backslash escapes the closing quote (ClickHouse reads `\'` as a quote) and the
rest of the value runs as SQL. `percentencode` is the one format whose output has no quote, no
backslash and no comma (only `[A-Za-z0-9._~%-]`): a multi-value selection arrives as
`%7B01%2C25%7D` (`{01,25}`), a single one as `01`. The SQL wraps that in quotes, decodes it with
`decodeURLComponent`, splits it and compares each value with `province_code` for equality: a
crafted value is data, matches no row, and can neither run SQL nor raise an error.

The province picker lists the 34 provinces of `psmon.schemas.provinces` as a literal list (value
= code, text = name; the ClickHouse plugin takes the first column as the value, the second as
the text), so it costs no scan of `events` and offers only real provinces.
"""

from psmon.schemas.index766 import CATALOG_ITEMS, ITEMS, index_select_sql
from psmon.schemas.metrics import COUNTERS
from psmon.schemas.provinces import registry

__all__ = ["PROVINCE_FILTER", "HistoryQueries", "sql_string"]

TZ = "Asia/Ho_Chi_Minh"


def sql_string(text: str) -> str:
    """A ClickHouse string literal of `text` (backslashes first, then quotes, are escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _province_name(col: str = "province_code") -> str:
    """`01` → `01 Hà Nội` with a literal lookup, so no dictionary table is needed."""
    provs = registry().current
    codes = ", ".join(sql_string(p.code) for p in provs)
    names = ", ".join(sql_string(f"{p.code} {p.name}") for p in provs)
    return f"transform({col}, [{codes}], [{names}], {col})"


#: `province_code` is one of the selected provinces; injection-proof (see the module docstring).
PROVINCE_FILTER = (
    "has(splitByChar(',', trim(BOTH '{}' FROM decodeURLComponent('${province:percentencode}'))), province_code)"
)


_COUNTS = """
    countIf(event_type = 'application.submitted') AS submitted,
    countIf(event_type = 'application.submitted' AND channel = 'online') AS online,
    countIf(event_type = 'application.submitted' AND channel = 'online' AND service_mode = 'full_online')
        AS full_online,
    countIf(event_type = 'application.submitted' AND fee_bearing) AS fee_bearing,
    countIf(event_type = 'payment.completed') AS payments,
    countIf(event_type = 'payment.completed' AND method = 'online') AS paid_online,
    countIf(event_type = 'application.resolved') AS resolved,
    countIf(event_type = 'application.resolved' AND on_time) AS resolved_on_time,
    countIf(event_type = 'record.digitized' AND kind = 'dossier') AS digitized_dossiers,
    countIf(event_type = 'record.digitized' AND kind = 'result') AS digitized_results"""

_RATIOS = """
    online / nullIf(submitted, 0) AS online_submission,
    full_online / nullIf(submitted, 0) AS full_online_ratio,
    paid_online / nullIf(payments, 0) AS online_payment,
    digitized_dossiers / nullIf(submitted, 0) AS dossier_digitization,
    digitized_results / nullIf(resolved, 0) AS result_digitization,
    resolved_on_time / nullIf(resolved, 0) AS on_time"""

_FILTER = f"$__timeFilter(occurred_at) AND {PROVINCE_FILTER}"


class HistoryQueries:
    """The SQL of each History panel for one database."""

    def __init__(self, database: str = "psmon"):
        self.events = f"{database}.events FINAL"
        self.rollup_day = f"{database}.rollup_day"
        self.catalog = f"{database}.procedure_catalog FINAL"

    def province_variable(self) -> str:
        """The picker's options: value = code, text = name (first and second column)."""
        pairs = ", ".join(f"({sql_string(p.code)}, {sql_string(p.name)})" for p in registry().current)
        return f"SELECT p.1 AS __value, p.2 AS __text FROM (SELECT arrayJoin([{pairs}]) AS p) ORDER BY __value"

    def monthly_national(self) -> str:
        return f"""SELECT time, {_RATIOS}
FROM (
  SELECT toDateTime(toStartOfMonth(occurred_at, '{TZ}'), '{TZ}') AS time, {_COUNTS}
  FROM {self.events} WHERE {_FILTER}
  GROUP BY time
) ORDER BY time"""

    def monthly_volume(self) -> str:
        return f"""SELECT toDateTime(toStartOfMonth(occurred_at, '{TZ}'), '{TZ}') AS time,
    countIf(event_type = 'application.submitted' AND channel = 'online') AS online,
    countIf(event_type = 'application.submitted' AND channel = 'counter') AS counter,
    countIf(event_type = 'application.submitted' AND channel = 'postal') AS postal
FROM {self.events} WHERE {_FILTER}
GROUP BY time ORDER BY time"""

    def _by_period(self, period_expr: str, period_name: str) -> str:
        return f"""SELECT {period_name}, {_province_name()} AS province, submitted, {_RATIOS}
FROM (
  SELECT {period_expr} AS {period_name}, province_code, {_COUNTS}
  FROM {self.events} WHERE {_FILTER}
  GROUP BY {period_name}, province_code
) ORDER BY {period_name} DESC, province_code"""

    def monthly_by_province(self) -> str:
        return self._by_period(f"formatDateTime(toTimezone(occurred_at, '{TZ}'), '%Y-%m')", "month")

    def quarterly_by_province(self) -> str:
        local = f"toTimezone(occurred_at, '{TZ}')"
        return self._by_period(f"concat(toString(toYear({local})), '-Q', toString(toQuarter({local})))", "quarter")

    def ranking(self) -> str:
        return f"""SELECT rank() OVER (ORDER BY online_submission DESC) AS rank, {_province_name()} AS province,
    submitted, online_submission, online_payment, on_time, result_digitization
FROM (
  SELECT province_code, submitted, {_RATIOS}
  FROM (
    SELECT province_code, {_COUNTS}
    FROM {self.events} WHERE {_FILTER}
    GROUP BY province_code
  )
) ORDER BY rank, province_code"""

    def index_766(self) -> str:
        """The 42 points psmon can score, by the one 766 scoring of `psmon.schemas.index766` (the
        `index766_month` view and `psmon query index` use it too), over the selected time range:
        the daily rollups of the range are summed per province, then scored."""
        sums = ", ".join(f"sum({c}) AS {c}" for c in COUNTERS)
        source = (
            f"(SELECT 'range' AS period, min(day) AS period_start, province_code, {sums}, "
            f"uniqExactMerge(online_procedures) AS online_procedures FROM {self.rollup_day} "
            f"WHERE $__timeFilter(day) AND {PROVINCE_FILTER} GROUP BY province_code)"
        )
        items = ", ".join(i.column for i in ITEMS)
        return f"""SELECT rank, {_province_name()} AS province, total AS points, {items}
FROM ({index_select_sql(source)})
ORDER BY rank, province_code"""

    def catalog_items(self) -> str:
        """Items 3.1, 3.2, 3.5a and 3.5b over the selected range, scored by the same 766 definition:
        per procedure the newest catalog version in force on some local day of the range (as
        `psmon query index` and the live gauges do), and the online dossiers and payments of the
        range from the raw events (the rollups count such procedures but cannot say which)."""
        first = f"toDate($__fromTime, '{TZ}')"
        end = f"toDate($__toTime, '{TZ}') + 1"
        in_force = (
            "SELECT province_code, procedure_code, argMax(online_level, valid_from) != 'none' AS offered_online, "
            "argMax(fee_bearing, valid_from) AS fee, argMax(payment_integrated, valid_from) AS integrated "
            f"FROM {self.catalog} WHERE valid_from < {end} AND (valid_to IS NULL OR {first} < valid_to) "
            f"AND {PROVINCE_FILTER} GROUP BY province_code, procedure_code"
        )

        def used(condition: str) -> str:
            return f"(SELECT DISTINCT province_code, procedure_code FROM {self.events} WHERE {condition} AND {_FILTER})"

        dossiers = used("event_type = 'application.submitted' AND channel = 'online'")
        payments = used("event_type = 'payment.completed' AND method = 'online'")
        source = (
            f"(SELECT 'range' AS period, {first} AS period_start, province_code, count() AS catalog_procedures, "
            "countIf(offered_online) AS catalog_online, "
            f"countIf(offered_online AND (province_code, procedure_code) IN {dossiers}) "
            "AS catalog_online_with_dossier, "
            "countIf(offered_online AND fee) AS catalog_fee_online, "
            "countIf(offered_online AND fee AND integrated) AS catalog_fee_online_integrated, "
            "countIf(integrated) AS catalog_integrated, "
            f"countIf(integrated AND (province_code, procedure_code) IN {payments}) AS catalog_integrated_paid_online "
            f"FROM ({in_force}) GROUP BY province_code)"
        )
        items = ", ".join(f"{i.column}_ratio, {i.column}" for i in CATALOG_ITEMS)
        return f"""SELECT rank, {_province_name()} AS province, total AS points, {items}
FROM ({index_select_sql(source, CATALOG_ITEMS)})
ORDER BY rank, province_code"""
