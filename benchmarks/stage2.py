"""Measurement 3, stage 2 alone: `RatesService` + `LiveRates` on a `psmon.valid` already filled.

Stage 2 has no command of its own (it runs inside `psmon worker`), so this runs the worker's own
`RatesService` in the harness process on the `.valid` topic that the worker measurement left
behind: the same consumer, decoding, de-duplication, buckets, counters and gauge refresh. Every
partition is new to it, so it counts everything as a rebuild and then goes live.
"""

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from psmon.metrics import PipelineMetrics
from psmon.settings import Settings
from psmon.streams.live import LiveRates
from psmon.streams.rates_service import RatesService

__all__ = ["run_stage2"]


async def _run(bootstrap: str, prefix: str, partitions: int, valid: int, timeout_s: float) -> dict[str, Any]:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        app_id=f"{prefix}-stage2",
        topic_partitions=partitions,
        session_timeout_s=6,
        metrics_port=0,
        # measured as a full re-read: a checkpoint directory of its own, empty
        checkpoint_dir=Path(tempfile.mkdtemp(prefix=f"{prefix}-stage2-")),
    )
    metrics = PipelineMetrics()
    live = LiveRates(metrics=metrics, dedup_max_ids=settings.dedup_max_ids, worker="bench")
    service = RatesService(settings, live)

    def counted() -> float:
        get = metrics.registry.get_sample_value
        return sum(get("psmon_events_processed_total", {"stage": s}) or 0.0 for s in ("rates", "rebuild"))

    started = time.monotonic()
    await service.start()
    try:
        first: tuple[float, float] | None = None
        deadline = time.monotonic() + timeout_s
        while True:
            n = counted()
            now = time.monotonic()
            if first is None and n > 0:
                first = (now, n)
            if n >= valid:
                break
            if now > deadline:
                raise TimeoutError(f"stage 2 counted {n} of {valid}")
            await asyncio.sleep(0.2)
        assert first is not None
        if first[1] >= valid / 2:  # faster than the sampling: time from the start (see Progress)
            first = (started, 0.0)
        elapsed = max(now - first[0], 1e-3)
        return {"events": valid, "seconds": round(elapsed, 2), "events_per_s": round((valid - first[1]) / elapsed, 1)}
    finally:
        await service.stop()


def run_stage2(bootstrap: str, prefix: str, partitions: int, valid: int, timeout_s: float) -> dict[str, Any]:
    return asyncio.run(_run(bootstrap, prefix, partitions, valid, timeout_s))
