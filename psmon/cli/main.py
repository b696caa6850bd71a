"""The `psmon` command line: a thin layer that builds `Settings` and hands off to the stages.

Every option can also be set by its `PSMON_*` environment variable (shown in `--help`); flags
win over the environment. A `PsmonError` or an invalid setting becomes one readable line on
stderr and exit code 1, not a traceback. The commands of the other modules (`history`, `alerts`,
`dashboards`) are registered at the bottom, with these, in the order `psmon --help` lists them.
"""

import os
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

# typer bundles its own click: a group's methods take a context of that click, not of `click`.
from typer._click.core import Context

# typer bundles its own click: a group's methods take a context of that click, not of `click`.
from psmon.cli.alerts import alerts_app, rules
from psmon.cli.catalog import catalog_app
from psmon.cli.dashboards import dashboards_app
from psmon.cli.help import PsmonGroup, PsmonTyper, examples
from psmon.cli.history import dead_letters_app, query_app, replay, report
from psmon.cli.options import (
    ClickHouseOpt,
    DataDirOpt,
    KafkaOpt,
    LangOpt,
    LogFormatOpt,
    MetricsPortOpt,
    PartitionsOpt,
    SummaryFormatOpt,
    check_input_file,
    env_help,
    fail,
    parse_drop,
    settings,
    summary_format,
)
from psmon.errors import MetricsPortError, PsmonError
from psmon.kafka import KafkaAuth
from psmon.logs import configure_logging, mode_logging_config
from psmon.malloc import fix_mmap_threshold
from psmon.redact import redact_text
from psmon.schemas.labels import text
from psmon.settings import Settings
from psmon.version import __version__

if TYPE_CHECKING:
    from psmon.metrics import PipelineMetrics

#: `psmon --help` lists the commands as a new user meets them, in panels by what people do with
#: them (see the registrations below): run it (all in one process, or the stages), load and
#: check files, ask the history, operate it.
COMMAND_ORDER = (
    "up",
    "worker",
    "sink",
    "simulate",
    "broker",
    "validate",
    "replay",
    "dead-letters",
    "schema",
    "catalog",
    "query",
    "report",
    "alerts",
    "rules",
    "dashboards",
    "migrate",
    "topics",
    "version",
)


class _InOrder(PsmonGroup):
    """Lists commands and groups in `COMMAND_ORDER` (typer lists all commands before all groups)."""

    def list_commands(self, ctx: Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER))


app = PsmonTyper(
    cls=_InOrder,
    add_completion=True,  # psmon --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="psmon: live monitor of Vietnam's online public services.",
)
schema_app = PsmonTyper(
    no_args_is_help=True, help="The event contract and the procedure catalog (JSON Schemas for portal teams)."
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def psmon(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    log_format: LogFormatOpt = None,
) -> None:
    """psmon: live monitor of Vietnam's online public services."""


def _worker_name(settings: Settings) -> str:
    import socket

    return settings.worker_name or f"{socket.gethostname()}:{os.getpid()}"


def _serve_metrics(s: Settings, metrics: "PipelineMetrics") -> None:
    """Serve `/metrics` unless the port is 0; a port taken is one line, not a traceback."""
    from psmon.metrics import serve_metrics

    if s.metrics_port:
        try:
            serve_metrics(metrics.registry, host=s.metrics_host, port=s.metrics_port)
        except OSError as exc:
            raise MetricsPortError(s.metrics_host, s.metrics_port, exc) from exc


def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def topics(ctx: typer.Context, kafka: KafkaOpt = None, partitions: PartitionsOpt = None) -> None:
    """Create psmon's topics (idempotent)."""
    from psmon.streams.topics import ensure_topics

    s = settings(ctx, kafka_bootstrap=kafka, topic_partitions=partitions)
    created = ensure_topics(s)
    typer.echo(f"created: {', '.join(created) or 'none (all exist)'}")


def migrate(ctx: typer.Context, clickhouse: ClickHouseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create or upgrade the ClickHouse schema (idempotent, versioned)."""
    from psmon.sinks.clickhouse.client import connect_waiting
    from psmon.sinks.clickhouse.schema import current_version, migrate_configured

    s = settings(ctx, clickhouse_dsn=clickhouse, data_dir=data_dir)
    # a server that is still starting (Compose starts migrate beside it) is waited for, bounded
    client = connect_waiting(s.resolved_clickhouse_dsn, wait_s=s.clickhouse_wait_s)
    applied = migrate_configured(client, s)
    version = current_version(client, s.clickhouse_database)
    typer.echo(
        f"schema version {version}" + (f" (applied {[m.version for m in applied]})" if applied else " (up to date)")
    )


def worker(
    ctx: typer.Context,
    kafka: KafkaOpt = None,
    metrics_port: MetricsPortOpt = None,
    partitions: PartitionsOpt = None,
    app_id: Annotated[str | None, typer.Option(help=env_help("Faust app id / consumer group", "app_id"))] = None,
) -> None:
    """Run stages 1 (validate) and 2 (live rates) as a Faust worker."""
    from psmon.faults import FaultPlan
    from psmon.metrics import PipelineMetrics
    from psmon.streams.app import run_worker
    from psmon.streams.live import LiveRates
    from psmon.streams.topics import ensure_topics

    s = settings(ctx, kafka_bootstrap=kafka, metrics_port=metrics_port, topic_partitions=partitions, app_id=app_id)
    fix_mmap_threshold(s.malloc_mmap_threshold_kib)
    metrics = PipelineMetrics()
    _serve_metrics(s, metrics)  # local checks first, then Kafka
    ensure_topics(s)
    live = LiveRates(metrics=metrics, dedup_max_ids=s.dedup_max_ids, worker=_worker_name(s))
    run_worker(
        s, live, faults=FaultPlan.from_settings(s), logging_config=mode_logging_config(s.log_level, s.log_format)
    )


def sink(
    ctx: typer.Context,
    kafka: KafkaOpt = None,
    clickhouse: ClickHouseOpt = None,
    metrics_port: MetricsPortOpt = None,
    data_dir: DataDirOpt = None,
    partitions: PartitionsOpt = None,
) -> None:
    """Run stage 3: write valid events, dead letters and rate snapshots to ClickHouse."""
    from psmon.faults import FaultPlan
    from psmon.metrics import PipelineMetrics
    from psmon.shutdown import BoundedWorker
    from psmon.sinks.clickhouse.client import ensure_embedded_free
    from psmon.sinks.service import SinkService
    from psmon.streams.topics import ensure_topics

    s = settings(
        ctx,
        kafka_bootstrap=kafka,
        clickhouse_dsn=clickhouse,
        metrics_port=metrics_port,
        data_dir=data_dir,
        topic_partitions=partitions,
    )
    fix_mmap_threshold(s.malloc_mmap_threshold_kib)
    metrics = PipelineMetrics()
    _serve_metrics(s, metrics)  # local checks first, then Kafka
    ensure_embedded_free(s.resolved_clickhouse_dsn)  # else the worker fails opening it, in a traceback
    ensure_topics(s)
    BoundedWorker(
        SinkService(s, metrics, faults=FaultPlan.from_settings(s)),
        loglevel=s.log_level,
        logging_config=mode_logging_config(s.log_level, s.log_format),
        quiet=True,
        redirect_stdouts=False,
        shutdown_timeout_s=s.shutdown_timeout_s,
    ).execute_from_commandline()


def simulate(
    ctx: typer.Context,
    kafka: KafkaOpt = None,
    rate: Annotated[float, typer.Option(help="events per second at office-hour peak")] = 50.0,
    speedup: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    start: Annotated[
        datetime | None, typer.Option(metavar="TIME", help="simulated start time (default now); pins the clock")
    ] = None,
    duration_s: Annotated[
        float | None, typer.Option("--duration-s", metavar="SECONDS", help="stop after this many seconds")
    ] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    drop: Annotated[
        list[str] | None, typer.Option(metavar="P:M:V", help="PROVINCE:METRIC:VALUE, e.g. 25:online_submission:0.3")
    ] = None,
    bad_fraction: Annotated[float, typer.Option(metavar="SHARE", help="fraction of events replaced by bad ones")] = 0.0,
    old_code_fraction: Annotated[
        float, typer.Option(metavar="SHARE", help="fraction sent with an old 63-province code")
    ] = 0.05,
    seed: Annotated[int | None, typer.Option(help="random seed (default: random)")] = None,
    unpaced: Annotated[bool, typer.Option(help="generate as fast as possible (bulk)")] = False,
    output: Annotated[Path | None, typer.Option(metavar="FILE", help="write JSONL here instead of Kafka")] = None,
    catalog_out: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="also write the procedure catalog the events use (CSV for psmon catalog load)"
        ),
    ] = None,
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

    s = settings(ctx, kafka_bootstrap=kafka)
    configure_logging(s.log_level, fmt=s.log_format)
    if catalog_out is not None:
        from psmon.simulator.catalog import simulated_catalog, write_catalog_csv

        rows = write_catalog_csv(catalog_out, simulated_catalog())
        typer.echo(f"wrote {rows:,} catalog rows to {catalog_out}", err=True)
    profiles = default_profiles()
    for province, metric, value in parse_drop(drop or []):
        try:
            profiles = with_drop(profiles, province, metric, value)
        except ValueError as exc:
            fail(f"--drop: {exc}")
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=LOCAL_TZ)
    config = SimulationConfig(
        profiles,
        rate_eps=rate,
        speedup=speedup,
        start=start,
        duration_s=duration_s,
        count=count,
        seed=seed if seed is not None else random.randrange(2**31),
        bad_fraction=bad_fraction,
        old_code_fraction=old_code_fraction,
        paced=not unpaced,
    )
    out: EventSink
    if output is not None:
        out = FileSink(output)
    else:
        ensure_topics(s)
        out = KafkaSink(s.kafka_bootstrap, s.topic_events, auth=KafkaAuth.from_settings(s))

    def progress(st: SimulationStats) -> None:
        typer.echo(
            f"sent {st.sent:,} events ({st.rate_eps:,.0f}/s), {st.bad:,} bad, "
            f"simulated time {st.sim_time:%Y-%m-%d %H:%M:%S}Z",
            err=True,
        )

    try:
        stats = run_simulation(config, out, progress=progress)
    except KeyboardInterrupt:
        fail("interrupted")
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


def validate(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file of events")],
    fmt: SummaryFormatOpt = "table",
    lang: LangOpt = None,
) -> None:
    """Check a file of events against the contract without loading it (exit 1 if any is bad)."""
    from psmon.history.validate_file import validate_file

    summary_format(fmt)
    check_input_file(path)
    result = validate_file(path)
    bad = result.invalid
    by_reason = dict(sorted(result.invalid_by_reason.items()))
    if fmt == "json":
        body = {
            "file": str(path),
            "events": result.total,
            "valid": result.valid,
            "invalid": bad,
            "invalid_by_reason": by_reason,
            "examples": [{"row": row, "reason": v.reason, "detail": v.detail} for row, v in result.examples],
        }
        typer.echo(orjson.dumps(body).decode())
    else:
        for row, verdict in result.examples:
            typer.echo(f"{path}:{row}: {verdict.reason}: {verdict.detail}")
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in by_reason.items())
        counts = {"total": f"{result.total:,}", "valid": f"{result.valid:,}", "invalid": f"{bad:,}"}
        line = text("summary.validate", settings(ctx, lang=lang).lang, **counts)
        typer.echo(line + (f" ({reasons})" if bad else ""))
    if bad:
        raise typer.Exit(1)


@schema_app.command("export", epilog=examples("psmon schema export", "psmon schema export docs/schemas"))
def schema_export(
    directory: Annotated[Path, typer.Argument(help="output directory")] = Path("schemas"),
) -> None:
    """Write one JSON Schema per event type, and the procedure catalog's."""
    from psmon.schemas.jsonschema import write_schemas

    for p in write_schemas(directory):
        typer.echo(str(p))


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


def up(
    ctx: typer.Context,
    kafka: KafkaOpt = None,
    clickhouse: ClickHouseOpt = None,
    metrics_port: MetricsPortOpt = None,
    data_dir: DataDirOpt = None,
    rate: Annotated[float, typer.Option(help="simulator events/s at peak; 0 = no simulator")] = 200.0,
    speedup: Annotated[float, typer.Option(help="simulator clock speed-up")] = 1.0,
    start: Annotated[datetime | None, typer.Option(metavar="TIME", help="simulator start time (default: now)")] = None,
    drop: Annotated[
        list[str] | None, typer.Option(metavar="P:M:V", help="PROVINCE:METRIC:VALUE for the simulator")
    ] = None,
    bad_fraction: Annotated[
        float, typer.Option(metavar="SHARE", help="fraction of bad events from the simulator")
    ] = 0.005,
    duration_s: Annotated[
        float | None, typer.Option("--duration-s", metavar="SECONDS", help="stop after this many seconds")
    ] = None,
    view: Annotated[bool, typer.Option(help="live terminal table (off without a terminal)")] = True,
) -> None:
    """Run everything in one process: local broker, worker, sink, simulator, metrics, live view."""
    from psmon.local.runtime import run_up

    s = settings(
        ctx,
        kafka_bootstrap=kafka,
        clickhouse_dsn=clickhouse,
        metrics_port=metrics_port,
        data_dir=data_dir,
    )
    configure_logging(s.log_level, fmt=s.log_format)  # run_up keeps the format for its log file
    fix_mmap_threshold(s.malloc_mmap_threshold_kib)
    run_up(
        s,
        embedded_broker=kafka is None and "PSMON_KAFKA_BOOTSTRAP" not in os.environ,
        rate_eps=rate,
        speedup=speedup,
        start=start,
        drops=parse_drop(drop or []),
        bad_fraction=bad_fraction,
        duration_s=duration_s,
        interactive=view and sys.stdout.isatty(),
    )


UP_EXAMPLES = examples(
    "psmon up",
    "psmon up --rate 500 --speedup 60 --start 2026-11-24T07:00:00",
    "psmon up --drop 25:online_submission:0.3 --duration-s 600 --no-view",
)
VALIDATE_EXAMPLES = examples("psmon validate events.jsonl", "psmon validate events.parquet --format json")
REPLAY_EXAMPLES = examples(
    "psmon replay 2025-*.jsonl --data-dir psmon-data",
    "psmon replay events.parquet --to both --no-progress --format json",
)
REPORT_EXAMPLES = examples("psmon report --period 2026-Q3", "psmon report --period 2026-08 -m on_time --out aug")

WORKER_EXAMPLES = examples("psmon worker", "psmon --log-format json worker --metrics-port 9101")
SINK_EXAMPLES = examples("psmon sink", "psmon sink --clickhouse http://writer@clickhouse:8123")
SIMULATE_EXAMPLES = examples("psmon simulate --rate 200", "psmon simulate --rate 50 --speedup 60 --duration-s 120")
RULES_EXAMPLES = examples("psmon rules --out deploy", "psmon rules --thresholds thresholds.yaml --out /etc/prometheus")
MIGRATE_EXAMPLES = examples("psmon migrate", "psmon migrate --clickhouse http://writer@clickhouse:8123")
TOPICS_EXAMPLES = examples("psmon topics", "psmon topics --kafka kafka:9092")
BROKER_EXAMPLES = examples("psmon broker", "psmon broker --port 19092")

# The help lists commands by what people do with them, in the order they meet them.
RUN, DATA, ANALYSE, OPERATE = "Run", "Data", "Analyse", "Operate"
app.command(epilog=UP_EXAMPLES, rich_help_panel=RUN)(up)
app.command(epilog=WORKER_EXAMPLES, rich_help_panel=RUN)(worker)
app.command(epilog=SINK_EXAMPLES, rich_help_panel=RUN)(sink)
app.command(epilog=SIMULATE_EXAMPLES, rich_help_panel=RUN)(simulate)
app.command(epilog=BROKER_EXAMPLES, rich_help_panel=RUN)(broker)
app.command(epilog=REPLAY_EXAMPLES, rich_help_panel=DATA)(replay)
app.command(epilog=VALIDATE_EXAMPLES, rich_help_panel=DATA)(validate)
app.add_typer(dead_letters_app, name="dead-letters", rich_help_panel=DATA)
app.add_typer(schema_app, name="schema", rich_help_panel=DATA)
app.add_typer(catalog_app, name="catalog", rich_help_panel=DATA)
app.add_typer(query_app, name="query", rich_help_panel=ANALYSE)
app.command(epilog=REPORT_EXAMPLES, rich_help_panel=ANALYSE)(report)
app.command(epilog=RULES_EXAMPLES, rich_help_panel=OPERATE)(rules)
app.add_typer(alerts_app, name="alerts", rich_help_panel=OPERATE)
app.add_typer(dashboards_app, name="dashboards", rich_help_panel=OPERATE)
app.command(epilog=MIGRATE_EXAMPLES, rich_help_panel=OPERATE)(migrate)
app.command(epilog=TOPICS_EXAMPLES, rich_help_panel=OPERATE)(topics)
app.command(rich_help_panel=OPERATE)(version)


def main() -> None:
    try:
        app()
    except PsmonError as exc:
        typer.secho(f"psmon: {redact_text(str(exc))}", err=True, fg="red")  # no password of a URL
        sys.exit(1)


if __name__ == "__main__":
    main()
