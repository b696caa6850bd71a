"""The named questions of `psmon query`, answered from the metric views of schema version 2.

- `rates`: one metric per province per period (day/month/quarter/year) within a range.
- `rank`: provinces ordered by one metric over one period (missing ratios last).
- `below`: the (period, province) pairs whose ratio is under a threshold.
- `index766`: the computable Decision 766 points per province, ranked, with the missing items
  (the four catalog items when a procedure catalog covers the period: `psmon.history.catalog`).
- `idle_procedures`: the online procedures of the catalog that received no online dossier in a
  period, per province.
- `raw_sql`: any read-only SQL, for what the named questions do not cover.

In 34-province terms (the default) the answers read `metrics_<grain>`, so the CLI shows exactly
what the views hold. With `historical_codes=True` they read `rollup_day` grouped by the code as
sent and by side of the 1 Jul 2025 merger, and name each code as it was then named (code 80 is
Long An before the merger and Tây Ninh after), so a year spanning the merger can show one code
twice, under both names. Metric names accept the contract's spelling (docs/contract.md) (`online_submission_ratio`)
and the short one (`online_submission`).

`raw_sql` (`psmon query --sql`) is handed to analysts, so it must only read this database: an
INSERT there would be counted in the history, and embedded chDB runs in psmon's own process with
its file-system rights. ClickHouse enforces it, in three layers, all of them ClickHouse's own
parser and settings rather than regexes over the text: `formatQuerySingleLine` parses the text
(one statement only: chDB would run `INSERT ...; SELECT 1` statement by statement, with the
per-query settings on the last one only) and yields the normalised statement that is checked and
then run; `EXPLAIN AST` of it must be a read (SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN), without
`INTO OUTFILE` (chDB writes that file even with `readonly=1`), and call no table function
outside a small set that only computes or reads this database's tables (`file`, `url`, `s3`,
`remote`, chDB's `python`... are refused, and so is the scalar `file()`, which chDB 4.4 answers
under `readonly=1`); finally the statement runs with `readonly=1`, which refuses writes, DDL and
setting changes on every backend.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from psmon.errors import PsmonError
from psmon.history.periods import Grain, Period
from psmon.history.tables import ResultTable
from psmon.schemas.index766 import (
    ALL_ITEMS,
    CATALOG_ITEMS,
    MISSING_ITEMS,
    IndexItem,
    catalog_missing_items,
    index_select_sql,
)
from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.rollups import GRAINS, LOCAL_TZ_NAME
from psmon.timeutil import MERGER_EFFECTIVE

__all__ = [
    "READ_ONLY",
    "History",
    "QueryError",
    "ReadOnlyError",
    "Reader",
    "metric_name",
    "read_only_statement",
    "refused_functions",
]

_MERGER_DAY: Final = MERGER_EFFECTIVE.date()


class QueryError(PsmonError):
    """A question that cannot be answered as asked (unknown metric, schema too old, bad SQL)."""


class ReadOnlyError(QueryError):
    """SQL given to `History.raw_sql` that would do more than read this database."""

    def __init__(self, refused: str):
        self.refused = " ".join(refused.split())  # one line, whatever ClickHouse said
        super().__init__(f"SQL is read-only: {self.refused}")


#: The settings of every `raw_sql` call: ClickHouse refuses writes, DDL and SET under them.
READ_ONLY: Final[dict[str, Any]] = {"readonly": 1}

#: Table functions that only generate rows or read this database's own tables; any other one
#: (in table position) is refused, whatever the server offers.
SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generate_series",
        "generateseries",
        "primes",
        "generaterandom",
        "values",
        "format",
        "null",
        "view",
        "merge",
    }
)
#: Table functions that reach files, URLs, other servers or programs; refused wherever they
#: appear (also as `x IN url(...)` or the scalar `file()`), with the server's
#: `system.table_functions` added at run time (lowercase: `URL` is `url`).
OUTSIDE_FUNCTIONS: Final = frozenset(
    {
        "file",
        "filecluster",
        "filesystem",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "azureblobstorage",
        "azureblobstoragecluster",
        "hdfs",
        "hdfscluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "jdbc",
        "odbc",
        "executable",
        "input",
        "dictionary",
        "eval",
        "python",
        "arrowstream",
        "iceberg",
        "deltalake",
        "hudi",
    }
)
#: `EXPLAIN AST` root nodes of statements that read (SHOW ... and EXISTS ... roots are read too).
_READ_ROOTS: Final = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "DescribeQuery", "Explain"})
#: First keywords of ClickHouse's formatting of a read (to tell a bad read from a refused write).
_READ_KEYWORDS: Final = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
_READ_KINDS_HELP: Final = "only SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN statements run"
_READONLY_CODE: Final = 164  # ClickHouse's READONLY error


@dataclass(frozen=True)
class _AstNode:
    depth: int
    kind: str
    name: str  # the word after the kind (a function's name), "" when none
    parent: str  # the kind of the enclosing node, "" for the root


def _ast_nodes(lines: list[str]) -> list[_AstNode]:
    """`EXPLAIN AST` output (one node a line, indented one space a level) as nodes.

    An identifier holding a newline adds rows that are no nodes; they can only add refusals, as
    every real node still has its own row and the root is always the first one."""
    nodes: list[_AstNode] = []
    kinds: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        depth = len(line) - len(line.lstrip(" "))
        del kinds[depth:]
        name = words[1] if len(words) > 1 and not words[1].startswith("(") else ""
        nodes.append(_AstNode(depth, words[0], name, kinds[-1] if kinds else ""))
        kinds.extend([""] * (depth - len(kinds)))
        kinds.append(words[0])
    return nodes


def ast_refusal(lines: list[str], statement: str, *, outside: frozenset[str] = OUTSIDE_FUNCTIONS) -> str | None:
    """What in the `EXPLAIN AST` output `lines` of `statement` (ClickHouse's formatting) makes
    it more than a read, or None."""
    nodes = _ast_nodes(lines)
    root = nodes[0].kind if nodes else ""
    if not (root in _READ_ROOTS or root.startswith(("Show", "Exists"))):
        return _not_a_read(statement)
    for node in nodes[1:]:
        if node.depth == 1 and node.kind == "Literal":  # the file of INTO OUTFILE
            return "INTO OUTFILE (the result is printed, never written to a file)"
        if node.kind != "Function":
            continue
        name = node.name.lower()
        if name in outside and name not in SAFE_TABLE_FUNCTIONS:
            where = "table function" if node.parent == "TableExpression" else "function"
            return f"{where} {node.name}() (reads files, URLs, other servers or programs)"
        if node.parent == "TableExpression" and name not in SAFE_TABLE_FUNCTIONS:
            allowed = ", ".join(sorted(SAFE_TABLE_FUNCTIONS))
            return f"table function {node.name}() (only {allowed} are allowed)"
    return None


def _keyword(statement: str) -> str:
    """The first keyword of ClickHouse's formatting of a statement (`INSERT`, `SELECT`)."""
    return (statement.lstrip("( ").split(None, 1) or [""])[0].upper()


def _not_a_read(statement: str) -> str:
    return f"{_keyword(statement) or 'an empty statement'} ({_READ_KINDS_HELP})"


#: What clickhouse-connect's HTTP client wraps a server's error in (the endpoint of `psmon up` too).
_HTTP_WRAPPER: Final = re.compile(r"Received ClickHouse exception, code: \d+, server response: |\s*\(for url [^)]*\)")
#: How the query endpoint of `psmon up` words its guard's refusal (`ReadOnlyError`'s text).
_GUARD_PREFIX: Final = "SQL is read-only: "


def _server_text(exc: Exception) -> str:
    """The error's text without the HTTP client's wrapper around the server's own words."""
    return _HTTP_WRAPPER.sub("", str(exc)).strip()


def _readonly_refusal(exc: Exception) -> str | None:
    """ClickHouse's reason when `exc` is its READONLY refusal, else None. A refusal by the guard
    of `psmon up`'s query endpoint is the guard's own reason, so it reads as it would without it."""
    text = _server_text(exc)
    if getattr(exc, "code", None) != _READONLY_CODE and "(READONLY)" not in text:
        return None
    first = next((line for line in text.splitlines() if line.strip()), text)
    reason = re.sub(r"(Code: \d+\. )?DB::Exception: |\(version [^)]*\)\.?|\(READONLY\)\.?", "", first).strip(" .")
    if reason.startswith(_GUARD_PREFIX):
        return reason.removeprefix(_GUARD_PREFIX)
    return f"refused by ClickHouse: {reason.removeprefix('default: ')}"


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
        """`QueryError` unless the database is at schema version 2 or later. Only reads (unlike
        `schema.current_version`, which creates what is missing): a reader may be read-only, as
        through the query endpoint of `psmon up` or as a `readonly` user of a server."""
        exists = self._client.query(f"EXISTS TABLE {self._db}.schema_migrations", settings=READ_ONLY)
        version = 0
        if exists.result_rows and int(exists.result_rows[0][0]):
            found = self._client.query(
                f"SELECT max(version) FROM {self._db}.schema_migrations FINAL", settings=READ_ONLY
            ).result_rows
            version = int(found[0][0] or 0)
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
            empty=f"no {metric} data in {period.label}",
        )

    def rank(self, metric: Metric, *, period: Period, historical_codes: bool = False) -> ResultTable:
        rows = self.metric_rows(metric, period.grain, period.start, period.end, historical_codes=historical_codes)
        if not any(r.denominator for r in rows):
            rows = []  # nothing to rank: 34 provinces at 0 of 0 would only look like a ranking
        # Highest ratio first; provinces without a denominator last; ties by code.
        rows.sort(key=lambda r: (r.ratio is None, -(r.ratio or 0.0), r.province_code))
        return ResultTable(
            title=f"rank by {metric}, {period.label}",
            columns=["rank", "province_code", "province", "numerator", "denominator", "ratio"],
            rows=[(i, r.province_code, r.province, r.numerator, r.denominator, r.ratio) for i, r in enumerate(rows, 1)],
            empty=f"no {metric} data in {period.label}: nothing to rank",
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
            empty=f"no {metric} below {threshold:.2%} in {period.label}",
        )

    def catalog_coverage(self, period: Period) -> int | None:
        """Catalog entries in force on some day of `period` (all provinces); None without the
        catalog table (a database before schema version 5)."""
        exists = self._client.query(f"EXISTS TABLE {self._db}.procedure_catalog", settings=READ_ONLY).result_rows
        if not (exists and int(exists[0][0])):
            return None
        rows = self._client.query(
            f"SELECT count() FROM {self._db}.procedure_catalog FINAL WHERE {_IN_FORCE_DURING}",
            parameters={"start": period.start, "end": period.end},
            settings=READ_ONLY,
        ).result_rows
        return int(rows[0][0])

    def index766(self, *, period: Period, items: tuple[IndexItem, ...] = ALL_ITEMS) -> ResultTable:
        """Computable 766 points per province for one period, ranked by their total. The catalog
        items (3.1, 3.2, 3.5a, 3.5b) are scored when a procedure catalog covers the period;
        otherwise the answer lists them as missing, with the reason."""
        catalog_numbers = {i.item for i in CATALOG_ITEMS}
        wanted_catalog = tuple(i for i in items if i.item in catalog_numbers)
        coverage = self.catalog_coverage(period) if wanted_catalog else 0
        missing = list(MISSING_ITEMS)
        if wanted_catalog and not coverage:
            why = (
                "no procedure catalog table: run `psmon migrate`, then `psmon catalog load`"
                if coverage is None
                else f"no procedure catalog in force in {period.label} (`psmon catalog load`)"
            )
            missing[1:1] = catalog_missing_items(why, wanted_catalog)
            items = tuple(i for i in items if i.item not in catalog_numbers)
        params: dict[str, Any] = {"label": period.label}
        source = f"{self._db}.counters_{period.grain}"
        if any(i.item in catalog_numbers for i in items):
            params |= {"start": period.start, "end": period.end}
            k_cols = ", ".join(f"k.{c} AS {c}" for c in CATALOG_COUNTERS)
            source = (
                f"(SELECT c.*, {k_cols} FROM {source} AS c "
                f"LEFT JOIN ({_catalog_counts_sql(self._db)}) AS k ON k.province_code = c.province_code "
                "WHERE c.period = {label:String})"
            )
        sql = index_select_sql(source, items)
        item_cols = [i.column for i in items]
        res = self._client.query(
            f"SELECT rank, province_code, {', '.join(item_cols)}, total, max_points, "
            f"{', '.join(f'{c}_ratio IS NULL' for c in item_cols)} "
            f"FROM ({sql}) WHERE period = {{label:String}} ORDER BY rank",
            parameters=params,
        ).result_rows
        reg = registry()
        n = len(item_cols)
        rows = []
        for r in res:
            # An item without a denominator has no data: its 0 points (as scored) show as "–".
            points = [None if no_data else p for p, no_data in zip(r[2 : 2 + n], r[4 + n :], strict=True)]
            rows.append((r[0], r[1], reg.name(r[1]), *points, r[2 + n], r[3 + n]))
        max_points = sum(i.points for i in items)
        scored_catalog = [i for i in items if i.item in catalog_numbers]
        notes = [
            f"Computable from events{' and the procedure catalog' if scored_catalog else ''}: {max_points:g} of 100 "
            "points; the rank orders these points only, not the portal's total.",
            *(
                f"item {i.item} {i.title}: {i.rule}"
                + (f" {i.full_at:.0%}" if i.rule == "full_at" else "")
                + (f"; {i.note}" if i.note else "")
                for i in items
            ),
            *(
                [
                    f"items {', '.join(i.item for i in scored_catalog)} are scored against the catalog in force in "
                    f"{period.label}: per procedure, its newest version in force on any day of the period; a "
                    "province without catalog entries has no data for them",
                    "items 3.5a and 3.5b: their definitions are assumptions of psmon (change a rule with --rule)",
                ]
                if scored_catalog
                else []
            ),
            *(f"not computed: {name} ({pts:g} pts): {why}" for name, pts, why in missing),
            "– (empty in CSV, null in JSON): no data for the item in the period (no denominator); it "
            "counts 0 points in the total",
        ]
        return ResultTable(
            title=f"Decision 766 index (computable items), {period.label}",
            columns=["rank", "province_code", "province", *item_cols, "total", "max_points"],
            rows=rows,
            notes=notes,
            empty=f"no data in {period.label}",
        )

    def idle_procedures(self, *, period: Period, provinces: list[str] | None = None) -> ResultTable:
        """The online procedures of the catalog in force during `period` that received no online
        dossier in it, per province: the list an office acts on (index item 3.2's shortfall)."""
        coverage = self.catalog_coverage(period)
        if coverage is None:
            raise QueryError(f"database {self._db} has no procedure catalog table; run `psmon migrate` (version 5)")
        params: dict[str, Any] = {"start": period.start, "end": period.end}
        where_province = ""
        if provinces:
            reg = registry()
            params["provinces"] = [reg.to_current(p) or p for p in provinces]
            where_province = " AND province_code IN {provinces:Array(String)}"
        rows = self._client.query(
            f"SELECT province_code, procedure_code, name, ol, "
            f"(province_code, procedure_code) IN ({_online_dossiers_sql(self._db)}) AS received "
            f"FROM ({_catalog_in_force_sql(self._db)}) WHERE ol != 'none'{where_province} "
            "ORDER BY province_code, procedure_code",
            parameters=params,
            settings=READ_ONLY,
        ).result_rows
        reg = registry()
        per_province: dict[str, list[int]] = {}
        idle = []
        for code, procedure, name, online_level, received in rows:
            counts = per_province.setdefault(code, [0, 0])
            counts[1] += 1
            if not received:
                counts[0] += 1
                idle.append((code, reg.name(code), procedure, name, online_level))
        return ResultTable(
            title=f"online procedures without an online dossier, {period.label}",
            columns=["province_code", "province", "procedure_code", "name", "online_level"],
            rows=idle,
            notes=[
                "online procedures: catalog entries with online_level full or partial in force on some day of "
                f"{period.label} (their newest version); an online dossier is an application.submitted with "
                "channel online",
                *(
                    f"{code} {reg.name(code)}: {n} of {of} online procedures idle"
                    for code, (n, of) in per_province.items()
                ),
            ],
            empty=(
                f"no procedure catalog in force in {period.label} (`psmon catalog load`)"
                if not rows
                else f"every online procedure received an online dossier in {period.label}"
            ),
        )

    def raw_sql(self, sql: str) -> ResultTable:
        """Run one statement that only reads (see the module docstring); `ReadOnlyError` for any
        other, before it runs."""
        statement = self.read_only_statement(sql)
        try:
            res = self._client.query(statement, settings=READ_ONLY)
        except Exception as exc:  # the driver's own error says what is wrong with the SQL
            raise _error(exc) from exc
        return ResultTable(title="", columns=list(res.column_names), rows=[tuple(r) for r in res.result_rows])

    def read_only_statement(self, sql: str) -> str:
        """ClickHouse's formatting of `sql`, once its parser has shown it to be one statement
        that only reads; raises `ReadOnlyError` otherwise and `QueryError` for bad SQL."""

        def read(query: str, parameters: dict[str, str] | None) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in self._client.query(query, parameters=parameters, settings=READ_ONLY).result_rows]

        return read_only_statement(sql, read)


#: The catalog's counters per province (the terms of `CATALOG_ITEMS`), by `_catalog_counts_sql`.
CATALOG_COUNTERS: Final = (
    "catalog_procedures",
    "catalog_online",
    "catalog_online_with_dossier",
    "catalog_fee_online",
    "catalog_fee_online_integrated",
    "catalog_integrated",
    "catalog_integrated_paid_online",
)
#: A catalog version in force on some day of [{start}, {end}) (valid_to is exclusive).
_IN_FORCE_DURING: Final = "valid_from < {end:Date} AND (valid_to IS NULL OR {start:Date} < valid_to)"
#: [{start}, {end}) as instants: local (UTC+7) midnights, so the period is the rollups' local days.
_EVENT_IN_PERIOD: Final = (
    f"occurred_at >= toDateTime({{start:Date}}, '{LOCAL_TZ_NAME}') "
    f"AND occurred_at < toDateTime({{end:Date}}, '{LOCAL_TZ_NAME}')"
)


def _catalog_in_force_sql(db: str) -> str:
    """Per key, the newest version in force on some day of the period (`ol`, `fb`, `pi`: its online
    level, fee-bearing and payment-integrated flags; aliases apart from the columns they read)."""
    return (
        "SELECT province_code, procedure_code, argMax(name, valid_from) AS name, "
        "argMax(online_level, valid_from) AS ol, argMax(fee_bearing, valid_from) AS fb, "
        "argMax(payment_integrated, valid_from) AS pi "
        f"FROM {db}.procedure_catalog FINAL WHERE {_IN_FORCE_DURING} GROUP BY province_code, procedure_code"
    )


def _online_dossiers_sql(db: str) -> str:
    """(province, procedure) pairs with an online submission in the period (exact: raw events; the
    rollup's uniqExact state counts such procedures but cannot say which)."""
    return (
        f"SELECT DISTINCT province_code, procedure_code FROM {db}.events "
        f"WHERE event_type = 'application.submitted' AND channel = 'online' AND {_EVENT_IN_PERIOD}"
    )


def _online_payments_sql(db: str) -> str:
    """(province, procedure) pairs with an online payment in the period; a payment event carries its
    dossier's procedure_code (the contract's envelope), so no join on dossier_id is needed."""
    return (
        f"SELECT DISTINCT province_code, procedure_code FROM {db}.events "
        f"WHERE event_type = 'payment.completed' AND method = 'online' AND {_EVENT_IN_PERIOD}"
    )


def _catalog_counts_sql(db: str) -> str:
    """`CATALOG_COUNTERS` per province for the catalog in force during [{start}, {end})."""
    online = "ol != 'none'"
    return (
        "SELECT province_code, count() AS catalog_procedures, "
        f"countIf({online}) AS catalog_online, "
        f"countIf({online} AND (province_code, procedure_code) IN ({_online_dossiers_sql(db)})) "
        "AS catalog_online_with_dossier, "
        f"countIf({online} AND fb) AS catalog_fee_online, "
        f"countIf({online} AND fb AND pi) AS catalog_fee_online_integrated, "
        "countIf(pi) AS catalog_integrated, "
        f"countIf(pi AND (province_code, procedure_code) IN ({_online_payments_sql(db)})) "
        "AS catalog_integrated_paid_online "
        f"FROM ({_catalog_in_force_sql(db)}) GROUP BY province_code"
    )


#: How the guard reads: runs one query (with `{name:Type}` parameters) under `readonly=1` and
#: returns its rows. `History` reads through its client; the query endpoint of `psmon up`
#: (`psmon.local.query_server`) through its own read-only chDB connection.
Reader = Callable[[str, dict[str, str] | None], list[tuple[Any, ...]]]


def read_only_statement(sql: str, read: Reader, *, outside: frozenset[str] | None = None) -> str:
    """ClickHouse's formatting of `sql`, once its parser has shown it to be one statement that
    only reads (see the module docstring); raises `ReadOnlyError` otherwise and `QueryError` for
    bad SQL. `outside`: the refused functions, by default `OUTSIDE_FUNCTIONS` plus the server's
    table functions (read through `read`)."""
    if not sql.strip():
        raise QueryError("no SQL given")
    try:
        formatted = str(read("SELECT formatQuerySingleLine({sql:String})", {"sql": sql})[0][0])
    except Exception as exc:
        if "Multi-statements are not allowed" in str(exc):
            raise ReadOnlyError("more than one statement (give one SELECT)") from exc
        raise _error(exc) from exc
    try:
        lines = [str(r[0]) for r in read(f"EXPLAIN AST {formatted}", None)]
    except Exception as exc:
        if _readonly_refusal(exc) is None and _keyword(formatted) not in _READ_KEYWORDS:
            # a statement EXPLAIN cannot even show (SYSTEM ...) is no read either
            raise ReadOnlyError(_not_a_read(formatted)) from exc
        raise _error(exc) from exc
    refused = ast_refusal(lines, formatted, outside=refused_functions(read) if outside is None else outside)
    if refused:
        raise ReadOnlyError(refused)
    return formatted


def refused_functions(read: Reader) -> frozenset[str]:
    """`OUTSIDE_FUNCTIONS` plus the server's table functions (lowercase), every one but the safe
    ones being refused."""
    try:
        rows = read("SELECT name FROM system.table_functions", None)
    except Exception:  # a restricted user: the built-in list still applies
        return OUTSIDE_FUNCTIONS
    return OUTSIDE_FUNCTIONS | frozenset(str(r[0]).lower() for r in rows)


def _error(exc: Exception) -> QueryError:
    refused = _readonly_refusal(exc)
    return ReadOnlyError(refused) if refused else QueryError(f"query failed: {_server_text(exc)}")
