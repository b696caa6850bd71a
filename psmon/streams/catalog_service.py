"""Stage 2's catalog reader: `psmon.catalog` → `CatalogView`, and the catalog gauges' timer.

Every worker needs the whole catalog (a worker owns some provinces, but which ones changes with
every rebalance), so this consumer reads every partition of the compacted topic from its
beginning with no consumer group (`assign`, no `subscribe`, nothing committed) and then keeps
polling, so a catalog change reaches the gauges within one poll plus one refresh (about a
second). It is a service of the worker beside `RatesService`, on the same event loop: the
catalog state needs no lock.

The topic may not exist yet when the worker starts (no catalog loaded, or `psmon catalog load`
creates it later): the service asks for the topic's partitions every `catalog_wait_s` until it
appears. Gauges are exported only once every partition of the topic has been read up to the high
watermark of its first fetch, so a worker never exports shares computed on half a catalog.

Ownership of the gauges is stage 2's: the provinces exported are `LiveRates.live_provinces()`,
those whose partition of `psmon.valid` this worker owns and has caught up with. A province with
no event at all in the retained log has no known owner and no catalog gauges.
"""

import asyncio
import logging
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from psmon.kafka import KafkaAuth
from psmon.settings import Settings
from psmon.streams.catalog_live import CatalogActivity, CatalogGauges, CatalogView
from psmon.streams.live import LiveRates

__all__ = ["CatalogService"]

log = logging.getLogger(__name__)

#: Seconds between two looks for a topic that does not exist yet.
CATALOG_WAIT_S: Final = 2.0


class CatalogService(Service):
    """Reads `settings.topic_catalog` into a `CatalogView` and refreshes the catalog gauges."""

    def __init__(self, settings: Settings, live: LiveRates, **kwargs: Any):
        super().__init__(**kwargs)
        if live.catalog is None:
            live.catalog = CatalogActivity()
        self.settings = settings
        self.live = live
        self.view = CatalogView()
        self.gauges = CatalogGauges(live.metrics, self.view, live.catalog)
        self._consumer: AIOKafkaConsumer | None = None
        #: partitions not yet read up to the high watermark of their first fetch
        self._loading: set[TopicPartition] | None = None
        self._position: dict[TopicPartition, int] = {}

    @property
    def loaded(self) -> bool:
        """The whole catalog present at start (or at the topic's appearance) has been read."""
        return self._loading is not None and not self._loading

    async def on_start(self) -> None:
        s = self.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=None,
            client_id=f"{s.app_id}-catalog",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            **KafkaAuth.from_settings(s).aiokafka(),
        )
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> bool:
        topic = self.settings.topic_catalog
        await consumer.topics()  # a metadata request: finds a topic created since the last look
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            return False
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._loading = set(tps)
        log.info("reading the catalog from %s (%d partitions)", topic, len(tps))
        return True

    @Service.task
    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self.should_stop and not await self._assign(consumer):
            await self.sleep(CATALOG_WAIT_S)
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=200)
            if self.should_stop:
                break
            for tp, records in batch.items():
                for r in records:
                    try:
                        self.view.apply(r.key, r.value)
                    except (ValueError, UnicodeDecodeError) as exc:
                        # A foreign or bad record must not stop the worker: logged, skipped.
                        log.error(
                            "skipping unreadable catalog record %s[%d]@%d: %s", tp.topic, tp.partition, r.offset, exc
                        )
                if records:
                    self._position[tp] = records[-1].offset + 1
            self._check_loaded(consumer)
            await asyncio.sleep(0)

    def _check_loaded(self, consumer: AIOKafkaConsumer) -> None:
        if not self._loading:
            return
        for tp in list(self._loading):
            highwater = consumer.highwater(tp)
            if highwater is not None and self._position.get(tp, 0) >= highwater:
                self._loading.discard(tp)
        if not self._loading:
            log.info("catalog read: %d procedures of %d provinces", len(self.view), len(self.view.provinces))
            self.refresh()

    def refresh(self) -> None:
        """Set the catalog gauges of the live provinces (none until the catalog is read)."""
        if self.loaded:
            self.gauges.refresh(self.live.live_provinces(), self.live.rates.watermark_s)

    @Service.task
    async def _refresh(self) -> None:
        while not self.should_stop:
            self.refresh()
            await self.sleep(self.settings.rates_refresh_interval_s)
