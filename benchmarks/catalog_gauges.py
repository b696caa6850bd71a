"""Benchmark of stage 2's catalog gauges on the simulated national catalog (~34k procedures).

Measures, in one run: reading the catalog topic's records into `CatalogView` (per record: the
catalog contract's validation in `decode_entry`, then the version bookkeeping), the view's
memory (tracemalloc), and one refresh of the four shares for the 34 provinces with a cold cache
(after a catalog change or a new day) and warm (every other second). Compare the figures of one
run with each other (warm ÷ cold), not across machines or runs.

Usage: python benchmarks/catalog_gauges.py
"""

import time
import tracemalloc
from datetime import date

from prometheus_client import CollectorRegistry

from psmon.metrics import PipelineMetrics
from psmon.schemas.catalog import encode_entry
from psmon.simulator.catalog import entries, simulated_catalog
from psmon.streams.catalog_live import CatalogActivity, CatalogGauges, CatalogView
from psmon.timeutil import local_day_start_s

WARM_RUNS = 20


def main() -> None:
    records = [(e.key.encode(), encode_entry(e)) for e in entries(simulated_catalog())]
    tracemalloc.start()
    view = CatalogView()
    t = time.perf_counter()
    for key, value in records:
        view.apply(key, value)
    apply_s = time.perf_counter() - t
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gauges = CatalogGauges(PipelineMetrics(CollectorRegistry()), view, CatalogActivity())
    watermark = local_day_start_s(date(2026, 11, 20)) + 10 * 3600
    provinces = view.provinces
    t = time.perf_counter()
    gauges.refresh(provinces, watermark)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(WARM_RUNS):
        gauges.refresh(provinces, watermark)
    warm = (time.perf_counter() - t) / WARM_RUNS
    n = len(view)
    print(f"catalog: {n} procedures of {len(provinces)} provinces")
    print(f"read the topic's records: {apply_s:.2f} s ({apply_s / n * 1e6:.0f} us/record)")
    print(f"CatalogView memory: {memory / 2**20:.1f} MiB ({memory / n:.0f} B/procedure)")
    print(f"refresh, 34 provinces: cold {cold * 1000:.1f} ms, warm {warm * 1000:.2f} ms (warm/cold {warm / cold:.3f})")


if __name__ == "__main__":
    main()
