"""Recovery: time until a SIGKILLed worker's successor exports every province again.

`psmon.valid` is filled with N already-validated records (stage 1's encoding of distinct events,
produced straight to the topic, so the fill costs no validation), a first `psmon worker` counts
them all and checkpoints every partition at its end, and is killed with SIGKILL. A tail of new
records arrives while no worker runs (what the dead worker had not checkpointed yet). Then, in the
same run, on the same broker and topic:
- **checkpoint**: a worker sharing the dead one's data dir restores the checkpoints and replays
  the tail;
- **full re-read** (the baseline, psmon before checkpoints): a worker with an empty checkpoint
  directory re-reads every partition from the beginning (`reread=False`, or
  `--recovery-skip-reread`, leaves it out: it is O(history), ~15 µs per record).

Each is timed from its process start until its /metrics export every event of every province
(history + tail; polled every 0.1 s), so the figure includes start-up and the consumer-group
join. Both successors share the dead worker's data dir, so both rejoin the group with its member
id (`psmon/streams/membership.py`) and do not wait for its session to expire (`session_timeout_s`,
6 s here); the join is then a plain one (about half the session timeout on the local broker).

`phases_s` says where the time went, from the worker's own log lines: `startup` (process start to
the stage-2 service starting: interpreter, imports, settings, topics, the Faust app),
`group_join` (to the first partition of `psmon.valid` assigned), `state` (to the last partition
live: restore + tail replay, or the full re-read; also given as `state_seconds`) and `export`
(to the scrape that saw every event). `rebuild_records` is how many records each replayed before
going live (`psmon_events_processed_total{stage="rebuild"}`). `read_ahead_s` is how long the
successor spent reading its checkpoints and rebuilding the duplicate memory from them *during*
`group_join` (on a thread, for the partitions its data dir's previous process held:
`psmon/streams/rates_service.py`); None when it read nothing ahead (the full re-read).

Measured 2026-11-30 on the shared 2-core machine, 1 M retained records, `python -m benchmarks
--only recovery --recovery-records 1000000 --recovery-skip-reread`, before and after the read
ahead alternated (s, total / start-up / group join / state / export): before 7.43 / 2.53 / 3.55 /
1.32 / 0.02 and 8.06 / 2.74 / 3.62 / 1.52 / 0.18, after 5.63 / 1.73 / 3.34 / 0.48 / 0.08 and
8.01 / 2.99 / 3.56 / 1.21 / 0.25 at load 3.5-6.4; the restores on the loop went 0.43-0.51 s ->
0.07-0.10 s. The totals follow the load: the join is the local broker's delay (3 s at the 6 s
session timeout), start-up is imports. Table: docs/performance.md#recovery.
"""

import asyncio
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from benchmarks.common import Bench, exported_events, processed
from psmon.schemas.normalized import encode_valid
from psmon.schemas.provinces import registry
from psmon.schemas.validation import ValidEvent
from psmon.settings import Settings
from psmon.streams.checkpoint import CheckpointStore
from psmon.streams.topics import ensure_topics
from psmon.timeutil import utc_now
from testkit import sample, scrape, stop_process

__all__ = ["run_recovery"]

_ID_WIDTH = 12
_MINUTES = 120  # event times spread over the last two hours


def _templates(now_s: float) -> list[tuple[bytes, bytes]]:
    """(key, encoded record with a placeholder id) per province and minute."""
    out = []
    for minute in range(_MINUTES):
        for j, province in enumerate(registry().codes):
            ev = ValidEvent(
                event_id="#" * _ID_WIDTH,
                event_type="application.submitted",
                occurred_at_s=now_s - 60 * (minute + 1),
                province_code=province,
                raw_province_code=province,
                level="commune",
                procedure_code="1.1",
                dossier_id="d",
                channel="online" if (minute + j) % 3 else "counter",
                service_mode="full_online",
                fee_bearing=False,
            )
            value = encode_valid(ev, src_partition=0, src_offset=0, src_ts_ms=int(ev.occurred_at_s * 1000))
            out.append((province.encode(), value))
    return out


def _fill(bootstrap: str, topic: str, start: int, count: int, now_s: float) -> float:
    """Produce `count` distinct valid records (ids start..start+count); returns records/s."""
    templates = _templates(now_s)
    placeholder = b"#" * _ID_WIDTH

    async def run() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
        await producer.start()
        try:
            t0 = time.monotonic()
            pending = []
            for i in range(start, start + count):
                key, value = templates[i % len(templates)]
                pending.append(await producer.send(topic, key=key, value=value.replace(placeholder, b"%012d" % i)))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            return count / max(time.monotonic() - t0, 1e-3)
        finally:
            await producer.stop()

    return asyncio.run(run())


_LOG_TS = re.compile(r"^(\S+) INFO (\S+): (.*)$")
_READ_AHEAD = re.compile(r"checkpoints of \d+ partitions read ahead in ([0-9.]+) s")


def _phases(log: Path, valid_topic: str, started: datetime, exported: datetime) -> dict[str, float | None]:
    """Where a successor's time went, from its own log lines (seconds, wall clock).

    - `startup`: process start to the stage-2 service starting (interpreter, imports, settings,
      /metrics, topic check, the Faust app);
    - `group_join`: from there to its first partition of `psmon.valid` assigned (the consumer's
      join; after a SIGKILL the group first waits for the dead member's session to expire);
    - `state`: to the last partition live (restore + tail replay, or the full re-read);
    - `export`: to the benchmark's scrape seeing every event (at most one poll interval);
    - `read_ahead_s`: not a phase, the checkpoint reads done on a thread during `group_join`.
    """
    service: datetime | None = None
    assigned: datetime | None = None
    live: datetime | None = None
    read_ahead: float | None = None
    for line in log.read_text(errors="replace").splitlines():
        m = _LOG_TS.match(line)
        if m and m.group(2).startswith("psmon.streams.checkpoint") and (ahead := _READ_AHEAD.search(m.group(3))):
            read_ahead = float(ahead.group(1))
        if not m or not m.group(2).startswith("psmon.streams.rates_service"):
            continue
        ts, text = datetime.fromisoformat(m.group(1)), m.group(3)
        if service is None and "Starting..." in text:
            service = ts
        if assigned is None and (
            (text.startswith(f"{valid_topic}[") and "restored" in text) or "re-reading them" in text
        ):
            assigned = ts
        if text.startswith("partition ") and "caught up" in text:
            live = ts

    def span(a: datetime | None, b: datetime | None) -> float | None:
        return round((b - a).total_seconds(), 3) if a and b else None

    return {
        "startup": span(started, service),
        "group_join": span(service, assigned),
        "state": span(assigned, live),
        "export": span(live, exported),
        "read_ahead_s": read_ahead,
    }


def _until_exported(bench: Bench, name: str, prefix: str, total: int, timeout_s: float, **env: str) -> dict[str, Any]:
    t0 = time.monotonic()
    started = datetime.now(UTC)
    proc, port = bench.start("worker", prefix, name, PSMON_LOG_LEVEL="info", **env)
    try:
        while True:
            s = scrape(port)
            if exported_events(s) >= total:
                seconds = time.monotonic() - t0
                exported = datetime.now(UTC)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {proc.returncode}")
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"worker {name} exported {exported_events(s)} of {total}")
            time.sleep(0.1)
        return {
            "proc": proc,
            "port": port,
            "seconds": seconds,
            "started": started,
            "exported": exported,
            "rebuild_records": int(processed(s, "rebuild")),
            "restored_partitions": int(sample(s, "psmon_checkpoint_restored_total", topic=f"{prefix}.valid")),
        }
    except BaseException:
        stop_process(proc, sig=signal.SIGKILL)
        raise


def run_recovery(bench: Bench, records: int, *, tail: int = 10_000, reread: bool = True) -> dict[str, Any]:
    """Fill, first worker, SIGKILL, tail, then the successors; `reread=False` skips the baseline."""
    prefix = bench.prefix("recovery")
    settings = Settings(
        kafka_bootstrap=bench.bootstrap, topic_prefix=prefix, app_id=prefix, topic_partitions=bench.partitions
    )
    ensure_topics(settings)
    now_s = utc_now().timestamp()
    t0 = time.monotonic()
    produce_eps = _fill(bench.bootstrap, settings.topic_valid, 0, records, now_s)
    fill_s = time.monotonic() - t0
    timeout_s = bench.timeout_s(records)

    first = _until_exported(bench, "first", prefix, records, timeout_s)
    try:
        store = CheckpointStore(bench.work_dir / prefix / "checkpoints", app_id=prefix)
        deadline = time.monotonic() + 120
        while True:  # every partition checkpointed at its end (its offset = what it holds)
            found = [store.read(settings.topic_valid, p, bench.partitions) for p in range(bench.partitions)]
            if sum(c.next_offset for c in found if c is not None) >= records:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the first worker did not checkpoint every partition")
            time.sleep(0.5)
        checkpoint_bytes = sum(f.stat().st_size for f in store.directory.glob(f"{prefix}.*.npz"))
    finally:
        stop_process(first["proc"], sig=signal.SIGKILL)
    killed = time.monotonic()
    _fill(bench.bootstrap, settings.topic_valid, records, tail, now_s)
    total = records + tail

    started_after_kill_s = time.monotonic() - killed
    restored = _until_exported(bench, "restored", prefix, total, timeout_s)
    stop_process(restored["proc"], sig=signal.SIGKILL)
    baseline = None
    if reread:
        empty = bench.work_dir / prefix / "no-checkpoints"
        baseline = _until_exported(bench, "reread", prefix, total, timeout_s, PSMON_CHECKPOINT_DIR=str(empty))
        stop_process(baseline["proc"], sig=signal.SIGKILL)

    def result(r: dict[str, Any], name: str) -> dict[str, Any]:
        phases = _phases(bench.work_dir / prefix / f"{name}.log", settings.topic_valid, r["started"], r["exported"])
        return {
            "seconds": round(r["seconds"], 2),
            "state_seconds": phases["state"],
            "phases_s": phases,
            "rebuild_records": r["rebuild_records"],
            "restored_partitions": r["restored_partitions"],
        }

    out: dict[str, Any] = {
        "records": records,
        "tail": tail,
        "fill_records_per_s": round(produce_eps, 1),
        "fill_seconds": round(fill_s, 1),
        "first_full_read_seconds": round(first["seconds"], 2),
        "checkpoint_bytes": checkpoint_bytes,
        "successor_started_after_kill_s": round(started_after_kill_s, 2),
        "checkpoint": result(restored, "restored"),
    }
    if baseline is not None:
        out["full_reread"] = result(baseline, "reread")
        out["speedup"] = baseline["seconds"] / restored["seconds"] if restored["seconds"] else None
    return out
