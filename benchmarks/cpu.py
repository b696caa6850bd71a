"""Context for measurement 3: the pure-Python cost of each stage's per-event work, no Kafka.

Stage 1's work per event is `validate_event` + `encode_valid`; stage 2's is `decode_valid` +
`LiveRates.observe`. Run in the harness process over the corpus, these rates are the ceiling of
each stage in one process: when a stage runs far below its ceiling, the difference is Kafka
client and framework overhead, not psmon's own code.

Validation is measured alone and with encoding, through the fast path as stage 1 calls it
(`validate_stream` over the lines, with a record timestamp each) and through the model-based
reference (`validate_event_reference` per line, the pydantic path every verdict of the fast path
is tested against), on the same lines in the same run. Rates are per second of
this process's CPU time (`time.process_time`): a ceiling on one core, which other jobs on a
shared machine disturb less than they disturb wall-clock time, though not entirely: on the
2-core machine, at load 1, runs of the fast path (each the best of two rounds) ranged
101,000–168,000 ev/s from one run to the next. Each figure is the best of `ROUNDS` rounds, the
paths taking turns (the minimum, as `timeit` advises: interference only ever adds time).
"""

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.common import read_lines
from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import encode_dead_letter
from psmon.schemas.normalized import decode_valid, encode_valid
from psmon.schemas.validation import Invalid, ValidEvent, validate_event_reference, validate_stream
from psmon.streams.live import LiveRates

__all__ = ["ROUNDS", "cpu_ceilings"]

#: Rounds per measurement; each figure is the fastest.
ROUNDS = 5

#: The verdicts of a list of lines, each with the same record timestamp.
Validate = Callable[[list[bytes], float], Iterable[ValidEvent | Invalid]]


def _fast(lines: list[bytes], record_ts_s: float) -> Iterable[ValidEvent | Invalid]:
    return validate_stream(lines, [record_ts_s] * len(lines))


def _reference(lines: list[bytes], record_ts_s: float) -> Iterable[ValidEvent | Invalid]:
    return (validate_event_reference(raw, record_ts_s=record_ts_s) for raw in lines)


def cpu_ceilings(corpus: Path, limit: int) -> dict[str, Any]:
    lines = list(read_lines(corpus, limit))
    record_ts_s = time.time()
    ts_ms = int(record_ts_s * 1000)

    def validate_only(validate: Validate) -> float:
        t0 = time.process_time()
        for _ in validate(lines, record_ts_s):
            pass
        return time.process_time() - t0

    def validate_encode(validate: Validate) -> float:
        t0 = time.process_time()
        for i, verdict in enumerate(validate(lines, record_ts_s)):
            if isinstance(verdict, ValidEvent):
                encode_valid(verdict, src_partition=0, src_offset=i, src_ts_ms=ts_ms)
            else:
                encode_dead_letter(verdict, src_partition=0, src_offset=i, src_ts_ms=ts_ms)
        return time.process_time() - t0

    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, run, validate in (
            ("validate_reference", validate_only, _reference),
            ("validate_fast", validate_only, _fast),
            ("stage1_reference", validate_encode, _reference),
            ("stage1_fast", validate_encode, _fast),
        ):
            best[name] = min(best.get(name, float("inf")), run(validate))

    encoded = [
        encode_valid(v, src_partition=0, src_offset=i, src_ts_ms=ts_ms)
        for i, v in enumerate(_fast(lines, record_ts_s))
        if isinstance(v, ValidEvent)
    ]
    live = LiveRates(metrics=PipelineMetrics(), dedup_max_ids=1_000_000, worker="bench")
    live.caught_up(0)
    t0 = time.process_time()
    for value in encoded:
        live.observe(decode_valid(value), partition=0)
    stage2_s = time.process_time() - t0

    def rate(seconds: float, n: int = len(lines)) -> float:
        return round(n / max(seconds, 1e-6), 1)

    return {
        "events": len(lines),
        "validate_reference_events_per_s": rate(best["validate_reference"]),
        "validate_events_per_s": rate(best["validate_fast"]),
        "stage1_reference_validate_encode_events_per_s": rate(best["stage1_reference"]),
        "stage1_validate_encode_events_per_s": rate(best["stage1_fast"]),
        "stage2_decode_observe_events_per_s": rate(stage2_s, len(encoded)),
    }
