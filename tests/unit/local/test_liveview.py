"""The live table: floors and targets from thresholds.yaml, alert marks, no ratio on a handful of
events, a legend, Vietnamese by default, and numbers that a 100-column terminal never cuts."""

import io
import re

from rich.console import Console

from psmon.alerting.thresholds import load_thresholds
from psmon.local.liveview import WIDE_COLUMNS, render_table
from psmon.metrics import PipelineMetrics
from psmon.schemas.labels import text
from psmon.schemas.metrics import COUNTERS
from psmon.schemas.provinces import registry
from psmon.streams.live import LiveRates
from psmon.streams.windows import RollingRates

NOW_S = 1_795_000_000.0
SUBMITTED, ONLINE = COUNTERS.index("submitted"), COUNTERS.index("submitted_online")
FULL = COUNTERS.index("submitted_full_online")
PAYMENTS, PAID_ONLINE = COUNTERS.index("payments"), COUNTERS.index("payments_online")
RESOLVED, ON_TIME = COUNTERS.index("resolved"), COUNTERS.index("resolved_on_time")
DIGITIZED_RESULT = COUNTERS.index("digitized_result")
RATIO = re.compile(r"\d{1,3}\.\d%")


def new_rates() -> RollingRates:
    rates = RollingRates(clock=lambda: NOW_S)
    rates.advance(NOW_S)
    return rates


def live_of(rates: RollingRates) -> LiveRates:
    return LiveRates(metrics=PipelineMetrics(), dedup_max_ids=1000, worker="t", rates=rates)


def render(table: object, width: int = 400) -> tuple[list[str], list[str]]:
    """(plain lines, lines with ANSI styles) of the table as a terminal `width` wide shows it."""
    console = Console(record=True, width=width, color_system="truecolor", file=io.StringIO())
    console.print(table)
    return console.export_text(styles=False, clear=False).splitlines(), console.export_text(styles=True).splitlines()


def rows_of(table: object, width: int = 400) -> dict[str, str]:
    """Province code -> its rendered row, with ANSI styles."""
    plain, styled = render(table, width)
    out = {}
    for p, st in zip(plain, styled, strict=True):
        cells = p.split("│")
        if len(cells) > 2 and cells[1].strip().isdigit():
            out[cells[1].strip()] = st
    return out


def plain_cells(table: object, width: int) -> dict[str, list[str]]:
    """Province code -> its plain cells (without the borders)."""
    plain, _ = render(table, width)
    out = {}
    for line in plain:
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            out[cells[0]] = cells
    return out


def test_floors_from_thresholds_and_alert_marks() -> None:
    rates = new_rates()
    # Phú Thọ (override floor 50%): 40% online over 100 dossiers; Hà Nội (default 25%): 40% too
    for province in ("25", "01"):
        for i in range(100):
            rates.add(province, NOW_S - 60, (SUBMITTED, ONLINE, FULL) if i < 40 else (SUBMITTED,))
    th = load_thresholds()
    assert th.floor("online_submission", "25") == 0.5 and th.floor("online_submission", "01") == 0.25
    lines = rows_of(render_table(live_of(rates), thresholds=th, alerting=frozenset({"25"})))
    assert " ! " in lines["25"] and " ! " not in lines["01"]
    # the 40% cells are bold red for Phú Thọ, under its own floor; amber (under the 80% target) for Hà Nội
    assert "[1;31;" in lines["25"]
    assert "[1;31;" not in lines["01"] and "40.0%" in lines["01"]
    assert "\x1b[33m40.0%" in lines["01"]  # yellow: below target, above floor


def test_a_handful_of_payments_shows_no_ratio() -> None:
    """Three payments, all online, are not "100% paid online": under min_volume the cell is "–"."""
    rates = new_rates()
    for _ in range(3):
        rates.add("01", NOW_S - 60, (PAYMENTS, PAID_ONLINE))
    for i in range(40):  # Huế has enough payments for a ratio
        rates.add("46", NOW_S - 60, (PAYMENTS, PAID_ONLINE) if i < 30 else (PAYMENTS,))
    th = load_thresholds()
    assert (th.min_volume("online_payment", "01") or 0) > 3
    cells = plain_cells(render_table(live_of(rates), thresholds=th, lang="en"), 400)
    paid = next(i for i, c in enumerate(_headers(live_of(rates))) if c.startswith("paid online"))
    assert cells["01"][paid] == "–"
    assert cells["46"][paid] == "75.0%"


def _headers(live: LiveRates) -> list[str]:
    table = render_table(live, thresholds=load_thresholds(), lang="en")
    return [" ".join(str(c.header).split()) for c in table.columns]


def test_legend_under_the_table_in_vietnamese_by_default() -> None:
    live = live_of(new_rates())
    th = load_thresholds()
    vi, _ = render(render_table(live, thresholds=th))
    en, _ = render(render_table(live, thresholds=th, lang="en"))
    last_row = max(i for i, line in enumerate(vi) if line.startswith("│"))
    legend = "\n".join(vi[last_row + 1 :])
    assert "dưới ngưỡng cảnh báo" in legend and "dưới mục tiêu" in legend and "–" in legend and " ! " in legend
    assert "tỉnh, thành phố" in "\n".join(vi) and "nộp TT" in "\n".join(vi)
    assert "online_submission" not in "\n".join(vi)
    assert "below the alert floor" in "\n".join(en) and "too few events" in "\n".join(en)


def test_a_100_column_terminal_never_cuts_a_number() -> None:
    rates = new_rates()
    events = [(SUBMITTED, ONLINE, FULL), (PAYMENTS, PAID_ONLINE), (RESOLVED, ON_TIME, DIGITIZED_RESULT)]
    for province in registry().codes:
        for i in range(1000):  # 88.8%: the widest kind of value under 100%
            for counters in events:
                rates.add(province, NOW_S - 60, counters if i < 888 else (counters[0],))
    table = render_table(live_of(rates), thresholds=load_thresholds(), alerting=frozenset({"01"}), width=100)
    plain, _ = render(table, 100)
    assert max(len(line) for line in plain) <= 100
    cells = plain_cells(table, 100)
    assert sorted(cells) == sorted(registry().codes)
    for code, row in cells.items():
        ratios = [c for c in row if "%" in c]
        assert len(ratios) >= 6, (code, row)
        assert all(RATIO.fullmatch(c) for c in ratios), (code, row)
        assert all(c == "88.8%" for c in ratios), (code, row)
    # a wide terminal shows the two columns the narrow one leaves out
    wide = plain_cells(render_table(live_of(rates), thresholds=load_thresholds(), width=WIDE_COLUMNS), WIDE_COLUMNS)
    assert len([c for c in wide["01"] if "%" in c]) == 8


def test_the_title_speaks_the_users_language() -> None:
    fields = {"processed": 12345, "invalid": 6, "duplicates": 7, "provinces": 34}
    assert text("live.title", "vi", **fields).startswith("psmon trực tiếp — sự kiện đã kiểm tra 12,345")
    assert text("live.title", "en", **fields) == (
        "psmon live — events validated 12,345 · dead letters 6 · duplicates 7 · provinces 34"
    )
