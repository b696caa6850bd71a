"""The report's charts, drawn from small hand-built rows: colours by floor and target, small samples
shown with their n and not ranked, a bounded and readable date axis, Vietnamese by default, and
times in Vietnam's zone with a marker."""

import itertools
from datetime import date, timedelta

import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from psmon.alerting.thresholds import load_thresholds
from psmon.history.periods import Period
from psmon.history.queries import MetricRow
from psmon.history.report import COLORS, _target_text, band, grid_figure, ranking_figure, trend_figure
from psmon.schemas.labels import text
from psmon.schemas.provinces import registry

TH = load_thresholds()
Q3 = Period.parse("2026-Q3")


def row(code: str, num: int, den: int, start: date = date(2026, 7, 1), period: str = "2026-Q3") -> MetricRow:
    return MetricRow(period, start, code, registry().name(code), num, den)


def payments_q3() -> list[MetricRow]:
    """online_payment: floor 30%, target 50%, min_volume 30 (thresholds.yaml)."""
    small = [row(code, 3, 3) for code in registry().codes[:9]]  # 9 provinces, 3 payments each, all online
    return [*small, row("46", 20, 100), row("48", 40, 100), row("79", 90, 100), row("92", 0, 0)]


def bars_by_province(fig: Figure) -> dict[str, Rectangle]:
    ax = fig.axes[0]
    labels = [t.get_text().split()[0] for t in ax.get_yticklabels()]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    return dict(zip(labels, bars, strict=True))


def test_band_follows_floor_target_and_volume() -> None:
    assert band(0.29, 100, floor=0.3, target=0.5, min_volume=30) == "floor"
    assert band(0.3, 100, floor=0.3, target=0.5, min_volume=30) == "target"
    assert band(0.5, 100, floor=0.3, target=0.5, min_volume=30) == "ok"
    assert band(1.0, 29, floor=0.3, target=0.5, min_volume=30) == "small"
    assert band(0.1, 100, floor=None, target=None, min_volume=30) == "ok"


def test_ranking_bars_are_coloured_and_small_samples_are_not_ranked() -> None:
    assert (TH.floor("online_payment", "46"), TH.target("online_payment", "46")) == (0.3, 0.5)
    fig = ranking_figure("online_payment", Q3, payments_q3(), TH, "vi")
    bars = bars_by_province(fig)
    assert "92" not in bars  # no denominator, no bar
    assert to_hex(bars["46"].get_facecolor()) == COLORS["floor"]  # 20% < floor 30%
    assert to_hex(bars["48"].get_facecolor()) == COLORS["target"]  # 40%: under the 50% target
    assert to_hex(bars["79"].get_facecolor()) == COLORS["ok"]
    small = [c for c in registry().codes[:9]]
    for code in small:
        assert to_hex(bars[code].get_facecolor()) == COLORS["small"] and bars[code].get_hatch()
        # listed under every ranked province (barh: lower y is further down)
        assert bars[code].get_y() < min(bars[c].get_y() for c in ("46", "48", "79"))
    for code in ("46", "48", "79"):
        assert not bars[code].get_hatch()
    # ranked ones in order of their ratio, the best on top
    assert bars["46"].get_y() < bars["48"].get_y() < bars["79"].get_y()
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert notes.count("100.0% (n=3)") == 9 and "20.0%" in notes
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:4] == [
        text("report.below_floor", "vi", floor="30%"),
        text("report.below_target", "vi"),
        text("report.at_target", "vi"),
        text("report.small_sample", "vi", min_volume=30),
    ]
    assert fig.axes[0].get_title() == "tỷ lệ thanh toán trực tuyến, 2026-Q3: xếp hạng các tỉnh"


def test_per_province_floor_colours_its_bar() -> None:
    """Phú Thọ's own floor (50%) makes 40% red there; Hà Nội's 40% is only under target."""
    fig = ranking_figure("online_submission", Q3, [row("25", 40, 100), row("01", 40, 100)], TH, "en")
    bars = bars_by_province(fig)
    assert to_hex(bars["25"].get_facecolor()) == COLORS["floor"]
    assert to_hex(bars["01"].get_facecolor()) == COLORS["target"]
    assert fig.axes[0].get_xlabel() == "online submission ratio (%)"


def test_grid_tiles_grey_a_small_sample_with_its_n() -> None:
    fig = grid_figure("online_payment", Q3, payments_q3(), TH, "vi")
    ax = fig.axes[0]
    tiles = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(tiles) == 34
    labels = {t.get_text().split()[0]: t.get_text() for t in ax.texts}
    first = registry().codes[0]
    assert labels[first].endswith("100.0% (n=3)") and labels["79"].endswith("90.0%")
    assert labels["92"].endswith("không có dữ liệu")
    by_code = dict(zip(registry().codes, tiles, strict=True))
    assert by_code[first].get_hatch() and to_hex(by_code[first].get_facecolor()) == COLORS["small"]
    assert to_hex(by_code["46"].get_facecolor()) == COLORS["floor"]


def visible_tick_labels(fig: Figure) -> list[list[Text]]:
    """Per panel with a visible date axis, its non-empty tick labels (after a draw)."""
    fig.canvas.draw()
    out = []
    for ax in fig.axes:
        if not ax.axison:
            continue
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        if labels:
            out.append(labels)
    return out


@pytest.mark.parametrize("period", ["2026", "2026-08"])
def test_trend_date_labels_are_few_and_do_not_overlap(period: str) -> None:
    p = Period.parse(period)
    days = (p.end - p.start).days
    rows = [
        MetricRow(d.isoformat(), d, code, registry().name(code), 50 + i % 40, 100)
        for code in registry().codes
        for i, d in enumerate(p.start + timedelta(days=k) for k in range(days))
    ]
    fig = trend_figure("online_submission", p, rows, "vi")
    panels = visible_tick_labels(fig)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for labels in panels:
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        for left, right in itertools.pairwise(boxes):
            assert left.x1 < right.x0, [t.get_text() for t in labels]
        assert 2 <= len(labels) <= 6
    assert len(panels) == 6  # the last panel of each column carries the dates


def test_trend_axis_says_vietnam_time() -> None:
    fig = trend_figure("on_time", Q3, [row("01", 9, 10, date(2026, 7, 1), "2026-07")], "vi")
    assert fig.get_suptitle() == "tỷ lệ giải quyết đúng hạn (%) theo tháng, 2026-Q3"
    assert "UTC+7" in fig._supxlabel.get_text()  # type: ignore[attr-defined]
    intro = text("report.intro", "en", stamp="2026-11-24 09:00:00+07:00", min_volume=30)
    assert "Asia/Ho_Chi_Minh, UTC+7" in intro


def test_a_period_with_one_point_still_shows_it() -> None:
    """A quarter with data in one month is one point per province: a line alone would be invisible."""
    fig = trend_figure("on_time", Q3, [row("01", 9, 10, date(2026, 7, 1), "2026-07")], "vi")
    (line,) = fig.axes[0].get_lines()
    # "." is drawn at a third of the marker size: a dot nobody sees in a 2 cm panel
    assert line.get_marker() not in (None, "", "None", ",", ".") and line.get_markersize() >= 3
    assert len(line.get_xdata()) == 1


def test_the_target_is_said_once_with_its_source() -> None:
    assert _target_text("online_submission", 0.8) == "80% (QĐ 126/QĐ-BCĐCP, 2025)"
    assert _target_text("online_submission", 0.9) == "90% (thresholds.yaml); 80% (QĐ 126/QĐ-BCĐCP, 2025)"
    assert _target_text("on_time", 0.95) == "95% (thresholds.yaml)"
