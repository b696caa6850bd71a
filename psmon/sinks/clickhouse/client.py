"""Connecting to ClickHouse: one DSN for the embedded engine (chDB) and for a server (HTTP).

`clickhouse-connect` speaks both through the same `Client` API, so psmon has one code path:
`chdb:///abs/dir` opens the embedded engine in this process, `http(s)://...:8123` a server.

chDB allows one process per data directory and its calls are synchronous. A second process fails
to lock the directory; `connect` turns that into a `ClickHouseError` that says which process to
stop. Readers are the exception: `psmon up` serves the directory it holds on a loopback,
read-only endpoint that speaks ClickHouse's HTTP interface (`psmon.local.query_server`) and
records its address and a per-run token in `<dir>/psmon-query-endpoint.json` (mode 0600). On
finding the directory held, `connect(dsn, read_only=True)` (`psmon query`, `report`,
`dead-letters`, `alerts history`) reads that file and returns clickhouse-connect's HTTP client
on the endpoint, so every reader keeps its one code path and gets the answers it would get from
the directory. A file left behind by an `up` that died is ignored once the directory is free
(the engine's lock went with the process), and an endpoint that does not answer is one line of
error, never a hang. Async callers must run calls on `ClickHouseExecutor` (one thread) so long inserts never
block the event loop and its Kafka heartbeats.

`is_permanent_error` sorts write failures in two kinds, because they need opposite handling.
A transient failure (connection refused or reset, timeout, overload, too many parts, the fault
file of `psmon.faults`) goes away by itself: the sink keeps the batch and retries. A permanent
one is a data error (a value the column type cannot hold, found by the driver while encoding or
by the server while parsing): the same rows fail the same way forever, so retrying would stop
all writes for good; the writers isolate the offending rows instead (`writer.write_isolating`).
Anything not known to be a data error counts as transient: retrying a row that can never be
stored is visible (`psmon_clickhouse_up 0`), dead-lettering a good row because of an outage
would not be.
"""

import asyncio
import fcntl
import functools
import json
import os
import re
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import clickhouse_connect
from clickhouse_connect.driver import exceptions as driver_errors
from clickhouse_connect.driver.client import Client

from psmon.errors import ClickHouseError
from psmon.redact import redact_url

__all__ = [
    "DATA_ERROR_CODES",
    "ENDPOINT_FILE",
    "ClickHouseExecutor",
    "Client",
    "connect",
    "connect_waiting",
    "ensure_embedded_free",
    "is_permanent_error",
    "is_served",
]

T = TypeVar("T")

#: The file in a chDB directory where `psmon up` records its read-only query endpoint.
ENDPOINT_FILE: Final = "psmon-query-endpoint.json"
#: Seconds to wait for the endpoint's TCP connection: it is on loopback, so a slow one is a dead one.
_ENDPOINT_CONNECT_TIMEOUT_S: Final = 3
#: Clients that read through a `psmon up` endpoint (they cannot write or migrate).
_served: "weakref.WeakSet[Client]" = weakref.WeakSet()


def connect(dsn: str, *, read_only: bool = False) -> Client:
    """Open a client for `dsn`; creates the chDB directory if needed.

    `read_only=True` is for readers: if `psmon up` holds the chDB directory, the client reads
    through its query endpoint instead of failing (see the module docstring)."""
    if dsn.startswith("chdb://"):
        path = dsn.removeprefix("chdb://")
        if not path.startswith("/"):
            raise ClickHouseError(f"embedded DSN needs an absolute path, e.g. chdb:///var/lib/psmon: {dsn!r}")
        Path(path).mkdir(parents=True, exist_ok=True)
        if read_only:
            served = _served_client(Path(path))
            if served is not None:
                return served
        # Before chDB tries: a refused lock makes it print its own error and raise a vague one.
        ensure_embedded_free(dsn)
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        if dsn.startswith("chdb://"):
            ensure_embedded_free(dsn)  # taken meanwhile
            hint = (
                " Another psmon process (sink, up, query) may hold this chDB directory: embedded "
                "ClickHouse allows one process per directory. Stop it or use another --clickhouse."
            )
        else:
            hint = " Check that the server is up and the DSN (host, port, user, password) is right."
        raise ClickHouseError(f"cannot open ClickHouse at {_safe(dsn)}: {exc}.{hint}") from exc


def ensure_embedded_free(dsn: str) -> None:
    """Raise `ClickHouseError` if another process holds the chDB directory of `dsn` (a cheap check
    of the engine's lock, without opening it); no-op for a server DSN or a free directory."""
    if not dsn.startswith("chdb://"):
        return
    directory = dsn.removeprefix("chdb://")
    holder = _embedded_holder(Path(directory))
    if holder is not None:
        raise ClickHouseError(
            f"the embedded ClickHouse directory {directory} is held by another psmon process"
            f"{f' (pid {holder})' if holder else ''}: one process per embedded chDB directory. "
            "Stop that process (a sink, psmon up), or, for several sinks or queries while one runs, "
            "use a ClickHouse server: --clickhouse http://HOST:8123 (PSMON_CLICKHOUSE_DSN). "
            "(Read commands such as psmon query read through a running psmon up by themselves.)"
        )


def is_served(client: Client) -> bool:
    """True for a client that reads through the query endpoint of a running `psmon up`."""
    return client in _served


def _served_client(directory: Path) -> Client | None:
    """A client on the query endpoint of the `psmon up` holding `directory`, or None when the
    directory is free or its holder serves no endpoint (the caller then opens it or says who
    holds it); `ClickHouseError` when the endpoint is recorded but does not answer."""
    holder = _embedded_holder(directory)
    if holder is None:
        return None  # free: a file left by an `up` that died is stale, the directory opens
    try:
        endpoint = json.loads((directory / ENDPOINT_FILE).read_text())
        pid, host, port, token = int(endpoint["pid"]), str(endpoint["host"]), int(endpoint["port"]), endpoint["token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a sink (or an `up` before this feature) holds it: no endpoint to read through
    if holder and pid != holder:
        return None  # left by an earlier `up`; another process holds the directory now
    try:
        client = clickhouse_connect.get_client(
            host=host,
            port=port,
            username="psmon",
            password=str(token),
            compress=False,
            autogenerate_session_id=False,
            connect_timeout=_ENDPOINT_CONNECT_TIMEOUT_S,
            query_retries=0,
        )
    except Exception as exc:
        raise ClickHouseError(
            f"the embedded ClickHouse directory {directory} is held by psmon up (pid {pid}), but its "
            f"query endpoint http://{host}:{port} does not answer: {' '.join(str(exc).split())}"
        ) from exc
    _served.add(client)
    return client


def _embedded_holder(directory: Path) -> int | None:
    """The pid (0 if unknown) of another process running chDB on `directory`, else None.

    A running engine keeps `<directory>/status` (holding `PID: n`) locked with flock. Several
    clients of one process share its engine, so this process's own lock is no conflict; the
    probe must skip it, as flock refuses a second open of the file even in the same process.
    """
    try:
        fd = os.open(directory / "status", os.O_RDONLY)
    except OSError:
        return None  # no engine has run there, or it stopped cleanly (it removes the file)
    try:
        found = re.search(rb"PID:\s*(\d+)", os.read(fd, 4096))
        pid = int(found.group(1)) if found else 0
        if pid == os.getpid():
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return pid
        fcntl.flock(fd, fcntl.LOCK_UN)  # a stale file: its process is gone
        return None
    finally:
        os.close(fd)


def _safe(dsn: str) -> str:
    """The DSN without its password (`user:password@` or `?password=`), for messages and logs."""
    return redact_url(dsn)


def connect_waiting(dsn: str, *, wait_s: float, retry_every_s: float = 1.0) -> Client:
    """`connect`, retried for up to `wait_s` while the server cannot be reached (refused, reset,
    no answer: a server container still starting, or the image's loopback-only init server).
    Anything the server answers (a refused login, an unknown database) and every embedded DSN
    fail at once: waiting would only hide the mistake. The final error says how long it waited."""
    deadline = time.monotonic() + wait_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return connect(dsn)
        except ClickHouseError as exc:
            if dsn.startswith("chdb://") or not isinstance(exc.__cause__, driver_errors.OperationalError):
                raise  # the server answered (a login, a database), or the embedded engine: no wait helps
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if attempts == 1:
                    raise
                raise ClickHouseError(
                    f"ClickHouse at {_safe(dsn)} could not be reached in {wait_s:g} s ({attempts} attempts; "
                    f"PSMON_CLICKHOUSE_WAIT_S): {exc}"
                ) from exc
        time.sleep(min(retry_every_s, remaining))  # the last attempt lands on the deadline


class ClickHouseExecutor:
    """Runs blocking client calls on one dedicated thread, awaitable from asyncio."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


#: ClickHouse server error codes that mean "this data cannot be stored as it is".
DATA_ERROR_CODES: Final = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)
_CODE = re.compile(r"\bcode:\s*(\d+)", re.IGNORECASE)


def is_permanent_error(exc: BaseException) -> bool:
    """True for a data error (retrying the same rows cannot succeed), False for a transient one.

    See the module docstring: unknown failures are transient.
    """
    if isinstance(exc, ClickHouseError):  # psmon's own: connection trouble, the injected outage
        return False
    if isinstance(exc, driver_errors.DataError):  # the driver could not encode a value for its column
        return True
    if isinstance(exc, driver_errors.OperationalError):  # connection, stream, server state
        return False
    if isinstance(exc, driver_errors.Error):
        code = exc.code
        if code is None:
            found = _CODE.search(str(exc))
            code = int(found.group(1)) if found else None
        return code in DATA_ERROR_CODES
    # Python-side conversion while building the rows (a datetime out of range, an int too big).
    return isinstance(exc, (OverflowError, ValueError, TypeError))
