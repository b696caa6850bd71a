"""Vietnam's working calendar: office hours, weekdays and public holidays (local time, UTC+7).

Used by the simulator (dossier volume follows office hours) and by alerting ("no events from a
province" only matters when offices are open). Office hours are 08:00–11:30 and 13:30–17:00,
Monday to Friday (many one-stop counters also open Saturday morning). Holidays are the fixed ones
of the Labour Code (1/1, 30/4, 1/5, 2/9 with the day beside it) plus the lunar ones (Tết,
Hùng Kings' day) with the substitute days the government announced; lunar dates are listed per
year and must be extended each year.
"""

from datetime import date, datetime, time, timedelta

from psmon.timeutil import LOCAL_TZ

__all__ = [
    "HOLIDAYS",
    "OFFICE_PERIODS",
    "OFFICE_WEEKDAYS",
    "activity_weight",
    "demo_start",
    "is_holiday",
    "is_office_hours",
]

_MORNING = (time(8, 0), time(11, 30))
_AFTERNOON = (time(13, 30), time(17, 0))
#: Opening periods of a working day, [start, end) local time; alerting generates its rules from these.
OFFICE_PERIODS: tuple[tuple[time, time], ...] = (_MORNING, _AFTERNOON)
#: Working weekdays, Monday = 0 (as `date.weekday()`).
OFFICE_WEEKDAYS: frozenset[int] = frozenset(range(5))


def _span(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


HOLIDAYS: frozenset[date] = frozenset(
    # Tết (lunar new year), with announced bridging days
    _span(date(2025, 1, 25), date(2025, 2, 2))
    | _span(date(2026, 2, 14), date(2026, 2, 22))
    | _span(date(2027, 2, 4), date(2027, 2, 10))
    # Hùng Kings' commemoration (10th day of the 3rd lunar month)
    | {date(2025, 4, 7), date(2026, 4, 27), date(2027, 4, 16)}
    # Reunification and Labour days, National day (+ adjacent day)
    | {date(y, m, d) for y in (2025, 2026, 2027) for (m, d) in ((1, 1), (4, 30), (5, 1), (9, 1), (9, 2))}
)


def is_holiday(d: date) -> bool:
    return d in HOLIDAYS


def is_office_hours(when: datetime) -> bool:
    local = when.astimezone(LOCAL_TZ)
    if local.weekday() >= 5 or is_holiday(local.date()):
        return False
    t = local.time()
    return _MORNING[0] <= t < _MORNING[1] or _AFTERNOON[0] <= t < _AFTERNOON[1]


def activity_weight(when: datetime) -> float:
    """Relative dossier volume at `when`: 1.0 in office hours, a trickle otherwise.

    Online portals take submissions around the clock, so nights and Sundays are low, not zero.
    """
    local = when.astimezone(LOCAL_TZ)
    if is_office_hours(when):
        return 1.0
    if local.weekday() == 5 and not is_holiday(local.date()) and time(8) <= local.time() < time(11, 30):
        return 0.3  # Saturday-morning counters
    if time(6) <= local.time() < time(22):
        return 0.08
    return 0.02


def demo_start(now: datetime) -> datetime:
    """Where a demo's simulated clock should start: now in office hours, else the latest
    working morning (08:00 local), so a demo run at night still shows a working day."""
    if is_office_hours(now):
        return now
    day = now.astimezone(LOCAL_TZ).date()
    while True:
        candidate = datetime.combine(day, _MORNING[0], LOCAL_TZ)
        if candidate < now and is_office_hours(candidate):
            return candidate
        day -= timedelta(days=1)
