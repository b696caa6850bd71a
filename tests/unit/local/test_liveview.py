"""The live table takes its floors from thresholds.yaml and marks provinces that are alerting."""

import io

from rich.console import Console

from psmon.alerting.thresholds import load_thresholds
from psmon.local.liveview import render_table
from psmon.metrics import PipelineMetrics
from psmon.schemas.metrics import COUNTERS
from psmon.streams.live import LiveRates
from psmon.streams.windows import RollingRates

NOW_S = 1_795_000_000.0


def rows_of(table: object) -> dict[str, str]:
    """Province code -> its rendered row, with ANSI styles."""
    console = Console(record=True, width=400, color_system="truecolor", file=io.StringIO())
    console.print(table)
    plain = console.export_text(styles=False, clear=False).splitlines()
    styled = console.export_text(styles=True).splitlines()
    out = {}
    for p, st in zip(plain, styled, strict=True):
        cells = p.split("│")
        if len(cells) > 2 and cells[1].strip().isdigit():
            out[cells[1].strip()] = st
    return out


def test_floors_from_thresholds_and_alert_marks() -> None:
    rates = RollingRates(clock=lambda: NOW_S)
    rates.advance(NOW_S)
    submitted, online = COUNTERS.index("submitted"), COUNTERS.index("submitted_online")
    full = COUNTERS.index("submitted_full_online")
    # Phú Thọ (override floor 50%): 40% online over 100 dossiers; Hà Nội (default 25%): 40% too
    for province in ("25", "01"):
        for i in range(100):
            rates.add(province, NOW_S - 60, (submitted, online, full) if i < 40 else (submitted,))
    live = LiveRates(metrics=PipelineMetrics(), dedup_max_ids=1000, worker="t", rates=rates)
    th = load_thresholds()
    assert th.floor("online_submission", "25") == 0.5 and th.floor("online_submission", "01") == 0.25
    lines = rows_of(render_table(live, thresholds=th, alerting=frozenset({"25"})))
    assert "ALERT" in lines["25"] and "ALERT" not in lines["01"]
    # the 40% cells are bold red for Phú Thọ, under its own floor, not for Hà Nội
    assert "[1;31;" in lines["25"]
    assert "[1;31;" not in lines["01"] and "40.0%" in lines["01"]
