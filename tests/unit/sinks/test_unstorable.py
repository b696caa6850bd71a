"""Rows ClickHouse cannot store: the error classifier, the bisecting write, and the sink setting
the refused rows aside (dead letters `unstorable`) while writing the others, without a server."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from clickhouse_connect.driver import exceptions as driver_errors
from prometheus_client import CollectorRegistry

from psmon.errors import ClickHouseError
from psmon.faults import FaultPlan
from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import DeadLetter, unstorable_letter
from psmon.schemas.normalized import ValidRecord, encode_valid
from psmon.schemas.validation import ValidEvent
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import is_permanent_error
from psmon.sinks.clickhouse.writer import RECEIVED_AT_RANGE_MS, dead_letter_row, write_isolating
from psmon.sinks.service import SinkService

SETTINGS = Settings(topic_prefix="t", sink_retry_max_backoff_s=4)
INT64_MAX = 2**63 - 1

# -- classifier -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        driver_errors.DataError("Unable to create native array for column `amount_vnd`: error"),
        driver_errors.DatabaseError("Code: 53. DB::Exception: Type mismatch in VALUES section. (TYPE_MISMATCH)"),
        driver_errors.DatabaseError(
            "Code: 321. DB::Exception: Value out of range. (VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE)"
        ),
        driver_errors.DatabaseError("HTTPDriver received ClickHouse error code 6", code=6),
        driver_errors.DatabaseError("Received ClickHouse exception, code: 41, server response: Cannot parse datetime"),
        OverflowError("int too big to convert"),
        ValueError("year 58375 is out of range"),
        TypeError("unsupported operand"),
    ],
)
def test_data_errors_are_permanent(exc: Exception) -> None:
    assert is_permanent_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ClickHouseError("fault injected: /tmp/down exists"),  # psmon.faults: the outage test needs it transient
        ClickHouseError("cannot open ClickHouse at chdb:///x"),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        OSError("network unreachable"),
        driver_errors.OperationalError("Error HTTPConnectionPool: Max retries exceeded"),
        driver_errors.OperationalError("Code: 53. looks like data, but the connection broke"),
        driver_errors.DatabaseError("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"),
        driver_errors.DatabaseError("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)"),
        driver_errors.DatabaseError("Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)"),
        driver_errors.DatabaseError("Code: 202. DB::Exception: Too many simultaneous queries", code=202),
        driver_errors.DatabaseError("something without a code"),
        driver_errors.ProgrammingError("Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)"),
        RuntimeError("anything else"),
    ],
)
def test_connection_overload_and_unknown_errors_are_transient(exc: Exception) -> None:
    assert not is_permanent_error(exc)


# -- bisecting write -----------------------------------------------------------------------------


class FakeTable:
    """A writer whose store refuses a batch holding any value above Int64, as ClickHouse does."""

    def __init__(self, transient_after: int | None = None):
        self.rows: list[int] = []
        self.calls: list[tuple[list[int], str]] = []
        self.transient_after = transient_after

    def write(self, items: Sequence[int], token: str) -> int:
        self.calls.append((list(items), token))
        if self.transient_after is not None and len(self.calls) > self.transient_after:
            raise ConnectionResetError(104, "Connection reset by peer")
        if any(v > INT64_MAX for v in items):
            raise driver_errors.DataError("Unable to create native array for column `amount_vnd`: error")
        self.rows.extend(items)
        return len(items)


def test_a_clean_batch_is_one_write_with_the_batch_token() -> None:
    table = FakeTable()
    out = write_isolating(table.write, [1, 2, 3], "t.valid/0:1-3")
    assert (out.written, out.refused) == (3, [])
    assert table.calls == [([1, 2, 3], "t.valid/0:1-3")]


@pytest.mark.parametrize("bad_at", [[0], [19], [7], [3, 4], [0, 10, 19]])
def test_bisect_writes_every_good_row_once_and_refuses_exactly_the_bad_ones(bad_at: list[int]) -> None:
    items = [2**63 if i in bad_at else i for i in range(20)]
    table = FakeTable()
    out = write_isolating(table.write, items, "tok")
    assert sorted(table.rows) == [i for i in range(20) if i not in bad_at]  # each good row exactly once
    assert out.written == 20 - len(bad_at)
    assert [r.item for r in out.refused] == [2**63] * len(bad_at)
    assert all(isinstance(r.error, driver_errors.DataError) for r in out.refused)
    # Every part has its own token, named by its index range within the batch.
    tokens = [t for _items, t in table.calls]
    assert tokens[0] == "tok" and len(set(tokens)) == len(tokens)
    assert all(t.startswith("tok[") for t in tokens[1:])


def test_bisect_tokens_are_deterministic_for_a_redelivered_batch() -> None:
    items = [1, 2**63, 3, 4, 5]
    first, second = FakeTable(), FakeTable()
    write_isolating(first.write, items, "tok")
    write_isolating(second.write, items, "tok")
    assert first.calls == second.calls


def test_a_transient_error_during_the_bisect_is_raised_for_the_caller_to_retry() -> None:
    table = FakeTable(transient_after=2)
    with pytest.raises(ConnectionResetError):
        write_isolating(table.write, [1, 2**63, 3, 4], "tok")


def test_a_transient_error_is_raised_at_once_without_a_bisect() -> None:
    calls: list[str] = []

    def down(items: Sequence[int], token: str) -> int:
        calls.append(token)
        raise ClickHouseError("fault injected: down exists")

    with pytest.raises(ClickHouseError):
        write_isolating(down, [1, 2, 3], "tok")
    assert calls == ["tok"]


def test_an_empty_batch_writes_nothing() -> None:
    table = FakeTable()
    out = write_isolating(table.write, [], "tok")
    assert (out.written, out.refused, table.calls) == (0, [], [])


# -- dead letters are always storable ------------------------------------------------------------


def letter(**over: Any) -> DeadLetter:
    base: dict[str, Any] = {
        "dead_letter_id": "events:0:1",
        "reason": "time_out_of_range",
        "detail": "d",
        "redacted": {"event_id": "e"},
        "payload_sha256": "0" * 64,
        "payload_bytes": 10,
        "src_partition": 0,
        "src_offset": 1,
        "src_ts_ms": 1_780_000_000_000,
    }
    return DeadLetter(**{**base, **over})


def test_a_dead_letter_row_clamps_what_its_columns_cannot_hold() -> None:
    row = dead_letter_row(letter(src_ts_ms=1_780_000_000_000_000, payload_bytes=2**40, src_partition=-5))
    assert row[-1] == datetime.fromtimestamp(RECEIVED_AT_RANGE_MS[1] / 1000, UTC)  # microseconds: clamped
    assert row[5] == 2**32 - 1 and row[6] == 0
    assert dead_letter_row(letter(src_ts_ms=-1))[-1] == datetime.fromtimestamp(0, UTC)
    ok = dead_letter_row(letter())
    assert ok[-1] == datetime.fromtimestamp(1_780_000_000, UTC) and ok[3] == '{"event_id":"e"}'


# -- the sink: good rows written, bad ones dead-lettered, ClickHouse "up" ------------------------


def event(event_id: str, amount: int = 15_000) -> ValidEvent:
    return ValidEvent(
        event_id=event_id,
        event_type="payment.completed",
        occurred_at_s=1_780_000_000.0,
        province_code="25",
        raw_province_code="17",
        level="commune",
        procedure_code="1.1",
        dossier_id="d",
        method="online",
        amount_vnd=amount,
    )


def rec(offset: int, ev: ValidEvent) -> ConsumerRecord[bytes, bytes]:
    value = encode_valid(ev, src_partition=3, src_offset=100 + offset, src_ts_ms=1_780_000_000_000)
    return ConsumerRecord("t.valid", 0, offset, 0, 0, None, value, None, 0, len(value), [])


class FakeWriter:
    """Stands in for ClickHouseWriter: refuses events above Int64 like the driver does."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.letters: list[DeadLetter] = []
        self.letter_tokens: list[str] = []

    def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
        if any((r.event.amount_vnd or 0) > INT64_MAX for r in records):
            raise driver_errors.DataError("Unable to create native array for column `amount_vnd`: error")
        self.events.extend(r.event.event_id for r in records)
        return len(records)

    def write_dead_letters(self, letters: Sequence[DeadLetter], *, token: str) -> int:
        self.letters.extend(letters)
        self.letter_tokens.append(token)
        return len(letters)


def test_the_sink_writes_the_good_rows_and_dead_letters_the_poison_one_as_unstorable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    s = SinkService(SETTINGS, PipelineMetrics(registry), faults=FaultPlan.none())
    writer = FakeWriter()
    records = [rec(i, event(f"e{i}", 2**63 if i == 10 else 15_000)) for i in range(21)]

    async def run() -> bool:
        s._writer = writer  # type: ignore[assignment]
        try:
            return await s._write_with_retry({TopicPartition("t.valid", 0): records})
        finally:
            s._executor.shutdown()

    with caplog.at_level(logging.WARNING, logger="psmon.sinks.service"):
        assert asyncio.run(run())
    assert sorted(writer.events) == sorted(f"e{i}" for i in range(21) if i != 10)
    [dl] = writer.letters
    # Named by the event's content, as `psmon replay` names the same event: not by its offset.
    assert (dl.dead_letter_id, dl.reason) == (
        unstorable_letter(ValidRecord(event("e10", 2**63), 0, 0, 0), error=ValueError()).dead_letter_id,
        "unstorable",
    )
    assert "amount_vnd" in dl.detail and "\n" not in dl.detail
    assert dl.redacted is not None and "amount_vnd" not in dl.redacted  # redacted: the bad value is not kept
    assert dl.redacted["event_id"] == "e10" and dl.redacted["province_code"] == "17"  # as sent
    assert writer.letter_tokens == ["t.valid/0:0-20/unstorable"]
    value = registry.get_sample_value
    assert value("psmon_clickhouse_up") == 1
    assert not value("psmon_clickhouse_errors_total")
    assert value("psmon_events_invalid_total", {"reason": "unstorable"}) == 1
    assert value("psmon_sink_rows_unstorable_total", {"table": "events"}) == 1
    assert value("psmon_sink_rows_total", {"table": "events"}) == 20
    assert value("psmon_sink_rows_total", {"table": "dead_letters"}) == 1
    assert not any("ClickHouse write failed" in r.getMessage() for r in caplog.records)


def test_a_refused_rate_snapshot_is_dropped_and_counted_not_retried() -> None:
    registry = CollectorRegistry()
    s = SinkService(SETTINGS, PipelineMetrics(registry), faults=FaultPlan.none())
    written: list[int] = []

    class Rates:
        def write_rates(self, rows: Sequence[dict[str, Any]], *, token: str) -> int:
            if any(r["numerator"] < 0 for r in rows):
                raise driver_errors.DataError("Unable to create native array for column `numerator`: error")
            written.extend(r["numerator"] for r in rows)
            return len(rows)

    rows = [{"numerator": n, "province_code": "25", "metric": "m", "window": "1h"} for n in (1, -1, 2)]
    value = orjson.dumps(rows)
    record = ConsumerRecord("t.rates", 0, 5, 0, 0, None, value, None, 0, len(value), [])

    async def run() -> bool:
        s._writer = Rates()  # type: ignore[assignment]
        try:
            return await s._write_with_retry({TopicPartition("t.rates", 0): [record]})
        finally:
            s._executor.shutdown()

    assert asyncio.run(run())
    assert sorted(written) == [1, 2]
    assert registry.get_sample_value("psmon_sink_rows_unstorable_total", {"table": "rate_snapshots"}) == 1
    assert registry.get_sample_value("psmon_clickhouse_up") == 1


def test_an_unstorable_letter_keeps_what_validates_and_never_the_refused_value() -> None:
    rec_ = ValidRecord(event("e1", 2**63), 2, 7, 1_780_000_000_000)
    dl = unstorable_letter(rec_, dead_letter_id="replay:f.jsonl:7", error=ValueError("too\nbig"))
    assert dl.reason == "unstorable" and dl.detail == "ClickHouse cannot store this event: ValueError: too big"
    assert dl.redacted is not None and "amount_vnd" not in dl.redacted
    assert dl.redacted["occurred_at"] == "2026-05-28T20:26:40.000000Z" and dl.redacted["method"] == "online"
    assert (dl.src_partition, dl.src_offset, dl.payload_bytes > 0) == (2, 7, True)
