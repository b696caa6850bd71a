"""`thresholds.yaml`: what pages a person, typed and validated on load.

One file says, per live metric, the official `target` (shown on dashboards and reports) and the
`alert_below` floor that raises an alert (lower than the target, so that provinces that are
merely short of the goal do not page anyone), per-province overrides of both, the `min_volume`
of the metric's own denominator in the alert window below which a ratio is noise and never
alerts, the `for:` duration, a severity and a `source:` that says where the numbers come from.
The procedure-catalog shares (`catalog:`, month-to-date gauges) have the same fields but no
window, and a `from_day` before which a share that grows through the month never alerts.
It also holds the office hours and public holidays that gate the "no events" alert, the
pipeline-health limits, and the Prometheus/Alertmanager timings (short ones in tests).

Design decisions:
- Every number is checked on load (`alert_below <= target`, ratios within 0..1, durations in
  Prometheus syntax, province codes among the 34, windows long enough for `increase()` to see
  two scrapes); a bad file fails with one line per problem naming its path in the file, never
  later inside Prometheus.
- YAML reads `79:` as an integer; province keys are accepted as integers and zero-padded.
- The default file ships inside the package (`psmon/alerting/thresholds.yaml`), so `psmon rules`
  works with no arguments; `--thresholds FILE` (or `PSMON_THRESHOLDS_FILE`) replaces it whole.
- Built-in holidays are `workcalendar.HOLIDAYS` (the same calendar the simulator uses); the file
  can add dates (`holidays:`) or switch the built-in list off.
"""

import itertools
import re
from datetime import date, time
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from psmon.errors import ConfigError
from psmon.schemas.catalog_metrics import CatalogMetric
from psmon.schemas.metrics import Metric
from psmon.schemas.provinces import registry
from psmon.workcalendar import HOLIDAYS, OFFICE_PERIODS, OFFICE_WEEKDAYS

__all__ = [
    "DEFAULT_THRESHOLDS_FILE",
    "METRIC_NAMES",
    "CatalogThreshold",
    "Duration",
    "MetricThreshold",
    "Severity",
    "Thresholds",
    "ThresholdsError",
    "duration_s",
    "load_thresholds",
    "parse_thresholds",
]

Severity = Literal["info", "warning", "critical"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
METRIC_NAMES: tuple[Metric, ...] = get_args(Metric)

DEFAULT_THRESHOLDS_FILE = "thresholds.yaml"

_DURATION_RE = re.compile(r"^(?:(\d+)(ms|s|m|h|d|w|y))+$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class ThresholdsError(ConfigError):
    """The thresholds file cannot be read or breaks a rule; the message lists every problem."""


def duration_s(text: str) -> float:
    """Seconds in a Prometheus duration such as `90s`, `1h30m`, `2d`."""
    if not _DURATION_RE.match(text):
        raise ValueError(f"not a Prometheus duration (like 30s, 5m, 1h30m): {text!r}")
    return sum(int(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def _check_duration(text: str) -> str:
    if duration_s(text) <= 0:
        raise ValueError(f"must be longer than 0, got {text!r}")
    return text


def _check_duration_or_zero(text: str) -> str:
    duration_s(text)
    return text


#: A Prometheus duration string (`30s`, `5m`, `1h30m`), validated; `duration_s` converts it.
Duration = Annotated[str, AfterValidator(_check_duration)]
#: Like `Duration` but `0s` is allowed (`for: 0s` fires on the first evaluation).
DurationOrZero = Annotated[str, AfterValidator(_check_duration_or_zero)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _province_code(key: Any) -> str:
    code = f"{key:02d}" if isinstance(key, int) else str(key)
    reg = registry()
    if code in reg.codes:
        return code
    new = reg.to_current(code)
    if new is not None:
        raise ValueError(f"province {code!r} is an old (63-province) code; use its current code {new!r}")
    raise ValueError(f"unknown province {code!r}; use one of the 34 two-digit codes")


class ProvinceOverride(_Model):
    """Per-province values that replace the metric's defaults (unset fields keep them)."""

    target: Ratio | None = None
    alert_below: Ratio | None = None
    min_volume: int | None = Field(None, ge=1)


class _FloorAndTarget(_Model):
    """What every alerting share has: a target, a floor under it, per-province overrides of both
    (by current code), checked so that no floor, overridden or not, lies above its target."""

    target: Ratio = Field(description="official goal, for dashboards and reports")
    alert_below: Ratio = Field(description="floor: a value under it (with enough volume) alerts")
    provinces: dict[str, ProvinceOverride] = Field(default_factory=dict)

    @field_validator("provinces", mode="before")
    @classmethod
    def _codes(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {_province_code(k): o for k, o in v.items()}
        return v

    @model_validator(mode="after")
    def _floor_under_target(self) -> Self:
        if self.alert_below > self.target:
            raise ValueError(f"alert_below ({self.alert_below}) must not exceed target ({self.target})")
        for code, o in self.provinces.items():
            floor = o.alert_below if o.alert_below is not None else self.alert_below
            target = o.target if o.target is not None else self.target
            if floor > target:
                raise ValueError(f"province {code}: alert_below ({floor}) must not exceed target ({target})")
        return self


class MetricThreshold(_FloorAndTarget):
    alert_below: Ratio = Field(description="floor: a ratio under it (with enough volume) alerts")
    window: Duration = Field("1h", description="range of the alert's ratio (sliding)")
    min_volume: int = Field(30, ge=1, description="least denominator in the window to alert")
    for_: DurationOrZero = Field("15m", alias="for", description="how long it must stay below")
    severity: Severity = "warning"
    source: str = Field(min_length=1, description="where the numbers come from")


class CatalogThreshold(_FloorAndTarget):
    """A catalog share (`schemas.catalog_metrics`): a month-to-date gauge of stage 2, not a ratio
    of counters over a sliding window, so it has no `window`; `min_volume` counts procedures (the
    share's denominator), and `from_day` keeps a share that grows through the month (procedures
    with a dossier, with a payment) from alerting in its first days."""

    alert_below: Ratio = Field(description="floor: a share under it (with enough procedures) alerts")
    min_volume: int = Field(20, ge=1, description="least procedures in the share's denominator to alert")
    from_day: int = Field(1, ge=1, le=28, description="first local day of the month the alert may fire on")
    for_: DurationOrZero = Field("1h", alias="for", description="how long it must stay below")
    severity: Severity = "warning"
    source: str = Field(min_length=1, description="where the numbers come from")


class NoEvents(_Model):
    """No dossier submitted by a province for `window`, while offices are open."""

    window: Duration = "30m"
    for_: DurationOrZero = Field("10m", alias="for")
    severity: Severity = "warning"


class OfficeHours(_Model):
    weekdays: tuple[Weekday, ...] = tuple(WEEKDAYS[d] for d in sorted(OFFICE_WEEKDAYS))
    periods: tuple[str, ...] = tuple(f"{a:%H:%M}-{b:%H:%M}" for a, b in OFFICE_PERIODS)
    builtin_holidays: bool = Field(True, description="include workcalendar.HOLIDAYS (2025–2027)")
    holidays: tuple[date, ...] = ()

    @field_validator("weekdays")
    @classmethod
    def _unique_days(cls, v: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if not v:
            raise ValueError("at least one weekday is needed")
        if len(set(v)) != len(v):
            raise ValueError("a weekday is listed twice")
        return v

    @field_validator("periods")
    @classmethod
    def _periods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one period is needed")
        spans = [_parse_period(p) for p in v]
        spans.sort()
        for (_a0, a1), (b0, _b1) in itertools.pairwise(spans):
            if b0 < a1:
                raise ValueError("periods overlap")
        return v

    @cached_property
    def spans(self) -> tuple[tuple[time, time], ...]:
        """Periods as (start, end) local times, in order."""
        return tuple(sorted(_parse_period(p) for p in self.periods))

    @cached_property
    def weekday_numbers(self) -> tuple[int, ...]:
        """Working days as `date.weekday()` numbers (Monday = 0)."""
        return tuple(sorted(WEEKDAYS.index(d) for d in self.weekdays))

    @cached_property
    def all_holidays(self) -> tuple[date, ...]:
        days = set(self.holidays) | (set(HOLIDAYS) if self.builtin_holidays else set())
        return tuple(sorted(days))


def _parse_period(text: str) -> tuple[time, time]:
    m = re.fullmatch(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})", text)
    if not m:
        raise ValueError(f"period must look like 08:00-11:30, got {text!r}")
    h0, m0, h1, m1 = (int(g) for g in m.groups())
    if h0 > 23 or h1 > 24 or m0 > 59 or m1 > 59 or (h1 == 24 and m1):
        raise ValueError(f"not a time of day in {text!r}")
    start, end = time(h0, m0), time(23, 59, 59, 999999) if h1 == 24 else time(h1, m1)
    if start >= end:
        raise ValueError(f"period {text!r} must end after it starts")
    return start, end


class Down(_Model):
    """A pipeline job whose replicas must answer: each target that is scraped and down alerts,
    and so does a job with fewer than `expected` targets up. The count matters because Docker
    Compose discovers replicas by DNS: a dead container's target vanishes instead of reporting
    `up == 0`, so only a count (or its absence) sees it."""

    for_: DurationOrZero = Field("1m", alias="for")
    severity: Severity = "critical"
    expected: int = Field(1, ge=1, description="replicas that must be up (the --scale count of the service)")


class ClickHouseErrors(_Model):
    window: Duration = "5m"
    for_: DurationOrZero = Field("2m", alias="for")
    severity: Severity = "critical"


class DeadLetterSpike(_Model):
    max_ratio: Ratio = Field(0.05, description="dead letters ÷ messages validated")
    window: Duration = "10m"
    min_volume: int = Field(100, ge=1, description="least messages validated in the window")
    for_: DurationOrZero = Field("5m", alias="for")
    severity: Severity = "warning"


class EventTimeLag(_Model):
    max_s: float = Field(900, gt=0, description="wall clock minus watermark")
    for_: DurationOrZero = Field("10m", alias="for")
    severity: Severity = "warning"


class Pipeline(_Model):
    worker_down: Down = Down()
    sink_down: Down = Down.model_validate({"for": "2m"})
    clickhouse_errors: ClickHouseErrors = ClickHouseErrors()
    dead_letter_spike: DeadLetterSpike = DeadLetterSpike()
    event_time_lag: EventTimeLag = EventTimeLag()


class PrometheusTimings(_Model):
    scrape_interval: Duration = "15s"
    evaluation_interval: Duration = "15s"
    windows: tuple[Duration, ...] = Field(("5m", "1h", "24h"), description="ratio ranges recorded for dashboards")


class AlertmanagerTimings(_Model):
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    resolve_timeout: Duration = "5m"


class Thresholds(_Model):
    version: Literal[1] = 1
    metrics: dict[Metric, MetricThreshold]
    #: the catalog shares (month to date); none when the file has no `catalog:` section
    catalog: dict[CatalogMetric, CatalogThreshold] = Field(default_factory=dict)
    no_events: NoEvents = NoEvents()
    office_hours: OfficeHours = OfficeHours()
    pipeline: Pipeline = Pipeline()
    prometheus: PrometheusTimings = PrometheusTimings()
    alertmanager: AlertmanagerTimings = AlertmanagerTimings()

    @model_validator(mode="after")
    def _windows_see_two_scrapes(self) -> Self:
        # increase() needs two samples inside its range; four scrapes leave room for a miss.
        least = 4 * duration_s(self.prometheus.scrape_interval)
        ranges = {f"metrics.{m}.window": t.window for m, t in self.metrics.items()}
        ranges |= {f"prometheus.windows[{i}]": w for i, w in enumerate(self.prometheus.windows)}
        ranges |= {
            "no_events.window": self.no_events.window,
            "pipeline.dead_letter_spike.window": self.pipeline.dead_letter_spike.window,
            "pipeline.clickhouse_errors.window": self.pipeline.clickhouse_errors.window,
        }
        for where, w in ranges.items():
            if duration_s(w) < least:
                raise ValueError(
                    f"{where} ({w}) must be at least 4 scrape intervals "
                    f"({self.prometheus.scrape_interval}) so increase() sees enough samples"
                )
        return self

    # -- lookups used by the generators and the live view ---------------------------------------
    def _spec(self, metric: str) -> MetricThreshold | CatalogThreshold | None:
        spec: MetricThreshold | CatalogThreshold | None = self.metrics.get(metric)  # type: ignore[call-overload]
        return spec if spec is not None else self.catalog.get(metric)  # type: ignore[call-overload]

    def floor(self, metric: Metric | CatalogMetric, province: str) -> float | None:
        """The `alert_below` floor for a province, or None when the metric does not alert."""
        t = self._spec(metric)
        if t is None:
            return None
        o = t.provinces.get(province)
        return o.alert_below if o is not None and o.alert_below is not None else t.alert_below

    def min_volume(self, metric: Metric | CatalogMetric, province: str) -> int | None:
        t = self._spec(metric)
        if t is None:
            return None
        o = t.provinces.get(province)
        return o.min_volume if o is not None and o.min_volume is not None else t.min_volume

    def target(self, metric: Metric | CatalogMetric, province: str) -> float | None:
        t = self._spec(metric)
        if t is None:
            return None
        o = t.provinces.get(province)
        return o.target if o is not None and o.target is not None else t.target

    @property
    def ratio_windows(self) -> tuple[str, ...]:
        """Every range recorded as a ratio: dashboard windows plus the alert windows, shortest first."""
        ws = set(self.prometheus.windows) | {t.window for t in self.metrics.values()}
        return tuple(sorted(ws, key=duration_s))


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        # pydantic names validator steps in the path ("function-after[...]"): not the user's concern
        loc = re.sub(r"\.function-after\[[^]]*\]", "", ".".join(str(p) for p in err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return f"{source}: invalid thresholds ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n" + "\n".join(lines)


def parse_thresholds(text: str, *, source: str = "thresholds.yaml") -> Thresholds:
    """Parse and validate thresholds YAML; raises `ThresholdsError` listing every problem."""
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError for dates like 2026-02-30
        raise ThresholdsError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ThresholdsError(f"{source}: expected a mapping at the top level (version, metrics, ...)")
    try:
        return Thresholds.model_validate(data)
    except ValidationError as exc:
        raise ThresholdsError(_format_errors(exc, source)) from exc


def default_thresholds_text() -> str:
    return resources.files("psmon.alerting").joinpath(DEFAULT_THRESHOLDS_FILE).read_text(encoding="utf-8")


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Load `path`, or the default file shipped with psmon when None."""
    if path is None:
        return parse_thresholds(default_thresholds_text(), source=f"psmon/alerting/{DEFAULT_THRESHOLDS_FILE}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsError(f"cannot read thresholds file {path}: {exc.strerror}") from exc
    return parse_thresholds(text, source=str(path))
