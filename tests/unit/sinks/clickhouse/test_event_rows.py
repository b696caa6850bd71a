"""The `events` row the writer inserts: times as integer ticks that store exactly what the
`datetime` values of before stored, and the same data errors for times no `datetime` can hold."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent
from psmon.sinks.clickhouse.writer import EVENT_COLUMNS, event_row

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OCCURRED = EVENT_COLUMNS.index("occurred_at")
SRC_TS = EVENT_COLUMNS.index("src_ts")


def record(occurred_at_s: float, src_ts_ms: int = 1_780_000_000_000) -> ValidRecord:
    event = ValidEvent(
        event_id="e-1",
        event_type="application.submitted",
        occurred_at_s=occurred_at_s,
        province_code="01",
        raw_province_code="01",
        level="province",
        procedure_code="1.000001",
        dossier_id="D-1",
    )
    return ValidRecord(event, 3, 7, src_ts_ms)


def stored_us(ts_s: float) -> int:
    """What ClickHouse stored for `datetime.fromtimestamp(ts_s, UTC)` in a DateTime64(6) column."""
    return (datetime.fromtimestamp(ts_s, UTC) - EPOCH) // timedelta(microseconds=1)


def stored_ms(ts_ms: int) -> int:
    """What ClickHouse stored for `datetime.fromtimestamp(ts_ms / 1000, UTC)` in a DateTime64(3) column
    (clickhouse-connect keeps whole milliseconds of the datetime's microseconds)."""
    return (datetime.fromtimestamp(ts_ms / 1000, UTC) - EPOCH) // timedelta(milliseconds=1)


def test_event_times_are_the_ticks_the_datetimes_stored() -> None:
    rng = random.Random(13)
    lo, hi = datetime(2015, 1, 1, tzinfo=UTC).timestamp(), datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    times = [rng.uniform(lo, hi) for _ in range(20_000)]  # arbitrary float fractions
    times += [round(rng.uniform(lo, hi), 6) for _ in range(20_000)]  # what RFC 3339 with µs gives
    # fractions on and around half a microsecond, where the rounding rule decides
    times += [1_780_000_000 + k / 1e6 + d for k in range(0, 10) for d in (0.5e-6, -0.5e-6, 0.4999e-6, 0.5001e-6)]
    times += [lo, hi - 1e-6, 0.0, -0.25, -1.5e-6]
    for ts_s in times:
        row = event_row(record(ts_s, src_ts_ms=int(ts_s * 1000)))
        assert isinstance(row[OCCURRED], int) and isinstance(row[SRC_TS], int)
        assert row[OCCURRED] == stored_us(ts_s), ts_s
        assert row[SRC_TS] == stored_ms(int(ts_s * 1000)), ts_s


@pytest.mark.parametrize(
    ("occurred_at_s", "src_ts_ms"),
    [
        (1_780_000_000.0, 1_780_000_000_000_000),  # a Kafka timestamp in µs: year ~58,000
        (1e12, 1_780_000_000_000),  # year ~33,000
        (float("nan"), 1_780_000_000_000),
        (float("inf"), 1_780_000_000_000),
    ],
)
def test_a_time_no_datetime_can_hold_is_a_data_error_as_before(occurred_at_s: float, src_ts_ms: int) -> None:
    def datetimes() -> None:  # what building the row used to do with these times
        datetime.fromtimestamp(occurred_at_s, UTC)
        datetime.fromtimestamp(src_ts_ms / 1000, UTC)

    with pytest.raises((ValueError, OverflowError)):
        datetimes()
    with pytest.raises(ValueError, match="out of range"):
        event_row(record(occurred_at_s, src_ts_ms))
