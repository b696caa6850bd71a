"""Measurement 1: the fixed corpus, generated once by the simulator and produced to a topic.

The corpus is the simulator's JSONL output (`FileSink`, the same file `psmon simulate --output`
writes and the replay benchmark reads): realistic per-province mix, about 1% bad events of every
dead-letter reason, old 63-province codes on some events, event times on a pinned clock. It is
cached in the work directory by (count, seed), so a second run skips generation.

The daily volume is set so that the full corpus spans about four days of event time and a
quarter of it about one day: stage 2 remembers event ids for 24 h of event time (docs/operations.md), so
this is what lets the RSS comparison of a corpus 4x larger show whether memory depends on the
number of events (it must not) or only on provinces × buckets and one day of ids.
"""

import time
from datetime import datetime
from pathlib import Path

import orjson

from benchmarks.common import produce_lines, read_lines
from psmon.simulator.profiles import default_profiles
from psmon.simulator.runner import FileSink, SimulationConfig, run_simulation
from psmon.timeutil import LOCAL_TZ

__all__ = ["CORPUS_START", "build_corpus_file", "keyed", "produce_corpus"]

CORPUS_START = datetime(2026, 1, 5, 0, 0, tzinfo=LOCAL_TZ)  # a Monday in the past: reproducible
SEED = 1
BAD_FRACTION = 0.01


def build_corpus_file(work_dir: Path, count: int) -> tuple[Path, float]:
    """Path of the cached corpus of `count` events, and the seconds spent generating it (0 if cached)."""
    path = work_dir / f"corpus-{count}-seed{SEED}.jsonl"
    if path.exists() and sum(1 for _ in path.open("rb")) == count:
        return path, 0.0
    tmp = path.with_suffix(".tmp")
    t0 = time.monotonic()
    # rate_eps is events/s at the office-hour peak; about 7.3 h of it make one day's volume.
    per_day = max(count / 4, 1000)
    config = SimulationConfig(
        default_profiles(),
        rate_eps=per_day / (7.3 * 3600),
        start=CORPUS_START,
        count=count,
        seed=SEED,
        bad_fraction=BAD_FRACTION,
        paced=False,
    )
    sink = FileSink(tmp)
    try:
        stats = run_simulation(config, sink)
    finally:
        sink.close()
    if stats.sent != count:
        raise RuntimeError(f"simulator produced {stats.sent} events, wanted {count}")
    tmp.rename(path)
    return path, time.monotonic() - t0


def keyed(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(key, value) as a portal would send them: keyed by the province code it sends."""
    out = []
    for value in lines:
        try:
            code = orjson.loads(value).get("province_code")
        except (orjson.JSONDecodeError, AttributeError):
            code = None
        out.append((code.encode() if isinstance(code, str) else b"?", value))
    return out


def produce_corpus(bootstrap: str, topic: str, corpus: Path, count: int) -> float:
    """Produce the first `count` corpus events to `topic`; returns events/s of the producer."""
    return produce_lines(bootstrap, topic, keyed(list(read_lines(corpus, count))))
