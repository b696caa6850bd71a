"""Measurement 6: replay from a file into ClickHouse (events/s).

Reads the simulator's JSONL corpus, validates every line as stage 1 does (`validate_event`),
and writes the valid events through `ClickHouseWriter.write_events` (the sink's own
check-then-insert writer, with deduplication tokens naming the file and line range) in batches,
into a fresh database. Reported: end to end events/s (read + validate + write), and the write
part alone, so it is clear which of the two bounds a replay.

`replay_file` is the seam for `psmon replay` (the history package, built in parallel): once it
exists, this function should call its reader/batcher instead of the loop below, so that the
benchmark measures the command users run; the measurement around it stays the same.
"""

import time
from pathlib import Path
from typing import Any

from benchmarks.common import read_lines
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter

__all__ = ["replay_file"]


def replay_file(client: Client, database: str, path: Path, *, batch_rows: int = 50_000) -> dict[str, Any]:
    migrate(client, database)
    writer = ClickHouseWriter(client, database=database)
    now_ms = int(time.time() * 1000)
    lines = events = written = 0
    write_s = 0.0
    batch: list[ValidRecord] = []
    first = 0

    def flush() -> None:
        nonlocal written, write_s
        t = time.perf_counter()
        written += writer.write_events(batch, token=f"replay/{path.name}:{first}-{lines - 1}")
        write_s += time.perf_counter() - t
        batch.clear()

    t0 = time.perf_counter()
    for line in read_lines(path):
        verdict = validate_event(line, record_ts_s=now_ms / 1000)
        if isinstance(verdict, ValidEvent):
            batch.append(ValidRecord(verdict, 0, lines, now_ms))
            events += 1
        lines += 1
        if len(batch) >= batch_rows:
            flush()
            first = lines
    if batch:
        flush()
    total_s = time.perf_counter() - t0
    return {
        "lines": lines,
        "events": events,
        "written": written,
        "seconds": round(total_s, 2),
        "events_per_s": round(lines / max(total_s, 1e-6), 1),
        "write_seconds": round(write_s, 2),
        "write_events_per_s": round(written / max(write_s, 1e-6), 1),
    }
