"""What every measurement shares: the run's broker and directories, psmon processes, counters.

A `Bench` is one harness run: one local broker (or `--kafka`), one work directory, a fresh topic
prefix per measurement (so measurements never read each other's topics), and the settings every
psmon process of the run gets through its environment. Throughput is timed from the first
sample in which a process shows progress to the sample in which it is done, so start-up and the
consumer-group join (half a session timeout on the local broker) are not counted.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

from aiokafka import AIOKafkaProducer

from psmon.embedded.broker import free_port
from testkit import Samples, from_beginning, psmon_env, psmon_process, sample, stop_process

__all__ = [
    "Bench",
    "Progress",
    "exported_events",
    "high_watermarks",
    "invalid_total",
    "processed",
    "produce_lines",
    "read_lines",
    "vm_hwm_kib",
]


@dataclass
class Bench:
    bootstrap: str
    work_dir: Path
    corpus: Path
    count: int
    partitions: int
    smoke: bool
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    procs: list[Popen[bytes]] = field(default_factory=list)

    def prefix(self, name: str) -> str:
        return f"bench-{name}-{uuid.uuid4().hex[:6]}"

    def env(self, prefix: str, **extra: str) -> dict[str, str]:
        return {
            **psmon_env(
                kafka=self.bootstrap,
                prefix=prefix,
                partitions=self.partitions,
                clickhouse=f"chdb://{self.work_dir / prefix / 'clickhouse'}",
                database="psmon",
                data_dir=self.work_dir / prefix,
                log_level="warning",
            ),
            **extra,
        }

    def start(self, command: str, prefix: str, name: str, **extra: str) -> tuple[Popen[bytes], int]:
        """Start `psmon COMMAND` for `prefix`; returns the process and its /metrics port."""
        port = free_port()
        (self.work_dir / prefix).mkdir(parents=True, exist_ok=True)
        proc = psmon_process(
            [command, "--metrics-port", str(port)],
            env=self.env(prefix, **extra),
            log_path=self.work_dir / prefix / f"{name}.log",
        )
        self.procs.append(proc)
        return proc, port

    def stop(self, proc: Popen[bytes]) -> None:
        stop_process(proc, timeout_s=40)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)

    def timeout_s(self, events: int) -> float:
        """Generous bound for a stage to process `events` (a hung stage must not hang the run)."""
        return 180 + events / 200


class Progress:
    """Times a counter from its first movement until `done` says so.

    When the first sample that moved already holds half the total or more (a small corpus, or a
    stage faster than the sampling interval), timing from it would say little: the rate is then
    timed from when the `Progress` was made (process start), start-up included, which can only
    understate it.
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def observe(self, value: float) -> None:
        now = time.monotonic()
        if self.first is None and value > 0:
            self.first = (now, value)
        self.last = (now, value)

    def rate(self, total: float) -> tuple[float, float]:
        """(seconds, events/s) for `total` events."""
        assert self.first is not None, "no progress observed"
        assert self.last is not None
        t0, done0 = self.first
        if done0 >= total / 2:
            t0, done0 = self.start, 0.0
        elapsed = max(self.last[0] - t0, 1e-3)
        return elapsed, (total - done0) / elapsed


def processed(s: Samples, stage: str) -> float:
    return sample(s, "psmon_events_processed_total", stage=stage)


def invalid_total(s: Samples) -> float:
    return sum(v for (name, _), v in s.items() if name == "psmon_events_invalid_total")


_CONTRACT_COUNTERS = (
    "psmon_dossiers_submitted_total",
    "psmon_dossiers_resolved_total",
    "psmon_payments_total",
    "psmon_records_digitized_total",
)


def exported_events(s: Samples) -> float:
    """Valid events a worker exports in its contract counters (each event is in exactly one)."""
    return sum(v for (name, _), v in s.items() if name in _CONTRACT_COUNTERS)


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a live process (VmHWM in /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def read_lines(path: Path, limit: int | None = None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                return
            yield line.rstrip(b"\n")


def produce_lines(bootstrap: str, topic: str, lines: list[tuple[bytes, bytes]]) -> float:
    """Send (key, value) pairs as fast as the broker takes them; returns events/s."""

    async def run() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
        await producer.start()
        try:
            t0 = time.monotonic()
            pending = []
            for key, value in lines:
                pending.append(await producer.send(topic, key=key, value=value))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            return len(lines) / max(time.monotonic() - t0, 1e-3)
        finally:
            await producer.stop()

    return asyncio.run(run())


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Next offset per partition, from the high watermark of a fetch response.

    The local broker's ListOffsets is wrong (docs/development.md), but the high watermark that every fetch
    response carries is right; one small fetch per partition is enough to learn it.
    """

    async def run() -> dict[int, int]:
        async with from_beginning(bootstrap, topic, partitions, max_partition_fetch_bytes=1024) as (consumer, tps):
            out: dict[int, int] = {}
            deadline = time.monotonic() + 30
            while len(out) < partitions and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=300, max_records=partitions)
                for tp in tps:
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        out[tp.partition] = hw
                        consumer.pause(tp)
            return {p: out.get(p, 0) for p in range(partitions)}

    return asyncio.run(run())
