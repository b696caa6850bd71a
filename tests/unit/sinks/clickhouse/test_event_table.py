"""The Arrow table the writer inserts holds, column by column, exactly the values of `event_row`
(the rows a plain clickhouse-connect insert writes), and refuses what `event_row` refused."""

import random
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa
import pytest

from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent
from psmon.sinks.clickhouse.client import is_permanent_error
from psmon.sinks.clickhouse.writer import EVENT_COLUMNS, event_row, event_table

INT64_MAX = 2**63 - 1


def record(rng: random.Random, i: int, occurred_at_s: float) -> ValidRecord:
    def maybe(value: Any) -> Any:
        return value if rng.random() < 0.6 else None

    event = ValidEvent(
        event_id=f"e-{i}",
        event_type=rng.choice(["application.submitted", "payment.completed"]),
        occurred_at_s=occurred_at_s,
        province_code=f"{rng.randrange(1, 97):02d}",
        raw_province_code=f"{rng.randrange(1, 97):02d}",
        level=rng.choice(["province", "commune"]),
        procedure_code=f"1.{rng.randrange(10**6):06d}",
        dossier_id=f"D/{i}:x'y\\z",
        agency_code=maybe("AG-1"),
        commune_code=maybe("00001"),
        source_system=maybe("dvc"),
        channel=maybe("online"),
        service_mode=maybe("full_online"),
        fee_bearing=maybe(rng.random() < 0.5),
        on_time=maybe(rng.random() < 0.5),
        method=maybe("card"),
        amount_vnd=maybe(rng.choice([0, 1, 50_000, INT64_MAX, -INT64_MAX - 1])),
        kind=maybe("fee"),
    )
    return ValidRecord(event, rng.choice([0, 7, 2**31 + 12345, 2**32 - 1]), rng.randrange(2**63), 1_780_000_000_000 + i)


def as_python(column: pa.ChunkedArray) -> list[Any]:
    """A column's values; timestamps as the integer ticks stored in their DateTime64 column."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return list(column.to_pylist())


def test_the_table_holds_the_values_of_event_row_column_by_column() -> None:
    rng = random.Random(13)
    lo, hi = datetime(2015, 1, 1, tzinfo=UTC).timestamp(), datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    times = [rng.uniform(lo, hi) for _ in range(3_000)] + [round(rng.uniform(lo, hi), 6) for _ in range(3_000)]
    # fractions on and around half a microsecond, where the rounding rule decides
    times += [1_780_000_000 + k / 1e6 + d for k in range(10) for d in (0.5e-6, -0.5e-6, 0.4999e-6, 0.5001e-6)]
    times += [lo, hi - 1e-6, 0.0, -0.25, -1.5e-6]
    records = [record(rng, i, ts) for i, ts in enumerate(times)]

    table = event_table(records)

    assert table.column_names == list(EVENT_COLUMNS)
    rows = [event_row(r) for r in records]
    for i, name in enumerate(EVENT_COLUMNS):
        assert as_python(table.column(name)) == [row[i] for row in rows], name


@pytest.mark.parametrize(
    ("change", "column"),
    [
        ({"amount_vnd": INT64_MAX + 1}, "amount_vnd"),  # one above Nullable(Int64)
        ({"src_partition": 2**32}, "src_partition"),  # one above UInt32
        ({"fee_bearing": 1}, "fee_bearing"),  # not a bool
    ],
)
def test_a_value_out_of_its_column_is_a_data_error_naming_the_column(change: dict[str, Any], column: str) -> None:
    good = record(random.Random(1), 1, 1_780_000_000.0)
    if column == "src_partition":
        bad = ValidRecord(good.event, change[column], good.src_offset, good.src_ts_ms)
    else:
        bad = ValidRecord(
            msgspec.structs.replace(good.event, **change), good.src_partition, good.src_offset, good.src_ts_ms
        )

    with pytest.raises(ValueError, match=column) as caught:
        event_table([good, bad])
    assert is_permanent_error(caught.value)
    event_table([good])  # the good row alone is fine


@pytest.mark.parametrize(
    ("occurred_at_s", "src_ts_ms"),
    [
        (1_780_000_000.0, 1_780_000_000_000_000),  # a Kafka timestamp in µs: year ~58,000
        (1e12, 1_780_000_000_000),
        (float("nan"), 1_780_000_000_000),
        (float("inf"), 1_780_000_000_000),
        (1_780_000_000.0, 2**70),  # beyond any integer column
    ],
)
def test_a_time_event_row_refuses_is_refused_as_a_data_error(occurred_at_s: float, src_ts_ms: int) -> None:
    good = record(random.Random(2), 1, 1_780_000_000.0)
    bad = ValidRecord(msgspec.structs.replace(good.event, occurred_at_s=occurred_at_s), 1, 2, src_ts_ms)
    with pytest.raises((ValueError, OverflowError)):
        event_row(bad)
    with pytest.raises(ValueError, match="out of range") as caught:
        event_table([good, bad])
    assert is_permanent_error(caught.value)
