"""The terminal view of `psmon up`: a table of the 34 provinces, refreshed every second.

Reads the worker's in-process `LiveRates` (no scraping). Without a terminal (tests, CI,
`--no-view`) it logs one summary line per interval instead.

Design decisions (so that the numbers do not mislead):
- A ratio is shown only with at least the metric's `min_volume` (thresholds.yaml, the number the
  alert rules use) in its denominator over the column's window; below it the cell is "–", as is
  a window without any event. One of two online payments is not "50% paid online".
- A cell is bold red under its province's `alert_below` floor and amber under its `target`
  (both from thresholds.yaml, per province where overridden). When `psmon up` runs
  Alertmanager, the alert column marks provinces with an active alert, polled from its API
  (`/api/v2/alerts`) every few seconds. A legend under the table says all of this.
- Numbers are never cut: a ratio column is never narrower than `100.0%` (a ratio is one word, so
  it never wraps); headers wrap onto two lines instead, the province name is shortened with an
  ellipsis, and under `WIDE_COLUMNS` terminal columns the two least needed columns (online 5 min,
  online today) are left out.
- Title, headers and legend are in the user's language (`PSMON_LANG`, `psmon.schemas.labels`);
  the summary line logged without a terminal stays English, for grep and log tools.
"""

import logging
import sys
from datetime import datetime
from typing import Any, Final

from mode import Service
from prometheus_client import Counter
from rich.console import Console
from rich.live import Live
from rich.table import Table

from psmon.alerting.thresholds import Thresholds
from psmon.schemas.labels import Lang, metric_name, text, window_name
from psmon.schemas.metrics import Metric, Window
from psmon.schemas.provinces import registry
from psmon.streams.live import LiveRates
from psmon.timeutil import LOCAL_TZ

__all__ = ["ALERT_MARK", "WIDE_COLUMNS", "LiveView", "alerting_provinces", "render_table"]

log = logging.getLogger(__name__)

#: (metric, window, kept on a narrow terminal)
_COLUMNS: Final[tuple[tuple[Metric, Window, bool], ...]] = (
    ("online_submission", "5m", False),
    ("online_submission", "1h", True),
    ("online_submission", "24h", True),
    ("online_submission", "today", False),
    ("full_online", "24h", True),
    ("online_payment", "24h", True),
    ("result_digitization", "24h", True),
    ("on_time", "24h", True),
)
#: Terminal width from which every column is shown.
WIDE_COLUMNS: Final = 130
#: The mark of a province with an active alert (also shown in the legend).
ALERT_MARK: Final = "[bold white on red] ! [/]"
_RATIO_WIDTH: Final = len("100.0%")


def _total(counter: Counter) -> float:
    """A labelled counter's sum over its series (0 before the first one exists)."""
    return sum(s.value for f in counter.collect() for s in f.samples if s.name.endswith("_total"))


def render_table(
    live: LiveRates,
    *,
    thresholds: Thresholds,
    alerting: frozenset[str] = frozenset(),
    title: str = "",
    lang: Lang = "vi",
    width: int | None = None,
) -> Table:
    """The table for a terminal `width` columns wide (None: all columns)."""
    columns = [(m, w) for m, w, keep in _COLUMNS if keep or width is None or width >= WIDE_COLUMNS]
    legend = text("live.legend", lang, mark=ALERT_MARK)
    table = Table(title=title, caption=legend, caption_justify="left", expand=False, header_style="bold")
    narrow = width is not None and width < WIDE_COLUMNS
    # Headers may wrap (at their spaces); a ratio is one word no shorter than `min_width`, so it
    # is never folded or cut. The province name gives way first, with an ellipsis.
    table.add_column(text("live.code", lang), min_width=2)
    table.add_column(text("live.province", lang), overflow="ellipsis", no_wrap=True, max_width=14 if narrow else 22)
    table.add_column(text("live.alert", lang), min_width=3)
    for metric, window in columns:
        header = f"{metric_name(metric, lang, short=True)}\n{window_name(window, lang)}"
        table.add_column(header, justify="right", min_width=_RATIO_WIDTH)
    table.add_column(text("live.dossiers", lang), justify="right", min_width=5)
    for province in registry().current:
        code = province.code
        cells: list[Any] = [code, province.name, ALERT_MARK if code in alerting else ""]
        below = False
        ratios = {w: live.rates.ratios(code, w) for w in {w for _m, w in columns}}
        for metric, window in columns:
            r = ratios[window][metric]
            min_volume = thresholds.min_volume(metric, code) or 1
            if r.value is None or r.denominator < min_volume:
                cells.append("[dim]–[/]")
                continue
            floor, target = thresholds.floor(metric, code), thresholds.target(metric, code)
            low = floor is not None and r.value < floor
            short = target is not None and r.value < target
            below |= low
            value = f"{r.value:.1%}"
            cells.append(f"[bold red]{value}[/]" if low else f"[yellow]{value}[/]" if short else value)
        cells.append(str(live.rates.sums(code, "24h")["submitted"]))
        table.add_row(*cells, style="on grey15" if below else None)
    return table


async def alerting_provinces(alertmanager_url: str) -> frozenset[str]:
    """Provinces with an active (not silenced, not inhibited) alert at Alertmanager."""
    import aiohttp

    url = f"{alertmanager_url}/api/v2/alerts?active=true&silenced=false&inhibited=false"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, session.get(url) as resp:
        resp.raise_for_status()
        alerts = await resp.json()
    return frozenset(a["labels"]["province"] for a in alerts if a.get("labels", {}).get("province"))


class LiveView(Service):
    def __init__(
        self,
        live: LiveRates,
        *,
        interactive: bool,
        thresholds: Thresholds,
        alertmanager_url: str | None = None,
        interval_s: float = 1.0,
        lang: Lang = "vi",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.live = live
        self.interactive = interactive
        self.thresholds = thresholds
        self.alertmanager_url = alertmanager_url
        self.interval_s = interval_s
        self.lang: Lang = lang
        self.alerting: frozenset[str] = frozenset()
        self._display: Live | None = None

    async def on_start(self) -> None:
        if self.interactive:
            self._display = Live(console=Console(file=sys.stdout), auto_refresh=False, screen=False)
            self._display.start()

    async def on_stop(self) -> None:
        if self._display is not None:
            self._display.stop()

    @Service.timer(3.0)
    async def _poll_alerts(self) -> None:
        if self.alertmanager_url is None:
            return
        try:
            self.alerting = await alerting_provinces(self.alertmanager_url)
        except Exception as exc:  # the view keeps going without the marks
            log.debug("cannot read alerts from %s: %s", self.alertmanager_url, exc)

    @Service.timer(1.0)
    async def _refresh(self) -> None:
        reg = self.live.metrics.registry
        processed = reg.get_sample_value("psmon_events_processed_total", {"stage": "validate"}) or 0
        invalid = _total(self.live.metrics.invalid)
        duplicates = _total(self.live.metrics.duplicate)
        wm = self.live.rates.watermark_s
        # the screen speaks the user's language; the log line stays English, for grep and log tools
        lang: Lang = self.lang if self._display is not None else "en"
        provinces = len(self.live.rates.provinces)
        title = (
            text("live.title", lang, processed=processed, invalid=invalid, duplicates=duplicates, provinces=provinces)
            + (
                text("live.event_time", lang, time=f"{datetime.fromtimestamp(wm, LOCAL_TZ):%Y-%m-%d %H:%M:%S}")
                if wm
                else ""
            )
            + (text("live.alerting", lang, codes=", ".join(sorted(self.alerting))) if self.alerting else "")
        )
        if self._display is not None:
            table = render_table(
                self.live,
                thresholds=self.thresholds,
                alerting=self.alerting,
                title=title,
                lang=self.lang,
                width=self._display.console.width,
            )
            self._display.update(table, refresh=True)
        else:
            log.info("%s", title)
