"""The read-only query endpoint of `psmon up`: the history can be asked while the demo runs.

Embedded chDB allows one process per data directory, and `psmon up` holds it for as long as it
runs, so `psmon query`, `report`, `dead-letters` and `alerts history` from another shell could
not open it. This service lets them in through the process that holds it:

- It speaks the part of ClickHouse's HTTP interface that clickhouse-connect's `HttpClient` uses
  (query text in the body, the `query` field or a form; `param_<name>` values; HTTP Basic auth;
  the result in the format the query names, as chDB produces it; errors as `Code: n.
  DB::Exception: ...` with status 500). The readers then use the client they already use for a
  ClickHouse server (`sinks.clickhouse.client.connect(dsn, read_only=True)`), with one code path
  and the same answers as from the directory. A psmon-specific protocol would have needed a
  second client and a second decoder of every type.
- Loopback only, on a free port, with a random token per run; `<dir>/psmon-query-endpoint.json`
  (mode 0600, written atomically, removed on stop) holds the address, the token and the pid.
- Read-only twice over: the connection runs `SET readonly = 1` first (ClickHouse then refuses
  writes, DDL and any change of settings, `readonly` included, for the connection's life), and
  every statement passes the guard of `psmon query --sql` (`history.queries.read_only_statement`:
  one statement, a read by ClickHouse's own parser, no table function that reaches files, URLs
  or programs) before it runs, in ClickHouse's formatting. The settings a client sends are not
  applied: they could only be refused.
- Never in the sink's way: queries run on one thread of their own, on a chDB connection of their
  own (each connection has its own lock; the sink writes through another one), so the event loop
  only awaits them and a long query delays other queries, never a write or a heartbeat.
"""

import asyncio
import hmac
import json
import logging
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import BasicAuth, web
from mode import Service

from psmon.history.queries import QueryError, ReadOnlyError, read_only_statement, refused_functions
from psmon.sinks.clickhouse.client import ENDPOINT_FILE

__all__ = ["QueryEndpoint"]

log = logging.getLogger(__name__)

_USER: Final = "psmon"
_DEFAULT_FORMAT: Final = "TabSeparated"  # ClickHouse's, for a query without FORMAT
_TRAILING_FORMAT: Final = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE: Final = re.compile(r"Code:\s*(\d+)")
_READONLY_CODE: Final = 164
_AUTH_CODE: Final = 516  # ClickHouse's AUTHENTICATION_FAILED
_CHECKED_MAX: Final = 512


class QueryEndpoint(Service):
    """Serves read-only queries on the chDB directory of `dsn` (`chdb:///abs/dir`) on
    `host`:<free port> while `psmon up` runs (see the module docstring)."""

    def __init__(self, dsn: str, *, host: str = "127.0.0.1", **kwargs: Any):
        super().__init__(**kwargs)
        self.directory = Path(dsn.removeprefix("chdb://"))
        self.host = host
        self.port = 0
        self.endpoint_file = self.directory / ENDPOINT_FILE
        self._token = secrets.token_urlsafe(32)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-endpoint")
        self._conn: Any = None
        self._outside: frozenset[str] = frozenset()
        self._database: str | None = None
        # Verdicts of the guard by (text, parameters): every reader starts with the same queries
        # (the client's handshake, the schema check), and the guard costs two engine calls.
        self._checked: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._open)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._write_endpoint_file()
        log.info("read-only query endpoint on http://%s:%d (%s)", self.host, self.port, self.endpoint_file)

    async def on_stop(self) -> None:
        self.endpoint_file.unlink(missing_ok=True)
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=True)

    # -- the chDB side, on the endpoint's own thread ----------------------------------------------
    def _open(self) -> None:
        import chdb  # the `chdb` extra: only an embedded directory has an endpoint

        self.directory.mkdir(parents=True, exist_ok=True)
        # The path spelled as clickhouse-connect spells it: chDB takes one engine path per process.
        self._conn = chdb.connect(os.path.realpath(self.directory))  # type: ignore[no-untyped-call]
        self._conn.query("SET readonly = 1", "TabSeparated")
        self._outside = refused_functions(self._read)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _read(
        self, query: str, parameters: dict[str, str] | None, request_params: dict[str, str] | None = None
    ) -> list[tuple[Any, ...]]:
        """The guard's reader: `parameters` are Python strings (escaped here for the wire), the
        request's own parameters are already in ClickHouse's text form."""
        params = dict(request_params or {})
        params.update({k: _escaped(v) for k, v in (parameters or {}).items()})
        body = self._conn.query(query, "JSONCompactEachRow", params=params).bytes()
        return [tuple(orjson.loads(line)) for line in body.splitlines() if line]

    def answer(self, sql: str, params: dict[str, str], database: str | None, default_format: str) -> tuple[bytes, str]:
        """The result of one read-only statement, in its format; raises `QueryError` (with
        `ReadOnlyError` for anything but a read) or chDB's own exception."""
        if database and database != self._database:
            self._conn.query(f"USE `{database.replace('`', '')}`", "TabSeparated")
            self._database = database
        key = (sql, tuple(sorted(params.items())))
        statement = self._checked.get(key)
        if statement is None:
            statement = read_only_statement(
                sql, lambda q, p: self._read(q, p, request_params=params), outside=self._outside
            )
            self._checked[key] = statement
            if len(self._checked) > _CHECKED_MAX:
                del self._checked[next(iter(self._checked))]  # the oldest verdict
        found = _TRAILING_FORMAT.search(statement)
        fmt = found.group(1) if found else default_format
        return self._conn.query(statement, fmt, params=params).bytes() or b"", fmt

    # -- HTTP ---------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("X-ClickHouse-Key") or request.query.get("password")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                given = BasicAuth.decode(header).password
            except ValueError:
                return False
        return given is not None and hmac.compare_digest(given.encode(), self._token.encode())

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/ping":
            return web.Response(text="Ok.\n")
        if not self._authorized(request):
            return _error(_AUTH_CODE, "psmon query endpoint: wrong or missing token (AUTHENTICATION_FAILED)", 401)
        fields: dict[str, str] = {k: v for k, v in request.query.items()}
        body = ""
        if request.method == "POST":
            if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
                fields.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
            else:
                body = await request.text()
        sql = "\n".join(part for part in (fields.get("query", ""), body) if part)
        params = {k.removeprefix("param_"): v for k, v in fields.items() if k.startswith("param_")}
        loop = asyncio.get_running_loop()
        try:
            data, fmt = await loop.run_in_executor(
                self._pool,
                self.answer,
                sql,
                params,
                fields.get("database"),
                fields.get("default_format", _DEFAULT_FORMAT),
            )
        except ReadOnlyError as exc:
            return _error(_READONLY_CODE, f"{exc} (READONLY)", 500)
        except QueryError as exc:  # the guard's own words, or chDB's under them
            return _error(None, str(exc.__cause__ or exc), 500)
        except Exception as exc:
            return _error(None, str(exc), 500)
        return web.Response(body=data, headers={"X-ClickHouse-Format": fmt, "Content-Type": "application/octet-stream"})

    def _write_endpoint_file(self) -> None:
        """Address and token for the readers, readable by this user only, replaced atomically."""
        record = {"host": self.host, "port": self.port, "token": self._token, "pid": os.getpid()}
        tmp = self.endpoint_file.with_name(f".{ENDPOINT_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self.endpoint_file)


def _escaped(value: str) -> str:
    """A string parameter in ClickHouse's escaped text form (what `param_<name>` carries)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _error(code: int | None, message: str, status: int) -> web.Response:
    """An error as ClickHouse's HTTP interface sends it, so the client raises its usual error."""
    found = _CODE.search(message)
    if code is None:
        code = int(found.group(1)) if found else 1001
    text = message if found else f"Code: {code}. DB::Exception: {message}"
    return web.Response(
        status=status,
        text=" ".join(text.split()) + "\n",
        headers={"X-ClickHouse-Exception-Code": str(code)},
    )
