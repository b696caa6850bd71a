"""`psmon query --sql` only reads: writes, DDL, settings, files, URLs and several statements are
refused in one line, before anything runs, and the database is the same afterwards.

Run as a user runs it (Typer's CliRunner) against the loaded chDB dataset of `conftest.py`. The
`url(...)` case points at a listening socket of this test: a refusal before any fetch leaves it
without a connection. The named questions keep their own tests (test_cli.py).
"""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from psmon.cli.main import app
from psmon.history.queries import ast_refusal
from tests.integration.history.dataset import Dataset, Loaded

PREFIX = "psmon: --sql is read-only: "


@pytest.fixture(scope="module")
def env(loaded: Loaded) -> dict[str, str]:
    return {"PSMON_CLICKHOUSE_DSN": loaded.dsn, "PSMON_CLICKHOUSE_DATABASE": loaded.database}


@pytest.fixture(autouse=True)
def merges_stopped(loaded: Loaded) -> Iterator[None]:
    """Background merges stopped while a test compares snapshots: a merge of the rollups
    (SummingMergeTree) sums rows and lowers `total_rows` with no write at all."""
    loaded.client.command("SYSTEM STOP MERGES")
    try:
        yield
    finally:
        loaded.client.command("SYSTEM START MERGES")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that records whether anything connected to it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def sql(env: dict[str, str], statement: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["query", "--sql", statement, *args], env=env, catch_exceptions=False)


def snapshot(client: Any) -> list[tuple[Any, ...]]:
    """Every database and table with its rows and last change: what a write would alter."""
    tables = client.query(
        "SELECT database, name, engine, total_rows, metadata_modification_time FROM system.tables "
        "WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name"
    ).result_rows
    databases = client.query("SELECT name, '', '', NULL, NULL FROM system.databases ORDER BY name").result_rows
    return [tuple(r) for r in [*databases, *tables]]


REFUSED = [
    ("INSERT INTO {db}.events SELECT * FROM {db}.events LIMIT 1", "INSERT"),
    ("insert into {db}.dead_letters (dead_letter_id) values ('x')", "INSERT"),
    ("CREATE TABLE {db}.scratch (x UInt8) ENGINE = Memory", "CREATE"),
    ("DROP TABLE {db}.events", "DROP"),
    ("ALTER TABLE {db}.events DELETE WHERE 1", "ALTER"),
    ("TRUNCATE TABLE {db}.events", "TRUNCATE"),
    ("SET readonly = 0", "SET"),
    ("SYSTEM STOP MERGES", "SYSTEM"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("SELECT file('/etc/passwd')", "function file()"),
    ("SELECT * FROM view(SELECT * FROM s3('http://127.0.0.1:9/a.csv'))", "table function s3()"),
    ("SELECT * FROM remote('127.0.0.1', system.one)", "table function remote()"),
    ("SELECT * FROM executable('x.sh', TSV, 'a String')", "table function executable()"),
    ("SELECT count() FROM {db}.events SETTINGS readonly = 0", "readonly"),
    ("SELECT 1; DROP TABLE {db}.events", "more than one statement"),
    ("SELECT 1;\nINSERT INTO {db}.events SELECT * FROM {db}.events LIMIT 1", "more than one statement"),
]


@pytest.mark.parametrize(("statement", "refused"), REFUSED)
def test_writes_and_outside_reads_are_refused(
    env: dict[str, str], loaded: Loaded, statement: str, refused: str
) -> None:
    before = snapshot(loaded.client)
    result = sql(env, statement.format(db=loaded.database))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), result.stderr
    assert refused in lines[0]
    assert snapshot(loaded.client) == before


def test_url_is_refused_before_any_fetch(env: dict[str, str], loaded: Loaded, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    before = snapshot(loaded.client)
    for text in (
        f"SELECT * FROM url('http://127.0.0.1:{port}/x.csv', CSV, 'a String')",
        f"SELECT * FROM URL('http://127.0.0.1:{port}/x.csv', CSV, 'a String')",
        f"SELECT 1 IN url('http://127.0.0.1:{port}/x.csv', CSV, 'a String')",
    ):
        result = sql(env, text)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [f"{PREFIX}{result.stderr.removeprefix(PREFIX).strip()}"]
        assert "url()" in result.stderr or "URL()" in result.stderr
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    assert snapshot(loaded.client) == before


def test_into_outfile_writes_no_file(env: dict[str, str], loaded: Loaded, tmp_path: Path) -> None:
    out = tmp_path / "events.tsv"
    result = sql(env, f"SELECT * FROM {loaded.database}.events LIMIT 3 INTO OUTFILE '{out}'")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{PREFIX}INTO OUTFILE (the result is printed, never written to a file)"
    assert not out.exists()


def test_reads_still_work(env: dict[str, str], loaded: Loaded, dataset: Dataset) -> None:
    db = loaded.database
    result = sql(env, f"SELECT count() AS n FROM {db}.events FINAL -- every valid event\n;", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", str(len(dataset.events))]
    for text in (
        f"WITH m AS (SELECT * FROM {db}.metrics_month) SELECT count() > 0 AS some FROM m",
        f"SELECT number FROM numbers(3) WHERE number IN (SELECT 1) UNION ALL SELECT count() FROM {db}.provinces",
        f"SHOW TABLES FROM {db}",
        f"DESCRIBE TABLE {db}.events",
        "EXPLAIN SELECT 1",
    ):
        result = sql(env, text, "-f", "json")
        assert result.exit_code == 0, (text, result.output)
    # the readonly setting stayed with those queries: this process can still write
    assert loaded.client.query("SELECT getSetting('readonly')").result_rows == [(0,)]


def test_a_newline_in_an_identifier_cannot_hide_a_table_function() -> None:
    # EXPLAIN AST prints an identifier holding a newline over two rows; such rows only add nodes
    lines = [
        "SelectWithUnionQuery (children 1)",
        " ExpressionList (children 1)",
        "  SelectQuery (children 2)",
        "   ExpressionList (children 1)",
        "    Identifier a",
        "b",
        "   TablesInSelectQuery (children 1)",
        "    TablesInSelectQueryElement (children 1)",
        "     TableExpression (children 1)",
        "      Function file (children 1)",
    ]
    assert ast_refusal(lines, "SELECT `a\nb` FROM file('x')") == (
        "table function file() (reads files, URLs, other servers or programs)"
    )
    assert ast_refusal(["InsertQuery   (children 2)"], "INSERT INTO t FORMAT Values") is not None
