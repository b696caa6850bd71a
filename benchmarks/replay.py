"""Measurement 6: replay from a file into ClickHouse (events/s), through `psmon replay`'s code,
against a raw clickhouse-connect insert of the same rows.

`replay_file` runs `psmon.history.replay.replay_files` (what `psmon replay FILE` runs: read,
validate as stage 1 does, write through the sink's check-then-insert `ClickHouseWriter` with
deduplication tokens naming the file and line range) on the simulator's JSONL corpus, into a
fresh database. Reported: end to end events/s (read + validate + write), the valid events stored
per second of that same time, and the events write alone (timed inside the writer), so it is
clear which of the two bounds a replay.

`raw_insert_file` is its baseline: the same valid events of the same file, as the same rows in
the same order (`ValidRecord`s with replay's source coordinates, `writer.event_row`), built
before the clock starts, then nothing but plain `client.insert` calls of replay's batch size into
a fresh `events` table of the same schema (same engine, same materialized views), on the same
chDB client, in the same run. Replay ÷ raw is then the cost of everything replay adds: reading,
validation, the dead letters, the check query and the deduplication tokens.

The writer inserts events as Arrow tables (`writer.event_table`), which is faster than the plain
`client.insert` the target names. The baseline stays the plain insert; beside it
`raw_insert_file` also times the fastest raw insert found, `client.insert_arrow` of the same
rows as Arrow tables built before the clock starts (`arrow_rows_per_s`), into one more fresh
database, so both ratios can be read.
"""

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clickhouse_connect.driver import options as cc_options

from benchmarks.common import read_lines
from psmon.history.replay import DEFAULT_BATCH_ROWS, replay_files, replay_partition
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import EVENT_COLUMNS, ClickHouseWriter, event_row, event_table

__all__ = ["raw_insert_file", "replay_file", "warm_up_inserts"]


def warm_up_inserts() -> None:
    """clickhouse-connect imports pandas on the process's first insert (to check whether the data
    is a DataFrame), about a second here: pay it before any clock starts, so neither side of a
    ratio carries it."""
    _ = cc_options.pd


def timed_inserts(client: Client, database: str, rows: Sequence[Sequence[Any]], batch_rows: int) -> float:
    """Plain `client.insert` of event rows into `database.events`, `batch_rows` at a time; returns
    the seconds spent in the inserts alone (the baselines of the sink and of replay)."""
    columns = list(EVENT_COLUMNS)
    elapsed = 0.0
    for i in range(0, len(rows), batch_rows):
        t0 = time.perf_counter()
        client.insert(f"{database}.events", rows[i : i + batch_rows], column_names=columns)
        elapsed += time.perf_counter() - t0
    return elapsed


def raw_insert_file(
    client: Client, database: str, path: Path, *, batch_rows: int = DEFAULT_BATCH_ROWS, src_ts_ms: int = 0
) -> dict[str, Any]:
    """Plain `client.insert` of the valid events of `path` in replay's batch size; times the inserts only."""
    migrate(client, database)
    warm_up_inserts()
    # The rows `replay_files` builds for this file: its valid events, in file order, with the
    # replay partition and the row number as source coordinates.
    part = replay_partition(path)
    src_ts_ms = src_ts_ms or int(time.time() * 1000)
    records = []
    for row, line in enumerate(read_lines(path), start=1):
        verdict = validate_event(line)
        if isinstance(verdict, ValidEvent):
            records.append(ValidRecord(verdict, part, row, src_ts_ms))
    rows = [event_row(r) for r in records]
    elapsed = timed_inserts(client, database, rows, batch_rows)
    # The fastest raw insert found: the same rows as Arrow tables, built before the clock starts.
    arrow_db = f"{database}_arrow"
    migrate(client, arrow_db)
    tables = [event_table(records[i : i + batch_rows]) for i in range(0, len(records), batch_rows)]
    t0 = time.perf_counter()
    for table in tables:
        client.insert_arrow(f"{arrow_db}.events", table)
    arrow_s = time.perf_counter() - t0
    return {
        "rows": len(rows),
        "batch_rows": batch_rows,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(len(rows) / max(elapsed, 1e-6), 1),
        "arrow_seconds": round(arrow_s, 2),
        "arrow_rows_per_s": round(len(rows) / max(arrow_s, 1e-6), 1),
    }


class _TimedWriter(ClickHouseWriter):
    write_s = 0.0

    def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
        t = time.perf_counter()
        try:
            return super().write_events(records, token=token)
        finally:
            self.write_s += time.perf_counter() - t


def replay_file(client: Client, database: str, path: Path, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> dict[str, Any]:
    migrate(client, database)
    warm_up_inserts()
    writer = _TimedWriter(client, database=database)
    t0 = time.perf_counter()
    stats = replay_files([path], writer=writer, batch_rows=batch_rows)
    total_s = time.perf_counter() - t0
    return {
        "lines": stats.rows,
        "events": stats.valid,
        "written": stats.inserted,
        "seconds": round(total_s, 2),
        "events_per_s": round(stats.rows / max(total_s, 1e-6), 1),
        "stored_events_per_s": round(stats.inserted / max(total_s, 1e-6), 1),
        "batch_rows": batch_rows,
        "write_seconds": round(writer.write_s, 2),
        "write_events_per_s": round(stats.inserted / max(writer.write_s, 1e-6), 1),
    }
