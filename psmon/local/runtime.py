"""`psmon up`'s runtime: the whole pipeline in one process, for the demo and for trying psmon out.

With no `--start`, the simulator's clock starts now during office hours, or else at the
latest working morning, so the demo shows a working day's traffic at any hour.
First it checks what needs no process (the thresholds file, `--drop`, that no other process
holds the embedded ClickHouse directory) and opens the metrics port, so a mistake is one line
before anything starts. Then it starts, in order: the local broker (unless `--kafka` is given),
the topics, the simulator's procedure catalog (`local.demo_catalog`, stored and published when the
simulator runs), Prometheus and Alertmanager when installed (configured by `psmon rules` into `<data_dir>`; see
`alerting.servers.LocalAlerting`), then one Faust worker running stage 1 and 2 agents plus the
sink (stage 3), the read-only query endpoint of the embedded ClickHouse directory (so `psmon
query`, `report`, `dead-letters` and `alerts history` answer from other shells meanwhile; see
`local.query_server`), the alert webhook receiver, the simulator and the live view as services on
the same event loop. Ctrl-C or SIGTERM stops the services in reverse order (the sink finishes and
commits its batch), then Prometheus, Alertmanager and the broker are stopped by PID. Logs
go to `<data_dir>/psmon.log` while the live table owns the terminal.
"""

import logging
from datetime import datetime
from pathlib import Path

from mode import Service

from psmon.alerting.receiver import AlertReceiverService, ReceiverLimits, ensure_token_file, read_token_file
from psmon.alerting.servers import LocalAlerting
from psmon.alerting.thresholds import load_thresholds
from psmon.embedded.broker import LocalBroker
from psmon.errors import ConfigError, MetricsPortError
from psmon.faults import FaultPlan
from psmon.kafka import KafkaAuth
from psmon.local.demo_catalog import load_demo_catalog
from psmon.local.liveview import LiveView
from psmon.local.query_server import QueryEndpoint
from psmon.local.services import Deadline, SimulatorService
from psmon.logs import configure_logging, mode_logging_config
from psmon.metrics import PipelineMetrics, serve_metrics
from psmon.redact import redact_url
from psmon.settings import Settings
from psmon.simulator.profiles import default_profiles, with_drop
from psmon.simulator.runner import SimulationConfig
from psmon.sinks.clickhouse.client import ensure_embedded_free
from psmon.sinks.service import SinkService
from psmon.streams.app import run_worker
from psmon.streams.live import LiveRates
from psmon.streams.topics import ensure_topics
from psmon.timeutil import utc_now
from psmon.workcalendar import demo_start

__all__ = ["run_up"]

log = logging.getLogger(__name__)


def run_up(
    settings: Settings,
    *,
    embedded_broker: bool,
    rate_eps: float,
    speedup: float,
    start: datetime | None,
    drops: list[tuple[str, str, float]],
    bad_fraction: float,
    duration_s: float | None,
    interactive: bool,
) -> None:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    logfile = data_dir / "psmon.log"
    configure_logging(settings.log_level, logfile if interactive else None)
    # Everything that can be wrong without starting anything is checked first: a mistake is then
    # one line, and no broker or server has to be started and stopped for nothing.
    thresholds = load_thresholds(settings.thresholds_file)
    profiles = default_profiles()
    for province, metric, value in drops:
        try:
            profiles = with_drop(profiles, province, metric, value)
        except ValueError as exc:
            raise ConfigError(f"--drop {province}:{metric}:{value:g}: {exc}") from exc
    ensure_embedded_free(settings.resolved_clickhouse_dsn)
    # Alertmanager and the receiver share a bearer token: the configured file, or one made here.
    token_file = settings.alerts_token_file or ensure_token_file(data_dir / "alerts-token")
    token = read_token_file(token_file)
    metrics = PipelineMetrics()
    if settings.metrics_port:
        try:
            serve_metrics(metrics.registry, host=settings.metrics_host, port=settings.metrics_port)
        except OSError as exc:
            raise MetricsPortError(settings.metrics_host, settings.metrics_port, exc) from exc
    broker: LocalBroker | None = None
    alerting: LocalAlerting | None = None
    try:
        if embedded_broker:
            broker = LocalBroker(log_path=data_dir / "broker.log").start()
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
            print(f"local broker (Tansu) on {broker.bootstrap}, pid {broker.pid}")
        ensure_topics(settings)
        if settings.metrics_port:
            print(f"metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics")
        where = redact_url(settings.resolved_clickhouse_dsn)  # never the password of the DSN
        print(f"ClickHouse at {where}; logs in {logfile if interactive else 'stderr'}")
        local = LocalAlerting(
            thresholds,
            data_dir=data_dir,
            metrics_port=settings.metrics_port,
            prometheus_port=settings.prometheus_port,
            alertmanager_port=settings.alertmanager_port,
            receiver_host=settings.alerts_host,
            receiver_port=settings.alerts_port,
            receiver_token_file=token_file,
        )
        alerting = local.start()
        live = LiveRates(metrics=metrics, dedup_max_ids=settings.dedup_max_ids, worker="up")
        faults = FaultPlan.from_settings(settings)
        services: list[Service] = [SinkService(settings, metrics, faults=faults)]
        if settings.embedded_clickhouse:  # a server needs no endpoint: every reader can reach it
            services.append(QueryEndpoint(settings.resolved_clickhouse_dsn))
        if alerting is not None and alerting.prometheus and alerting.alertmanager:
            receiver = f"http://{settings.alerts_host}:{settings.alerts_port}/alerts"
            print(
                f"Prometheus on {alerting.prometheus.url}, Alertmanager on {alerting.alertmanager.url}, "
                f"alert webhook {receiver} (history in the ClickHouse table alerts)"
            )
            services.append(
                AlertReceiverService(
                    dsn=settings.resolved_clickhouse_dsn,
                    database=settings.clickhouse_database,
                    host=settings.alerts_host,
                    port=settings.alerts_port,
                    token=token,
                    limits=ReceiverLimits(settings.alerts_max_body_bytes, settings.alerts_max_per_request),
                    list_enabled=settings.alerts_list_enabled,
                    run_migrations=False,  # the sink migrates
                )
            )
        else:
            print(f"alerting off: {local.skipped}")
        if rate_eps > 0:
            # The simulator files against its catalog: store and publish it first (demo_catalog.py).
            cat = load_demo_catalog(settings)
            print(f"catalog: {cat.procedures:,} procedures of {cat.provinces} provinces in {settings.topic_catalog}")
            sim_start = start or demo_start(utc_now())
            print(f"simulator: {rate_eps:g} events/s at peak, clock from {sim_start:%Y-%m-%d %H:%M %Z} x{speedup:g}")
            sim = SimulationConfig(
                profiles,
                rate_eps=rate_eps,
                speedup=speedup,
                start=sim_start,
                bad_fraction=bad_fraction,
            )
            services.append(
                SimulatorService(
                    sim,
                    bootstrap=settings.kafka_bootstrap,
                    topic=settings.topic_events,
                    auth=KafkaAuth.from_settings(settings),
                )
            )
        am_url = alerting.alertmanager.url if alerting is not None and alerting.alertmanager else None
        services.append(
            LiveView(live, interactive=interactive, thresholds=thresholds, alertmanager_url=am_url, lang=settings.lang)
        )
        if duration_s:
            services.append(Deadline(duration_s))
        # Faust's and mode's loggers in psmon's format too, on stderr or in the log file
        run_worker(
            settings,
            live,
            services=services,
            faults=faults,
            logfile=str(logfile) if interactive else None,
            logging_config=mode_logging_config(
                settings.log_level, settings.log_format, logfile=logfile if interactive else None
            ),
        )
    finally:
        if alerting is not None:
            alerting.stop()
        if broker is not None:
            broker.stop()
