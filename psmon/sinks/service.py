"""Stage 3, the history sink: Kafka → ClickHouse in batches, offsets committed after the write.

Protocol, per poll:
1. `getmany` is polled until it has returned `sink_batch_max_rows` records from `psmon.valid`,
   `psmon.dead-letter` and `psmon.rates`, or for `sink_flush_interval_ms` after the first ones
   (`take_batch`; auto-commit is off).
2. Records are grouped by topic and written, one INSERT per topic, each with an
   `insert_deduplication_token` naming its exact partition/offset ranges.
   Events go in at most once per `event_id` (the writer drops ids already stored before it
   inserts), so the raw table and every rollup fed from it by materialized views count each
   event once, whatever the redelivery looks like (see `clickhouse/writer.py`).
3. Only when every insert succeeded are the next offsets committed to Kafka.
If an insert fails transiently (connection, timeout, overload: `client.is_permanent_error` is
false), nothing is committed: the sink keeps the batch, stops consuming (no new polls, so Kafka
holds the backlog), retries with exponential backoff up to `sink_retry_max_backoff_s`, and
reports `psmon_clickhouse_up 0` and `psmon_clickhouse_errors_total` (and a warning in the log per
attempt). Stages 1 and 2 do not wait for it: live rates and alerts carry on.

If an insert fails with a data error (a row ClickHouse cannot store: an integer beyond its
column, a time beyond DateTime64), retrying cannot help and would stop every write behind that
row for good. The writer bisects the batch instead (`writer.write_isolating`) and writes every
good row; each refused event becomes a dead letter with reason `unstorable` (redacted, its id
from the event's content, as `psmon replay` names it: `writer.unstorable_letters`), written
before the commit and counted in
`psmon_events_invalid_total{reason="unstorable"}` and `psmon_sink_rows_unstorable_total{table}`.
A refused dead letter or rate snapshot cannot be dead-lettered in turn: it is logged, counted in
`psmon_sink_rows_unstorable_total` and dropped. Then the batch is committed as usual. ClickHouse
is healthy throughout, so `psmon_clickhouse_up` stays 1 and `psmon_clickhouse_errors_total` does
not move.

Why this is exact: a crash (or SIGKILL) at any point re-delivers from the last commit. Between
write and commit is the dangerous moment (the sink's crash point of `psmon.faults` sits there):
the re-delivered events are found already stored and skipped, dead letters and rate snapshots
replace themselves by key, and an INSERT retried with identical rows is dropped whole by its
deduplication token. So 0 lost (nothing committed before it is stored) and 0 counted twice.

This stage uses aiokafka directly instead of a Faust agent: it needs "commit exactly these
offsets after this write", while Faust acks by loop progress and commits on a timer
(and has known commit gaps, faust-streaming #606). chDB calls run on one executor thread so the
event loop, and with it the consumer's heartbeats, never blocks on an insert.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from psmon.faults import FaultPlan
from psmon.kafka import group_consumer
from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import DeadLetter, decode_dead_letter
from psmon.schemas.normalized import decode_valid
from psmon.schemas.validation import UNSTORABLE
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import ClickHouseExecutor, connect
from psmon.sinks.clickhouse.schema import migrate, migrate_configured
from psmon.sinks.clickhouse.writer import (
    ClickHouseWriter,
    IsolatedWrite,
    Refused,
    unstorable_letters,
    write_isolating,
)

__all__ = ["SinkService", "batch_token", "retry_delays_s", "take_batch"]

log = logging.getLogger(__name__)


def batch_token(topic: str, records: Sequence[ConsumerRecord[bytes, bytes]]) -> str:
    """Deterministic id of a batch: its topic and per-partition first-last offsets."""
    ranges: dict[int, list[int]] = {}
    for r in records:
        lo_hi = ranges.setdefault(r.partition, [r.offset, r.offset])
        lo_hi[0] = min(lo_hi[0], r.offset)
        lo_hi[1] = max(lo_hi[1], r.offset)
    parts = ",".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(ranges.items()))
    return f"{topic}/{parts}"


Poll = Callable[..., Awaitable[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]]


async def take_batch(
    poll: Poll, *, max_rows: int, wait_ms: int, stopping: asyncio.Event
) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """One batch to write: polls (`getmany`) until `max_rows` records or `wait_ms` after the
    first ones arrived, whichever comes first; empty if nothing came within `wait_ms`.

    A single `getmany` returns whatever the fetcher holds, often a few hundred records while the
    worker is producing; each INSERT then makes a part in `events` and in every rollup fed from
    it, a fixed cost that dominated the sink's CPU in the end-to-end benchmark. Filling the batch
    for up to the flush interval makes fewer, larger writes; a record waits at most that long
    more before it is written (live rates and alerts do not wait for the sink)."""
    batch = await poll(timeout_ms=wait_ms, max_records=max_rows)
    rows = sum(len(records) for records in batch.values())
    if not rows:
        return batch
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    while rows < max_rows and not stopping.is_set():
        left_ms = int((deadline - loop.time()) * 1000)
        if left_ms <= 0:
            break
        for tp, records in (await poll(timeout_ms=left_ms, max_records=max_rows - rows)).items():
            batch.setdefault(tp, []).extend(records)  # in offset order: a poll continues the last
            rows += len(records)
    return batch


def retry_delays_s(cap_s: float) -> Iterator[float]:
    """Waits between attempts of a failing write: 0.5 s first, then doubled each time up to `cap_s`."""
    delay_s = 0.5
    while True:
        yield delay_s
        delay_s = min(delay_s * 2, cap_s)


class SinkService(Service):
    """Consumes the derived topics and writes them to ClickHouse (see module docstring).

    `faults` is what the CLI builds from the test settings, and no fault at all when not given."""

    def __init__(self, settings: Settings, metrics: PipelineMetrics, *, faults: FaultPlan | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.faults = FaultPlan.none() if faults is None else faults
        self._executor = ClickHouseExecutor()
        self._writer: ClickHouseWriter | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writes = 0

    async def on_start(self) -> None:
        s = self.settings
        client = await self._executor.run(connect, s.resolved_clickhouse_dsn)
        applied = await self._executor.run(migrate, client, s.clickhouse_database)
        if applied:
            # A schema this sink created or upgraded gets the configured TTLs; an existing one
            # keeps what `psmon migrate` set (a sink started with other settings must not undo it).
            await self._executor.run(migrate_configured, client, s)
            log.info("ClickHouse schema migrated to version %d", applied[-1].version)
        self._writer = ClickHouseWriter(client, database=s.clickhouse_database)
        self._consumer = group_consumer(
            s,
            "sink",
            max_poll_interval_ms=3_600_000,  # a ClickHouse outage pauses polling, not membership
            max_poll_records=s.sink_batch_max_rows,
        )
        self._consumer.subscribe([s.topic_valid, s.topic_dead_letter, s.topic_rates], listener=_Assigned(self))
        await self._consumer.start()
        self.metrics.clickhouse_up.set(1)

    async def report_committed(self, partitions: list[TopicPartition]) -> None:
        """Show the group's committed offsets of newly assigned partitions, so an idle sink
        (nothing new since its predecessor's last commit) still reports where it stands."""
        assert self._consumer is not None
        for tp in partitions:
            try:
                offset = await self._consumer.committed(tp)
            except KafkaError as exc:  # a metric is not worth failing the rebalance over
                log.warning("cannot read the committed offset of %s: %s", tp, exc)
                continue
            if offset is not None:
                self.metrics.sink_committed_offset.labels(tp.topic, str(tp.partition)).set(offset)

    async def on_stop(self) -> None:
        self._stopping.set()
        try:  # let an in-flight batch finish its write and commit
            await asyncio.wait_for(self._idle.wait(), timeout=15)
        except TimeoutError:
            log.warning("sink stopped with a batch in flight; it will be re-delivered")
        if self._consumer is not None:
            await self._consumer.stop()
        self._executor.shutdown()

    @Service.task
    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            batch = await take_batch(
                consumer.getmany,
                max_rows=self.settings.sink_batch_max_rows,
                wait_ms=self.settings.sink_flush_interval_ms,
                stopping=self._stopping,
            )
            if not batch or self._stopping.is_set():
                continue
            self._idle.clear()
            try:
                if await self._write_with_retry(batch):
                    await self._commit(batch)
            finally:
                self._idle.set()

    async def _write_with_retry(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> bool:
        """Write every topic of the batch; retry until success. False if stopped first."""
        by_topic: dict[str, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
        for tp, records in batch.items():
            by_topic[tp.topic].extend(records)
        pending = dict(by_topic)
        delays_s = retry_delays_s(self.settings.sink_retry_max_backoff_s)
        backoff_s = next(delays_s)
        while pending:
            for topic in list(pending):
                try:
                    await self._write_topic(topic, pending[topic])
                    del pending[topic]
                except Exception as exc:  # any ClickHouse/driver failure: keep the batch, back off
                    self.metrics.clickhouse_errors.inc()
                    self.metrics.clickhouse_up.set(0)
                    log.warning("ClickHouse write failed (%s); retrying in %.1f s", exc, backoff_s)
                    break
            if pending:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff_s)
                    return False
                except TimeoutError:
                    backoff_s = next(delays_s)
        self.metrics.clickhouse_up.set(1)
        return True

    async def _write_topic(self, topic: str, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        assert self._writer is not None
        s, w = self.settings, self._writer
        token = batch_token(topic, records)
        write: Callable[..., int]
        table: str
        if topic == s.topic_valid:
            items: list[Any] = _decode(records, decode_valid)
            write, table = w.write_events, "events"
        elif topic == s.topic_dead_letter:
            items = _decode(records, decode_dead_letter)
            write, table = w.write_dead_letters, "dead_letters"
        else:
            items = [row for rows in _decode(records, orjson.loads) for row in rows]
            write, table = w.write_rates, "rate_snapshots"
        with self.metrics.sink_batch_seconds.time():
            result = await self._executor.run(self._write_or_fault, write, items, token)
        n = result.written
        self.metrics.sink_rows.labels(table).inc(n)
        if table == "events":
            self.metrics.sink_skipped.labels(table).inc(len(items) - n - len(result.refused))
        self.metrics.sink_batch_rows.observe(n)
        if result.refused:
            await self._set_aside(table, result.refused, token)
        self._writes += 1
        self.faults.after_sink_write(self._writes)  # written, not committed: the dangerous moment

    def _write_or_fault(self, write: Callable[..., int], items: list[Any], token: str) -> IsolatedWrite[Any]:
        def attempt(part: Sequence[Any], part_token: str) -> int:
            self.faults.check_clickhouse()  # the injected outage is transient: it propagates
            return write(part, token=part_token)

        return write_isolating(attempt, items, token)

    async def _set_aside(self, table: str, refused: list[Refused[Any]], token: str) -> None:
        """Rows refused as data errors: events become `unstorable` dead letters, the rest is dropped."""
        assert self._writer is not None
        self.metrics.sink_unstorable.labels(table).inc(len(refused))
        if table != "events":
            for r in refused:
                log.error("dropping a %s row that ClickHouse cannot store (%s): %s", table, r.error, _row_name(r.item))
            return
        letters = unstorable_letters(refused)  # logged there; ids from the event's content
        result = await self._executor.run(
            self._write_or_fault, self._writer.write_dead_letters, letters, f"{token}/{UNSTORABLE}"
        )
        self.metrics.invalid.labels(UNSTORABLE).inc(len(letters))
        self.metrics.sink_rows.labels("dead_letters").inc(result.written)
        if result.refused:
            await self._set_aside("dead_letters", result.refused, token)

    async def _commit(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        assert self._consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # Partitions moved during the write: the new owner re-reads them, and the
            # idempotent tables absorb the repeat.
            log.warning("offset commit failed after a successful write (%s); will be re-delivered", exc)
            return
        for tp, offset in offsets.items():
            self.metrics.sink_committed_offset.labels(tp.topic, str(tp.partition)).set(offset)


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: SinkService):
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._sink.report_committed(list(assigned))


def _row_name(item: Any) -> str:
    """How a refused dead letter or rate row is named in the log: its key, never its values."""
    if isinstance(item, DeadLetter):
        return f"dead letter {item.dead_letter_id}"
    if isinstance(item, dict):
        return f"rate snapshot {item.get('province_code')}/{item.get('metric')}/{item.get('window')}"
    return type(item).__name__


def _decode(records: list[ConsumerRecord[bytes, bytes]], decode: Callable[[bytes], Any]) -> list[Any]:
    out = []
    for r in records:
        try:
            out.append(decode(r.value or b""))
        except (ValueError, KeyError, TypeError) as exc:
            # Only psmon writes these topics; a foreign record is logged and skipped, not fatal.
            log.error("skipping unreadable record %s[%d]@%d: %s", r.topic, r.partition, r.offset, exc)
    return out
