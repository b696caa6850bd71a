"""Runs the event generator against a clock and sends its events to Kafka or a JSONL file.

Paced mode (the default) is live: the simulated clock runs `speedup` times faster than the wall
clock from `start` (default: now) and is never allowed past the wall clock, so event times are
never in the future; `rate_eps` is the events per real second at office-hour peak. Unpaced mode
generates as fast as the producer takes events (bulk data for tests and benchmarks), with the
clock moving one simulated second per step.

Kafka sends use kafka-python's producer (keyed by the province code as sent, as portals do);
delivery errors surface in `flush()` at the end or every progress tick, never silently.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from kafka import KafkaProducer

from psmon.kafka import PLAINTEXT, KafkaAuth
from psmon.simulator.generator import EVENTS_PER_DOSSIER, EventGenerator
from psmon.simulator.profiles import ProvinceProfile
from psmon.timeutil import utc_now

__all__ = [
    "EventSink",
    "FileSink",
    "KafkaSink",
    "SimulationConfig",
    "SimulationStats",
    "run_simulation",
]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def send(self, key: bytes, value: bytes, timestamp_s: float) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, *, auth: KafkaAuth = PLAINTEXT):
        self._topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=20,
            acks="all",
            client_id="psmon-simulator",
            **auth.kafka_python(),
        )
        self._errors: list[Exception] = []

    def send(self, key: bytes, value: bytes, timestamp_s: float) -> None:
        fut = self._producer.send(self._topic, key=key, value=value)
        fut.add_errback(self._errors.append)

    def flush(self) -> None:
        self._producer.flush()
        if self._errors:
            raise RuntimeError(f"{len(self._errors)} events were not delivered: {self._errors[0]}")

    def close(self) -> None:
        self._producer.close()


class FileSink:
    """JSONL file, one event per line (bad events included, as bytes would reach Kafka)."""

    def __init__(self, path: Path):
        self._fh: IO[bytes] = path.open("wb")

    def send(self, key: bytes, value: bytes, timestamp_s: float) -> None:
        self._fh.write(value.replace(b"\n", b" ") + b"\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


@dataclass
class SimulationConfig:
    profiles: dict[str, ProvinceProfile]
    rate_eps: float = 50.0
    speedup: float = 1.0
    start: datetime | None = None
    duration_s: float | None = None
    count: int | None = None
    seed: int = 0
    bad_fraction: float = 0.0
    old_code_fraction: float = 0.05
    paced: bool = True
    progress_interval_s: float = 5.0


@dataclass
class SimulationStats:
    sent: int = 0
    bad: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    sim_time: datetime | None = None

    @property
    def rate_eps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_simulation(
    config: SimulationConfig,
    sink: EventSink,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[SimulationStats], None] | None = None,
) -> SimulationStats:
    """Generate until `count` events, `duration_s`, or `stop` is set; returns what was sent."""
    gen = EventGenerator(
        config.profiles,
        seed=config.seed,
        bad_fraction=config.bad_fraction,
        old_code_fraction=config.old_code_fraction,
    )
    stats = SimulationStats()
    stop = stop or threading.Event()
    t0 = time.monotonic()
    sim_start = (config.start or utc_now()).timestamp()
    sim_now = sim_start
    dossiers_per_sim_s = config.rate_eps / EVENTS_PER_DOSSIER / config.speedup
    next_progress = t0 + config.progress_interval_s
    done = False
    while not done and not stop.is_set():
        now = time.monotonic()
        if config.paced:
            target = min(sim_start + (now - t0) * config.speedup, utc_now().timestamp())
        else:
            target = min(sim_now + 1.0, utc_now().timestamp())
        if target <= sim_now:  # caught up with the wall clock
            stop.wait(0.02)
            continue
        for ev in gen.advance(sim_now, target, dossiers_per_s=dossiers_per_sim_s):
            sink.send(ev.key, ev.value, ev.occurred_at_s)
            stats.sent += 1
            if ev.bad_reason:
                stats.bad += 1
                stats.bad_by_reason[ev.bad_reason] = stats.bad_by_reason.get(ev.bad_reason, 0) + 1
            if config.count is not None and stats.sent >= config.count:
                done = True
                break
        sim_now = target
        stats.elapsed_s = time.monotonic() - t0
        stats.sim_time = datetime.fromtimestamp(sim_now, utc_now().tzinfo)
        if config.duration_s is not None and stats.elapsed_s >= config.duration_s:
            done = True
        if progress and time.monotonic() >= next_progress:
            sink.flush()
            progress(stats)
            next_progress += config.progress_interval_s
        if config.paced and not done:
            stop.wait(0.02)
    sink.flush()
    stats.elapsed_s = time.monotonic() - t0
    return stats
