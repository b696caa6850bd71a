"""The recovery benchmark's phases, from a successor's own log lines (a log as a worker writes it)."""

from datetime import datetime
from pathlib import Path

from benchmarks.recovery import _phases

LOG = """\
2026-12-01T06:30:00.614+07:00 INFO psmon.streams.rates_service: [^-RatesService]: Starting...
2026-12-01T06:30:01.347+07:00 INFO psmon.streams.checkpoint: 8 checkpoints of 16 partitions read ahead in 0.727 s
2026-12-01T06:30:04.093+07:00 INFO psmon.streams.rates_service: b.valid[0] restored from its checkpoint at offset 17 (read ahead)
2026-12-01T06:30:04.168+07:00 INFO psmon.streams.rates_service: b.valid[1] restored from its checkpoint at offset 5 (read ahead)
2026-12-01T06:30:04.802+07:00 INFO psmon.streams.rates_service: partition 0 caught up at offset 18: provinces ['04'] live
2026-12-01T06:30:05.327+07:00 INFO psmon.streams.rates_service: partition 1 caught up at offset 6: provinces ['42'] live
"""


def test_phases_split_the_successor_time_and_report_the_read_ahead(tmp_path: Path) -> None:
    log = tmp_path / "restored.log"
    log.write_text(LOG)
    started = datetime.fromisoformat("2026-12-01T06:29:58.114+07:00")
    exported = datetime.fromisoformat("2026-12-01T06:30:05.527+07:00")
    assert _phases(log, "b.valid", started, exported) == {
        "startup": 2.5,
        "group_join": 3.479,
        "state": 1.234,
        "export": 0.2,
        "read_ahead_s": 0.727,
    }


def test_a_successor_that_read_nothing_ahead_says_so(tmp_path: Path) -> None:
    log = tmp_path / "reread.log"
    log.write_text("\n".join(line for line in LOG.splitlines() if "read ahead in" not in line))
    started = datetime.fromisoformat("2026-12-01T06:29:58.114+07:00")
    exported = datetime.fromisoformat("2026-12-01T06:30:05.527+07:00")
    assert _phases(log, "b.valid", started, exported)["read_ahead_s"] is None
