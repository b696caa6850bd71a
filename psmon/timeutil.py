"""Time conventions shared by every stage.

Internally all times are timezone-aware UTC. Local time (Asia/Ho_Chi_Minh, UTC+7, no DST since
1975) is used only for calendar windows (today, this month, year to date) and display. Because
the offset is fixed, a local calendar day is the UTC interval [17:00 the day before, 17:00), and
the conversion is plain arithmetic, which keeps the hot path free of tz database lookups.
"""

from datetime import UTC, date, datetime, timedelta, timezone

__all__ = [
    "LOCAL_OFFSET_S",
    "LOCAL_TZ",
    "MERGER_EFFECTIVE",
    "local_date",
    "local_day_start_s",
    "utc_now",
]

LOCAL_OFFSET_S = 7 * 3600
LOCAL_TZ = timezone(timedelta(seconds=LOCAL_OFFSET_S), "Asia/Ho_Chi_Minh")

#: Resolution 202/2025/QH15: the 34 provinces (and the end of districts) from this instant.
MERGER_EFFECTIVE = datetime(2025, 7, 1, tzinfo=LOCAL_TZ)


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_date(ts_s: float) -> date:
    """The local calendar date of a UTC epoch timestamp."""
    return date.fromordinal(_EPOCH_ORDINAL + int((ts_s + LOCAL_OFFSET_S) // 86400))


def local_day_start_s(d: date) -> float:
    """UTC epoch seconds at local midnight starting date `d` (17:00 UTC the day before)."""
    return (d.toordinal() - _EPOCH_ORDINAL) * 86400.0 - LOCAL_OFFSET_S


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
