"""Measurements 3 and 7: `psmon worker` processes (stages 1 and 2) on a produced corpus.

One run starts N worker processes on a topic already holding the corpus and follows their
/metrics once a second: stage 1 is done when `psmon_events_processed_total{stage="validate"}`
summed over the workers reaches the corpus size, stage 2 when the contract counters they export
(submitted + resolved + payments + digitized, every province) sum to the number of valid events:
everything counted *and* visible, also after a rebalance made a worker re-read partitions. Each
rate is timed from the first sample that moved (see `Progress`). Peak RSS is VmHWM of each worker,
read before it is stopped.
"""

import time
from typing import Any

from benchmarks.common import Bench, Progress, exported_events, invalid_total, processed, vm_hwm_kib
from testkit import Samples, scrape

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
            counted = sum(exported_events(s) for s in scrapes)
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
    # Whole worker: from stage 1's first movement to stage 2's last count.
    assert validate.first is not None
    assert rates.last is not None
    t0, done0 = validate.first if validate.first[1] < count / 2 else (validate.start, 0.0)
    elapsed = max(rates.last[0] - t0, 1e-3)
    return {
        "workers": workers,
        "events": count,
        "invalid": int(invalid),
        "seconds": round(elapsed, 2),
        "events_per_s": round((count - done0) / elapsed, 1),
        "stage1_validate_events_per_s": round(v_eps, 1),
        "stage1_seconds": round(v_s, 2),
        "stage2_rates_events_per_s": round(r_eps, 1),
        "peak_rss_mib": [round(k / 1024, 1) for k in rss_kib],
    }
