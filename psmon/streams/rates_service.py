"""Stage 2, live rates: `psmon.valid` → `LiveRates`, restored from a checkpoint or rebuilt from the log.

The worker's state (rolling buckets, recent ids, per-province totals) is derived from
`psmon.valid` alone, and its dead-letter counts per reason from `psmon.dead-letter` (one
consumer reads both topics; a partition of either is handled the same way), so the rule for
correctness after a crash, a restart or a rebalance is simple: **a partition this worker did
not own a moment ago is brought to its state at some offset N, then read from N** while it is
*catching up* (counted, not exported; see `live.py`), and goes live when the consumer's position
reaches the high watermark reported by the fetch responses. N is the offset of the partition's
latest checkpoint (`checkpoint.py`; written every `checkpoint_interval_s`, when a partition is
revoked and when the worker stops) or 0 with an empty state when there is no usable checkpoint:
the full re-read, slower (~15 µs per retained record) but always correct. A partition kept
across a rebalance continues from this worker's own position. Nothing is committed: the log is
the state (checkpoints are a cache of it), the consumer group only spreads partitions over workers.
The consumer joins its group with the member id of the previous process on this data dir when
there is one (`membership.py`): a worker restarted after a SIGKILL takes its partitions back
without waiting for the dead member's session to expire.

Restore off the critical path: the join takes seconds (about half the session timeout on the
local broker) while the loop has nothing to do, and reading the checkpoints and rebuilding the
duplicate memory's sorted arrays from them costs a sort (~0.1 s for 1 M ids; when the memory
was one dict, ~1 µs per id: 0.2 s quiet, 2.7 s at load 10). So `on_start` reads the checkpoints
of the partitions this data dir's previous process held (`MemberIdFile.assignment`) on a
thread, arrays prepared, while the join is in flight; on assignment, those whose file has not
changed since are used (O(1) on the loop: the arrays are shared, never changed), the others are
read then, on the same thread. Every read happens on that one thread:
numpy parses .npy headers with ast, whose parser is not thread-safe in CPython 3.11 (concurrent
reads failed with "AST constructor recursion depth mismatch").

A checkpoint that does not belong to the log any more (the topic was re-created; the local
broker keeps topics in memory) is detected on the partition's first fetch, before any record is
applied: the consumer is positioned one record *before* the checkpoint's offset, and that record
must come back with the timestamp and value digest the checkpoint keeps for it. A high
watermark below the checkpoint's offset, another first offset (the consumer resets an
out-of-range position to the beginning) or another record means a foreign log: the restored
state is dropped, the file removed and the partition re-read from the beginning.

Why aiokafka and not a Faust agent with a Faust table: a table's changelog recovery decides it is
complete by the broker's end offsets, which the local broker reports wrongly, and Faust has open
recovery/commit races (faust-streaming #596, #606); an agent cannot seek its partitions on
assignment. Here the seek happens in the rebalance listener, before the first fetch of the new
generation, and the end of a partition is the fetch response's high watermark, which every broker
reports correctly. Horizon: the counters and windows cover what `psmon.valid` retains plus what
the checkpoints carry; production retention of that topic must cover the longest window (a year
for `ytd`) unless the checkpoints are kept (documented in docs/delivery.md).

The service also runs stage 2's timers: gauges refresh every `rates_refresh_interval_s`, rate
snapshots go to `psmon.rates` every `rates_snapshot_interval_s` (only for live provinces), and
checkpoints are written every `checkpoint_interval_s`: a partition's state is copied on the event
loop (between batches, so it is a consistent cut), its file written in a thread, one partition
after the other.
"""

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerClosed
from mode import Service

from psmon.kafka import KafkaAuth, group_consumer
from psmon.schemas.dead_letter import decode_dead_letter
from psmon.schemas.normalized import decode_valid
from psmon.settings import Settings
from psmon.streams.checkpoint import (
    Checkpoint,
    CheckpointStore,
    LetterState,
    Prefetched,
    ValidState,
    record_digest,
)
from psmon.streams.live import LiveRates
from psmon.streams.membership import MemberIdFile, member_id, start_with_member_id

__all__ = ["RatesService"]

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: "RatesService"):
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Eager rebalancing revokes everything; what is really gone is known on assignment. The
        # state is still whole here: checkpoint it, so whoever gets a partition replays little.
        await self._service.write_checkpoints()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.on_assigned(set(assigned))


class RatesService(Service):
    """Consumes `psmon.valid` into `LiveRates` (see module docstring)."""

    def __init__(self, settings: Settings, live: LiveRates, **kwargs: Any):
        super().__init__(**kwargs)
        self.settings = settings
        self.live = live
        self._owned: set[TopicPartition] = set()
        self._next_offset: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._store = CheckpointStore(settings.resolved_checkpoint_dir, app_id=settings.app_id)
        # Every checkpoint read runs on this one thread (see the module docstring).
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psmon-checkpoint-read")
        # The checkpoints read ahead during the first join, until the first assignment takes them.
        self._ahead: asyncio.Future[dict[tuple[str, int], Checkpoint]] | None = None
        # The group member id, for a successor on this data dir to take over at once (membership.py).
        self._member = MemberIdFile(settings.data_dir / "members", f"{settings.app_id}-rates")
        # partition -> offset of its checkpoint on disk (written or restored by this worker)
        self._checkpointed: dict[TopicPartition, int] = {}
        # partition -> (timestamp ms, value digest) of the last record applied to its state
        self._last: dict[TopicPartition, tuple[int, str]] = {}
        # restored partitions whose first fetch has not yet shown that the log is the
        # checkpoint's: -> the checkpoint (its offset and last record)
        self._unverified: dict[TopicPartition, Checkpoint] = {}
        self._writing = asyncio.Lock()
        self._member_id: str | None = None
        # newly assigned partitions not yet restored and positioned: their records are skipped
        self._positioning: set[TopicPartition] = set()
        #: set once the consumer has its first assignment; the worker's stage 1 waits for it
        self.assigned = asyncio.Event()

    async def on_start(self) -> None:
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=50, **KafkaAuth.from_settings(s).aiokafka()
        )
        await self._producer.start()
        self._consumer = group_consumer(s, "rates", max_poll_records=5000, fetch_max_wait_ms=s.fetch_max_wait_ms)
        # Joins as the previous process on this data dir if it died in the group, so the
        # partitions come back without waiting for its session to expire (membership.py).
        predecessor = self._member.acquire()
        topics = (s.topic_valid, s.topic_dead_letter)
        guess = [(t, p) for t, p in self._member.assignment if t in topics]
        if guess:  # read and prepared on a thread while the join is in flight
            self._ahead = asyncio.get_running_loop().run_in_executor(self._reader, self._store.prefetch, guess)
        await start_with_member_id(self._consumer, [s.topic_valid, s.topic_dead_letter], _Rebalance(self), predecessor)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self.write_checkpoints()
            await self._consumer.stop()
        self._member.release()
        self._reader.shutdown(wait=False, cancel_futures=True)
        if self._producer is not None:
            await self._producer.stop()

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Keep partitions still owned; restore or re-read new ones; forget the rest."""
        assert self._consumer is not None
        joined = member_id(self._consumer)
        if joined is not None:  # the id and this assignment, for a successor (membership.py)
            self._member_id = joined
            self._member.save(joined, [(tp.topic, tp.partition) for tp in partitions])
        valid = self.settings.topic_valid
        gone = self._owned - partitions
        if gone:
            dropped = self.live.drop_partitions({tp.partition for tp in gone if tp.topic == valid})
            self.live.drop_letter_partitions({tp.partition for tp in gone if tp.topic != valid})
            log.info("partitions %s revoked: dropped provinces %s", sorted(gone), dropped)
        new = partitions - self._owned
        for tp in partitions & self._owned:
            self._consumer.seek(tp, self._next_offset.get(tp, 0))
        for tp in gone:
            self._next_offset.pop(tp, None)
            self._checkpointed.pop(tp, None)
            self._unverified.pop(tp, None)
            self._last.pop(tp, None)
        self._owned = set(partitions)
        if not new:
            self.assigned.set()
            return
        # Until the new partitions are positioned, nothing of theirs may be counted: the fetcher
        # keeps running while this listener awaits the files (from the group's reset position).
        self._positioning |= new
        self._consumer.pause(*new)
        self.live.catch_up({tp.partition for tp in new if tp.topic == valid})
        self.live.catch_up_letters({tp.partition for tp in new if tp.topic != valid})
        try:
            loop = asyncio.get_running_loop()
            ordered = sorted(new)
            wanted = [(tp.topic, tp.partition, self._partitions(tp)) for tp in ordered]
            ahead = await self._take_ahead()
            read = functools.partial(self._store.read_many, wanted, prepare=True, ahead=ahead)
            checkpoints = await loop.run_in_executor(self._reader, read)
            reread: list[TopicPartition] = []
            for tp, found in zip(ordered, checkpoints, strict=True):
                if found is None or not self._restore(tp, found):
                    reread.append(tp)
                    continue
                # One record back: it must be the checkpoint's last record (see the module docstring).
                self._consumer.seek(tp, found.next_offset - 1)
                self._next_offset[tp] = self._checkpointed[tp] = found.next_offset
                self._unverified[tp] = found
                self._last[tp] = found.last_record
                self.live.metrics.checkpoint_restored.labels(tp.topic).inc()
                early = " (read ahead)" if found is ahead.get((tp.topic, tp.partition)) else ""
                log.info(
                    "%s[%d] restored from its checkpoint at offset %d%s",
                    tp.topic,
                    tp.partition,
                    found.next_offset,
                    early,
                )
            if reread:
                await self._consumer.seek_to_beginning(*reread)
                log.info("partitions %s assigned: re-reading them from the beginning", reread)
        finally:
            self._positioning -= new
            self._consumer.resume(*new)
            self.assigned.set()

    async def _take_ahead(self) -> Prefetched:
        """The checkpoints read ahead (waiting for the read to end), once; {} afterwards."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return {}
        try:
            return await ahead
        except Exception as exc:  # a cache of a cache: the reads at assignment still happen
            log.warning("reading the checkpoints ahead failed: %r", exc)
            return {}

    def _partitions(self, tp: TopicPartition) -> int:
        assert self._consumer is not None
        known = self._consumer.partitions_for_topic(tp.topic)
        return len(known) if known else self.settings.topic_partitions

    def _restore(self, tp: TopicPartition, found: Checkpoint) -> bool:
        """Put a checkpoint into a partition catching up; False (state dropped again) if unusable."""
        state = found.state
        if found.next_offset < 1:
            log.warning("ignoring checkpoint of %s[%d]: at offset %d", tp.topic, tp.partition, found.next_offset)
            self._forget(tp)
            return False
        try:
            if tp.topic == self.settings.topic_valid and isinstance(state, ValidState):
                self.live.restore_partition(tp.partition, state)
                return True
            if tp.topic == self.settings.topic_dead_letter and isinstance(state, LetterState):
                self.live.restore_letters(tp.partition, state)
                return True
            log.warning("ignoring checkpoint of %s[%d]: it holds another topic's state", tp.topic, tp.partition)
        except ValueError as exc:
            log.warning("ignoring checkpoint of %s[%d]: %s", tp.topic, tp.partition, exc)
        self._forget(tp)
        return False

    def _forget(self, tp: TopicPartition) -> None:
        """Drop whatever state `tp` has and count it from scratch (catching up)."""
        if tp.topic == self.settings.topic_valid:
            self.live.catch_up({tp.partition})
        else:
            self.live.catch_up_letters({tp.partition})
        self._next_offset[tp] = 0
        self._checkpointed.pop(tp, None)
        self._unverified.pop(tp, None)
        self._last.pop(tp, None)

    async def _foreign_log(self, tp: TopicPartition, why: str) -> None:
        """The restored checkpoint is not of this log (a re-created topic): re-read from 0."""
        assert self._consumer is not None
        found = self._unverified.get(tp)
        if found is None:  # revoked or assigned anew meanwhile: that assignment positioned it
            return
        log.warning(
            "%s[%d]: the checkpoint at offset %d is not of this log (%s): re-reading from the beginning",
            tp.topic,
            tp.partition,
            found.next_offset,
            why,
        )
        self._forget(tp)
        self._positioning.add(tp)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._store.discard, tp.topic, tp.partition)
            await self._consumer.seek_to_beginning(tp)
        finally:
            self._positioning.discard(tp)

    async def write_checkpoints(self) -> None:
        """Checkpoint every owned partition that moved since its last checkpoint.

        Each partition's state is copied on the loop (`_cut`, a consistent cut of that partition:
        exactly the records below its next offset), then written in a thread, before the next
        partition is copied: one partition's copies are in memory at a time, not every
        partition's (a worker's RSS peaked on them at every interval).
        """
        async with self._writing:
            loop = asyncio.get_running_loop()
            for tp in sorted(self._owned):
                checkpoint = self._cut(tp)
                if checkpoint is None:
                    continue
                offset = checkpoint.next_offset
                try:
                    size = await loop.run_in_executor(
                        None, self._store.write, tp.topic, tp.partition, self._partitions(tp), checkpoint
                    )
                except OSError as exc:  # a full or missing volume costs recovery time, not correctness
                    log.error("checkpoint of %s[%d] not written: %s", tp.topic, tp.partition, exc)
                    continue
                finally:
                    del checkpoint  # the copies go before the next partition's are taken
                self._checkpointed[tp] = offset
                log.debug("%s[%d] checkpointed at %d (%d bytes)", tp.topic, tp.partition, offset, size)

    def _cut(self, tp: TopicPartition) -> Checkpoint | None:
        """A copy of `tp`'s state with its offset, or None: not owned any more (revoked while
        another partition was written), unchanged since its checkpoint, or not verified yet."""
        offset = self._next_offset.get(tp, 0)
        last = self._last.get(tp)
        stale = tp in self._unverified or tp in self._positioning
        if tp not in self._owned or last is None or offset == self._checkpointed.get(tp) or stale:
            return None
        state = (
            self.live.partition_state(tp.partition)
            if tp.topic == self.settings.topic_valid
            else self.live.letter_state(tp.partition)
        )
        return Checkpoint(next_offset=offset, state=state, last_record=last)

    @Service.task
    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        valid = self.settings.topic_valid
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=200)
            if self.should_stop:
                break
            # No await while a batch is applied: a rebalance cannot slip in between its records.
            foreign: dict[TopicPartition, str] = {}
            for tp, records in batch.items():
                if tp in self._positioning:  # fetched before its seek: fetched again after it
                    continue
                found = self._unverified.get(tp)
                if found is not None and records:
                    first = records[0]
                    seen = (first.offset, first.timestamp, record_digest(first.value))
                    if seen != (found.next_offset - 1, *found.last_record):
                        foreign[tp] = f"first record fetched: offset, timestamp, digest {seen}"
                        continue
                    del self._unverified[tp]
                    records = records[1:]  # already in the restored state
                is_valid = tp.topic == valid
                for r in records:
                    try:
                        if is_valid:
                            self.live.observe(decode_valid(r.value or b""), partition=tp.partition)
                        else:
                            self.live.observe_letter(decode_dead_letter(r.value or b""), partition=tp.partition)
                    except (ValueError, KeyError, TypeError) as exc:
                        # Only stage 1 writes these topics; a foreign record is logged, not fatal.
                        log.error("skipping unreadable record %s[%d]@%d: %s", tp.topic, tp.partition, r.offset, exc)
                        continue
                if records:
                    last = records[-1]
                    self._next_offset[tp] = last.offset + 1
                    self._last[tp] = (last.timestamp, record_digest(last.value))
            for tp, why in foreign.items():
                await self._foreign_log(tp, why)
            await self._verify_restored(consumer)
            self._check_caught_up(consumer)
            await asyncio.sleep(0)  # let timers and the metrics view run between large batches

    async def _verify_restored(self, consumer: AIOKafkaConsumer) -> None:
        for tp, found in list(self._unverified.items()):
            if tp not in self._unverified:  # re-assigned while awaiting
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater < found.next_offset:
                await self._foreign_log(tp, f"high watermark {highwater}")

    def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        s = self.settings
        for p in self.live.catching_up:
            tp = TopicPartition(s.topic_valid, p)
            highwater = consumer.highwater(tp)
            if highwater is not None and tp not in self._unverified and self._next_offset.get(tp, 0) >= highwater:
                provinces = self.live.caught_up(p)
                log.info("partition %d caught up at offset %d: provinces %s live", p, highwater, provinces)
        for p in self.live.letters_catching_up:
            tp = TopicPartition(s.topic_dead_letter, p)
            highwater = consumer.highwater(tp)
            if highwater is not None and tp not in self._unverified and self._next_offset.get(tp, 0) >= highwater:
                reasons = self.live.letters_caught_up(p)
                log.info("%s[%d] caught up at offset %d: reasons %s live", tp.topic, p, highwater, reasons)

    @Service.task
    async def _checkpoint(self) -> None:
        while not self.should_stop:
            await self.sleep(self.settings.checkpoint_interval_s)
            if self.should_stop:
                break
            await self.write_checkpoints()

    @Service.task
    async def _refresh(self) -> None:
        while not self.should_stop:
            self.live.refresh_gauges()
            await self.sleep(self.settings.rates_refresh_interval_s)

    @Service.task
    async def _snapshot(self) -> None:
        assert self._producer is not None
        while not self.should_stop:
            await self.sleep(self.settings.rates_snapshot_interval_s)
            if self.should_stop:  # sleep() returns early on stop; the producer is closing
                break
            for province, rows in self.live.snapshot_rows().items():
                if self.should_stop:  # a stop while sending closes the producer under us
                    break
                try:
                    await self._producer.send(
                        self.settings.topic_rates, key=province.encode(), value=orjson.dumps(rows)
                    )
                except ProducerClosed:
                    if self.should_stop:
                        break
                    raise
