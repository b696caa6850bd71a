"""The `psmon` command line: a thin layer that builds `Settings` and hands off to the stages.

Every option can also be set by its `PSMON_*` environment variable (shown in `--help`); flags
win over the environment. A `PsmonError` or an invalid setting becomes one readable line on
stderr and exit code 1, not a traceback.
"""

import logging
import os
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from pydantic import ValidationError

from psmon import __version__
from psmon.cli import history as history_commands
from psmon.cli.alerts import alerts_app, rules
from psmon.cli.dashboards import dashboards_app
from psmon.cli.logs import configure_logging
from psmon.errors import PsmonError
from psmon.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="psmon: live monitor of Vietnam's online public services.",
)
schema_app = typer.Typer(no_args_is_help=True, help="The event contract (JSON Schemas for portal teams).")
app.add_typer(schema_app, name="schema")
app.add_typer(dashboards_app, name="dashboards")
app.command()(rules)
app.add_typer(alerts_app, name="alerts")

log = logging.getLogger("psmon")

KafkaOpt = Annotated[
    str | None,
    typer.Option("--kafka", help="Kafka bootstrap host:port [env PSMON_KAFKA_BOOTSTRAP]"),
]
ClickHouseOpt = Annotated[
    str | None,
    typer.Option("--clickhouse", help="chdb:///abs/dir or http://host:8123 [env PSMON_CLICKHOUSE_DSN]"),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", help="/metrics port, 0 = off [env PSMON_METRICS_PORT]"),
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="local state and logs [env PSMON_DATA_DIR]")]
PartitionsOpt = Annotated[
    int | None,
    typer.Option("--partitions", help="partitions per topic [env PSMON_TOPIC_PARTITIONS]"),
]


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        _fail(f"invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")


def _fail(message: str) -> NoReturn:
    typer.secho(f"psmon: {message}", err=True, fg="red")
    raise typer.Exit(1)


def _worker_name(settings: Settings) -> str:
    import socket

    return settings.worker_name or f"{socket.gethostname()}:{os.getpid()}"


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def topics(kafka: KafkaOpt = None, partitions: PartitionsOpt = None) -> None:
    """Create psmon's topics (idempotent)."""
    from psmon.streams.topics import ensure_topics

    s = _settings(kafka_bootstrap=kafka, topic_partitions=partitions)
    created = ensure_topics(s)
    typer.echo(f"created: {', '.join(created) or 'none (all exist)'}")


@app.command()
def migrate(clickhouse: ClickHouseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create or upgrade the ClickHouse schema (idempotent, versioned)."""
    from psmon.sinks.clickhouse.client import connect
    from psmon.sinks.clickhouse.schema import current_version
    from psmon.sinks.clickhouse.schema import migrate as run_migrate

    s = _settings(clickhouse_dsn=clickhouse, data_dir=data_dir)
    client = connect(s.resolved_clickhouse_dsn)
    applied = run_migrate(client, s.clickhouse_database, events_ttl_days=s.clickhouse_events_ttl_days)
    version = current_version(client, s.clickhouse_database)
    typer.echo(
        f"schema version {version}" + (f" (applied {[m.version for m in applied]})" if applied else " (up to date)")
    )


@app.command()
def worker(
    kafka: KafkaOpt = None,
    metrics_port: MetricsPortOpt = None,
    partitions: PartitionsOpt = None,
    app_id: Annotated[str | None, typer.Option(help="Faust app id / consumer group [env PSMON_APP_ID]")] = None,
) -> None:
    """Run stages 1 (validate) and 2 (live rates) as a Faust worker."""
    from psmon.metrics import PipelineMetrics, serve_metrics
    from psmon.streams.app import run_worker
    from psmon.streams.live import LiveRates
    from psmon.streams.topics import ensure_topics

    s = _settings(kafka_bootstrap=kafka, metrics_port=metrics_port, topic_partitions=partitions, app_id=app_id)
    ensure_topics(s)
    metrics = PipelineMetrics()
    if s.metrics_port:
        serve_metrics(metrics.registry, host=s.metrics_host, port=s.metrics_port)
    live = LiveRates(metrics=metrics, dedup_max_ids=s.dedup_max_ids, worker=_worker_name(s))
    run_worker(s, live)


@app.command()
def sink(
    kafka: KafkaOpt = None,
    clickhouse: ClickHouseOpt = None,
    metrics_port: MetricsPortOpt = None,
    data_dir: DataDirOpt = None,
    partitions: PartitionsOpt = None,
) -> None:
    """Run stage 3: write valid events, dead letters and rate snapshots to ClickHouse."""
    from psmon.metrics import PipelineMetrics, serve_metrics
    from psmon.shutdown import BoundedWorker
    from psmon.sinks.service import SinkService
    from psmon.streams.topics import ensure_topics

    s = _settings(
        kafka_bootstrap=kafka, clickhouse_dsn=clickhouse, metrics_port=metrics_port, data_dir=data_dir,
        topic_partitions=partitions,
    )  # fmt: skip
    ensure_topics(s)
    metrics = PipelineMetrics()
    if s.metrics_port:
        serve_metrics(metrics.registry, host=s.metrics_host, port=s.metrics_port)
    BoundedWorker(
        SinkService(s, metrics), loglevel=s.log_level, quiet=True, redirect_stdouts=False,
        shutdown_timeout_s=s.shutdown_timeout_s,
    ).execute_from_commandline()  # fmt: skip


def _parse_drop(values: list[str]) -> list[tuple[str, str, float]]:
    out = []
    for v in values:
        try:
            province, metric, value = v.split(":")
            out.append((province, metric, float(value.rstrip("%")) / (100 if value.endswith("%") else 1)))
        except ValueError:
            _fail(f"--drop wants PROVINCE:METRIC:VALUE, e.g. 25:online_submission:0.3; got {v!r}")
    return out


@app.command()
def simulate(
    kafka: KafkaOpt = None,
    rate: Annotated[float, typer.Option(help="events per second at office-hour peak")] = 50.0,
    speedup: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    start: Annotated[datetime | None, typer.Option(help="simulated start time (default now); pins the clock")] = None,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="stop after this many seconds")] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    drop: Annotated[list[str] | None, typer.Option(help="PROVINCE:METRIC:VALUE, e.g. 25:online_submission:0.3")] = None,
    bad_fraction: Annotated[float, typer.Option(help="fraction of events replaced by bad ones")] = 0.0,
    old_code_fraction: Annotated[float, typer.Option(help="fraction sent with an old 63-province code")] = 0.05,
    seed: Annotated[int | None, typer.Option(help="random seed (default: random)")] = None,
    unpaced: Annotated[bool, typer.Option(help="generate as fast as possible (bulk)")] = False,
    output: Annotated[Path | None, typer.Option(help="write JSONL here instead of Kafka")] = None,
) -> None:
    """Generate realistic portal events for all 34 provinces."""
    from psmon.simulator.profiles import default_profiles, with_drop
    from psmon.simulator.runner import (
        EventSink,
        FileSink,
        KafkaSink,
        SimulationConfig,
        SimulationStats,
        run_simulation,
    )
    from psmon.streams.topics import ensure_topics
    from psmon.timeutil import LOCAL_TZ

    configure_logging("info")
    profiles = default_profiles()
    for province, metric, value in _parse_drop(drop or []):
        try:
            profiles = with_drop(profiles, province, metric, value)
        except ValueError as exc:
            _fail(f"--drop: {exc}")
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=LOCAL_TZ)
    config = SimulationConfig(
        profiles, rate_eps=rate, speedup=speedup, start=start, duration_s=duration_s, count=count,
        seed=seed if seed is not None else random.randrange(2**31), bad_fraction=bad_fraction,
        old_code_fraction=old_code_fraction, paced=not unpaced,
    )  # fmt: skip
    out: EventSink
    if output is not None:
        out = FileSink(output)
    else:
        s = _settings(kafka_bootstrap=kafka)
        ensure_topics(s)
        out = KafkaSink(s.kafka_bootstrap, s.topic_events)

    def progress(st: SimulationStats) -> None:
        typer.echo(
            f"sent {st.sent:,} events ({st.rate_eps:,.0f}/s), {st.bad:,} bad, "
            f"simulated time {st.sim_time:%Y-%m-%d %H:%M:%S}Z",
            err=True,
        )

    try:
        stats = run_simulation(config, out, progress=progress)
    except KeyboardInterrupt:
        _fail("interrupted")
    finally:
        out.close()
    summary = {
        "sent": stats.sent,
        "bad": stats.bad,
        "bad_by_reason": stats.bad_by_reason,
        "elapsed_s": round(stats.elapsed_s, 3),
        "rate_eps": round(stats.rate_eps, 1),
    }
    typer.echo(orjson.dumps(summary).decode())


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file of events")]) -> None:
    """Check a file of events against the contract without loading it (exit 1 if any is bad)."""
    from collections import Counter

    from psmon.history.sources import read_messages
    from psmon.schemas.validation import Invalid, validate_event

    reasons: Counter[str] = Counter()
    total = 0
    for row, message in read_messages(path):
        total += 1
        verdict = validate_event(message)
        if isinstance(verdict, Invalid):
            reasons[verdict.reason] += 1
            if sum(reasons.values()) <= 20:
                typer.echo(f"{path}:{row}: {verdict.reason}: {verdict.detail}")
    bad = sum(reasons.values())
    typer.echo(f"{total} events, {total - bad} valid, {bad} invalid" + (f" {dict(reasons)}" if bad else ""))
    if bad:
        raise typer.Exit(1)


@schema_app.command("export")
def schema_export(
    directory: Annotated[Path, typer.Argument(help="output directory")] = Path("schemas"),
) -> None:
    """Write one JSON Schema per event type."""
    from psmon.schemas.jsonschema import write_schemas

    for p in write_schemas(directory):
        typer.echo(str(p))


@app.command()
def broker(port: Annotated[int, typer.Option(help="listen port on 127.0.0.1")] = 9092) -> None:
    """Run the local Kafka-protocol broker (Tansu) in the foreground, for development."""
    import signal

    from psmon.embedded.broker import LocalBroker

    b = LocalBroker(port=port).start()
    typer.echo(f"local broker on {b.bootstrap} (pid {b.pid}); Ctrl-C stops it")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        b.stop()


@app.command()
def up(
    kafka: KafkaOpt = None,
    clickhouse: ClickHouseOpt = None,
    metrics_port: MetricsPortOpt = None,
    data_dir: DataDirOpt = None,
    rate: Annotated[float, typer.Option(help="simulator events/s at peak; 0 = no simulator")] = 200.0,
    speedup: Annotated[float, typer.Option(help="simulator clock speed-up")] = 1.0,
    start: Annotated[datetime | None, typer.Option(help="simulator start time (default: now)")] = None,
    drop: Annotated[list[str] | None, typer.Option(help="PROVINCE:METRIC:VALUE for the simulator")] = None,
    bad_fraction: Annotated[float, typer.Option(help="fraction of bad events from the simulator")] = 0.005,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="stop after this many seconds")] = None,
    view: Annotated[bool, typer.Option(help="live terminal table (off without a terminal)")] = True,
) -> None:
    """Run everything in one process: local broker, worker, sink, simulator, metrics, live view."""
    from psmon.cli.up import run_up

    s = _settings(
        kafka_bootstrap=kafka,
        clickhouse_dsn=clickhouse,
        metrics_port=metrics_port,
        data_dir=data_dir,
    )
    run_up(
        s, embedded_broker=kafka is None and "PSMON_KAFKA_BOOTSTRAP" not in os.environ,
        rate_eps=rate, speedup=speedup, start=start, drops=_parse_drop(drop or []), bad_fraction=bad_fraction,
        duration_s=duration_s, interactive=view and sys.stdout.isatty(),
    )  # fmt: skip


history_commands.register(app)  # query, report, replay, dead-letters (psmon/cli/history.py)


def main() -> None:
    try:
        app()
    except PsmonError as exc:
        typer.secho(f"psmon: {exc}", err=True, fg="red")
        sys.exit(1)


if __name__ == "__main__":
    main()
