"""Stage 2, live rates: `psmon.valid` → `LiveRates`, rebuilt from the log on every assignment.

The worker's state (rolling buckets, recent ids, per-province totals) is derived from
`psmon.valid` alone, and its dead-letter counts per reason from `psmon.dead-letter` (one
consumer reads both topics; a partition of either is handled the same way), so the rule for
correctness after a crash, a restart or a rebalance is simple: **a partition this worker did
not own a moment ago is re-read from its beginning** while it is *catching up* (counted, not
exported; see `live.py`), and goes live when the consumer's position reaches the high
watermark reported by the fetch responses. A partition kept across a rebalance continues from
this worker's own position. Nothing is committed: the log is the state, the consumer group only
spreads partitions over workers.

Why aiokafka and not a Faust agent with a Faust table: a table's changelog recovery decides it is
complete by the broker's end offsets, which the local broker reports wrongly, and Faust has open
recovery/commit races (faust-streaming #596, #606); an agent cannot seek its partitions back to
the beginning on assignment. Here the seek happens in the rebalance listener, before the first
fetch of the new generation, and the end of a partition is the fetch response's high watermark,
which every broker reports correctly. Horizon: the counters and windows cover what `psmon.valid`
retains; production retention of that topic must cover the longest window (a year for `ytd`), or
the windows start short after a rebuild (documented in docs/delivery.md).

The service also runs stage 2's timers: gauges refresh every `rates_refresh_interval_s`, and rate
snapshots go to `psmon.rates` every `rates_snapshot_interval_s` (only for live provinces).
"""

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerClosed
from mode import Service

from psmon.kafka import KafkaAuth, group_consumer
from psmon.schemas.dead_letter import decode_dead_letter
from psmon.schemas.normalized import decode_valid
from psmon.settings import Settings
from psmon.streams.live import LiveRates

__all__ = ["RatesService"]

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: "RatesService"):
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Eager rebalancing revokes everything; what is really gone is known on assignment.
        pass

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
        #: set once the consumer has its first assignment; the worker's stage 1 waits for it
        self.assigned = asyncio.Event()

    async def on_start(self) -> None:
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=50, **KafkaAuth.from_settings(s).aiokafka()
        )
        await self._producer.start()
        self._consumer = group_consumer(s, "rates", max_poll_records=5000, fetch_max_wait_ms=s.fetch_max_wait_ms)
        self._consumer.subscribe([s.topic_valid, s.topic_dead_letter], listener=_Rebalance(self))
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Keep partitions still owned; re-read new ones from the beginning; forget the rest."""
        assert self._consumer is not None
        valid = self.settings.topic_valid
        gone = self._owned - partitions
        if gone:
            dropped = self.live.drop_partitions({tp.partition for tp in gone if tp.topic == valid})
            self.live.drop_letter_partitions({tp.partition for tp in gone if tp.topic != valid})
            log.info("partitions %s revoked: dropped provinces %s", sorted(gone), dropped)
        new = partitions - self._owned
        for tp in partitions & self._owned:
            self._consumer.seek(tp, self._next_offset.get(tp, 0))
        if new:
            self.live.catch_up({tp.partition for tp in new if tp.topic == valid})
            self.live.catch_up_letters({tp.partition for tp in new if tp.topic != valid})
            await self._consumer.seek_to_beginning(*new)
            log.info("partitions %s assigned: re-reading them from the beginning", sorted(new))
        for tp in gone:
            self._next_offset.pop(tp, None)
        self._owned = set(partitions)
        self.assigned.set()

    @Service.task
    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        valid = self.settings.topic_valid
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=200)
            if self.should_stop:
                break
            for tp, records in batch.items():
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
                    self._next_offset[tp] = records[-1].offset + 1
            self._check_caught_up(consumer)
            await asyncio.sleep(0)  # let timers and the metrics view run between large batches

    def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        s = self.settings
        for p in self.live.catching_up:
            tp = TopicPartition(s.topic_valid, p)
            highwater = consumer.highwater(tp)
            if highwater is not None and self._next_offset.get(tp, 0) >= highwater:
                provinces = self.live.caught_up(p)
                log.info("partition %d caught up at offset %d: provinces %s live", p, highwater, provinces)
        for p in self.live.letters_catching_up:
            tp = TopicPartition(s.topic_dead_letter, p)
            highwater = consumer.highwater(tp)
            if highwater is not None and self._next_offset.get(tp, 0) >= highwater:
                reasons = self.live.letters_caught_up(p)
                log.info("%s[%d] caught up at offset %d: reasons %s live", tp.topic, p, highwater, reasons)

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
