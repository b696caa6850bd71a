"""ClickHouse schema of psmon, as ordered, recorded migrations (`psmon migrate`).

Every table that receives stream data is a ReplacingMergeTree keyed by a natural id, so writing
the same row twice (a Kafka redelivery, a retried batch) leaves one row after merges and exactly
one in reads with `FINAL`:
- `events`: one row per valid event, key `event_id` within province and month. The version
  column keeps the *first* produced copy when a portal re-sends an id with other content, which
  is what the live counts of stage 2 keep too.
- `dead_letters`: key `dead_letter_id`, a keyed digest of the rejected bytes (the same bad
  input from Kafka, a redelivery or a backfill file is one row).
- `rate_snapshots` (re-keyed by version 4): what the live windows showed, one row per province,
  metric, window and minute (key province/metric/window/minute; the worker stamps a snapshot with
  its minute and the latest of the minute, by watermark, replaces the others): ~1,020 rows a
  minute, ~540 million a year, instead of ~1,020 every 10 s per worker (~3.2 billion). Kept, at
  that size, because it records what the live windows (and so the alerts) saw at the time, which
  the rollups cannot recompute once late events have arrived.
- `procedure_catalog` (version 5): the procedure catalog as a versioned dimension, one row per
  version of a province's procedure (key province/procedure/valid_from, `valid_to` exclusive;
  see `psmon.history.catalog`).
- `alerts` (version 3): every alert notification that `psmon alerts listen` receives from
  Alertmanager; key fingerprint/startsAt/status, so a notification sent again (repeat interval,
  retried webhook) is one row, and an episode is a `firing` row plus a `resolved` one.
Tables also accept `insert_deduplication_token` (non-replicated deduplication window), so a batch
re-sent with the same token is dropped whole, materialized views included.

Version 2 (`rollups.py`) adds the analysts' history: hourly and daily rollups fed by
materialized views, the province dimension tables, and the metric and 766-index views.

Retention is set after the migrations, from the settings, with `ALTER TABLE ... MODIFY TTL` (or
`REMOVE TTL` for 0 = keep forever), so it applies to tables that already exist too: raw events
(`apply_events_ttl`), and dead letters (by `received_at`) and alerts (by `starts_at`, so both
rows of an episode go together) with `apply_ttl`, which leaves a table alone when its TTL is
already the wanted one (a MODIFY TTL rewrites the table's parts).

Migrations are applied in order, each recorded in `schema_migrations`; running `migrate` again is
a no-op. A migration is pending when its version is not recorded (not merely when it is above the
highest recorded one), so versions developed on parallel branches (2 and 3) both get applied
whichever landed first. Statements use IF NOT EXISTS so a migration interrupted half-way can be re-run.
"""

import logging
from dataclasses import dataclass

from psmon.settings import Settings
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.rollups import ROLLUP_STATEMENTS, apply_events_ttl, load_provinces

__all__ = [
    "MIGRATIONS",
    "TTL_COLUMNS",
    "Migration",
    "applied_versions",
    "apply_ttl",
    "current_version",
    "migrate",
    "migrate_configured",
]

log = logging.getLogger(__name__)

_DEDUP = "non_replicated_deduplication_window = 1000"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "raw events, dead letters, rate snapshots",
        (
            """
            CREATE TABLE IF NOT EXISTS {db}.events (
                event_id String,
                event_type LowCardinality(String),
                occurred_at DateTime64(6, 'UTC'),
                province_code LowCardinality(String),
                raw_province_code LowCardinality(String),
                level LowCardinality(String),
                procedure_code LowCardinality(String),
                dossier_id String,
                agency_code Nullable(String),
                commune_code Nullable(String),
                source_system LowCardinality(Nullable(String)),
                channel LowCardinality(Nullable(String)),
                service_mode LowCardinality(Nullable(String)),
                fee_bearing Nullable(Bool),
                on_time Nullable(Bool),
                method LowCardinality(Nullable(String)),
                amount_vnd Nullable(Int64),
                kind LowCardinality(Nullable(String)),
                src_partition UInt32,
                src_offset UInt64,
                src_ts DateTime64(3, 'UTC'),
                dedup_version UInt64,
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            )
            ENGINE = ReplacingMergeTree(dedup_version)
            PARTITION BY toYYYYMM(occurred_at)
            ORDER BY (province_code, event_id)
            SETTINGS {dedup}
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.dead_letters (
                dead_letter_id String,
                reason LowCardinality(String),
                detail String,
                redacted String,
                payload_sha256 String,
                payload_bytes UInt32,
                src_partition UInt32,
                src_offset UInt64,
                received_at DateTime64(3, 'UTC'),
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(received_at)
            ORDER BY dead_letter_id
            SETTINGS {dedup}
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.rate_snapshots (
                snapshot_at DateTime64(3, 'UTC'),
                worker LowCardinality(String),
                province_code LowCardinality(String),
                metric LowCardinality(String),
                rate_window LowCardinality(String),
                numerator UInt64,
                denominator UInt64,
                ratio Nullable(Float64),
                watermark DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(snapshot_at)
            ORDER BY (province_code, metric, rate_window, snapshot_at, worker)
            SETTINGS {dedup}
            """,
        ),
    ),
    Migration(2, "rollups per province x hour/day, province tables, metric and 766-index views", ROLLUP_STATEMENTS),
    Migration(
        3,
        "alert history (psmon alerts listen)",
        (
            """
            CREATE TABLE IF NOT EXISTS {db}.alerts (
                fingerprint String,
                status LowCardinality(String),
                starts_at DateTime64(3, 'UTC'),
                ends_at Nullable(DateTime64(3, 'UTC')),
                alertname LowCardinality(String),
                severity LowCardinality(String),
                province_code LowCardinality(String),
                province_name String,
                metric LowCardinality(String),
                value Nullable(Float64),
                threshold Nullable(Float64),
                volume Nullable(Float64),
                summary_vi String,
                summary_en String,
                labels String,
                annotations String,
                receiver LowCardinality(String),
                generator_url String,
                received_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree(received_at)
            PARTITION BY toYYYYMM(starts_at)
            ORDER BY (fingerprint, starts_at, status)
            SETTINGS {dedup}
            """,
        ),
    ),
    Migration(
        4,
        "rate snapshots: one row per province x metric x window x minute",
        (
            # The old key (every 10 s, per worker) cannot be altered in place. Its rows were only
            # ever written, never read by psmon, and the rollups hold the same history: drop them.
            # Re-runnable: migrate() runs before the sink writes anything.
            "DROP TABLE IF EXISTS {db}.rate_snapshots",
            """
            CREATE TABLE IF NOT EXISTS {db}.rate_snapshots (
                snapshot_at DateTime64(3, 'UTC'),
                worker LowCardinality(String),
                province_code LowCardinality(String),
                metric LowCardinality(String),
                rate_window LowCardinality(String),
                numerator UInt64,
                denominator UInt64,
                ratio Nullable(Float64),
                watermark DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree(watermark)
            PARTITION BY toYYYYMM(snapshot_at)
            ORDER BY (province_code, metric, rate_window, snapshot_at)
            SETTINGS {dedup}
            """,
        ),
    ),
    Migration(
        5,
        "procedure catalog, a versioned dimension (psmon catalog load)",
        (
            # One row per version of a province's procedure, keyed by its first day; `version`
            # (the load's time in microseconds) makes a later load's copy of the same version (a
            # version closed by a newer one, a corrected row) the one that FINAL reads.
            """
            CREATE TABLE IF NOT EXISTS {db}.procedure_catalog (
                province_code LowCardinality(String),
                procedure_code String,
                name String,
                level LowCardinality(String),
                online_level LowCardinality(String),
                fee_bearing Bool,
                payment_integrated Bool,
                valid_from Date,
                valid_to Nullable(Date),
                loaded_at DateTime64(3, 'UTC'),
                version UInt64
            )
            ENGINE = ReplacingMergeTree(version)
            ORDER BY (province_code, procedure_code, valid_from)
            SETTINGS {dedup}
            """,
        ),
    ),
)


def applied_versions(client: Client, database: str) -> set[int]:
    current_version(client, database)  # creates the database and the migrations table if needed
    result = client.query(f"SELECT DISTINCT version FROM {database}.schema_migrations FINAL")
    return {int(row[0]) for row in result.result_rows}


def current_version(client: Client, database: str) -> int:
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, description String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    result = client.query(f"SELECT max(version) FROM {database}.schema_migrations FINAL")
    return int(result.result_rows[0][0] or 0)


#: The column each table with a retention setting expires by (tables other than raw events).
TTL_COLUMNS: dict[str, str] = {"dead_letters": "received_at", "alerts": "starts_at"}


def apply_ttl(client: Client, database: str, table: str, ttl_days: int) -> None:
    """Expire rows of `table` `ttl_days` after its `TTL_COLUMNS` time; 0 keeps them forever."""
    if ttl_days < 0:
        raise ValueError("ttl_days must be >= 0")
    ddl = str(client.query(f"SHOW CREATE TABLE {database}.{table}").result_rows[0][0])
    if ttl_days == 0:
        if "TTL" in ddl:
            client.command(f"ALTER TABLE {database}.{table} REMOVE TTL")
        return
    column = TTL_COLUMNS[table]
    ttl = f"toDateTime({column}) + toIntervalDay({int(ttl_days)})"
    if f"TTL {ttl}" not in ddl:
        client.command(f"ALTER TABLE {database}.{table} MODIFY TTL {ttl}")


def migrate(
    client: Client,
    database: str,
    *,
    events_ttl_days: int | None = None,
    dead_letters_ttl_days: int | None = None,
    alerts_ttl_days: int | None = None,
) -> list[Migration]:
    """Apply pending migrations; returns those applied (empty when up to date).

    Afterwards the province tables are brought up to date with the shipped CSVs (a no-op when
    equal), and each TTL given is set (0 = none): raw events, dead letters, alerts.
    """
    applied = []
    done = applied_versions(client, database)
    for m in MIGRATIONS:
        if m.version in done:
            continue
        log.info("applying ClickHouse migration %d: %s", m.version, m.description)
        for statement in m.statements:
            client.command(statement.format(db=database, dedup=_DEDUP))
        client.insert(
            f"{database}.schema_migrations",
            [[m.version, m.description]],
            column_names=["version", "description"],
        )
        applied.append(m)
    if current_version(client, database) >= 2:
        load_provinces(client, database)
        if events_ttl_days is not None:
            apply_events_ttl(client, database, events_ttl_days)
    if dead_letters_ttl_days is not None:
        apply_ttl(client, database, "dead_letters", dead_letters_ttl_days)
    if alerts_ttl_days is not None and 3 in applied_versions(client, database):
        apply_ttl(client, database, "alerts", alerts_ttl_days)
    return applied


def migrate_configured(client: Client, settings: Settings) -> list[Migration]:
    """`migrate` with the database and every TTL of the settings: what `psmon migrate` and the
    sink's start-up both apply, so the shipped retention defaults hold however the schema is made."""
    return migrate(
        client,
        settings.clickhouse_database,
        events_ttl_days=settings.clickhouse_events_ttl_days,
        dead_letters_ttl_days=settings.clickhouse_dead_letters_ttl_days,
        alerts_ttl_days=settings.clickhouse_alerts_ttl_days,
    )
