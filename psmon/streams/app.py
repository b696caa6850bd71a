"""The psmon worker: stage 1 (validate) as a Faust agent, with stage 2 (live rates) beside it.

Stage 1 reads `psmon.events`, validates each message and sends it either to `psmon.valid`
(normalized, keyed by its 34-province code) or to `psmon.dead-letter` (reason + redacted
payload). Stage 2 (`rates_service.RatesService`) reads `psmon.valid` and keeps the rolling
windows; it runs as a service of the same Faust worker (one process, one event loop), with its
own consumer group because it rebuilds its partitions from the log on assignment.

Delivery (at-least-once): Faust acks a message when the agent moves past it and commits acked
offsets every `commit_interval_s`; before each commit it flushes its producer and waits for the
broker's acknowledgement of every record sent (`Consumer._commit_offsets` calls
`producer.flush()`), so an input offset is committed only after its outputs are on the broker.
A crash re-processes from the last commit; the re-sent outputs carry the same source coordinates,
so stage 2 absorbs them as redeliveries and stage 3 writes each event_id once.

Faust's web server is disabled (metrics are served by prometheus-client on `metrics_port`), so
several workers can share a host without port clashes.
"""

import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path

import faust
from mode import Service

from psmon.schemas.dead_letter import encode_dead_letter
from psmon.schemas.normalized import encode_valid
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.settings import Settings
from psmon.shutdown import BoundedFaustWorker
from psmon.streams.live import LiveRates
from psmon.streams.rates_service import RatesService

__all__ = ["create_app", "run_worker"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, live: LiveRates) -> faust.App:
    datadir = Path(settings.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust writes under it but does not create it
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        web_enabled=False,
        store="memory://",
        datadir=str(datadir),  # not `<app_id>-data` in the working directory
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        producer_acks=-1,
        worker_redirect_stdouts=False,
    )

    def raw_topic(name: str) -> faust.TopicT:
        # psmon encodes its own JSON: the contract is bytes in, and errors must be ours to report.
        return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions)

    events_topic = raw_topic(settings.topic_events)
    valid_topic = raw_topic(settings.topic_valid)
    dead_letter_topic = raw_topic(settings.topic_dead_letter)
    metrics = live.metrics
    crash_after = settings.test_worker_crash_after_events

    @app.agent(events_topic, name="validate")
    async def validate(stream: faust.StreamT[bytes]) -> None:
        validated = 0
        async for event in stream.events():
            msg = event.message
            raw_value: bytes = event.value or b""
            verdict = validate_event(raw_value, record_ts_s=msg.timestamp)
            src = {
                "src_partition": msg.partition,
                "src_offset": msg.offset,
                "src_ts_ms": int(msg.timestamp * 1000),
            }
            if isinstance(verdict, ValidEvent):
                await valid_topic.send(key=verdict.province_code.encode(), value=encode_valid(verdict, **src))
            else:
                metrics.invalid.labels(verdict.reason).inc()
                await dead_letter_topic.send(key=msg.key, value=encode_dead_letter(verdict, **src))
            metrics.processed.labels("validate").inc()
            validated += 1
            if crash_after and validated >= crash_after:
                # Test-only crash point: outputs sent (maybe not acked), input not committed.
                log.error("test crash point reached after %d events: SIGKILL", validated)
                os.kill(os.getpid(), signal.SIGKILL)

    return app


def run_worker(
    settings: Settings,
    live: LiveRates,
    *,
    services: Iterable[Service] = (),
    logfile: str | None = None,
) -> None:
    """Run the worker (and any extra services) until SIGINT/SIGTERM. Does not return normally."""
    app = create_app(settings, live)
    worker = BoundedFaustWorker(
        app,
        RatesService(settings, live),
        *services,
        loglevel=settings.log_level,
        logfile=logfile,
        quiet=True,
        redirect_stdouts=False,
        shutdown_timeout_s=settings.shutdown_timeout_s,
    )
    worker.execute_from_commandline()
