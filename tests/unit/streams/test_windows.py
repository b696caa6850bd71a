"""Window arithmetic: bucket edges, late events, the local day boundary at 17:00 UTC."""

from datetime import UTC, datetime

import pytest

from psmon.schemas.metrics import COUNTERS
from psmon.streams.windows import AddResult, RollingRates

SUB = (COUNTERS.index("submitted"),)
SUB_ONLINE = (COUNTERS.index("submitted"), COUNTERS.index("submitted_online"))


def ts(s: str) -> float:
    return datetime.fromisoformat(s).astimezone(UTC).timestamp()


def rates_at(wall: str) -> RollingRates:
    wall_s = ts(wall)
    return RollingRates(clock=lambda: wall_s)


def add(r: RollingRates, when: str, inc: tuple[int, ...] = SUB, province: str = "25") -> AddResult:
    t = ts(when)
    r.advance(t)
    return r.add(province, t, inc)


def test_sliding_window_edges_are_minute_buckets() -> None:
    r = rates_at("2026-11-25T12:00:00Z")
    add(r, "2026-11-25T10:55:00Z")  # 65 min before the watermark below: only 24h
    add(r, "2026-11-25T11:00:59Z")  # minute 11:00: in 1h (window 11:00..11:59), not 5m
    add(r, "2026-11-25T11:55:00Z")  # first minute of the 5m window
    add(r, "2026-11-25T11:59:30Z")  # watermark minute
    assert r.sums("25", "5m")["submitted"] == 2
    assert r.sums("25", "1h")["submitted"] == 3
    assert r.sums("25", "24h")["submitted"] == 4


def test_watermark_never_passes_the_wall_clock() -> None:
    r = rates_at("2026-11-25T12:00:00Z")
    add(r, "2026-11-25T12:03:00Z")  # a little ahead (clock skew)
    assert r.watermark_s == ts("2026-11-25T12:00:00Z")
    assert r.sums("25", "5m")["submitted"] == 0  # counted once now reaches its minute
    assert r.sums("25", "today")["submitted"] == 1


def test_late_event_updates_existing_buckets_only() -> None:
    r = rates_at("2026-11-25T12:00:00Z")
    add(r, "2026-11-25T12:00:00Z")
    assert add(r, "2026-11-24T11:00:00Z") is AddResult.CALENDAR_ONLY  # 25 h old: day bucket only
    assert r.sums("25", "24h")["submitted"] == 1
    assert r.sums("25", "ytd")["submitted"] == 2
    assert add(r, "2025-12-31T10:00:00Z") is AddResult.LATE  # 2025 local: no bucket kept
    assert r.sums("25", "ytd")["submitted"] == 2
    assert add(r, "2026-11-24T12:01:00Z") is AddResult.SLIDING  # 23 h 59 min old: still in 24h
    assert r.sums("25", "24h")["submitted"] == 2


def test_local_day_boundary_is_17_utc() -> None:
    r = rates_at("2026-12-01T00:00:00Z")
    add(r, "2026-11-25T16:59:59Z")  # local 23:59:59 on the 25th
    add(r, "2026-11-25T17:00:00Z")  # local 00:00 on the 26th: a new day
    assert r.sums("25", "today")["submitted"] == 1
    assert r.sums("25", "month")["submitted"] == 2
    add(r, "2026-11-30T16:59:00Z")  # watermark moves to local 2026-11-30 23:59
    add(r, "2026-11-30T17:00:00Z")  # local 1 December: new month
    assert r.sums("25", "today")["submitted"] == 1
    assert r.sums("25", "month")["submitted"] == 1
    assert r.sums("25", "ytd")["submitted"] == 4


def test_local_year_boundary() -> None:
    r = rates_at("2027-01-02T00:00:00Z")
    add(r, "2026-12-31T16:59:00Z")  # local 23:59 on 31 Dec 2026
    add(r, "2026-12-31T17:00:00Z")  # local 00:00 on 1 Jan 2027
    assert r.sums("25", "ytd")["submitted"] == 1
    assert r.sums("25", "24h")["submitted"] == 2


def test_ratios_and_missing_denominator() -> None:
    r = rates_at("2026-11-25T12:00:00Z")
    for _ in range(3):
        add(r, "2026-11-25T11:59:00Z", SUB_ONLINE)
    add(r, "2026-11-25T11:59:00Z", SUB)
    ratios = r.ratios("25", "5m")
    assert ratios["online_submission"].value == pytest.approx(0.75)
    assert ratios["on_time"].value is None  # nothing resolved: no value, not 0
    assert r.ratios("01", "5m")["online_submission"].value is None


def test_memory_is_bounded_by_buckets_not_events() -> None:
    r = rates_at("2026-11-26T00:00:00Z")
    start = ts("2026-11-20T00:00:00Z")
    for i in range(20_000):  # 20k events over ~6 days, every 25 s
        t = start + i * 25.0
        r.advance(t)
        r.add("25", t, SUB)
    ring = r._minutes["25"]
    assert ring.counts.shape[0] == 1500  # 24 h + headroom, whatever the event count
    wm_minute = int((r.watermark_s or 0) // 60)
    expected = sum(1 for i in range(20_000) if int((start + i * 25.0) // 60) > wm_minute - 1440)
    assert r.sums("25", "24h")["submitted"] == expected


def test_drop_forgets_a_province() -> None:
    r = rates_at("2026-11-25T12:00:00Z")
    add(r, "2026-11-25T11:00:00Z", province="01")
    r.drop("01")
    assert r.provinces == [] and r.sums("01", "24h")["submitted"] == 0
