"""The simulator's scheduled events: compact in memory, bounded in time, and the same stream.

The generator keeps about an hour of future events; rendered as JSON when scheduled they cost
about 4.4 KB each (tracemalloc), which made `psmon up` grow for its first hour.
"""

import hashlib
import tracemalloc
from datetime import UTC, datetime

from psmon.simulator.generator import EventGenerator
from psmon.simulator.profiles import default_profiles
from psmon.simulator.runner import SimulationConfig, run_simulation

START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 09:00 local: office hours

#: Longest a dossier's events lie ahead of its submission: payment up to 600 s, resolution up to
#: 3600 s after it, the result's digitization up to 300 s after that.
HORIZON_S = 600 + 3600 + 300


class Digest:
    """An event sink that keeps only a hash of what it was sent (key, value, in order)."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def send(self, key: bytes, value: bytes, timestamp_s: float) -> None:
        self.sha.update(key + b"\0" + value + b"\n")

    def flush(self) -> None: ...
    def close(self) -> None: ...


def test_a_seed_gives_the_same_events_as_before_the_compact_heap() -> None:
    # The digest was first produced by the generator that rendered each event when it was
    # scheduled (commit 360a176), and rendering on release did not change a byte. It was updated
    # once, deliberately, when dossiers began to draw their procedure from the simulated catalog
    # (issue 16). A deliberate change of the stream (a new random draw, a new field) changes it:
    # update it then; it is the same whatever PYTHONHASHSEED.
    out = Digest()
    cfg = SimulationConfig(
        default_profiles(), rate_eps=50, start=START, count=5000, seed=7, bad_fraction=0.05, paced=False
    )
    stats = run_simulation(cfg, out)
    assert (stats.sent, stats.bad) == (5000, 244)
    assert out.sha.hexdigest() == "81bf2f19af4e4d0db45a25132f8609ee422f2a1c9fd8fab9fcd64c8d7c3aea7e"


def test_pending_events_take_well_under_a_kilobyte_each() -> None:
    gen = EventGenerator(default_profiles(), seed=3, bad_fraction=0.01)
    t0 = START.timestamp()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):  # five simulated minutes at 20 dossiers/s: ~12,000 pending events
            for _ in gen.advance(t0 + i, t0 + i + 1, dossiers_per_s=20):
                pass
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert gen.pending > 5_000
    # about 390 B measured (a 6-tuple, the time, the sequence, the fields, a share of the
    # dossier's dict, the heap's slot); 4,400 B when each was a rendered SimEvent
    assert held / gen.pending < 1000


def test_pending_events_never_lie_beyond_a_dossiers_life() -> None:
    gen = EventGenerator(default_profiles(), seed=5)
    t0 = START.timestamp()
    step_s = 60.0
    most = 0
    for i in range(int(2.5 * 3600 / step_s)):  # past the horizon: the heap stops growing
        now = t0 + (i + 1) * step_s
        for _ in gen.advance(now - step_s, now, dossiers_per_s=1.0):
            pass
        if (i + 1) * step_s >= HORIZON_S:
            most = max(most, gen.pending)
    latest = max(e.occurred_at_s for e in gen.drain())
    assert latest <= now + HORIZON_S
    # at most 5 events per dossier started within the horizon (activity 1.0 all morning)
    assert most <= 5 * 1.0 * HORIZON_S
