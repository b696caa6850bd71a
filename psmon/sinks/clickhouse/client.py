"""Connecting to ClickHouse: one DSN for the embedded engine (chDB) and for a server (HTTP).

`clickhouse-connect` speaks both through the same `Client` API, so psmon has one code path:
`chdb:///abs/dir` opens the embedded engine in this process, `http(s)://...:8123` a server.

chDB allows one process per data directory and its calls are synchronous. A second process fails
to lock the directory; `connect` turns that into a `ClickHouseError` that says which process to
stop. Async callers must run calls on `ClickHouseExecutor` (one thread) so long inserts never
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
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import clickhouse_connect
from clickhouse_connect.driver import exceptions as driver_errors
from clickhouse_connect.driver.client import Client

from psmon.errors import ClickHouseError

__all__ = [
    "DATA_ERROR_CODES",
    "ClickHouseExecutor",
    "Client",
    "connect",
    "ensure_embedded_free",
    "is_permanent_error",
]

T = TypeVar("T")


def connect(dsn: str) -> Client:
    """Open a client for `dsn`; creates the chDB directory if needed."""
    if dsn.startswith("chdb://"):
        path = dsn.removeprefix("chdb://")
        if not path.startswith("/"):
            raise ClickHouseError(f"embedded DSN needs an absolute path, e.g. chdb:///var/lib/psmon: {dsn!r}")
        Path(path).mkdir(parents=True, exist_ok=True)
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
            "use a ClickHouse server: --clickhouse http://HOST:8123 (PSMON_CLICKHOUSE_DSN)"
        )


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
    """The DSN without its password, for messages and logs."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return dsn


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
