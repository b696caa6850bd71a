"""Context for measurement 3: the pure-Python cost of each stage's per-event work, no Kafka.

Stage 1's work per event is `validate_event` + `encode_valid`; stage 2's is `decode_valid` +
`LiveRates.observe`. Run in the harness process over the corpus, these rates are the ceiling of
each stage in one process: when a stage runs far below its ceiling, the difference is Kafka
client and framework overhead, not psmon's own code.
"""

import time
from pathlib import Path
from typing import Any

from benchmarks.common import read_lines
from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import encode_dead_letter
from psmon.schemas.normalized import decode_valid, encode_valid
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.streams.live import LiveRates

__all__ = ["cpu_ceilings"]


def cpu_ceilings(corpus: Path, limit: int) -> dict[str, Any]:
    lines = list(read_lines(corpus, limit))
    record_ts_s = time.time()
    encoded: list[bytes] = []
    t0 = time.perf_counter()
    for i, raw in enumerate(lines):
        verdict = validate_event(raw, record_ts_s=record_ts_s)
        if isinstance(verdict, ValidEvent):
            encoded.append(encode_valid(verdict, src_partition=0, src_offset=i, src_ts_ms=int(record_ts_s * 1000)))
        else:
            encode_dead_letter(verdict, src_partition=0, src_offset=i, src_ts_ms=int(record_ts_s * 1000))
    stage1_s = time.perf_counter() - t0
    live = LiveRates(metrics=PipelineMetrics(), dedup_max_ids=1_000_000, worker="bench")
    live.caught_up(0)
    t0 = time.perf_counter()
    for value in encoded:
        live.observe(decode_valid(value), partition=0)
    stage2_s = time.perf_counter() - t0
    return {
        "events": len(lines),
        "stage1_validate_encode_events_per_s": round(len(lines) / max(stage1_s, 1e-6), 1),
        "stage2_decode_observe_events_per_s": round(len(encoded) / max(stage2_s, 1e-6), 1),
    }
