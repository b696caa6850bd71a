"""The read-only query endpoint of `psmon up` (`psmon.local.query_server`) and how readers find it.

The endpoint is served here in the test process on the module's loaded chDB directory (one
process may open one directory through several connections), and read through clickhouse-connect's
HTTP client as `connect(dsn, read_only=True)` builds it: every named question, the raw SQL and
the dead letters must answer exactly as on the directory. Writes and outside reads are refused,
whatever the client sends. The stale and held cases use a second directory held by a real
process, so the lock is the engine's own.
"""

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from psmon.errors import ClickHouseError
from psmon.history.catalog import CatalogStore
from psmon.history.dead_letters import DeadLetterStore
from psmon.history.periods import Period
from psmon.history.queries import History, ReadOnlyError
from psmon.history.tables import ResultTable
from psmon.local.query_server import QueryEndpoint
from psmon.schemas.catalog import parse_catalog_rows
from psmon.sinks.clickhouse.client import ENDPOINT_FILE, connect
from tests.integration.history.dataset import Dataset, Loaded

PSMON = [sys.executable, "-m", "psmon.cli.main"]


@pytest.fixture(scope="module")
def endpoint(loaded: Loaded) -> Iterator[QueryEndpoint]:
    """The endpoint on the loaded directory, run on an event loop of its own as in `psmon up`."""
    if not loaded.dsn.startswith("chdb://"):
        pytest.fail("the query endpoint serves an embedded directory; unset PSMON_TEST_CLICKHOUSE")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="endpoint-loop", daemon=True)
    thread.start()

    async def start() -> QueryEndpoint:
        served = QueryEndpoint(loaded.dsn)
        await served.start()
        return served

    served = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(served.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
    assert not served.endpoint_file.exists(), "the endpoint file outlived the endpoint"


def _client(record: dict[str, Any], *, token: str | None = None) -> Any:
    return clickhouse_connect.get_client(
        host=record["host"],
        port=record["port"],
        username="psmon",
        password=token or record["token"],
        compress=False,
        autogenerate_session_id=False,
    )


@pytest.fixture(scope="module")
def record(endpoint: QueryEndpoint) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(endpoint.endpoint_file.read_text())
    return record


@pytest.fixture(scope="module")
def served(record: dict[str, Any]) -> Iterator[Any]:
    client = _client(record)
    try:
        yield client
    finally:
        client.close()


def test_the_endpoint_file_is_private_and_names_this_process(endpoint: QueryEndpoint, record: dict[str, Any]) -> None:
    mode = stat.S_IMODE(endpoint.endpoint_file.stat().st_mode)
    assert mode == 0o600
    assert record["pid"] == os.getpid() and record["host"] == "127.0.0.1" and record["port"] == endpoint.port
    assert len(record["token"]) >= 32


@pytest.fixture(scope="module")
def with_catalog(loaded: Loaded, dataset: Dataset) -> Loaded:
    """The loaded database with a procedure catalog for 2025: every procedure of the dataset (online
    every other one), plus one online procedure per province that no dossier uses (idle)."""
    pairs = sorted({(e.province_code, e.procedure_code) for e in dataset.events})
    pairs += sorted({(p, "1.999999") for p, _ in pairs})
    rows = [
        {
            "province_code": p,
            "procedure_code": code,
            "name": f"Thủ tục {code}",
            "level": "province",
            "online_level": "full" if i % 2 == 0 or code == "1.999999" else "none",
            "fee_bearing": i % 3 == 0,
            "payment_integrated": i % 3 == 0,
            "valid_from": "2025-01-01",
        }
        for i, (p, code) in enumerate(pairs)
    ]
    entries, _ = parse_catalog_rows(rows, source="test")  # codes outside the national format are left out
    store = CatalogStore(loaded.client, database=loaded.database)
    store.write(store.plan(entries))
    return loaded


def test_named_questions_answer_as_on_the_directory(with_catalog: Loaded, served: Any) -> None:
    loaded = with_catalog
    direct, through = History(loaded.client, database=loaded.database), History(served, database=loaded.database)
    through.check_schema()
    year, month = Period.parse("2025"), Period.parse("2025-07")
    asks: list[Callable[[History], ResultTable]] = [
        lambda h: h.rates("online_submission", by="month", period=year),
        lambda h: h.rates("online_submission", by="day", period=month, provinces=["01", "79"]),
        lambda h: h.rates("online_payment", by="quarter", period=year, historical_codes=True),
        lambda h: h.rank("online_submission", period=year),
        lambda h: h.below("online_submission", threshold=0.5, by="month", period=year),
        lambda h: h.index766(period=year),
        lambda h: h.index766(period=month),
        lambda h: h.idle_procedures(period=month),
        lambda h: h.idle_procedures(period=year, provinces=["25"]),
        lambda h: h.raw_sql(f"SELECT province_code, count() AS n FROM {loaded.database}.events GROUP BY 1 ORDER BY 1"),
        lambda h: h.raw_sql(f"SELECT max(occurred_at), min(occurred_at) FROM {loaded.database}.events"),
    ]
    for ask in asks:
        expected, got = ask(direct), ask(through)
        assert expected.rows, expected.title  # a question with no answer would prove nothing
        assert (got.title, got.columns, got.rows) == (expected.title, expected.columns, expected.rows)


def test_catalog_reads_answer_as_on_the_directory(with_catalog: Loaded, served: Any) -> None:
    """`psmon catalog show|diff` read through the endpoint while `psmon up` holds the directory."""
    loaded = with_catalog
    direct, through = (
        CatalogStore(loaded.client, database=loaded.database),
        CatalogStore(served, database=loaded.database),
    )
    assert through.exists()
    expected = direct.in_force_on(date(2025, 7, 1))
    assert expected
    assert through.in_force_on(date(2025, 7, 1)) == expected
    assert through.versions(provinces=["25"]) == direct.versions(provinces=["25"])
    assert through.plan(expected).writes == []  # what `catalog diff` computes: nothing to change


def test_dead_letters_answer_as_on_the_directory(loaded: Loaded, served: Any) -> None:
    direct, through = (
        DeadLetterStore(loaded.client, database=loaded.database),
        DeadLetterStore(served, database=loaded.database),
    )
    expected = direct.letters(reason=None, since=None, limit=1000)
    assert expected.rows
    assert through.letters(reason=None, since=None, limit=1000).rows == expected.rows
    assert through.explain().rows == direct.explain().rows


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {db}.events (event_id) VALUES ('through-the-endpoint')",
        "ALTER TABLE {db}.events DELETE WHERE 1",
        "DROP TABLE {db}.events",
        "CREATE TABLE {db}.scratch (x UInt8) ENGINE = Memory",
        "SET readonly = 0",
        "SYSTEM STOP MERGES",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT file('/etc/passwd')",
        "SELECT 1 INTO OUTFILE '/tmp/psmon-endpoint-outfile'",
        "SELECT 1; INSERT INTO {db}.events (event_id) VALUES ('x')",
    ],
)
def test_writes_and_outside_reads_are_refused(loaded: Loaded, served: Any, statement: str) -> None:
    """Sent as the raw client sends it: the endpoint's own guard refuses, before anything runs."""
    before = loaded.client.query(f"SELECT count() FROM {loaded.database}.events").result_rows
    with pytest.raises(DatabaseError, match=r"code: 164.*SQL is read-only"):
        served.command(statement.format(db=loaded.database))
    assert loaded.client.query(f"SELECT count() FROM {loaded.database}.events").result_rows == before
    assert not Path("/tmp/psmon-endpoint-outfile").exists()


def test_a_refusal_reads_as_on_the_directory(loaded: Loaded, served: Any) -> None:
    through = History(served, database=loaded.database)
    with pytest.raises(ReadOnlyError) as refused:
        through.raw_sql("SELECT count() FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')")
    assert str(refused.value) == "SQL is read-only: table function url() (reads files, URLs, other servers or programs)"


def test_parameters_arrive_as_sent(served: Any) -> None:
    text = "tab\there, quote ' and backslash \\ and\nnewline"
    got = served.query(
        "SELECT {s:String}, {d:Date}, {a:Array(String)}",
        parameters={"s": text, "d": date(2025, 7, 1), "a": ["x", "y'z"]},
    ).result_rows
    assert got == [(text, date(2025, 7, 1), ["x", "y'z"])]


def test_a_wrong_token_is_refused(record: dict[str, Any]) -> None:
    with pytest.raises(DatabaseError, match="code: 516"):
        _client(record, token="not-the-token").query("SELECT 1")


# -- readers finding the endpoint, or a stale one ------------------------------------------------
HOLD = """
import sys, time
import chdb
conn = chdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A second chDB directory held by another process (as `psmon up` holds it); its pid."""
    directory = tmp_path / "clickhouse"
    directory.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield directory, holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=60)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _record(directory: Path, *, pid: int, port: int) -> None:
    (directory / ENDPOINT_FILE).write_text(json.dumps({"host": "127.0.0.1", "port": port, "token": "t", "pid": pid}))


def test_an_endpoint_that_does_not_answer_is_one_line(held: tuple[Path, int], closed_port: int) -> None:
    """`psmon up` holds the directory but its endpoint is gone (hung, or killed mid-start)."""
    directory, pid = held
    _record(directory, pid=pid, port=closed_port)
    with pytest.raises(ClickHouseError) as failed:
        connect(f"chdb://{directory}", read_only=True)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(
        f"the embedded ClickHouse directory {directory} is held by psmon up (pid {pid}), but its query endpoint "
        f"http://127.0.0.1:{closed_port} does not answer"
    )


def test_an_endpoint_file_of_another_process_is_not_used(held: tuple[Path, int], closed_port: int) -> None:
    """The holder is not the `up` that wrote the file (a sink now holds it): the usual refusal."""
    directory, pid = held
    _record(directory, pid=pid + 100_000, port=closed_port)
    with pytest.raises(ClickHouseError, match=rf"held by another psmon process \(pid {pid}\)"):
        connect(f"chdb://{directory}", read_only=True)


def test_writers_never_read_through_an_endpoint(held: tuple[Path, int], closed_port: int) -> None:
    directory, pid = held
    _record(directory, pid=pid, port=closed_port)
    with pytest.raises(ClickHouseError, match=rf"held by another psmon process \(pid {pid}\)"):
        connect(f"chdb://{directory}")


def test_a_stale_file_of_a_dead_up_is_ignored(tmp_path: Path, closed_port: int) -> None:
    """`psmon up` was killed: its file is left, the directory is free, the reader opens it (in a
    process of its own: this one holds the module's directory)."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSMON_")}
    migrate = subprocess.run([*PSMON, "migrate", "--clickhouse", dsn], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr
    _record(tmp_path / "clickhouse", pid=2**22 + 1, port=closed_port)
    query = subprocess.run(
        [*PSMON, "query", "--clickhouse", dsn, "--sql", "SELECT 41 + 1 AS answer", "-f", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.split() == ["answer", "42"]
