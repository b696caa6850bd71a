"""Rolling rates per province: event-time counters in fixed buckets, summed on demand.

State is one pair of ring buffers per province (numpy arrays, counters as columns):
- a **minute ring** of the last 24 h (plus headroom for events slightly ahead of the watermark),
- a **day ring** of local (UTC+7) calendar days, enough for the current year.

Each slot carries a tag (the minute or day number it holds), so reusing a slot for a newer
period resets it and a window is "sum of slots whose tag lies in range". Per event the cost is
two array increments whatever the window length; memory is provinces × counters × slots and
never grows with the number of events.

"Now" is the watermark: the latest event time seen, never later than the wall clock. Windows:
5 min, 1 h, 24 h (sliding, on minute buckets); today, this month, year to date (local calendar,
on day buckets). An event older than 24 h still updates its day bucket if that day is in the
watermark's year; an event older than every kept bucket updates nothing and is reported late.

A province's rings can be copied out (`copy_province`) and put back (`restore_province`): stage 2
checkpoints them with the offset of their partition of `psmon.valid` (`checkpoint.py`), so a
worker taking the partition over starts from them instead of re-reading the whole log.

This module is pure logic: no Kafka, no metrics. Thread-safety is not needed: one asyncio loop
owns an instance.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt

from psmon.schemas.metrics import COUNTER_INDEX, COUNTERS, METRICS, Metric, Window
from psmon.timeutil import LOCAL_OFFSET_S, utc_now

__all__ = ["AddResult", "ProvinceRings", "RollingRates"]

_SLIDING_MINUTES: Final[dict[str, int]] = {"5m": 5, "1h": 60, "24h": 1440}

RETENTION_MINUTES: Final = 1440
#: Events up to this far ahead of the watermark still get a minute bucket.
FUTURE_HEADROOM_MINUTES: Final = 60
_MINUTE_SLOTS: Final = RETENTION_MINUTES + FUTURE_HEADROOM_MINUTES
_DAY_SLOTS: Final = 372  # a year plus a few days ahead
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


class AddResult(Enum):
    SLIDING = "sliding"  # its minute bucket was updated (and its day bucket, if in this year)
    CALENDAR_ONLY = "calendar_only"  # older than 24 h or far ahead: only calendar windows
    LATE = "late"  # older than every kept bucket: no live window updated


class _Ring:
    """Counters in `slots` buckets addressed by a monotone bucket number (minute or day)."""

    __slots__ = ("counts", "tags")

    def __init__(self, slots: int):
        self.counts: npt.NDArray[np.int64] = np.zeros((slots, len(COUNTERS)), dtype=np.int64)
        self.tags: npt.NDArray[np.int64] = np.full(slots, -1, dtype=np.int64)

    def add(self, bucket: int, increments: Iterable[int]) -> None:
        slot = bucket % len(self.tags)
        if self.tags[slot] != bucket:
            self.tags[slot] = bucket
            self.counts[slot] = 0
        for i in increments:
            self.counts[slot, i] += 1

    def sum(self, lo: int, hi: int) -> npt.NDArray[np.int64]:
        # A 0/1 vector times the counts matrix: one matrix-vector product, no masked copy.
        mask = ((self.tags >= lo) & (self.tags <= hi)).astype(np.int64)
        total: npt.NDArray[np.int64] = mask @ self.counts
        return total


@dataclass(frozen=True, slots=True)
class ProvinceRings:
    """Copies of one province's rings (counts and tags), None where it has no ring yet."""

    minute_counts: npt.NDArray[np.int64] | None
    minute_tags: npt.NDArray[np.int64] | None
    day_counts: npt.NDArray[np.int64] | None
    day_tags: npt.NDArray[np.int64] | None


@dataclass(frozen=True, slots=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        """None when there is no denominator: no value, neither 0 nor 1."""
        return self.numerator / self.denominator if self.denominator else None


class RollingRates:
    """Per-province bucketed counters and the window sums over them."""

    def __init__(self, *, clock: Callable[[], float] = lambda: utc_now().timestamp()):
        self._clock = clock
        self._minutes: dict[str, _Ring] = {}
        self._days: dict[str, _Ring] = {}
        self.watermark_s: float | None = None

    # -- updates ---------------------------------------------------------------------------
    def advance(self, occurred_at_s: float) -> None:
        """Move the watermark to this event time if later, capped at the wall clock."""
        candidate = min(occurred_at_s, self._clock())
        if self.watermark_s is None or candidate > self.watermark_s:
            self.watermark_s = candidate

    def add(self, province: str, occurred_at_s: float, increments: tuple[int, ...]) -> AddResult:
        """Count one event; call `advance` first so the watermark includes it."""
        wm = self.watermark_s if self.watermark_s is not None else occurred_at_s
        minute, wm_minute = int(occurred_at_s // 60), int(wm // 60)
        day, wm_day = _local_day(occurred_at_s), _local_day(wm)
        in_minutes = wm_minute - RETENTION_MINUTES < minute <= wm_minute + FUTURE_HEADROOM_MINUTES - 1
        in_days = _year_start(wm_day) <= day < wm_day + (_DAY_SLOTS - 366)
        if in_minutes:
            self._ring(self._minutes, province, _MINUTE_SLOTS).add(minute, increments)
        if in_days:
            self._ring(self._days, province, _DAY_SLOTS).add(day, increments)
        if in_minutes:
            return AddResult.SLIDING
        return AddResult.CALENDAR_ONLY if in_days else AddResult.LATE

    def drop(self, province: str) -> None:
        """Forget a province (its partition moved to another worker)."""
        self._minutes.pop(province, None)
        self._days.pop(province, None)

    def copy_province(self, province: str) -> ProvinceRings:
        """Copies of `province`'s rings, for a checkpoint."""
        m, d = self._minutes.get(province), self._days.get(province)
        return ProvinceRings(
            minute_counts=m.counts.copy() if m else None,
            minute_tags=m.tags.copy() if m else None,
            day_counts=d.counts.copy() if d else None,
            day_tags=d.tags.copy() if d else None,
        )

    def restore_province(self, province: str, rings: ProvinceRings) -> None:
        """Put back `province`'s rings from a checkpoint; a shape that is not this build's raises."""
        restored: list[tuple[dict[str, _Ring], int, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for rings_of, slots, counts, tags in (
            (self._minutes, _MINUTE_SLOTS, rings.minute_counts, rings.minute_tags),
            (self._days, _DAY_SLOTS, rings.day_counts, rings.day_tags),
        ):
            if counts is None or tags is None:
                continue
            if counts.shape != (slots, len(COUNTERS)) or tags.shape != (slots,):
                raise ValueError(f"ring of shape {counts.shape} / {tags.shape}, expected {(slots, len(COUNTERS))}")
            restored.append((rings_of, slots, counts, tags))
        self.drop(province)
        for rings_of, slots, counts, tags in restored:
            ring = rings_of[province] = _Ring(slots)
            ring.counts[:] = counts
            ring.tags[:] = tags

    def restore_watermark(self, watermark_s: float | None) -> None:
        """Take a checkpoint's watermark if later than this one (still capped at the wall clock)."""
        if watermark_s is not None:
            self.advance(watermark_s)

    # -- reads -----------------------------------------------------------------------------
    @property
    def provinces(self) -> list[str]:
        return sorted(self._minutes.keys() | self._days.keys())

    def sums(self, province: str, window: Window) -> dict[str, int]:
        """Counter totals of one province over a window ending at the watermark."""
        vec = self._sum_vector(province, window)
        return dict(zip(COUNTERS, (int(v) for v in vec), strict=True))

    def ratios(self, province: str, window: Window) -> dict[Metric, Ratio]:
        vec = self._sum_vector(province, window)
        return {m: Ratio(int(vec[COUNTER_INDEX[n]]), int(vec[COUNTER_INDEX[d]])) for m, (n, d) in METRICS.items()}

    def _sum_vector(self, province: str, window: Window) -> npt.NDArray[np.int64]:
        zero = np.zeros(len(COUNTERS), dtype=np.int64)
        if self.watermark_s is None:
            return zero
        if window in _SLIDING_MINUTES:
            ring = self._minutes.get(province)
            hi = int(self.watermark_s // 60)
            return ring.sum(hi - _SLIDING_MINUTES[window] + 1, hi) if ring else zero
        ring = self._days.get(province)
        if ring is None:
            return zero
        hi = _local_day(self.watermark_s)
        lo = {"today": hi, "month": _month_start(hi), "ytd": _year_start(hi)}[window]
        return ring.sum(lo, hi)

    @staticmethod
    def _ring(rings: dict[str, _Ring], province: str, slots: int) -> _Ring:
        ring = rings.get(province)
        if ring is None:
            ring = rings[province] = _Ring(slots)
        return ring


def _local_day(ts_s: float) -> int:
    """Local (UTC+7) calendar day number: days since 1970-01-01 local."""
    return int((ts_s + LOCAL_OFFSET_S) // 86400)


def _month_start(day: int) -> int:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    return d.replace(day=1).toordinal() - _EPOCH_ORDINAL


def _year_start(day: int) -> int:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    return d.replace(month=1, day=1).toordinal() - _EPOCH_ORDINAL
