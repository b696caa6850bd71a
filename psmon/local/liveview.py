"""The terminal view of `psmon up`: a table of the 34 provinces, refreshed every second.

Reads the worker's in-process `LiveRates` (no scraping). A cell is highlighted when the ratio is
under its province's `alert_below` floor with at least `min_volume` behind it (both from
thresholds.yaml, the same numbers the alert rules use). When `psmon up` runs Alertmanager, the
`alert` column marks provinces with an active alert, polled from Alertmanager's API
(`/api/v2/alerts`) every few seconds. Without a terminal (tests, CI, `--no-view`) it logs one
summary line per interval instead.
"""

import logging
import sys
from datetime import datetime
from typing import Any

from mode import Service
from prometheus_client import Counter
from rich.console import Console
from rich.live import Live
from rich.table import Table

from psmon.alerting.thresholds import Thresholds
from psmon.schemas.metrics import Metric, Window
from psmon.schemas.provinces import registry
from psmon.streams.live import LiveRates
from psmon.timeutil import LOCAL_TZ

__all__ = ["LiveView", "alerting_provinces", "render_table"]

log = logging.getLogger(__name__)

_COLUMNS: tuple[tuple[Metric, Window, str], ...] = (
    ("online_submission", "5m", "online 5m"),
    ("online_submission", "1h", "online 1h"),
    ("online_submission", "24h", "online 24h"),
    ("online_submission", "today", "online today"),
    ("full_online", "24h", "full-online 24h"),
    ("online_payment", "24h", "paid online 24h"),
    ("result_digitization", "24h", "result digit. 24h"),
    ("on_time", "24h", "on time 24h"),
)


def _total(counter: Counter) -> float:
    """A labelled counter's sum over its series (0 before the first one exists)."""
    return sum(s.value for f in counter.collect() for s in f.samples if s.name.endswith("_total"))


def render_table(
    live: LiveRates, *, thresholds: Thresholds, alerting: frozenset[str] = frozenset(), title: str = ""
) -> Table:
    table = Table(title=title, expand=False, header_style="bold")
    table.add_column("code")
    table.add_column("province")
    table.add_column("alert")
    for _m, _w, label in _COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("dossiers 24h", justify="right")
    for province in registry().current:
        cells: list[Any] = [
            province.code,
            province.name,
            "[bold white on red] ALERT [/]" if province.code in alerting else "",
        ]
        below = False
        ratios = {w: live.rates.ratios(province.code, w) for w in {w for _m, w, _l in _COLUMNS}}
        for metric, window, _label in _COLUMNS:
            r = ratios[window][metric]
            if r.value is None:
                cells.append("–")
                continue
            floor, min_volume = thresholds.floor(metric, province.code), thresholds.min_volume(metric, province.code)
            low = floor is not None and r.denominator >= (min_volume or 0) and r.value < floor
            below |= low
            text = f"{r.value:6.1%}"
            cells.append(f"[bold red]{text}[/]" if low else text)
        cells.append(str(live.rates.sums(province.code, "24h")["submitted"]))
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
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.live = live
        self.interactive = interactive
        self.thresholds = thresholds
        self.alertmanager_url = alertmanager_url
        self.interval_s = interval_s
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
        title = (
            f"psmon live — events validated {processed:,.0f} · dead letters {invalid:,.0f} · "
            f"duplicates {duplicates:,.0f} · provinces {len(self.live.rates.provinces)}"
            + (f" · event time {datetime.fromtimestamp(wm, LOCAL_TZ):%Y-%m-%d %H:%M:%S} (UTC+7)" if wm else "")
            + (f" · alerting: {', '.join(sorted(self.alerting))}" if self.alerting else "")
        )
        if self._display is not None:
            table = render_table(self.live, thresholds=self.thresholds, alerting=self.alerting, title=title)
            self._display.update(table, refresh=True)
        else:
            log.info("%s", title)
