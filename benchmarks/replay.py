"""Measurement 6: replay from a file into ClickHouse (events/s), through `psmon replay`'s code.

`replay_file` runs `psmon.history.replay.replay_files` (what `psmon replay FILE` runs: read,
validate as stage 1 does, write through the sink's check-then-insert `ClickHouseWriter` with
deduplication tokens naming the file and line range) on the simulator's JSONL corpus, into a
fresh database. Reported: end to end events/s (read + validate + write), and the events write
alone (timed inside the writer), so it is clear which of the two bounds a replay.
"""

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psmon.history.replay import replay_files
from psmon.schemas.normalized import ValidRecord
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter

__all__ = ["replay_file"]


class _TimedWriter(ClickHouseWriter):
    write_s = 0.0

    def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
        t = time.perf_counter()
        try:
            return super().write_events(records, token=token)
        finally:
            self.write_s += time.perf_counter() - t


def replay_file(client: Client, database: str, path: Path, *, batch_rows: int = 50_000) -> dict[str, Any]:
    migrate(client, database)
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
        "write_seconds": round(writer.write_s, 2),
        "write_events_per_s": round(stats.inserted / max(writer.write_s, 1e-6), 1),
    }
