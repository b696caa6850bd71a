"""Connecting to ClickHouse: one DSN for the embedded engine (chDB) and for a server (HTTP).

`clickhouse-connect` speaks both through the same `Client` API, so psmon has one code path:
`chdb:///abs/dir` opens the embedded engine in this process, `http(s)://...:8123` a server.

chDB allows one process per data directory and its calls are synchronous. A second process fails
to lock the directory; `connect` turns that into a `ClickHouseError` that says which process to
stop. Async callers must run calls on `ClickHouseExecutor` (one thread) so long inserts never
block the event loop and its Kafka heartbeats.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from psmon.errors import ClickHouseError

__all__ = ["ClickHouseExecutor", "Client", "connect"]

T = TypeVar("T")


def connect(dsn: str) -> Client:
    """Open a client for `dsn`; creates the chDB directory if needed."""
    if dsn.startswith("chdb://"):
        path = dsn.removeprefix("chdb://")
        if not path.startswith("/"):
            raise ClickHouseError(f"embedded DSN needs an absolute path, e.g. chdb:///var/lib/psmon: {dsn!r}")
        Path(path).mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        hint = (
            " Another psmon process (sink, up, query) may hold this chDB directory: embedded "
            "ClickHouse allows one process per directory. Stop it or use another --clickhouse."
            if dsn.startswith("chdb://")
            else " Check that the server is up and the DSN (host, port, user, password) is right."
        )
        raise ClickHouseError(f"cannot open ClickHouse at {_safe(dsn)}: {exc}.{hint}") from exc


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
