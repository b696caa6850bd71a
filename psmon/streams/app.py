"""The psmon worker: stage 1 (validate) as a Faust agent, with stage 2 (live rates) beside it.

Stage 1 reads `psmon.events`, validates each message and sends it either to `psmon.valid`
(normalized, keyed by its 34-province code) or to `psmon.dead-letter` (reason + redacted
payload). Stage 2 (`rates_service.RatesService`) reads `psmon.valid` and keeps the rolling
windows; it runs as a service of the same Faust worker (one process, one event loop), with its
own consumer group because it rebuilds its partitions from the log on assignment.

Hot path (measured with `python -m benchmarks`, see docs/performance.md): stage 1 takes events
in batches (`stream.take_events`, up to `validate_batch_max_events`, waiting at most
`validate_batch_within_s` for a batch to fill), validates them, hands every output to the
producer without waiting (`app.producer.send` straight to aiokafka, no Faust `Topic.send`
bookkeeping per message), then waits once for the broker's acknowledgement of the whole batch.
A profile of the one-message-at-a-time agent showed the worker spending most of its time not in
validation but in per-message Faust machinery and in small produce requests, each a syscall and
a GIL hand-off to Faust's consumer thread; batching amortizes both. The producer gets large
batches (`producer_max_batch_size`) so one produce request carries a whole take.

Latency: Faust creates its consumer with a fixed `fetch_max_wait_ms=1500`, and the local broker
does not answer a waiting fetch as soon as data arrives (measured: a record sent to an idle topic
reached the consumer after ~380 ms with 1500, 5-40 ms with 100); the worker's consumers use
`fetch_max_wait_ms` instead (`_faust_fetch_max_wait` below wraps Faust's consumer
factory, the one place that value is set).

Delivery (at-least-once): `take_events` acks the events of a batch only after the loop body is
done with them, and the body ends by awaiting the acknowledgement of every output it sent, so
an event is acked only after its output is on the broker; Faust commits acked offsets every
`commit_interval_s` (and flushes its producer before each commit, `Consumer._commit_offsets`).
A send that fails raises here, so the batch is never acked and is re-processed after a restart.
A crash re-processes from the last commit; the re-sent outputs carry the same source coordinates,
so stage 2 absorbs them as redeliveries and stage 3 writes each event_id once. For the same
reason stage 1 counts nothing that a crash would make it count again: dead letters are counted
by stage 2 from the `psmon.dead-letter` log (`psmon_events_invalid_total`, see `live.py`).

Faust's web server is disabled (metrics are served by prometheus-client on `metrics_port`), so
several workers can share a host without port clashes.
"""

import asyncio
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode import Service

from psmon.faults import FaultPlan
from psmon.kafka import KafkaAuth
from psmon.schemas.dead_letter import encode_dead_letter
from psmon.schemas.normalized import encode_valid
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.settings import Settings
from psmon.shutdown import BoundedFaustWorker
from psmon.streams.catalog_service import CatalogService
from psmon.streams.live import LiveRates
from psmon.streams.rates_service import RatesService

__all__ = ["create_app", "run_worker"]


def _faust_fetch_max_wait() -> None:
    """Make Faust's worker consumer use the app's `_psmon_fetch_max_wait_ms` (see docstring)."""
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_psmon", False):
        return

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        wait_ms = getattr(self.app, "_psmon_fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read by AIOKafkaConsumer.start() for its Fetcher
        return consumer

    create_worker_consumer._psmon = True  # type: ignore[attr-defined]
    setattr(AIOKafkaConsumerThread, "_create_worker_consumer", create_worker_consumer)  # noqa: B010


def create_app(settings: Settings, live: LiveRates, *, faults: FaultPlan | None = None) -> faust.App:
    """The Faust app with stage 1's agent; `faults` is what the CLI builds from the test
    settings, and no fault at all when not given."""
    faults = FaultPlan.none() if faults is None else faults
    datadir = Path(settings.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust writes under it but does not create it
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=KafkaAuth.from_settings(settings).faust(),
        web_enabled=False,
        store="memory://",
        datadir=str(datadir),  # not `<app_id>-data` in the working directory
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        producer_acks=-1,
        # One produce request per partition carries a whole batch of stage 1 (see docstring).
        producer_max_batch_size=512 * 1024,
        worker_redirect_stdouts=False,
    )
    _faust_fetch_max_wait()
    setattr(app, "_psmon_fetch_max_wait_ms", settings.fetch_max_wait_ms)  # noqa: B010

    def raw_topic(name: str) -> faust.TopicT:
        # psmon encodes its own JSON: the contract is bytes in, and errors must be ours to report.
        return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions)

    events_topic = raw_topic(settings.topic_events)
    valid_topic = raw_topic(settings.topic_valid)
    dead_letter_topic = raw_topic(settings.topic_dead_letter)
    metrics = live.metrics

    @app.agent(events_topic, name="validate")
    async def validate(stream: faust.StreamT[bytes]) -> None:
        validated = 0
        producer = app.producer
        processed = metrics.processed.labels("validate")
        valid_name, dead_name = valid_topic.get_topic_name(), dead_letter_topic.get_topic_name()
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.validate_batch_max_events, within=settings.validate_batch_within_s
        )
        async for events in batches:
            sent: list[Awaitable[Any]] = []
            for event in events:
                msg = event.message
                verdict = validate_event(event.value or b"", record_ts_s=msg.timestamp)
                src_partition, src_offset, src_ts_ms = msg.partition, msg.offset, int(msg.timestamp * 1000)
                key: bytes | None
                if isinstance(verdict, ValidEvent):
                    topic, key = valid_name, verdict.province_code.encode()
                    value = encode_valid(
                        verdict, src_partition=src_partition, src_offset=src_offset, src_ts_ms=src_ts_ms
                    )
                else:
                    # Keyed by reason: a reason's letters share a partition, so its count in stage 2
                    # has one owner, and every copy of a letter lands where the first one did.
                    topic, key = dead_name, verdict.reason.encode()
                    value = encode_dead_letter(
                        verdict, src_partition=src_partition, src_offset=src_offset, src_ts_ms=src_ts_ms
                    )
                sent.append(
                    await producer.send(topic, key=key, value=value, partition=None, timestamp=None, headers=None)
                )
                validated += 1
                faults.after_validated(validated)  # outputs sent (maybe not acked), input not committed
            # Broker acknowledgement of every output before take_events acks the inputs.
            await asyncio.gather(*sent)
            processed.inc(len(events))

    return app


def run_worker(
    settings: Settings,
    live: LiveRates,
    *,
    services: Iterable[Service] = (),
    logfile: str | None = None,
    logging_config: dict[str, Any] | None = None,
    faults: FaultPlan | None = None,
) -> None:
    """Run the worker (and any extra services) until SIGINT/SIGTERM. Does not return normally.
    `logging_config` (a dictConfig, `psmon.logs.mode_logging_config`) gives Faust's and mode's
    loggers psmon's format; without it they use Faust's own."""
    app = create_app(settings, live, faults=faults)
    worker = BoundedFaustWorker(
        app,
        RatesService(settings, live),
        CatalogService(settings, live),  # the catalog gauges (catalog_service.py)
        *services,
        loglevel=settings.log_level,
        logfile=logfile,
        logging_config=logging_config,
        quiet=True,
        redirect_stdouts=False,
        shutdown_timeout_s=settings.shutdown_timeout_s,
    )
    worker.execute_from_commandline()
