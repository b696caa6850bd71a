"""Stage 1, validate: `psmon.events` → `psmon.valid` / `psmon.dead-letter`, batch by batch.

Each message of `psmon.events` is validated (`validate_stream`, in batches) and sent either to `psmon.valid`
(normalized, keyed by its 34-province code) or to `psmon.dead-letter` (reason + redacted payload,
keyed by the reason), both carrying the message's source coordinates (partition, offset,
timestamp). Two tasks, a pipeline of at most `BATCHES_IN_FLIGHT` batches between them:

    batch loop:  getmany (up to `validate_batch_max_events`) → validate and encode all, each
                 output appended to its partition's record batch → send the record batches →
                 hand the batch (its acks and next offsets) to the settle task
    settle task: await the oldest batch's acks → commit the next offsets of every batch
                 acknowledged by then (in order) → count them as processed

It runs as a mode `Service` of the Faust worker (`app.run_worker`), like stage 2's
`RatesService`: Faust stays the runtime (app, worker lifecycle, signals, logging, the services'
start and stop), but the hot loop consumes with its own aiokafka consumer, in the group
`<app_id>-validate`, instead of a Faust agent.

Why not a Faust agent. The agent (`stream.take_events` batches, outputs handed straight to the
producer, one wait for the acks per batch) ran at a sixth of the same job done with plain
aiokafka (`benchmarks/same_job.py`), measured in the same run (docs/performance.md has the
tables and commands). py-spy of that worker on the 200,000-event benchmark corpus (15 s at
200 Hz, `--threads`; its event loop thread was busy 96% of the time), share of the loop thread:

    Faust's fetcher handing messages to streams (Consumer._drain_messages)   37%
      of which mode's Service.wait_first creating a task per call            29%
    Faust's conductor callback and stream iteration per event                13%
    the agent's own work (validate_event 8%, Faust's Producer.send 6%)      16%
    debug records made for Faust's terminal spinner (see shutdown.py)         6%
    stage 2 (RatesService: consume 6%, gauge refresh 4%)                     11%

Validation, the job, was 8%; Faust's per-event machinery four to five times that. A batch from
`getmany` costs one call for up to `validate_batch_max_events` records. The same profile of
this service (100 Hz, non-blocking; the loop thread busy 95% of the time):

    stage 1 (ValidateService._process)                                       53%
      validate_event                                                         28%
      aiokafka's producer send (partitioner, accumulator)                    14%
      waiting for the batch's acknowledgements (asyncio.gather)               6%
    stage 2 (RatesService: decode_valid 11%, LiveRates.observe 16%)          30%
    Faust (its app and consumer thread, which only follows its leader topic)  1%

The job (validation, encoding, producing, counting) is now the profile; what remains is the
Kafka client's per-message cost, the same as in the plain program.

Why a pipeline. With the loop waiting for its batch's acknowledgements and commit before the
next `getmany` (as `benchmarks/same_job.py` does), the worker ran at 0.80x the same-job
baseline on a quiet machine, both far below their CPU ceilings. Each await timed with
perf_counter over the 200,000-event benchmark corpus (`getmany`, `commit`, the batch's
`asyncio.gather` of acks, aiokafka's `Sender._send_produce_req`; 2026-11-30, shared machine):

    per 2,000-event batch                  worker   same-job (plain aiokafka)
    waiting for the batch's acks           125 ms     83 ms
    its commit                              76 ms     38 ms
    getmany                                 31 ms     11 ms
    produce requests                         2        1.7   (1 MiB each at most, one at a time)
    validating and encoding it (CPU ceiling of stage 1, 75,000 ev/s): 27 ms

Stage 1 spent three quarters of its time waiting for the broker (the local one shares the two
cores), one round trip after another, while its own work on a batch took a tenth. The batch loop
now validates and sends the next batches while the broker acknowledges earlier ones; the
commits follow in order on their own task, one commit for every batch acknowledged by then.
The guarantees are unchanged (below); what the pipeline costs is a crash's redelivery window,
up to `BATCHES_IN_FLIGHT` batches instead of one. A produce request now carries up to
`PRODUCER_MAX_REQUEST_BYTES` (aiokafka keeps one in flight per broker; at the default 1 MiB a
batch needed two, one after the other).

Delivery (at-least-once, docs/delivery.md):
- an input offset is committed only after the broker acknowledged every output of its batch
  and of every batch before it (`acks=all`; the settle task takes them in order); a send that
  fails raises out of the settle task before that commit and crashes the service (mode), so
  neither that batch nor any later one is committed, and they are re-read after a restart;
- a crash re-validates from the last commit; the re-sent outputs carry the same source
  coordinates, so stage 2 absorbs them as redeliveries and stage 3 writes each event_id once. For
  the same reason stage 1 counts nothing a crash would make it count again: dead letters are
  counted by stage 2 from the dead-letter log (`live.py`); `processed{stage="validate"}` counts
  batches acknowledged and committed, a per-process progress count;
- a rebalance waits for every batch sent (the revocation listener takes the batch lock, so no
  further batch is sent, and waits for `settled()`), so the partitions leave with everything
  sent acknowledged and committed; a commit refused because the group moved on is logged, and
  the new owner re-validates those inputs (at-least-once);
- a stop (SIGTERM) lets the batch loop finish its batch and the settle task commit every batch
  sent before the consumer leaves.
The fault plan's `after_validated(n)` runs after each event is validated and its output
appended, before its batch is sent, acknowledged and committed: the delivery tests SIGKILL the
worker there.

Offsets: the group is `<app_id>-validate`, not Faust's `<app_id>` (the Faust app's own consumer
still joins that one for its leader topic, with Faust's assignor, which a second consumer in the
same group could not share). A partition this group has never committed starts where the
Faust agent of earlier versions stopped, at the offset committed in `<app_id>` if there is one
(else at the earliest retained offset, as a new group does): an upgrade neither re-validates
what was done nor skips what was not. The assignment listener pauses the new partitions while
it looks those offsets up: aiokafka lets `getmany` serve an assignment before its listener
returns, and would otherwise start a fresh partition at its earliest offset meanwhile.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from mode import Service

from psmon.faults import FaultPlan
from psmon.kafka import KafkaAuth, group_consumer
from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import encode_dead_letter
from psmon.schemas.normalized import encode_valid
from psmon.schemas.validation import ValidEvent, validate_stream
from psmon.settings import Settings

__all__ = ["ValidateService"]

log = logging.getLogger(__name__)

#: Producer batch per partition: one produce request carries a whole consumer batch's outputs.
PRODUCER_MAX_BATCH_BYTES = 512 * 1024
#: Produce request: aiokafka keeps one in flight per broker, so while the broker acknowledges one
#: the next fills up; at the default 1 MiB a request held about half of a 2,000-event batch.
PRODUCER_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024

#: Batches sent but not yet committed, at most: the batch loop validates the next batch while
#: the broker acknowledges these. Also the bound on what a crash makes stage 1 re-send
#: (`validate_batch_max_events` times this), all of it absorbed downstream as redeliveries.
BATCHES_IN_FLIGHT: Final = 4

_PARTITIONER: Final = DefaultPartitioner()


@dataclass
class _Sent:
    """A batch whose outputs are sent: its acknowledgements, its inputs' next offsets, its size."""

    acks: asyncio.Future[list[Any]]
    offsets: dict[TopicPartition, int]
    events: int


class _Outputs:
    """One consumer batch's outputs, as one aiokafka record batch (`BatchBuilder`) per output
    partition, then sent with `send_batch`: one future per record batch, not per message.

    The partition of a key is the one `AIOKafkaProducer.send` would choose (its default
    partitioner, murmur2 over the partitions sorted by id), so the outputs land exactly where
    they did when each was sent alone; it is computed once per key and partition count
    (`partitions`, shared across batches): the keys are the 34 province codes and the reasons."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[tuple[str, bytes, int], int]):
        self._producer = producer
        self._partitions = partitions
        self._open: dict[tuple[str, int], BatchBuilder] = {}
        self._full: list[tuple[str, int, BatchBuilder]] = []

    async def topic(self, topic: str) -> Callable[[bytes, bytes], None]:
        """An `add(key, value)` for `topic`: appends to the record batch of the key's partition."""
        ids = sorted(await self._producer.partitions_for(topic))
        count = len(ids)
        partitions, open_batches, full = self._partitions, self._open, self._full

        def add(key: bytes, value: bytes) -> None:
            partition = partitions.get((topic, key, count))
            if partition is None:
                partition = partitions[(topic, key, count)] = _PARTITIONER(key, ids, ids)
            builder = open_batches.get((topic, partition))
            if builder is None:
                builder = open_batches[(topic, partition)] = self._producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                # Full (PRODUCER_MAX_BATCH_BYTES): sent before the partition's next one. An empty
                # builder always takes its first record, whatever its size (aiokafka's record
                # batch format), so the append below cannot be refused.
                full.append((topic, partition, builder))
                builder = open_batches[(topic, partition)] = self._producer.create_batch()
                builder.append(key=key, value=value, timestamp=None)

        return add

    async def send(self) -> list[asyncio.Future[Any]]:
        """Send every record batch; returns their acknowledgements, in the order sent."""
        # A partition's full batches were filled before its open one: sent first, in order.
        batches = self._full + [(topic, partition, builder) for (topic, partition), builder in self._open.items()]
        self._full.clear()
        self._open.clear()
        send_batch = self._producer.send_batch
        return [await send_batch(builder, topic, partition=partition) for topic, partition, builder in batches]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: "ValidateService"):
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Every batch sent is acknowledged and committed before the partitions may move; the
        # lock keeps the batch loop from sending another meanwhile.
        async with self._service.batch_lock:
            await self._service.settled()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.on_assigned(assigned)


class ValidateService(Service):
    """Stage 1's batch loop (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics,
        *,
        faults: FaultPlan | None = None,
        after: asyncio.Event | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._after = after
        self.settings = settings
        self.metrics = metrics
        self.faults = FaultPlan.none() if faults is None else faults
        self.batch_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loop_running = False
        self._loop_done = asyncio.Event()
        self._validated = 0
        # Batches sent, oldest first, until committed (`_settle`); `_unsettled_changed` wakes
        # the settle task (a batch was added) and whoever waits for room or for `settled()`.
        self._unsettled: deque[_Sent] = deque()
        self._unsettled_changed = asyncio.Event()
        self._settle_failed = False
        # (topic, key, partition count) → partition: see `_Outputs`.
        self._partitions: dict[tuple[str, bytes, int], int] = {}

    async def _open(self) -> None:
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap,
            client_id=f"{s.app_id}-validate",
            acks="all",
            max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            max_request_size=PRODUCER_MAX_REQUEST_BYTES,
            **KafkaAuth.from_settings(s).aiokafka(),
        )
        await self._producer.start()
        self._consumer = group_consumer(
            s, "validate", max_poll_records=s.validate_batch_max_events, fetch_max_wait_ms=s.fetch_max_wait_ms
        )
        self._consumer.subscribe([s.topic_events], listener=_Rebalance(self))
        await self._consumer.start()

    async def on_stop(self) -> None:
        # mode calls on_stop before it cancels the tasks: let the batches sent be committed.
        if self._loop_running:
            await self._loop_done.wait()
        await self.settled()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Partitions this group has never committed start where the Faust agent's group stopped."""
        assert self._consumer is not None
        consumer = self._consumer
        # Paused before the first await, until seeded: aiokafka hands the new assignment to the
        # fetcher (and `getmany`) before it calls this listener, and while the lookups below
        # wait for the broker the fetcher would start a fresh partition at its earliest offset;
        # the batch loop would then re-validate, and commit, what the agent had done.
        consumer.pause(*assigned)
        try:
            fresh = [tp for tp in assigned if await consumer.committed(tp) is None]
            if not fresh:
                return
            legacy = await self._legacy_offsets(fresh)
            for tp, offset in sorted(legacy.items()):
                consumer.seek(tp, offset)
            if legacy:
                log.info("stage 1 continues from the offsets of group %s: %s", self.settings.app_id, legacy)
        finally:
            consumer.resume(*assigned)

    async def _legacy_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Offsets the Faust agent of earlier versions committed, in the group `<app_id>`."""
        s = self.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, **KafkaAuth.from_settings(s).aiokafka())
        await admin.start()
        try:
            found = await admin.list_consumer_group_offsets(s.app_id, partitions=partitions)
        finally:
            await admin.close()
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    @Service.task
    async def _validate(self) -> None:
        self._loop_running = True
        try:
            # `after` (stage 2's first assignment) first: its partitions go live on the log as it
            # is, not on a log that stage 1 fills while they catch up (see app.py).
            if self._after is not None and await self.wait_for_stopped(self._after.wait()):
                return
            await self._open()
            await self._run()
        finally:
            self._loop_done.set()

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        max_records = self.settings.validate_batch_max_events
        while not self.should_stop:
            # Room in the pipeline first, so no fetched batch waits while the broker catches up.
            while len(self._unsettled) >= BATCHES_IN_FLIGHT:
                if await self.wait_for_stopped(self._changed()):
                    return
            batch = await consumer.getmany(timeout_ms=200, max_records=max_records)
            if not batch:
                continue
            async with self.batch_lock:
                await self._process(batch)

    async def _changed(self) -> None:
        """Until `_unsettled` changes (a batch added or committed) or the settle task failed."""
        self._unsettled_changed.clear()
        await self._unsettled_changed.wait()

    async def settled(self) -> None:
        """Until every batch sent is committed (or the settle task failed: nothing more will be)."""
        while self._unsettled and not self._settle_failed:
            await self._changed()

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> int:
        """Validate a batch, send its outputs as one record batch per output partition, and
        hand it to the settle task; returns the number of events."""
        assert self._producer is not None
        s = self.settings
        after_validated = self.faults.after_validated
        outputs = _Outputs(self._producer, self._partitions)
        valid = await outputs.topic(s.topic_valid)
        dead = await outputs.topic(s.topic_dead_letter)
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            src_partition = tp.partition
            # aiokafka timestamps are ms; validation takes the record time in seconds
            verdicts = validate_stream([r.value or b"" for r in records], [r.timestamp / 1000 for r in records])
            for r, verdict in zip(records, verdicts, strict=True):
                if isinstance(verdict, ValidEvent):
                    valid(
                        verdict.province_code.encode(),
                        encode_valid(verdict, src_partition=src_partition, src_offset=r.offset, src_ts_ms=r.timestamp),
                    )
                else:
                    # Keyed by reason: a reason's letters share a partition, so its count in stage 2
                    # has one owner, and every copy of a letter lands where the first one did.
                    dead(
                        verdict.reason.encode(),
                        encode_dead_letter(
                            verdict, src_partition=src_partition, src_offset=r.offset, src_ts_ms=r.timestamp
                        ),
                    )
                self._validated += 1
                after_validated(self._validated)  # validated, maybe not sent; input not committed
            if records:
                offsets[tp] = records[-1].offset + 1
        acks = await outputs.send()
        events = sum(len(records) for records in batch.values())
        self._unsettled.append(_Sent(asyncio.gather(*acks), offsets, events))
        self._unsettled_changed.set()
        return events

    @Service.task
    async def _settle(self) -> None:
        """Commit the batches sent, in order, each once every output of it and of the batches
        before it is acknowledged; one commit covers every batch acknowledged by then.

        Not stopped by `should_stop`: a stop lets it commit what was sent (`on_stop` waits for
        `settled()`); mode cancels it afterwards. A failed send raises out of it before any later
        offset is committed, and crashes the service (mode)."""
        processed = self.metrics.processed.labels("validate")
        try:
            while True:
                if not self._unsettled:
                    await self._changed()
                    continue
                await self._unsettled[0].acks
                offsets: dict[TopicPartition, int] = {}
                events = done = 0
                for sent in self._unsettled:
                    if not sent.acks.done():
                        break
                    sent.acks.result()  # a failed send raises here, before its offsets are committed
                    offsets |= sent.offsets
                    events += sent.events
                    done += 1
                await self._commit(offsets)
                for _ in range(done):
                    self._unsettled.popleft()
                self._unsettled_changed.set()
                processed.inc(events)
        except BaseException:
            self._settle_failed = True
            self._unsettled_changed.set()
            raise

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (a rebalance the listener could not wait for): the new owner
            # re-validates these inputs; their outputs are redeliveries downstream.
            log.warning("stage 1 commit of %s refused (%s); they will be re-validated", offsets, exc)
