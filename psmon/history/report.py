"""`psmon report`: one self-contained HTML file plus PNG charts for a period.

Per metric the report draws three charts from the metric views (through `History`, so the
pictures show the numbers `psmon query` prints):
- **trend**: one small panel per province, the ratio per month (per day for a month or a day),
  on a date axis whose ticks matplotlib thins (`AutoDateLocator` + `ConciseDateFormatter`);
- **ranking**: horizontal bars of the provinces for the period, with the target line;
- **grid**: the 34 provinces as tiles, ordered by code, which runs roughly north to south, a
  map-like overview without shipping map geometry.
It adds the table behind each chart and the computable Decision 766 points.

Design decisions (so that the pictures do not mislead):
- Bars and tiles are coloured by thresholds.yaml, the file the alerts use, per province where it
  overrides: red under the alert floor (`alert_below`), amber under the `target`, green at or
  above it, with a legend. One blue for all would make a province at 20% look like one at 90%.
- A ratio with fewer than the metric's `min_volume` events in its denominator (thresholds.yaml,
  else `DEFAULT_MIN_VOLUME`) is not ranked: its bar and tile are grey and hatched, labelled with
  its sample (`100.0% (n=3)`), and listed under the ranked provinces. Three payments, all
  online, are not "the best province".
- A period without any event for the chosen metrics raises `NoEventsError` before any file is
  written: empty charts would read as every province at zero.
- Headings, axes and legends are in the user's language (`psmon.schemas.labels`, Vietnamese by
  default); code names stay as file names and HTML anchors. Times are Vietnam's
  (Asia/Ho_Chi_Minh, UTC+7) and say so.

The HTML embeds the PNGs as data URIs and has no script or external reference, so it can be
mailed or archived as one file; the PNGs are also written beside it for slides. matplotlib runs
on its non-interactive Agg backend, so no display is needed.
"""

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from psmon.alerting.thresholds import Thresholds, load_thresholds
from psmon.errors import PsmonError
from psmon.history.periods import Grain, Period
from psmon.history.queries import History, MetricRow
from psmon.history.tables import ResultTable, cell_text, local_time
from psmon.schemas.labels import Lang, column_name, metric_name, text
from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "COLORS",
    "DEFAULT_MIN_VOLUME",
    "TARGETS",
    "NoEventsError",
    "ReportFiles",
    "band",
    "grid_figure",
    "ranking_figure",
    "trend_figure",
    "write_report",
]

#: Official targets (docs/index766.md) as the report words them; the numbers that colour the
#: charts are thresholds.yaml's `target` and `alert_below` (per province where overridden).
TARGETS: Final[dict[str, tuple[float | None, str]]] = {
    "online_submission": (0.8, "80% (QĐ 126/QĐ-BCĐCP, 2025)"),
    "full_online": (0.8, "80% (QĐ 942/QĐ-TTg, 2025)"),
    "online_payment": (None, "—"),
    "dossier_digitization": (0.8, "≥ 80% (QĐ 766/QĐ-TTg)"),
    "result_digitization": (1.0, "100% (QĐ 766/QĐ-TTg)"),
    "on_time": (None, "—"),
}
#: Least denominator for a ratio to be ranked when thresholds.yaml has no `min_volume` for the
#: metric (it always has one today: its per-window alert volume, 30 by default).
DEFAULT_MIN_VOLUME: Final = 30
_TREND_GRAIN: Final[dict[Grain, Grain]] = {"year": "month", "quarter": "month", "month": "day", "day": "day"}

#: Bar and tile colours: below the alert floor, between floor and target, at or above target,
#: and too small a sample to rank (drawn grey and hatched).
COLORS: Final = {"floor": "#d62728", "target": "#f0a202", "ok": "#2ca02c", "small": "#c8c8c8"}
_HATCH: Final = "///"


class NoEventsError(PsmonError):
    """The period has no events for any chosen metric: no report is written (not even empty charts)."""


@dataclass
class ReportFiles:
    html: Path
    pngs: list[Path] = field(default_factory=list)


def band(ratio: float, denominator: int, *, floor: float | None, target: float | None, min_volume: int) -> str:
    """Which colour a province's ratio gets: `small` (too few events to rank), `floor` (under the
    alert floor), `target` (under the target) or `ok`."""
    if denominator < min_volume:
        return "small"
    if floor is not None and ratio < floor:
        return "floor"
    if target is not None and ratio < target:
        return "target"
    return "ok"


def _bands(metric: Metric, rows: list[MetricRow], th: Thresholds) -> dict[str, str]:
    out = {}
    for r in rows:
        if r.ratio is None:
            continue
        code = r.province_code
        mv = th.min_volume(metric, code) or DEFAULT_MIN_VOLUME
        out[code] = band(
            r.ratio, r.denominator, floor=th.floor(metric, code), target=th.target(metric, code), min_volume=mv
        )
    return out


def _target_text(metric: Metric, target: float) -> str:
    """The target the charts use, with its official source when thresholds.yaml keeps it."""
    official, source = TARGETS[metric]
    if official is not None and abs(official - target) < 1e-9:
        return source
    mine = f"{target * 100:.4g}% (thresholds.yaml)"
    return mine if source == "—" else f"{mine}; {source}"


def _value_text(r: MetricRow, small: bool) -> str:
    pct = f"{(r.ratio or 0.0) * 100:.1f}%"
    return f"{pct} (n={r.denominator})" if small else pct


def _png(fig: "Figure") -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _legend_handles(metric: Metric, th: Thresholds, lang: Lang) -> list[object]:
    from matplotlib.patches import Patch

    floor = th.floor(metric, "01")
    mv = th.min_volume(metric, "01") or DEFAULT_MIN_VOLUME
    floor_text = f"{floor * 100:.4g}%" if floor is not None else "—"
    return [
        Patch(color=COLORS["floor"], label=text("report.below_floor", lang, floor=floor_text)),
        Patch(color=COLORS["target"], label=text("report.below_target", lang)),
        Patch(color=COLORS["ok"], label=text("report.at_target", lang)),
        Patch(facecolor=COLORS["small"], hatch=_HATCH, label=text("report.small_sample", lang, min_volume=mv)),
    ]


def ranking_figure(metric: Metric, period: Period, rows: list[MetricRow], th: Thresholds, lang: Lang) -> "Figure":
    """Horizontal bars: reliable provinces ranked by ratio, coloured by floor and target; those with
    too small a sample below them, grey and hatched, each labelled with its n."""
    import matplotlib.pyplot as plt

    bands = _bands(metric, rows, th)
    valued = [r for r in rows if r.ratio is not None]
    small = sorted((r for r in valued if bands[r.province_code] == "small"), key=lambda r: r.province_code)
    ranked = sorted((r for r in valued if bands[r.province_code] != "small"), key=lambda r: r.ratio or 0.0)
    shown = list(reversed(small)) + ranked  # barh draws bottom-up: the best on top, the unranked at the bottom
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(shown) + 1.5)))
    bars = ax.barh(
        [f"{r.province_code} {r.province}" for r in shown],
        [(r.ratio or 0.0) * 100 for r in shown],
        color=[COLORS[bands[r.province_code]] for r in shown],
    )
    for bar, r in zip(bars, shown, strict=True):
        is_small = bands[r.province_code] == "small"
        if is_small:
            bar.set_hatch(_HATCH)
            bar.set_edgecolor("#888888")
        ax.annotate(
            _value_text(r, is_small),
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color="#555555" if is_small else "black",
        )
    name = metric_name(metric, lang)
    handles = _legend_handles(metric, th, lang)
    target = th.metrics[metric].target
    line = ax.axvline(target * 100, color="black", linestyle="--", linewidth=1)
    line.set_label(text("report.target_line", lang, target=f"{target * 100:.4g}%"))
    handles.append(line)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=7, frameon=False)
    ax.set_xlim(0, max([110.0] + [(r.ratio or 0.0) * 100 + 25 for r in shown]))
    ax.set_xlabel(text("report.axis_percent", lang, name=name))
    ax.set_title(text("report.ranking_title", lang, name=name, period=period.label))
    ax.tick_params(axis="y", labelsize=7)
    return fig


def trend_figure(metric: Metric, period: Period, rows: list[MetricRow], lang: Lang) -> "Figure":
    """One small panel per province on a real date axis, whose ticks matplotlib thins and words
    concisely (a year of days gets a handful of labels, not 365 or overlapping ones)."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    codes = registry().codes
    fig, axes = plt.subplots(6, 6, figsize=(14, 11), sharex=True, sharey=True)
    by_code: dict[str, list[MetricRow]] = {}
    for r in rows:
        by_code.setdefault(r.province_code, []).append(r)
    for ax, code in zip(axes.flat, codes, strict=False):
        pts = [(r.period_start, (r.ratio or 0.0) * 100) for r in by_code.get(code, []) if r.ratio is not None]
        if pts:
            # markers big enough that a period with one point (a month of a quarter) still shows
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", linewidth=1, markersize=3.5, clip_on=False)
        ax.set_title(f"{code} {registry().name(code)}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_ylim(0, 105)
    for ax in list(axes.flat)[len(codes) :]:
        ax.axis("off")
    first = axes.flat[0]
    first.set_xlim(period.start, max(period.start + timedelta(days=1), period.end - timedelta(days=1)))
    locator = mdates.AutoDateLocator(minticks=2, maxticks=4)  # type: ignore[no-untyped-call]
    first.xaxis.set_major_locator(locator)  # shared by every panel (sharex)
    first.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    for ax in list(axes.flat)[len(codes) - 6 : len(codes)]:
        ax.xaxis.set_tick_params(labelbottom=True, rotation=0)  # the last panel of each column carries the dates
    name = metric_name(metric, lang)
    grain = text(f"grain.{_TREND_GRAIN[period.grain]}", lang)
    fig.suptitle(text("report.trend_title", lang, name=name, grain=grain, period=period.label))
    fig.supxlabel(text("report.axis_date", lang), fontsize=9)
    return fig


def grid_figure(metric: Metric, period: Period, rows: list[MetricRow], th: Thresholds, lang: Lang) -> "Figure":
    """The 34 provinces as tiles, coloured like the ranking bars; a small sample is grey, hatched, with its n."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    by_code = {r.province_code: r for r in rows if r.ratio is not None}
    bands = _bands(metric, rows, th)
    codes = registry().codes
    cols = 6
    fig, ax = plt.subplots(figsize=(11, 7.5))
    for i, code in enumerate(codes):
        x, y = i % cols, -(i // cols)
        r = by_code.get(code)
        kind = bands.get(code)
        color = "#eeeeee" if kind is None else COLORS[kind]
        ax.add_patch(
            Rectangle((x, y), 0.95, 0.9, facecolor=color, hatch=_HATCH if kind == "small" else None, edgecolor="white")
        )
        value = text("report.no_data", lang) if r is None else _value_text(r, kind == "small")
        tile_name = registry().name(code).replace("Thành phố ", "TP. ")  # keep the tile label inside its tile
        ax.text(x + 0.47, y + 0.45, f"{code} {tile_name}\n{value}", ha="center", va="center", fontsize=7)
    ax.set_xlim(0, cols)
    ax.set_ylim(-((len(codes) - 1) // cols), 1)
    ax.axis("off")
    ax.legend(
        handles=_legend_handles(metric, th, lang), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8
    )
    ax.set_title(text("report.grid_title", lang, name=metric_name(metric, lang), period=period.label))
    return fig


def _escaped(v: object) -> str:
    return html.escape(local_time(v) if isinstance(v, datetime) else str(v))


def _html_table(table: ResultTable, lang: Lang) -> str:
    head = "".join(f"<th>{html.escape(column_name(c, lang))}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{cell_text(c, v, other=_escaped)}</td>" for c, v in zip(table.columns, r, strict=True))
        + "</tr>"
        for r in table.rows
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + (
        f"<ul class='notes'>{notes}</ul>" if notes else ""
    )


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f"<figure><img id='{name}' alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></figure>"


_CSS: Final = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
    "img{max-width:100%}.notes{font-size:12px;color:#555}"
)


def write_report(
    history: History,
    *,
    period: Period,
    out_dir: Path,
    metrics: list[Metric] | None = None,
    now: datetime | None = None,
    lang: Lang = "vi",
    thresholds: Thresholds | None = None,
) -> ReportFiles:
    """Write `report-<period>.html` and one PNG per chart into `out_dir`.

    Raises `NoEventsError` before writing anything when no chosen metric has a denominator in
    the period (an empty report would look like a collapse of every province)."""
    import matplotlib

    matplotlib.use("Agg")
    th = thresholds or load_thresholds()
    chosen: list[Metric] = metrics or list(METRICS)
    data = {
        m: (
            history.metric_rows(m, period.grain, period.start, period.end),
            history.metric_rows(m, _TREND_GRAIN[period.grain], period.start, period.end),
        )
        for m in chosen
    }
    if not any(r.denominator for rows, _ in data.values() for r in rows):
        raise NoEventsError(text("report.no_events", lang, period=period.label))
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = local_time(now or datetime.now(UTC))  # Vietnam's time, with its offset
    files = ReportFiles(html=out_dir / f"report-{period.label}.html")
    sections = []
    for metric, (rows, trend_rows) in data.items():
        charts = {
            "trend": _png(trend_figure(metric, period, trend_rows, lang)),
            "ranking": _png(ranking_figure(metric, period, rows, th, lang)),
            "grid": _png(grid_figure(metric, period, rows, th, lang)),
        }
        name = metric_name(metric, lang)
        figures = []
        for kind, png in charts.items():
            file_name = f"{metric}-{kind}-{period.label}"
            path = out_dir / f"{file_name}.png"
            path.write_bytes(png)
            files.pngs.append(path)
            figures.append(_img(file_name, png, f"{text(f'chart.{kind}', lang)}: {name}, {period.label}"))
        num, den = METRICS[metric]
        target = th.metrics[metric].target
        definition = text("report.definition", lang, name=name, num=num, den=den, target=_target_text(metric, target))
        table = history.rank(metric, period=period)
        sections.append(
            f"<section id='{metric}'><h2>{html.escape(name[:1].upper() + name[1:])}</h2>"
            f"<p>{html.escape(definition)}</p>" + "".join(figures) + _html_table(table, lang) + "</section>"
        )
    index_html = ""
    if period.grain != "day":
        index_html = f"<section id='index766'><h2>{html.escape(text('report.index766', lang))}</h2>" + _html_table(
            history.index766(period=period), lang
        )
        index_html += "</section>"
    min_volume = th.metrics[chosen[0]].min_volume if chosen else DEFAULT_MIN_VOLUME
    title = html.escape(text("report.title", lang, period=period.label))
    doc = (
        f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f"<p>{html.escape(text('report.intro', lang, stamp=stamp, min_volume=min_volume))}</p>"
        + "".join(sections)
        + index_html
        + "</body></html>"
    )
    files.html.write_text(doc, encoding="utf-8")
    return files
