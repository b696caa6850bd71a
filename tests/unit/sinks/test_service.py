"""The sink without servers: batch tokens, the retry schedule and loop, decoding, its fault points."""

import asyncio
import logging
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

import psmon.sinks.service as service
from psmon.errors import ClickHouseError
from psmon.faults import FaultPlan
from psmon.metrics import PipelineMetrics
from psmon.schemas.normalized import ValidRecord, decode_valid, encode_valid
from psmon.schemas.validation import ValidEvent
from psmon.settings import Settings
from psmon.sinks.service import SinkService, _decode, batch_token, retry_delays_s, take_batch

SETTINGS = Settings(topic_prefix="t", sink_retry_max_backoff_s=4)


def rec(partition: int, offset: int, value: bytes = b"{}", topic: str = "t.valid") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, None, value, None, 0, len(value), [])


def valid_bytes(event_id: str) -> bytes:
    ev = ValidEvent(
        event_id=event_id,
        event_type="application.submitted",
        occurred_at_s=1_780_000_000.0,
        province_code="25",
        raw_province_code="25",
        level="commune",
        procedure_code="1.1",
        dossier_id="d",
        channel="online",
        service_mode="partial_online",
        fee_bearing=False,
    )
    return encode_valid(ev, src_partition=0, src_offset=1, src_ts_ms=1_780_000_000_000)


# -- batch token ---------------------------------------------------------------------------------


def test_token_names_the_topic_and_each_partitions_first_and_last_offset() -> None:
    records = [rec(1, 5), rec(0, 3), rec(1, 2), rec(0, 4), rec(1, 3)]
    assert batch_token("t.valid", records) == "t.valid/0:3-4,1:2-5"


def test_token_is_the_same_for_a_redelivered_batch_in_another_order() -> None:
    records = [rec(2, 10), rec(0, 7), rec(2, 11)]
    assert batch_token("t.valid", records) == batch_token("t.valid", list(reversed(records)))


def test_token_differs_when_the_ranges_or_the_topic_differ() -> None:
    base = batch_token("t.valid", [rec(0, 1), rec(0, 2)])
    assert batch_token("t.valid", [rec(0, 1), rec(0, 3)]) != base
    assert batch_token("t.valid", [rec(1, 1), rec(1, 2)]) != base
    assert batch_token("t.rates", [rec(0, 1), rec(0, 2)]) != base


# -- retry schedule ------------------------------------------------------------------------------


def test_retry_waits_start_at_half_a_second_and_double_up_to_the_cap() -> None:
    assert list(islice(retry_delays_s(30), 9)) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert list(islice(retry_delays_s(1), 4)) == [0.5, 1, 1, 1]


def test_retry_waits_stay_finite_over_a_long_outage() -> None:
    delays = list(islice(retry_delays_s(30), 5000))  # ~40 h of outage at the cap
    assert max(delays) == 30 and delays[-1] == 30


class FlakyTopics:
    """Stands in for `SinkService._write_topic`: each topic fails its first `failures[topic]` writes."""

    def __init__(self, failures: dict[str, int]):
        self.failures = dict(failures)
        self.calls: list[str] = []

    async def __call__(self, topic: str, records: list[Any]) -> None:
        self.calls.append(topic)
        if self.failures.get(topic, 0) > 0:
            self.failures[topic] -= 1
            raise ClickHouseError(f"{topic} down")


def sink(settings: Settings = SETTINGS, faults: FaultPlan | None = None) -> tuple[SinkService, CollectorRegistry]:
    registry = CollectorRegistry()
    return SinkService(settings, PipelineMetrics(registry), faults=faults), registry


def fast_schedule(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make the sink's waits tiny; returns the caps the sink asked the schedule for."""
    caps: list[float] = []

    def delays(cap_s: float) -> Iterator[float]:
        caps.append(cap_s)
        while True:
            yield 0.001

    monkeypatch.setattr(service, "retry_delays_s", delays)
    return caps


def test_a_failing_write_is_retried_until_it_succeeds_without_rewriting_what_was_written(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caps = fast_schedule(monkeypatch)

    async def run() -> tuple[bool, list[str], CollectorRegistry]:
        s, registry = sink()
        flaky = FlakyTopics({"t.dead-letter": 3})
        monkeypatch.setattr(s, "_write_topic", flaky)
        batch = {TopicPartition("t.valid", 0): [rec(0, 1)], TopicPartition("t.dead-letter", 0): [rec(0, 1)]}
        ok = await s._write_with_retry(batch)
        return ok, flaky.calls, registry

    with caplog.at_level(logging.WARNING, logger="psmon.sinks.service"):
        ok, calls, registry = asyncio.run(run())
    assert ok
    assert calls == ["t.valid", "t.dead-letter", "t.dead-letter", "t.dead-letter", "t.dead-letter"]
    assert caps == [SETTINGS.sink_retry_max_backoff_s]
    assert registry.get_sample_value("psmon_clickhouse_errors_total") == 3
    assert registry.get_sample_value("psmon_clickhouse_up") == 1
    assert sum("ClickHouse write failed" in r.getMessage() for r in caplog.records) == 3


def test_a_stop_during_the_backoff_gives_the_batch_up_uncommitted(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> tuple[bool, list[str], CollectorRegistry]:
        s, registry = sink()
        flaky = FlakyTopics({"t.valid": 1})
        monkeypatch.setattr(s, "_write_topic", flaky)
        s._stopping.set()
        ok = await s._write_with_retry({TopicPartition("t.valid", 0): [rec(0, 1)]})
        return ok, flaky.calls, registry

    ok, calls, registry = asyncio.run(run())
    assert not ok and calls == ["t.valid"]
    assert registry.get_sample_value("psmon_clickhouse_up") == 0


# -- decoding ------------------------------------------------------------------------------------


def test_decode_skips_and_logs_a_foreign_record_and_keeps_the_good_ones(caplog: pytest.LogCaptureFixture) -> None:
    records = [rec(0, 1, valid_bytes("a")), rec(0, 2, b"not json"), rec(3, 9, b'{"x": 1}'), rec(0, 3, valid_bytes("b"))]
    with caplog.at_level(logging.ERROR, logger="psmon.sinks.service"):
        out: list[ValidRecord] = _decode(records, decode_valid)
    assert [r.event.event_id for r in out] == ["a", "b"]
    skipped = [r.getMessage() for r in caplog.records if "skipping unreadable record" in r.getMessage()]
    assert len(skipped) == 2
    assert "t.valid[0]@2" in skipped[0] and "t.valid[3]@9" in skipped[1]


def test_decode_of_an_empty_value_is_skipped_not_fatal() -> None:
    assert _decode([rec(0, 1, b"")], orjson.loads) == []


# -- one write: token, fault points -------------------------------------------------------------


class RecordingWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], str]] = []

    def write_events(self, items: list[Any], *, token: str) -> int:
        self.calls.append((items, token))
        return len(items)


def write_valid(
    s: SinkService, writer: RecordingWriter, batches: list[list[ConsumerRecord[bytes, bytes]]]
) -> list[int]:
    """Write each batch to `t.valid` through the sink; returns the number of writes after each batch."""

    async def run() -> list[int]:
        s._writer = writer  # type: ignore[assignment]
        done = []
        try:
            for records in batches:
                await s._write_topic("t.valid", records)
                done.append(len(writer.calls))
        finally:
            s._executor.shutdown()
        return done

    return asyncio.run(run())


def test_a_write_carries_the_batch_token_and_the_decoded_events() -> None:
    s, registry = sink()
    writer = RecordingWriter()
    records = [rec(1, 8, valid_bytes("b")), rec(0, 4, valid_bytes("a"))]
    write_valid(s, writer, [records])
    [(items, token)] = writer.calls
    assert token == "t.valid/0:4-4,1:8-8"
    assert [r.event.event_id for r in items] == ["b", "a"]
    assert registry.get_sample_value("psmon_sink_rows_total", {"table": "events"}) == 2


def test_the_sink_crash_point_fires_after_the_nth_write_not_before() -> None:
    kills: list[int] = []
    s, _ = sink(faults=FaultPlan(sink_crash_after_writes=2, kill=lambda: kills.append(len(writer.calls))))
    writer = RecordingWriter()
    write_valid(s, writer, [[rec(0, 1, valid_bytes("a"))], [rec(0, 2, valid_bytes("b"))]])
    assert kills == [2]  # once the second batch is written (and before anything could commit it)


def test_the_fault_file_fails_the_write_before_clickhouse_sees_it(tmp_path: Path) -> None:
    fault = tmp_path / "down"
    fault.touch()
    s, _ = sink(faults=FaultPlan(clickhouse_fault_file=str(fault)))
    writer = RecordingWriter()
    with pytest.raises(ClickHouseError, match="fault injected"):
        write_valid(s, writer, [[rec(0, 1, valid_bytes("a"))]])
    assert writer.calls == []


def test_the_sink_has_no_fault_unless_given_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PSMON_TEST_SINK_CRASH_AFTER_WRITES", "PSMON_TEST_CLICKHOUSE_FAULT_FILE"):
        monkeypatch.delenv(name, raising=False)
    asked = Settings(test_sink_crash_after_writes=3, test_clickhouse_fault_file="/f")
    # The CLI builds the plan from the test settings; a sink built without one has no fault.
    assert sink(asked)[0].faults == FaultPlan.none()
    plan = FaultPlan.from_settings(asked)
    assert plan == FaultPlan(sink_crash_after_writes=3, clickhouse_fault_file="/f")
    assert sink(asked, faults=plan)[0].faults == plan


# -- filling a batch ------------------------------------------------------------------------------
Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Polls:
    """Stands in for `getmany`: hands out `chunks` one per call (honouring `max_records`), then
    nothing, after waiting the timeout as the consumer would."""

    def __init__(self, chunks: list[int], partitions: int = 2):
        self.chunks = chunks
        self.partitions = partitions
        self.next_offset = 0
        self.calls: list[int] = []

    async def __call__(self, *, timeout_ms: int, max_records: int) -> Batch:
        self.calls.append(max_records)
        if not self.chunks:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        n = min(self.chunks.pop(0), max_records)
        out: Batch = {}
        for _ in range(n):
            p = self.next_offset % self.partitions
            out.setdefault(TopicPartition("t.valid", p), []).append(rec(p, self.next_offset))
            self.next_offset += 1
        return out


def offsets(batch: Batch) -> list[int]:
    return sorted(r.offset for records in batch.values() for r in records)


def test_a_batch_is_filled_from_several_polls_up_to_the_batch_size() -> None:
    polls = Polls([300, 300, 300, 300, 300])
    batch = asyncio.run(take_batch(polls, max_rows=1000, wait_ms=60_000, stopping=asyncio.Event()))
    assert offsets(batch) == list(range(1000))  # never more than the batch size, nothing skipped
    assert polls.calls == [1000, 700, 400, 100]  # each poll asks only for what is missing
    for tp, records in batch.items():  # each partition's records stay in offset order
        assert [r.offset for r in records] == sorted(r.offset for r in records), tp


def test_a_partial_batch_is_written_once_the_flush_interval_has_passed() -> None:
    polls = Polls([5, 3])
    batch = asyncio.run(take_batch(polls, max_rows=1000, wait_ms=50, stopping=asyncio.Event()))
    assert offsets(batch) == list(range(8))
    assert len(polls.calls) >= 3  # it did wait for more before giving up


def test_nothing_to_take_is_an_empty_batch_after_one_poll() -> None:
    polls = Polls([])
    assert asyncio.run(take_batch(polls, max_rows=1000, wait_ms=10, stopping=asyncio.Event())) == {}
    assert polls.calls == [1000]


def test_a_stopping_sink_does_not_wait_to_fill_the_batch() -> None:
    stopping = asyncio.Event()
    stopping.set()
    polls = Polls([5, 5])
    batch = asyncio.run(take_batch(polls, max_rows=1000, wait_ms=60_000, stopping=stopping))
    assert offsets(batch) == list(range(5)) and polls.calls == [1000]
