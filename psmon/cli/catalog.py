"""`psmon catalog load|show|diff`: the procedure catalog, from files into the history and the stream.

A thin layer like `history.py`: the work is in `psmon.history.catalog`. `load` is all or
nothing: every row is validated first, and one bad row means every error printed (one line
each, `FILE:LINE: FIELD: what is allowed`), exit 1 and nothing stored or published. `show` and
`diff` only read, through the same read-only client as `psmon query` (they never create a
database, and read through the query endpoint while `psmon up` holds the directory); `diff FILE`
validates the file like `load` and says what a load would change, without storing anything.
"""

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from psmon.cli.help import PsmonTyper, examples
from psmon.cli.history import ProvinceOpt, clickhouse_reader
from psmon.cli.options import (
    ClickHouseOpt,
    DataDirOpt,
    FormatOpt,
    KafkaOpt,
    OutputOpt,
    SummaryFormatOpt,
    check_input_file,
    emit,
    fail,
    settings,
    summary_format,
)
from psmon.kafka import KafkaAuth
from psmon.timeutil import LOCAL_TZ

__all__ = ["catalog_app"]

catalog_app = PsmonTyper(
    no_args_is_help=True,
    help="The procedure catalog: which procedures each province offers online (index items 3.1-3.5b).",
    epilog=examples(
        "psmon catalog load catalog.csv",
        "psmon catalog show --province 25 --date 2026-05-01",
        "psmon catalog diff catalog-2026-06.parquet",
    ),
)


def _read(path: Path) -> list[Any]:
    """The entries of `path`, or every row error on stderr (one line each) and exit 1."""
    from psmon.history.catalog import read_catalog_file
    from psmon.history.sources import SourceError

    check_input_file(path)
    try:
        entries, errors = read_catalog_file(path)
    except SourceError as exc:
        fail(str(exc))
    if errors:
        for e in errors:
            typer.secho(f"psmon: {e}", err=True, fg="red")
        fail(f"{path}: {len(errors)} bad row{'s' if len(errors) != 1 else ''}; nothing loaded")
    if not entries:
        fail(f"{path}: no rows; a catalog file has a row per province and procedure")
    return entries


@catalog_app.command(
    "load",
    epilog=examples(
        "psmon catalog load catalog.csv",
        "psmon catalog load catalog.jsonl --data-dir psmon-data --format json",
        "psmon catalog load catalog.parquet --no-publish",
    ),
)
def load(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet file of catalog rows")],
    publish: Annotated[
        bool, typer.Option("--publish/--no-publish", help="also publish to the compacted catalog topic (Kafka)")
    ] = True,
    fmt: SummaryFormatOpt = "table",
    clickhouse: ClickHouseOpt = None,
    kafka: KafkaOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Validate every row, then store them as new versions and publish each key's newest version.

    One bad row: every error is printed, one line each, exit 1, nothing stored or published."""
    from psmon.history.catalog import CatalogStore, diff_load, publish_entries
    from psmon.history.publish import KafkaPublisher
    from psmon.sinks.clickhouse.client import connect
    from psmon.sinks.clickhouse.schema import migrate_configured
    from psmon.streams.topics import ensure_topics

    summary_format(fmt)
    entries = _read(file)
    s = settings(ctx, clickhouse_dsn=clickhouse, kafka_bootstrap=kafka, data_dir=data_dir)
    if publish:
        # The broker first: if it cannot be reached, nothing is stored either (one line, exit 1).
        ensure_topics(s)
    client = connect(s.resolved_clickhouse_dsn)
    try:
        migrate_configured(client, s)
        store = CatalogStore(client, database=s.clickhouse_database)
        plan = store.plan(entries)
        changes = diff_load(plan)
        written = store.write(plan)
    finally:
        client.close()
    published = 0
    if publish:
        publisher = KafkaPublisher(s.kafka_bootstrap, s.topic_catalog, auth=KafkaAuth.from_settings(s))
        try:
            published = publish_entries(plan.newest, publisher.send)
            publisher.flush()
        except Exception as exc:
            fail(f"stored in ClickHouse, but publishing to {s.topic_catalog} failed ({exc}); load the file again")
        finally:
            publisher.close()
    kinds = [str(r[0]) for r in changes.rows]
    summary = {
        "rows": len(entries),
        "written": written,
        "added": kinds.count("added"),
        "changed": kinds.count("changed"),
        "ended": kinds.count("ended"),
        "published": published,
        "topic": s.topic_catalog if publish else None,
    }
    if fmt == "json":
        typer.echo(orjson.dumps(summary).decode())
        return
    typer.echo(
        f"{summary['rows']:,} rows valid; {written:,} versions written "
        f"({summary['added']:,} added, {summary['changed']:,} changed, {summary['ended']:,} ended)"
    )
    typer.echo(f"{published:,} published to {s.topic_catalog}" if publish else "not published (--no-publish)")


@catalog_app.command(
    "show",
    epilog=examples(
        "psmon catalog show",
        "psmon catalog show --province 25 --date 2026-05-01 -f csv -o catalog-25.csv",
        "psmon catalog show --all -f parquet -o catalog.parquet",
    ),
)
def show(
    ctx: typer.Context,
    province: ProvinceOpt = None,
    on: Annotated[
        datetime | None,
        typer.Option(
            "--date", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="the catalog of this day (default today)"
        ),
    ] = None,
    all_versions: Annotated[bool, typer.Option("--all", help="every stored version, not one day's catalog")] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The catalog in force on a day (or every version with --all), in the columns `load` takes."""
    from psmon.history.catalog import CatalogStore, catalog_table

    if all_versions and on is not None:
        fail("give --date or --all, not both")
    day = on.date() if on is not None else datetime.now(LOCAL_TZ).date()
    with clickhouse_reader(ctx, clickhouse, data_dir) as (client, s):
        store = CatalogStore(client, database=s.clickhouse_database)
        store.check()
        if all_versions:
            table = catalog_table(store.versions(provinces=province), "procedure catalog, every version", "no catalog")
        else:
            table = catalog_table(
                store.in_force_on(day, provinces=province),
                f"procedure catalog in force on {day.isoformat()}",
                f"no catalog entry in force on {day.isoformat()}",
            )
    emit(table, fmt, output)


@catalog_app.command(
    "diff",
    epilog=examples(
        "psmon catalog diff catalog-2026-06.csv",
        "psmon catalog diff --from 2026-01-01 --to 2026-06-01 -f json",
    ),
)
def diff(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="what loading this file would change")] = None,
    first: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="compare the catalog of this day"),
    ] = None,
    second: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="with the catalog of this day"),
    ] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """What loading FILE would change (added, changed, ended), or --to's catalog against --from's.

    Stores nothing; FILE is validated like `load` (every bad row printed, exit 1)."""
    from psmon.history.catalog import CatalogStore, diff_dates, diff_load, plan_load

    if (file is None) == (first is None and second is None) or (file is None and (first is None or second is None)):
        fail("give FILE, or --from DAY and --to DAY")
    entries = _read(file) if file is not None else []
    with clickhouse_reader(ctx, clickhouse, data_dir) as (client, s):
        store = CatalogStore(client, database=s.clickhouse_database)
        if file is not None:
            # Before any load (or migration) the stored catalog is empty: everything is added.
            stored = store.versions(keys={e.key for e in entries}) if store.exists() else []
            table = diff_load(plan_load(stored, entries))
        else:
            assert first is not None
            assert second is not None
            store.check()
            d1, d2 = first.date(), second.date()
            table = diff_dates(store.in_force_on(d1), store.in_force_on(d2), d1, d2)
    emit(table, fmt, output)
