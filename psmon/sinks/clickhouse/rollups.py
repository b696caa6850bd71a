"""Schema version 2: analysts' history on top of `events` (rollups, provinces, metric views).

What it owns:
- `rollup_hour` (province × code as sent × UTC hour) and `rollup_day` (province × code as sent ×
  local day, Asia/Ho_Chi_Minh) hold the ten counters of `psmon/schemas/metrics.py` `COUNTERS`,
  fed by materialized views on `events`. They are SummingMergeTree: a materialized view sees
  each inserted block, and `ClickHouseWriter.write_events` inserts each `event_id` at most once,
  so plain sums are exact even when the stream re-delivers. Reads always `sum() GROUP BY`
  (unmerged parts hold partial sums), which every view below does. `rollup_day` also keeps a
  `uniqExact` state of procedures with an online submission (the numerator of index item 3.2).
  The code as sent is kept in the key so `--historical-codes` can show old names from rollups.
- `provinces` (the 34) and `province_codes` (the 63 old codes → 34), loaded from the CSVs
  shipped in `psmon/data/` by `load_provinces` on every `migrate` (a no-op when unchanged).
- Views `counters_<grain>` and `metrics_<grain>` for grain day, month, quarter, year: every
  contract metric (docs/contract.md) per 34-province per period with numerator, denominator and ratio (NULL when
  the denominator is 0), computed from the same metric → counters table (`METRICS`) as the live
  rates, and `index766_month` (see `psmon/history/index766.py`).
- A min/max skip index on `events.occurred_at` (the table stays keyed by province and event id,
  which the writer's lookup needs; months are partitions, the index narrows within them).
- A configurable TTL on raw events (`apply_events_ttl`): rollups keep the history after the raw
  rows expire.

Invariant of the migration itself: existing events (a v1 database) are summed into the rollups
once, before the materialized views exist, guarded by "rollup is empty" so a re-run after an
interruption cannot add them twice. Apply it with no sink writing (sinks migrate on start,
before they consume).
"""

import logging
from collections.abc import Iterable
from datetime import date
from typing import Final

from psmon.schemas.index766 import index_select_sql
from psmon.schemas.metrics import COUNTERS, METRICS
from psmon.schemas.provinces import registry
from psmon.sinks.clickhouse.client import Client

__all__ = [
    "COUNTER_CONDITIONS",
    "GRAINS",
    "ROLLUP_STATEMENTS",
    "apply_events_ttl",
    "load_provinces",
    "reconcile_rollups",
]

log = logging.getLogger(__name__)

LOCAL_TZ_NAME: Final = "Asia/Ho_Chi_Minh"

#: SQL condition on an `events` row for each counter; mirrors `windows.counter_increments`.
COUNTER_CONDITIONS: Final[dict[str, str]] = {
    "submitted": "event_type = 'application.submitted'",
    "submitted_online": "event_type = 'application.submitted' AND channel = 'online'",
    "submitted_full_online": (
        "event_type = 'application.submitted' AND channel = 'online' AND service_mode = 'full_online'"
    ),
    "submitted_fee_bearing": "event_type = 'application.submitted' AND fee_bearing = true",
    "resolved": "event_type = 'application.resolved'",
    "resolved_on_time": "event_type = 'application.resolved' AND on_time = true",
    "payments": "event_type = 'payment.completed'",
    "payments_online": "event_type = 'payment.completed' AND method = 'online'",
    "digitized_dossier": "event_type = 'record.digitized' AND kind = 'dossier'",
    "digitized_result": "event_type = 'record.digitized' AND kind = 'result'",
}
assert tuple(COUNTER_CONDITIONS) == COUNTERS, "rollup counters must follow schemas.metrics.COUNTERS"

_ONLINE_PROCEDURE: Final = "event_type = 'application.submitted' AND channel = 'online'"

#: grain -> (period label, period start date) as expressions over `day`.
GRAINS: Final[dict[str, tuple[str, str]]] = {
    "day": ("toString(day)", "day"),
    "month": ("formatDateTime(day, '%Y-%m')", "toStartOfMonth(day)"),
    "quarter": ("concat(toString(toYear(day)), '-Q', toString(toQuarter(day)))", "toStartOfQuarter(day)"),
    "year": ("toString(toYear(day))", "toStartOfYear(day)"),
}

_COUNTER_COLUMNS = ",\n".join(f"{c} UInt64" for c in COUNTERS)
_COUNT_IFS = ", ".join(f"countIf({cond}) AS {c}" for c, cond in COUNTER_CONDITIONS.items())
_DAY_EXPR = f"toDate(occurred_at, '{LOCAL_TZ_NAME}')"
_SUMS = ", ".join(f"sum({c}) AS {c}" for c in COUNTERS)


def _counters_view(grain: str) -> str:
    label, start = GRAINS[grain]
    return f"""
    CREATE VIEW IF NOT EXISTS {{db}}.counters_{grain} AS
    SELECT {label} AS period, {start} AS period_start, province_code, {_SUMS},
           uniqExactMerge(online_procedures) AS online_procedures
    FROM {{db}}.rollup_day
    GROUP BY period, period_start, province_code
    """


def _metrics_view(grain: str) -> str:
    triples = ", ".join(f"('{m}', {num}, {den})" for m, (num, den) in METRICS.items())
    return f"""
    CREATE VIEW IF NOT EXISTS {{db}}.metrics_{grain} AS
    SELECT period, period_start, c.province_code AS province_code, p.name AS province_name,
           m.1 AS metric, m.2 AS numerator, m.3 AS denominator,
           if(m.3 = 0, NULL, m.2 / m.3) AS ratio
    FROM {{db}}.counters_{grain} AS c
    ARRAY JOIN [{triples}] AS m
    LEFT JOIN (SELECT code, name FROM {{db}}.provinces FINAL) AS p ON p.code = c.province_code
    """


ROLLUP_STATEMENTS: Final[tuple[str, ...]] = (
    # Raw events are keyed (province_code, event_id) for the writer's at-most-once lookup; a
    # min/max index on event time lets per-province time scans skip granules within a month.
    "ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS idx_occurred_at occurred_at TYPE minmax GRANULARITY 4",
    """
    CREATE TABLE IF NOT EXISTS {db}.provinces (code String, name String)
    ENGINE = ReplacingMergeTree ORDER BY code
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.province_codes (old_code String, old_name String, new_code String, new_name String)
    ENGINE = ReplacingMergeTree ORDER BY old_code
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {{db}}.rollup_hour (
        province_code LowCardinality(String),
        raw_province_code LowCardinality(String),
        hour DateTime('UTC'),
        {_COUNTER_COLUMNS}
    )
    ENGINE = SummingMergeTree
    PARTITION BY toYYYYMM(hour)
    ORDER BY (province_code, hour, raw_province_code)
    SETTINGS {{dedup}}
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {{db}}.rollup_day (
        province_code LowCardinality(String),
        raw_province_code LowCardinality(String),
        day Date,
        {_COUNTER_COLUMNS},
        online_procedures AggregateFunction(uniqExact, String)
    )
    ENGINE = SummingMergeTree
    PARTITION BY toYear(day)
    ORDER BY (province_code, day, raw_province_code)
    SETTINGS {{dedup}}
    """,
    # Backfill events stored before this migration (guarded: a re-run adds nothing).
    f"""
    INSERT INTO {{db}}.rollup_hour
    SELECT province_code, raw_province_code, toStartOfHour(occurred_at) AS hour, {_COUNT_IFS}
    FROM {{db}}.events FINAL
    WHERE (SELECT count() FROM {{db}}.rollup_hour) = 0
    GROUP BY province_code, raw_province_code, hour
    """,
    f"""
    INSERT INTO {{db}}.rollup_day
    SELECT province_code, raw_province_code, {_DAY_EXPR} AS day, {_COUNT_IFS},
           uniqExactStateIf(procedure_code, {_ONLINE_PROCEDURE}) AS online_procedures
    FROM {{db}}.events FINAL
    WHERE (SELECT count() FROM {{db}}.rollup_day) = 0
    GROUP BY province_code, raw_province_code, day
    """,
    f"""
    CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.rollup_hour_mv TO {{db}}.rollup_hour AS
    SELECT province_code, raw_province_code, toStartOfHour(occurred_at) AS hour, {_COUNT_IFS}
    FROM {{db}}.events
    GROUP BY province_code, raw_province_code, hour
    """,
    f"""
    CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.rollup_day_mv TO {{db}}.rollup_day AS
    SELECT province_code, raw_province_code, {_DAY_EXPR} AS day, {_COUNT_IFS},
           uniqExactStateIf(procedure_code, {_ONLINE_PROCEDURE}) AS online_procedures
    FROM {{db}}.events
    GROUP BY province_code, raw_province_code, day
    """,
    *(_counters_view(g) for g in GRAINS),
    *(_metrics_view(g) for g in GRAINS),
    "CREATE VIEW IF NOT EXISTS {db}.index766_month AS " + index_select_sql("{db}.counters_month"),
)


def load_provinces(client: Client, database: str) -> bool:
    """Make the dimension tables equal the shipped CSVs; returns True if they changed."""
    reg = registry()
    current = sorted((p.code, p.name) for p in reg.current)
    merger = sorted(reg.merger_rows())
    have_current = sorted(
        tuple(r) for r in client.query(f"SELECT code, name FROM {database}.provinces FINAL").result_rows
    )
    have_merger = sorted(
        tuple(r)
        for r in client.query(
            f"SELECT old_code, old_name, new_code, new_name FROM {database}.province_codes FINAL"
        ).result_rows
    )
    if have_current == current and have_merger == merger:
        return False
    # Small tables: replace the whole content (a reader sees either version, or briefly none).
    client.command(f"TRUNCATE TABLE {database}.provinces")
    client.command(f"TRUNCATE TABLE {database}.province_codes")
    client.insert(f"{database}.provinces", [list(r) for r in current], column_names=["code", "name"])
    client.insert(
        f"{database}.province_codes",
        [list(r) for r in merger],
        column_names=["old_code", "old_name", "new_code", "new_name"],
    )
    return True


def apply_events_ttl(client: Client, database: str, ttl_days: int) -> None:
    """Expire raw events `ttl_days` after their event time; 0 keeps them forever.

    Rollups and metric views are unaffected. Replaying a file with events older than the TTL
    would count them again (the at-most-once check looks at raw events), so `psmon replay`
    skips events beyond retention.
    """
    if ttl_days < 0:
        raise ValueError("ttl_days must be >= 0")
    if ttl_days == 0:
        ddl = client.query(f"SHOW CREATE TABLE {database}.events").result_rows[0][0]
        if "TTL" in str(ddl):
            client.command(f"ALTER TABLE {database}.events REMOVE TTL")
        return
    client.command(f"ALTER TABLE {database}.events MODIFY TTL toDateTime(occurred_at) + toIntervalDay({int(ttl_days)})")


_DIFFS: Final = " OR ".join(f"e.{c} != r.{c}" for c in COUNTERS)


def reconcile_rollups(client: Client, database: str, keys: Iterable[tuple[str, date]]) -> int:
    """Make `rollup_hour` and `rollup_day` agree with `events` for (province, local day) keys.

    A materialized view writes its part after the raw part of the same INSERT, so a process
    killed in between leaves a rollup short of events that are stored (and that the writer's
    at-most-once check will never insert again). For each key this adds the missing counts
    (raw counts minus rollup sums, per rollup row) and re-adds the day's `online_procedures`
    state (a set: merging it again changes nothing). Idempotent; returns the rows added.

    All keys go in one statement per rollup (an array of (province, day) tuples), not one per
    province: a redelivered batch spans most provinces, and three chDB statements per province
    made a replay of a stored file 4 s per batch (103 of 106 s in reconciliation, cProfile).
    """
    pairs = sorted(set(keys))
    if not pairs:
        return 0
    params = {"k": pairs}
    added = 0
    for table, bucket, bucket_expr in (
        ("rollup_hour", "hour", "toStartOfHour(occurred_at)"),
        ("rollup_day", "day", _DAY_EXPR),
    ):
        rollup_day = f"toDate({bucket}, '{LOCAL_TZ_NAME}')" if bucket == "hour" else bucket
        rows = client.query(
            f"""
            SELECT e.province_code, e.raw_province_code, e.{bucket}, {", ".join(f"e.{c} - r.{c}" for c in COUNTERS)}
            FROM (
                SELECT province_code, raw_province_code, {bucket_expr} AS {bucket}, {_COUNT_IFS}
                FROM {database}.events FINAL
                WHERE (province_code, {_DAY_EXPR}) IN {{k:Array(Tuple(String, Date))}}
                GROUP BY province_code, raw_province_code, {bucket}
            ) AS e
            LEFT JOIN (
                SELECT province_code, raw_province_code, {bucket}, {_SUMS}
                FROM {database}.{table}
                WHERE (province_code, {rollup_day}) IN {{k:Array(Tuple(String, Date))}}
                GROUP BY province_code, raw_province_code, {bucket}
            ) AS r USING (province_code, raw_province_code, {bucket})
            WHERE {_DIFFS}
            """,
            parameters=params,
        ).result_rows
        missing = [row for row in rows if all(v >= 0 for v in row[3:])]
        if len(missing) != len(rows):
            over = sorted({row[0] for row in rows if any(v < 0 for v in row[3:])})
            log.error("rollup %s of %s counts more than the raw table; left as is", table, ", ".join(over))
        if missing:
            client.insert(
                f"{database}.{table}",
                [list(r) for r in missing],
                column_names=["province_code", "raw_province_code", bucket, *COUNTERS],
            )
            added += len(missing)
    client.command(
        f"""
        INSERT INTO {database}.rollup_day (province_code, raw_province_code, day, online_procedures)
        SELECT province_code, raw_province_code, {_DAY_EXPR} AS day,
               uniqExactStateIf(procedure_code, {_ONLINE_PROCEDURE})
        FROM {database}.events FINAL
        WHERE (province_code, {_DAY_EXPR}) IN {{k:Array(Tuple(String, Date))}}
        GROUP BY province_code, raw_province_code, day
        """,
        parameters=params,
    )
    if added:
        log.warning("reconciled %d rollup rows with the raw events (an earlier write was cut short)", added)
    return added
