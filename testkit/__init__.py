"""Helpers for tests and benchmarks that drive real psmon processes: their environment, polling,
scraping, process control, reading topics back.

Outside the `psmon` package on purpose: nothing psmon runs needs them, so they stay out of the
wheel (setuptools packages only `psmon*`) and out of the Docker image (which copies `psmon/`
alone). Top-level rather than under `tests/` because `benchmarks/` starts, scrapes and stops the
same processes as the integration tests, and one copy keeps both measuring the same thing. Both
run from the repository root, where `import testkit` resolves; `tests/helpers.py` re-exports it
next to its ClickHouse totals.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from psmon.embedded.process import die_with_parent
from psmon.settings import Settings

__all__ = [
    "Samples",
    "end_offsets",
    "from_beginning",
    "pids_alive",
    "psmon_env",
    "psmon_process",
    "sample",
    "scrape",
    "sink_caught_up",
    "stop_process",
    "wait_until",
]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def scrape(port: int) -> Samples:
    """All samples of a /metrics endpoint: (name, sorted labels) -> value. Empty if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def psmon_env(
    *,
    kafka: str | None = None,
    prefix: str | None = None,
    partitions: int | None = None,
    clickhouse: str | None = None,
    database: str | None = None,
    data_dir: Path | str | None = None,
    session_timeout_s: float | str = "6",
    **settings: object,
) -> dict[str, str]:
    """The `PSMON_*` environment of a psmon process started by a test or a benchmark.

    `prefix` names the topics and the app id (so the consumer groups too): runs sharing a broker
    never read each other. The session timeout is short, so a killed member's partitions move
    within seconds. Arguments left out are left to psmon's defaults; further keyword arguments
    are settings by field name (`sink_flush_interval_ms=200` -> `PSMON_SINK_FLUSH_INTERVAL_MS=200`).
    """
    unknown = set(settings) - set(Settings.model_fields)
    if unknown:
        raise TypeError(f"not psmon settings: {sorted(unknown)}")
    named = {
        "kafka_bootstrap": kafka,
        "topic_prefix": prefix,
        "app_id": prefix,
        "topic_partitions": partitions,
        "clickhouse_dsn": clickhouse,
        "clickhouse_database": database,
        "data_dir": data_dir,
        "session_timeout_s": session_timeout_s,
    }
    return {f"PSMON_{k.upper()}": str(v) for k, v in {**named, **settings}.items() if v is not None}


def psmon_process(args: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `psmon ARGS` as a real process in its own process group."""
    fh = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "psmon.cli.main", *args],
        env={**os.environ, **env},
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,  # a killed test or benchmark run leaves no psmon process behind
    )


def stop_process(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
    """Signal a process group and wait; SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie is dead for our purposes.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@contextlib.asynccontextmanager
async def from_beginning(
    bootstrap: str, topic: str, partitions: int, **config: Any
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A started consumer outside any group, assigned every partition of `topic` and positioned at
    its beginning, with its partitions; `config` are further AIOKafkaConsumer arguments."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **config)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Next offset per partition: the fetch responses' high watermark, once every partition has
    been read up to it (the local broker's ListOffsets answers are wrong, fetches are right)."""

    async def read() -> dict[int, int]:
        async with from_beginning(bootstrap, topic, partitions) as (consumer, tps):
            while True:
                await consumer.getmany(*tps, timeout_ms=500, max_records=100_000)
                ends = {tp.partition: consumer.highwater(tp) for tp in tps}
                positions = {tp.partition: await consumer.position(tp) for tp in tps}
                if all(e is not None and positions[p] >= e for p, e in ends.items()):
                    return {p: int(e or 0) for p, e in ends.items()}

    return asyncio.run(read())


def sink_caught_up(samples: Samples, topic: str, ends: dict[int, int]) -> bool:
    """True when the sink committed every partition of `topic` up to `ends`."""
    return all(
        sample(samples, "psmon_sink_committed_offset", topic=topic, partition=str(p)) == end
        for p, end in ends.items()
        if end
    )
