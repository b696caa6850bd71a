"""Helpers for tests and benchmarks that drive real psmon processes: polling, scraping, process control.

They live in the package (not under `tests/`) so that `benchmarks/` and the test suite share one
copy; nothing in psmon's own services imports this module.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from psmon.embedded.process import die_with_parent

__all__ = [
    "Samples",
    "end_offsets",
    "pids_alive",
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


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Next offset per partition: the fetch responses' high watermark, once every partition has
    been read up to it (the local broker's ListOffsets answers are wrong, fetches are right)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                await consumer.getmany(*tps, timeout_ms=500, max_records=100_000)
                ends = {tp.partition: consumer.highwater(tp) for tp in tps}
                positions = {tp.partition: await consumer.position(tp) for tp in tps}
                if all(e is not None and positions[p] >= e for p, e in ends.items()):
                    return {p: int(e or 0) for p, e in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def sink_caught_up(samples: Samples, topic: str, ends: dict[int, int]) -> bool:
    """True when the sink committed every partition of `topic` up to `ends`."""
    return all(
        sample(samples, "psmon_sink_committed_offset", topic=topic, partition=str(p)) == end
        for p, end in ends.items()
        if end
    )
