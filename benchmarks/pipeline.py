"""Measurement 3, end to end: `psmon worker` + `psmon sink` on the corpus until all is committed.

Both processes start together on a topic that already holds the corpus. Done means: stage 1
validated every event, stage 2 counted every valid one, and the sink committed every offset of
`.valid` and `.dead-letter` (high watermarks read once stage 1 is done), i.e. every event is in
ClickHouse and nothing will be re-read. Timed from the first validated event.
"""

import time
from typing import Any

from benchmarks.common import Bench, Progress, exported_events, high_watermarks, invalid_total, processed, vm_hwm_kib
from benchmarks.sink import sink_done
from psmon.settings import Settings
from testkit import scrape

__all__ = ["run_pipeline"]


def run_pipeline(bench: Bench, prefix: str, count: int) -> dict[str, Any]:
    settings = Settings(topic_prefix=prefix)
    worker, wport = bench.start("worker", prefix, "worker")
    sink, sport = bench.start("sink", prefix, "sink")
    validate = Progress()
    ends: dict[str, dict[int, int]] | None = None
    deadline = time.monotonic() + bench.timeout_s(count) * 2
    try:
        while True:
            for proc in (worker, sink):
                if proc.poll() is not None:
                    raise RuntimeError(f"pipeline process exited with {proc.returncode}; see {bench.work_dir / prefix}")
            if time.monotonic() > deadline:
                raise TimeoutError("pipeline did not finish")
            w = scrape(wport)
            validate.observe(processed(w, "validate"))
            if ends is None and processed(w, "validate") >= count and exported_events(w) >= count - invalid_total(w):
                ends = {
                    t: high_watermarks(bench.bootstrap, t, bench.partitions)
                    for t in (settings.topic_valid, settings.topic_dead_letter)
                }
            if ends is not None and sink_done(scrape(sport), ends):
                t_done = time.monotonic()
                break
            time.sleep(1.0)
        rss = {"worker": vm_hwm_kib(worker.pid) / 1024, "sink": vm_hwm_kib(sink.pid) / 1024}
    finally:
        bench.stop(worker)
        bench.stop(sink)
    assert validate.first is not None
    t0, done0 = validate.first if validate.first[1] < count / 2 else (validate.start, 0.0)
    elapsed = max(t_done - t0, 1e-3)
    return {
        "events": count,
        "seconds": round(elapsed, 2),
        "events_per_s": round((count - done0) / elapsed, 1),
        "peak_rss_mib": {k: round(v, 1) for k, v in rss.items()},
    }
