"""`psmon report`: one self-contained HTML file plus PNG charts for a period.

Per metric the report draws three charts from the metric views (through `History`, so the
pictures show the numbers `psmon query` prints):
- **trend**: one small panel per province, the ratio per month (per day for a month or a day);
- **ranking**: horizontal bars of the 34 provinces for the period, with the official target;
- **grid**: the 34 provinces as tiles colored by the ratio, ordered by code, which runs roughly
  north to south, a map-like overview without shipping map geometry.
It adds the table behind each chart and the computable Decision 766 points.

The HTML embeds the PNGs as data URIs and has no script or external reference, so it can be
mailed or archived as one file; the PNGs are also written beside it for slides. matplotlib runs
on its non-interactive Agg backend, so no display is needed.
"""

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from psmon.history.periods import Grain, Period
from psmon.history.queries import History, MetricRow
from psmon.history.tables import ResultTable, cell_text, local_time
from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TARGETS", "ReportFiles", "write_report"]

#: Official targets (docs/index766.md) drawn as reference lines; None where the target is "rising".
TARGETS: Final[dict[str, tuple[float | None, str]]] = {
    "online_submission": (0.8, "80% by end-2025 (QĐ 126/QĐ-BCĐCP)"),
    "full_online": (0.8, "80% by 2025 (QĐ 942/QĐ-TTg)"),
    "online_payment": (None, "rising (no fixed target)"),
    "dossier_digitization": (0.8, "≥ 80% for full index score"),
    "result_digitization": (1.0, "100%"),
    "on_time": (None, "index weight 20 of 100 points"),
}
_TREND_GRAIN: Final[dict[Grain, Grain]] = {"year": "month", "quarter": "month", "month": "day", "day": "day"}


@dataclass
class ReportFiles:
    html: Path
    pngs: list[Path] = field(default_factory=list)


def _png(fig: "Figure") -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _ranking_chart(metric: str, period: Period, rows: list[MetricRow]) -> bytes:
    import matplotlib.pyplot as plt

    ranked = sorted((r for r in rows if r.ratio is not None), key=lambda r: r.ratio or 0.0)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(ranked) + 1)))
    ax.barh([f"{r.province_code} {r.province}" for r in ranked], [(r.ratio or 0.0) * 100 for r in ranked])
    target, label = TARGETS[metric]
    if target is not None:
        ax.axvline(target * 100, color="black", linestyle="--", linewidth=1, label=f"target {label}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(f"{metric} (%)")
    ax.set_title(f"{metric}, {period.label}: provinces ranked")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def _trend_chart(metric: str, period: Period, rows: list[MetricRow]) -> bytes:
    import matplotlib.pyplot as plt

    codes = registry().codes
    fig, axes = plt.subplots(6, 6, figsize=(14, 11), sharex=True, sharey=True)
    periods = sorted({r.period for r in rows})
    index = {p: i for i, p in enumerate(periods)}
    by_code: dict[str, list[MetricRow]] = {}
    for r in rows:
        by_code.setdefault(r.province_code, []).append(r)
    for ax, code in zip(axes.flat, codes, strict=False):
        pts = [(index[r.period], (r.ratio or 0.0) * 100) for r in by_code.get(code, []) if r.ratio is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", linewidth=1)
        ax.set_title(f"{code} {registry().name(code)}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_ylim(0, 105)
    for ax in list(axes.flat)[len(codes) :]:
        ax.axis("off")
    if periods:
        step = max(1, len(periods) // 4)
        axes.flat[0].set_xticks(range(0, len(periods), step), [periods[i] for i in range(0, len(periods), step)])
    fig.suptitle(f"{metric} (%) per {_TREND_GRAIN[period.grain]}, {period.label}")
    return _png(fig)


def _grid_chart(metric: str, period: Period, rows: list[MetricRow]) -> bytes:
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    ratio = {r.province_code: r.ratio for r in rows}
    codes = registry().codes
    cols = 6
    fig, ax = plt.subplots(figsize=(11, 7))
    cmap, norm = colormaps["RdYlGn"], Normalize(0, 100)
    for i, code in enumerate(codes):
        x, y = i % cols, -(i // cols)
        value = ratio.get(code)
        color = "lightgrey" if value is None else cmap(norm(value * 100))
        ax.add_patch(Rectangle((x, y), 0.95, 0.9, color=color))
        text = "no data" if value is None else f"{value * 100:.1f}%"
        name = registry().name(code).replace("Thành phố ", "TP. ")  # keep the tile label inside its tile
        ax.text(x + 0.47, y + 0.45, f"{code} {name}\n{text}", ha="center", va="center", fontsize=7)
    ax.set_xlim(0, cols)
    ax.set_ylim(-((len(codes) - 1) // cols), 1)
    ax.axis("off")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"{metric} (%)", shrink=0.7)
    ax.set_title(f"{metric}, {period.label}: the 34 provinces (tiles by code, roughly north to south)")
    return _png(fig)


def _escaped(v: object) -> str:
    return html.escape(local_time(v) if isinstance(v, datetime) else str(v))


def _html_table(table: ResultTable) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
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
) -> ReportFiles:
    """Write `report-<period>.html` and one PNG per chart into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen: list[Metric] = metrics or list(METRICS)
    stamp = local_time(now or datetime.now(UTC))  # Vietnam's time, with its offset
    files = ReportFiles(html=out_dir / f"report-{period.label}.html")
    sections = []
    for metric in chosen:
        rows = history.metric_rows(metric, period.grain, period.start, period.end)
        trend_rows = history.metric_rows(metric, _TREND_GRAIN[period.grain], period.start, period.end)
        charts = {
            "trend": _trend_chart(metric, period, trend_rows),
            "ranking": _ranking_chart(metric, period, rows),
            "grid": _grid_chart(metric, period, rows),
        }
        figures = []
        for kind, png in charts.items():
            name = f"{metric}-{kind}-{period.label}"
            path = out_dir / f"{name}.png"
            path.write_bytes(png)
            files.pngs.append(path)
            figures.append(_img(name, png, f"{kind} of {metric}, {period.label}"))
        target = TARGETS[metric][1]
        table = history.rank(metric, period=period)
        sections.append(
            f"<section id='{metric}'><h2>{html.escape(metric)}</h2>"
            f"<p>{html.escape(_definition(metric))}. Target: {html.escape(target)}.</p>"
            + "".join(figures)
            + _html_table(table)
            + "</section>"
        )
    index_html = ""
    if period.grain != "day":
        index_html = "<section id='index766'><h2>Decision 766 index: computable items</h2>" + _html_table(
            history.index766(period=period)
        )
        index_html += "</section>"
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>psmon report {period.label}</title><style>{_CSS}</style></head><body>"
        f"<h1>psmon report, {period.label}</h1>"
        f"<p>Generated {stamp} from ClickHouse history, in 34-province terms (old codes counted under their new "
        "province). Ratios whose numerator and denominator come from different event types can exceed 100% "
        "in a short period; a province without a denominator has no value.</p>"
        + "".join(sections)
        + index_html
        + "</body></html>"
    )
    files.html.write_text(doc, encoding="utf-8")
    return files


def _definition(metric: str) -> str:
    num, den = METRICS[metric]  # type: ignore[index]
    return f"{metric} = {num} ÷ {den}"
