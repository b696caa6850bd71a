"""glibc's malloc, tuned for psmon's long-running processes: a fixed mmap threshold.

Why: glibc serves a block above its mmap threshold (128 KiB at start) from a mapping of its own,
returned to the system when freed; but each time such a block is freed it *raises* the threshold
to that block's size (up to 32 MiB). A worker frees a multi-MiB Kafka fetch response every few
milliseconds, so after the first one the next ones come from the heap, where they fragment it
and the heap is seldom trimmed. Measured with `python -m benchmarks --only worker,rss --count
2000000` and the id memory capped low (`PSMON_DEDUP_MAX_IDS=1000`), so the live objects are the
same at both sizes: the worker's peak RSS grew 1.15-1.32x from 500,000 to 2,000,000 events
with glibc's default, and 1.05-1.13x with the threshold fixed at 128-256 KiB, where RSS peaks at
start-up and then falls (docs/performance.md, "Worker RSS at 4x the events").

It costs throughput: the worker ran at 40,300-40,900 events/s with the threshold at 128 KiB,
44,900-45,300 with it at 0, and 44,600-45,700 before this module (`python -m benchmarks --only
same_job,worker`, runs alternated; 512 KiB and a 16 MiB trim threshold did not change that);
still 1.14-1.22x the same-job baseline. Without it, and with 1 MiB fetches (`kafka.py`), the cap-1,000
pair grew 1.07x instead of 1.01x. Memory that stays flat for months is worth 10% here;
`PSMON_MALLOC_MMAP_THRESHOLD_KIB=0` takes the speed back where memory is plentiful.

Where the 10% goes: page faults. A freshly mapped block is faulted in page by page, and the
worker maps and unmaps ~400 blocks a second between 128 KiB and ~1 MiB: fetch responses of up to
1 MiB, and record batches of up to 512 KiB. Measured with `perf stat` on the worker for 12 s of
a 1 M-event run:
- at 128 KiB: 405 mmap/s, 50,000 page faults/s, 39,856 events/s;
- at glibc's default: 2 mmap/s, 2,600 faults/s, 43,420 events/s;
- at 2 MiB (with the trim threshold at 4 MiB): no mmaps, 1,500 faults/s, 43,427 events/s.
2 MiB puts those buffers back on the heap, and so brings the growth back: the cap-1,000 pair
grew 1.04x (122 against 117 MiB; 1.01x at 128 KiB in the same minutes), and the uncapped pair
1.25x (166 against 132 MiB; 1.15-1.18x at 128 KiB). So 128 KiB stays.

`mallopt(M_MMAP_THRESHOLD, n)` fixes the threshold and turns the adjustment off (and with it the
adjustment of the trim threshold). It is called in the process rather than set as
`MALLOC_MMAP_THRESHOLD_` in the environment, so that every way of starting psmon (the CLI,
Compose, systemd, `psmon up`) gets it; `PSMON_MALLOC_MMAP_THRESHOLD_KIB=0` leaves glibc's
default. Other C libraries (musl, macOS) have no such adjustment: nothing is done there.
"""

import ctypes
import logging
import platform
from typing import Final

__all__ = ["fix_mmap_threshold"]

log = logging.getLogger(__name__)

#: From glibc's malloc.h.
_M_MMAP_THRESHOLD: Final = -3


def fix_mmap_threshold(threshold_kib: int) -> bool:
    """Fix glibc's mmap threshold at `threshold_kib` KiB; returns whether it was set (glibc only,
    and `threshold_kib` > 0)."""
    if threshold_kib <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the process's own C library: mallopt is glibc's, already loaded
    if libc.mallopt(_M_MMAP_THRESHOLD, threshold_kib * 1024) != 1:
        log.warning("glibc refused an mmap threshold of %d KiB; keeping its default", threshold_kib)
        return False
    return True
