"""Measurements 3 and 7: `psmon worker` processes (stages 1 and 2) on a produced corpus.

One run starts N worker processes on a topic already holding the corpus and follows their
/metrics once a second: stage 1 is done when `psmon_events_processed_total{stage="validate"}`
summed over the workers reaches the corpus size, stage 2 when every valid event is counted
(`stage="rates"`, plus `stage="rebuild"` for what a worker re-read after a rebalance). Each
stage's rate is timed from the first sample that moved. Peak RSS is VmHWM of each worker,
read before it is stopped.
"""

import time
from typing import Any

from benchmarks.common import Bench, Progress, invalid_total, processed, vm_hwm_kib
from psmon.testing import Samples, scrape

__all__ = ["run_workers"]


def run_workers(bench: Bench, prefix: str, count: int, *, workers: int = 1) -> dict[str, Any]:
    procs = [bench.start("worker", prefix, f"worker{i}") for i in range(workers)]
    validate, rates = Progress(), Progress()
    deadline = time.monotonic() + bench.timeout_s(count)
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workers} worker(s) did not finish {count} events")
            for proc, _ in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}; see {bench.work_dir / prefix}")
            scrapes: list[Samples] = [scrape(port) for _, port in procs]
            done_validate = sum(processed(s, "validate") for s in scrapes)
            invalid = sum(invalid_total(s) for s in scrapes)
            counted = sum(processed(s, "rates") for s in scrapes)
            validate.observe(done_validate)
            rates.observe(counted)
            if done_validate >= count and counted >= count - invalid:
                break
            time.sleep(1.0)
        rss_kib = [vm_hwm_kib(proc.pid) for proc, _ in procs]
    finally:
        for proc, _ in procs:
            bench.stop(proc)
    v_s, v_eps = validate.rate(count)
    _, r_eps = rates.rate(count - invalid)
    first_t = min(validate.first[0], rates.first[0]) if validate.first and rates.first else 0.0
    end_t = rates.last[0] if rates.last else 0.0
    elapsed = max(end_t - first_t, 1e-3)
    return {
        "workers": workers,
        "events": count,
        "invalid": int(invalid),
        "seconds": round(elapsed, 2),
        "events_per_s": round(count / elapsed, 1),
        "stage1_validate_events_per_s": round(v_eps, 1),
        "stage1_seconds": round(v_s, 2),
        "stage2_rates_events_per_s": round(r_eps, 1),
        "peak_rss_mib": [round(k / 1024, 1) for k in rss_kib],
    }
