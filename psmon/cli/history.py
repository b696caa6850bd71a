"""Analysts' commands: `psmon query`, `psmon report`, `psmon replay`, `psmon dead-letters`.

A thin layer like `main.py`: options become `Settings` and plain arguments, and the work is done
in `psmon/history/`. `main.py` registers them. With embedded chDB these
commands open the data directory themselves, so they run while no sink (or `psmon up`) holds it;
with a ClickHouse server they run any time. The `query` and `dead-letters` groups take their
commands' shared options too: `psmon query --data-dir D rank ...` = `psmon query rank ... --data-dir D`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
import typer

from psmon.cli.help import PsmonTyper, examples
from psmon.cli.options import (
    ClickHouseOpt,
    DataDirOpt,
    FormatOpt,
    KafkaOpt,
    LangOpt,
    OutputOpt,
    SummaryFormatOpt,
    check_input_file,
    check_output,
    emit,
    fail,
    inherited,
    settings,
    summary_format,
)
from psmon.history.periods import GRAIN_NAMES, Grain, Period
from psmon.history.tables import ResultTable, local_time
from psmon.kafka import KafkaAuth
from psmon.schemas.labels import text
from psmon.settings import Lang, Settings

__all__ = ["ProvinceOpt", "clickhouse_reader", "dead_letters_app", "query_app", "replay", "report"]

query_app = PsmonTyper(
    no_args_is_help=False,
    epilog=examples(
        "psmon query rates -m online_submission --by month --year 2025",
        "psmon query rank -m on_time --period 2026-Q3 -f csv -o rank.csv",
        "psmon query below --threshold 50% --period 2026 -f parquet -o below.parquet",
        "psmon query index --month 2026-08",
        "psmon query idle-procedures --period 2026-05 --province 25",
        'psmon query --sql "SELECT count() FROM psmon.events" -f json',
    ),
    invoke_without_command=True,
    help="Named questions over the history (34-province terms unless --historical-codes).",
)
dead_letters_app = PsmonTyper(no_args_is_help=True, help="List, explain and re-drive dead letters.")

MetricOpt = Annotated[str, typer.Option("--metric", "-m", help="e.g. online_submission (or online_submission_ratio)")]
HistoricalOpt = Annotated[
    bool,
    typer.Option("--historical-codes", help="codes as sent, named as they were then (80 in 2024 = Long An)"),
]
ProvinceOpt = Annotated[list[str] | None, typer.Option("--province", "-p", help="only these codes (repeatable)")]


@contextmanager
def _clickhouse(ctx: typer.Context, clickhouse: str | None, data_dir: Path | None) -> Iterator[tuple[Any, Settings]]:
    """A read-only client for the command's duration. Closing it matters for chDB: one process
    can hold one data directory at a time, and tests run several commands in one process. While
    `psmon up` holds the directory, the client reads through its query endpoint."""
    from psmon.sinks.clickhouse.client import connect

    if "fmt" in ctx.params:  # a bad --format (or parquet to stdout) is said before anything is opened
        check_output(inherited(ctx, "fmt", ctx.params["fmt"]), inherited(ctx, "output", ctx.params.get("output")))
    s = settings(ctx, clickhouse_dsn=clickhouse, data_dir=data_dir)
    dsn = s.resolved_clickhouse_dsn
    if s.embedded_clickhouse and not Path(dsn.removeprefix("chdb://")).is_dir():
        # opening it would create an empty database here, and the answer would be "not migrated"
        where = "--clickhouse / PSMON_CLICKHOUSE_DSN" if s.clickhouse_dsn else "--data-dir / PSMON_DATA_DIR"
        fail(f"{dsn.removeprefix('chdb://')}: no such directory: no psmon history there (check {where})")
    client = connect(dsn, read_only=True)
    try:
        yield client, s
    finally:
        client.close()


#: The read-only client of `psmon query`, for the other read commands (`psmon catalog show|diff`).
clickhouse_reader = _clickhouse


@contextmanager
def _history(ctx: typer.Context, clickhouse: str | None, data_dir: Path | None) -> Iterator[Any]:
    from psmon.history.queries import History

    with _clickhouse(ctx, clickhouse, data_dir) as (client, s):
        h = History(client, database=s.clickhouse_database)
        h.check_schema()
        yield h


def _grain(value: str) -> Grain:
    if value not in GRAIN_NAMES:
        fail(f"--by must be one of {', '.join(GRAIN_NAMES)}; got {value!r}")
    return value


def _period(period: str | None, year: int | None) -> Period:
    if period and year:
        fail("give --period or --year, not both")
    if not period and not year:
        fail("give --period (2025, 2025-Q3, 2025-07, 2025-07-15) or --year")
    return Period.parse(period or str(year))


def _threshold(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        fail(f"--threshold wants a share like 0.5 or 50%; got {text!r}")
    if not 0 <= value <= 1:
        fail(f"--threshold must be within 0..1 (or 0%..100%); got {text!r}")
    return value


def _emit(ctx: typer.Context, table: ResultTable, fmt: str) -> None:
    """Print `table` in the `--format` given to the command, or else to its group, to the
    `--output` given to either (stdout if none)."""
    emit(table, inherited(ctx, "fmt", fmt), inherited(ctx, "output", ctx.params.get("output")))


# -- psmon query ------------------------------------------------------------------------------
@query_app.callback()
def query(
    ctx: typer.Context,
    sql: Annotated[
        str | None, typer.Option("--sql", help="run this SQL (one read-only statement) instead of a named question")
    ] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Named questions (rates, rank, below, index, idle-procedures) or raw SQL (--sql)."""
    if ctx.invoked_subcommand is not None:
        if sql:
            fail("--sql runs on its own; drop the question name")
        return
    if not sql:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from psmon.history.queries import QueryError, ReadOnlyError

    with _history(ctx, clickhouse, data_dir) as h:
        try:
            table = h.raw_sql(sql)
        except ReadOnlyError as exc:
            fail(f"--sql is read-only: {exc.refused}")
        except QueryError as exc:
            fail(str(exc))
    _emit(ctx, table, fmt)


@query_app.command()
def rates(
    ctx: typer.Context,
    metric: MetricOpt,
    by: Annotated[str, typer.Option(help="day | month | quarter | year")] = "month",
    year: Annotated[int | None, typer.Option(help="calendar year (shorthand for --period YYYY)")] = None,
    period: Annotated[str | None, typer.Option(help="2025, 2025-Q3, 2025-07 or 2025-07-15")] = None,
    province: ProvinceOpt = None,
    historical_codes: HistoricalOpt = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """One metric per province per day/month/quarter/year, with numerator and denominator."""
    from psmon.history.queries import metric_name

    m, g, p = metric_name(metric), _grain(by), _period(period, year)
    with _history(ctx, clickhouse, data_dir) as h:
        _emit(ctx, h.rates(m, by=g, period=p, provinces=province, historical_codes=historical_codes), fmt)


@query_app.command()
def rank(
    ctx: typer.Context,
    metric: MetricOpt,
    period: Annotated[str, typer.Option(help="2026-Q3, 2026-08, 2026 or a day")],
    historical_codes: HistoricalOpt = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Provinces ranked by one metric over one period (highest first)."""
    from psmon.history.queries import metric_name

    m, p = metric_name(metric), Period.parse(period)
    with _history(ctx, clickhouse, data_dir) as h:
        _emit(ctx, h.rank(m, period=p, historical_codes=historical_codes), fmt)


@query_app.command()
def below(
    ctx: typer.Context,
    threshold: Annotated[str, typer.Option(help="share, e.g. 0.5 or 50%")],
    metric: MetricOpt = "online_submission",
    by: Annotated[str, typer.Option(help="day | month | quarter | year")] = "month",
    year: Annotated[int | None, typer.Option(help="calendar year")] = None,
    period: Annotated[str | None, typer.Option(help="2025, 2025-Q3, 2025-07")] = None,
    historical_codes: HistoricalOpt = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Which provinces were below a threshold, per period."""
    from psmon.history.queries import metric_name

    m, t, g, p = metric_name(metric), _threshold(threshold), _grain(by), _period(period, year)
    with _history(ctx, clickhouse, data_dir) as h:
        _emit(ctx, h.below(m, threshold=t, by=g, period=p, historical_codes=historical_codes), fmt)


@query_app.command("index")
def index766(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option(help="YYYY-MM")] = None,
    period: Annotated[str | None, typer.Option(help="or a quarter/year: 2026-Q3, 2026")] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(help="override an item's rule: 4.2=full:0.8, 3.3=linear or 3.5a=linear (repeatable)"),
    ] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The Decision 766 points psmon can compute, per province, ranked; lists what it cannot."""
    from psmon.schemas.index766 import ALL_ITEMS, parse_rule

    if bool(month) == bool(period):
        fail("give --month YYYY-MM or --period")
    p = Period.parse(month or period or "")
    if p.grain == "day":
        fail("the index is published per month, quarter or year")
    items = ALL_ITEMS
    for r in rule or []:
        try:
            items = parse_rule(r, items)
        except ValueError as exc:
            fail(f"--rule {r}: {exc}")
    with _history(ctx, clickhouse, data_dir) as h:
        _emit(ctx, h.index766(period=p, items=items), fmt)


@query_app.command("idle-procedures")
def idle_procedures(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="2026-05, 2026-Q2, 2026 or a day")],
    province: ProvinceOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Online procedures of the catalog that received no online dossier in the period, per province."""
    from psmon.history.queries import QueryError

    p = Period.parse(period)
    with _history(ctx, clickhouse, data_dir) as h:
        try:
            table = h.idle_procedures(period=p, provinces=province)
        except QueryError as exc:
            fail(str(exc))
    _emit(ctx, table, fmt)


# -- psmon report -----------------------------------------------------------------------------
def report(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="2025, 2025-Q3, 2025-07 or a day")],
    out: Annotated[Path, typer.Option(help="output directory for the HTML and PNG files")] = Path("psmon-report"),
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="metrics (default: all six)")] = None,
    lang: Annotated[
        str | None, typer.Option(help="language of headings, axes and legends: vi or en (default: PSMON_LANG, vi)")
    ] = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """A self-contained HTML report (trend, ranking, province grid, 766 points) plus PNG charts.

    A period without events fails in one line ("no events in PERIOD", exit 1) and writes nothing."""
    from psmon.history.queries import metric_name
    from psmon.history.report import write_report

    metrics = [metric_name(m) for m in metric] if metric else None
    p = Period.parse(period)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file; give a directory for the report")
    language = settings(ctx, lang=lang).lang
    with _history(ctx, clickhouse, data_dir) as h:
        files = write_report(h, period=p, out_dir=out, metrics=metrics, lang=language)
    typer.echo(str(files.html))
    for png in files.pngs:
        typer.echo(str(png))


# -- psmon replay -----------------------------------------------------------------------------


def replay(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="JSONL, CSV or Parquet files")],
    to: Annotated[str, typer.Option(help="clickhouse | kafka | both")] = "clickhouse",
    publish: Annotated[bool, typer.Option("--publish", help="shorthand for --to kafka")] = False,
    batch_rows: Annotated[int, typer.Option(help="rows per ClickHouse insert")] = 50_000,
    workers: Annotated[
        int, typer.Option(help="processes that validate the rows of a long input (1: this process)")
    ] = 1,
    progress: Annotated[bool, typer.Option(help="progress bar on stderr")] = True,
    fmt: SummaryFormatOpt = "table",
    lang: LangOpt = None,
    clickhouse: ClickHouseOpt = None,
    kafka: KafkaOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Load event files through the contract's validation and idempotent writes (twice = once)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from psmon.history.replay import REPLAY_TARGETS, replay_into
    from psmon.history.sources import size_hint

    summary_format(fmt)
    for path in files:
        check_input_file(path)
    target = "kafka" if publish and to == "clickhouse" else to
    if target not in REPLAY_TARGETS:
        fail(f"--to must be clickhouse, kafka or both; got {to!r}")
    if batch_rows < 1:
        fail("--batch-rows must be >= 1")
    if workers < 1:
        fail("--workers must be >= 1")
    s = settings(ctx, clickhouse_dsn=clickhouse, kafka_bootstrap=kafka, data_dir=data_dir, lang=lang)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
        transient=False,
    )
    tasks = {p: bar.add_task(p.name, total=size_hint(p)) for p in files}
    with bar:
        stats = replay_into(
            s,
            files,
            target=target,
            batch_rows=batch_rows,
            workers=workers,
            progress=lambda p, n: bar.advance(tasks[p], n),
        )
    summary = stats.summary()
    if fmt == "json":
        typer.echo(orjson.dumps(summary).decode())
    else:
        typer.echo(replay_text(summary, s.lang))


def replay_text(summary: dict[str, Any], lang: Lang = "en") -> str:
    """A replay summary as people read it: what was read, what was stored, what was refused.
    Counts keep their digits grouped the same way in both languages; reasons stay code names."""
    reasons = cast(dict[str, int], summary["invalid_by_reason"])
    refused = ", ".join(f"{n:,} {reason}" for reason, n in reasons.items())
    n = {k: f"{v:,}" for k, v in summary.items() if isinstance(v, int | float)}
    return "\n".join(
        [
            text("summary.replay.read", lang, **n) + (f" ({refused})" if refused else ""),
            text("summary.replay.stored", lang, **n),
            text("summary.replay.speed", lang, **n),
        ]
    )


# -- psmon dead-letters -----------------------------------------------------------------------
SinceOpt = Annotated[datetime | None, typer.Option(help="only letters received at or after this time (UTC)")]
ReasonOpt = Annotated[str | None, typer.Option(help="only this reason")]


@dead_letters_app.callback()
def dead_letters(
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    kafka: KafkaOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List, explain and re-drive dead letters."""


@contextmanager
def _store(ctx: typer.Context, clickhouse: str | None, data_dir: Path | None) -> Iterator[Any]:
    from psmon.history.dead_letters import DeadLetterStore

    with _clickhouse(ctx, clickhouse, data_dir) as (client, s):
        yield DeadLetterStore(client, database=s.clickhouse_database)


@dead_letters_app.command(
    "list",
    epilog=examples(
        "psmon dead-letters list",
        "psmon dead-letters list --reason invalid_value --since 2026-11-24T00:00:00 --limit 20",
        "psmon dead-letters -f json list",
    ),
)
def dl_list(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Dead letters, newest first, with reason, detail and redacted payload."""
    with _store(ctx, clickhouse, data_dir) as store:
        _emit(ctx, store.letters(reason=reason, since=since, limit=limit), fmt)


@dead_letters_app.command("explain")
def dl_explain(
    ctx: typer.Context,
    since: SinceOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Counts by reason, with what each reason means and how to fix it."""
    with _store(ctx, clickhouse, data_dir) as store:
        _emit(ctx, store.explain(since=since), fmt)


@dead_letters_app.command("redrive")
def dl_redrive(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    dead_letter_id: Annotated[list[str] | None, typer.Option("--id", help="only these ids (repeatable)")] = None,
    since: SinceOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="FIELD=VALUE applied before re-validation (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only; publish nothing")] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    kafka: KafkaOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rebuild events from redacted payloads (+ --set fixes), re-validate, publish the valid ones."""
    from psmon.history.dead_letters import parse_fixes
    from psmon.history.publish import KafkaPublisher

    if not (reason or dead_letter_id or since):
        fail("select letters with --reason, --id or --since (a re-drive of everything is rarely meant)")
    try:
        fixes = parse_fixes(set_ or [])
    except ValueError as exc:
        fail(str(exc))
    s = settings(ctx, clickhouse_dsn=clickhouse, kafka_bootstrap=kafka, data_dir=data_dir)
    publisher = None
    if not dry_run:
        from psmon.streams.topics import ensure_topics

        ensure_topics(s)
        publisher = KafkaPublisher(s.kafka_bootstrap, s.topic_events, auth=KafkaAuth.from_settings(s))
    try:
        with _store(ctx, clickhouse, data_dir) as store:
            outcomes = store.redrive(
                publish=publisher.send if publisher else None,
                fixes=fixes,
                reason=reason,
                ids=dead_letter_id,
                since=since,
            )
        if publisher:
            publisher.flush()
    finally:
        if publisher:
            publisher.close()
    done = sum(o.now == "valid" for o in outcomes)
    verb = "valid (dry run, not published)" if dry_run else "re-driven to " + s.topic_events
    # With nothing selected the answer is still the title's "0 of 0", naming the filters, so an
    # empty re-drive reads as an answer (and a filter that missed), not as "no rows".
    selected = [
        f"reason {reason}" if reason else "",
        "id " + ", ".join(dead_letter_id) if dead_letter_id else "",
        f"received since {local_time(since)}" if since else "",
    ]
    table = ResultTable(
        title=f"{done} of {len(outcomes)} dead letters {verb}",
        columns=["dead_letter_id", "reason", "now", "detail"],
        rows=[(o.dead_letter_id, o.reason, o.now, o.detail) for o in outcomes],
        empty=f"0 of 0 dead letters {verb}: none with " + ", ".join(w for w in selected if w),
    )
    _emit(ctx, table, fmt)
