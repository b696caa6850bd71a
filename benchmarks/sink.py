"""Measurement 5: `psmon sink` alone (rows/s) against a raw clickhouse-connect insert of the same rows.

The sink runs as its own process on the `.valid`, `.dead-letter` and `.rates` topics that the
worker measurement filled, into a fresh chDB directory, until it has committed every offset;
its rate is events rows per second from its first written row. The raw insert reads the same
records back from `.valid`, builds the same rows (`writer.event_row`), and times nothing but
`client.insert` calls of the sink's batch size into a fresh `events` table of the same schema, in
the harness process's own chDB directory. The ratio sink ÷ raw is then the cost of everything
the sink adds: Kafka, decoding, the check-then-insert query, deduplication tokens, commits.
"""

import asyncio
import time
from typing import Any

from benchmarks.common import Bench, Progress, high_watermarks
from benchmarks.replay import timed_inserts, warm_up_inserts
from psmon.schemas.normalized import ValidRecord, decode_valid
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import event_row
from testkit import Samples, from_beginning, sample, scrape

__all__ = ["raw_insert", "read_valid", "run_sink", "sink_done"]


def sink_done(s: Samples, ends: dict[str, dict[int, int]]) -> bool:
    return all(
        sample(s, "psmon_sink_committed_offset", topic=topic, partition=str(p)) >= end
        for topic, by_partition in ends.items()
        for p, end in by_partition.items()
        if end
    )


def run_sink(bench: Bench, prefix: str, valid: int) -> dict[str, Any]:
    """Stage 3 alone on topics already filled by stage 1."""
    settings = Settings(topic_prefix=prefix)
    ends = {
        t: high_watermarks(bench.bootstrap, t, bench.partitions)
        for t in (settings.topic_valid, settings.topic_dead_letter)
    }
    proc, port = bench.start("sink", prefix, "sink")
    rows = Progress()
    deadline = time.monotonic() + bench.timeout_s(valid)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sink exited with {proc.returncode}; see {bench.work_dir / prefix}")
            if time.monotonic() > deadline:
                raise TimeoutError("sink did not commit every offset")
            s = scrape(port)
            written = sample(s, "psmon_sink_rows_total", table="events") + sample(
                s, "psmon_sink_skipped_total", table="events"
            )
            rows.observe(written)
            if s and sink_done(s, ends):
                break
            time.sleep(0.5)
    finally:
        bench.stop(proc)
    seconds, eps = rows.rate(valid)
    return {"rows": valid, "seconds": round(seconds, 2), "rows_per_s": round(eps, 1)}


def read_valid(bootstrap: str, topic: str, partitions: int, count: int) -> list[ValidRecord]:
    """Every record of `.valid` (the rows the sink wrote), decoded."""

    async def run() -> list[ValidRecord]:
        async with from_beginning(bootstrap, topic, partitions) as (consumer, _):
            out: list[ValidRecord] = []
            deadline = time.monotonic() + 300 + count / 1000
            while len(out) < count and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                    out.extend(decode_valid(r.value or b"") for r in records)
            return out

    return asyncio.run(run())


def raw_insert(client: Client, database: str, records: list[ValidRecord], batch_rows: int) -> dict[str, Any]:
    """Plain `client.insert` of the sink's rows in the sink's batch size; times the inserts only."""
    migrate(client, database)
    warm_up_inserts()
    rows = [event_row(r) for r in records]
    elapsed = timed_inserts(client, database, rows, batch_rows)
    return {"rows": len(rows), "seconds": round(elapsed, 2), "rows_per_s": round(len(rows) / max(elapsed, 1e-6), 1)}
