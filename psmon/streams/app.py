"""The psmon worker: one Faust worker running stage 1 (validate) and stage 2 (live rates).

Stage 1 (`validate_service.ValidateService`) reads `psmon.events`, validates each message and
sends it either to `psmon.valid` (normalized, keyed by its 34-province code) or to
`psmon.dead-letter` (reason + redacted payload). Stage 2 (`rates_service.RatesService`) reads
`psmon.valid` and `psmon.dead-letter` and keeps the rolling windows. Both are mode services of
the same Faust worker (one process, one event loop), each with its own aiokafka consumer in a
group of its own: stage 2 because it rebuilds its partitions from the log on assignment, stage 1
because Faust's per-event stream machinery cost it several times the work of validating (the
profile is in `validate_service.py`). Faust is the runtime: the app (its broker credentials,
its leader topic), the worker's lifecycle, signals, logging and the bounded shutdown
(`shutdown.BoundedFaustWorker`); the delivery guarantees of stage 1 are in
`validate_service.py` and docs/delivery.md.

Stage 1 starts once stage 2 has its first assignment: a partition stage 2 gains is re-read and
counted without being exported until it reaches the end of the log, so stage 2 takes the log as
it is at start rather than chasing a log that stage 1 fills at full speed meanwhile (its
provinces go live sooner, and what stage 1 then validates is counted live).

Topics are created by `topics.ensure_topics` before the worker starts (the CLI and `psmon up`
do it), with the partitions and replication of the settings; the app's `topic_partitions` and
`topic_replication_factor` are the same settings, for the topics Faust creates itself (its
leader topic).

Faust's web server is disabled (metrics are served by prometheus-client on `metrics_port`), so
several workers can share a host without port clashes.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust
from mode import Service

from psmon.faults import FaultPlan
from psmon.kafka import KafkaAuth
from psmon.settings import Settings
from psmon.shutdown import BoundedFaustWorker
from psmon.streams.catalog_service import CatalogService
from psmon.streams.live import LiveRates
from psmon.streams.rates_service import RatesService
from psmon.streams.validate_service import ValidateService

__all__ = ["create_app", "run_worker"]


def create_app(settings: Settings) -> faust.App:
    """The Faust app that runs the worker's services (see module docstring)."""
    datadir = Path(settings.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust writes under it but does not create it
    return faust.App(
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
        worker_redirect_stdouts=False,
    )


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
    rates = RatesService(settings, live)
    worker = BoundedFaustWorker(
        create_app(settings),
        rates,
        ValidateService(settings, live.metrics, faults=faults, after=rates.assigned),
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
