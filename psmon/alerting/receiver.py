"""The webhook receiver (`psmon alerts listen`): logs Alertmanager notifications and keeps their
history in ClickHouse, so analysts can ask when each province was below target.

Alertmanager POSTs its webhook payload (version 4) to `/alerts`. For every alert in it the
receiver logs one line (status, alert, province, value, threshold, volume, English summary) and
writes one row to the `alerts` table (schema migration 3). The HTTP answer is sent only after the
write: a failed write answers 503 and Alertmanager retries, so nothing is lost while ClickHouse is
down. A `resolved` row carries `ends_at` and the annotations of the alert's last evaluation while
firing (its last value under the floor).

The receiver is reachable by whoever can reach its port, so it trusts nothing it is sent:

- Authentication: every request but `GET /-/healthy` needs `Authorization: Bearer <token>`, the
  token read from `alerts_token_file` (compared in constant time). The generated Alertmanager
  config sends it (`http_config.authorization.credentials_file`); `psmon up` makes the file.
- Bounds, checked before any work: the body (`alerts_max_body_bytes`; 413 from the
  Content-Length header before reading, or as soon as a streamed body passes it), the alerts per
  notification (`alerts_max_per_request`, 413), and per alert the labels and annotations (at
  most `MAX_LABELS`/`MAX_ANNOTATIONS` of them, names up to `MAX_NAME_CHARS`, values up to
  `MAX_LABEL_VALUE_CHARS`/`MAX_ANNOTATION_VALUE_CHARS`; 422).
- Status codes say who can fix it: a payload that is not Alertmanager's shape (not JSON: 400;
  a non-string label, a missing field, an unknown status, a bad time: 422) is the sender's
  mistake and would fail again, so it is a 4xx, which Alertmanager does not retry. Only a failed
  ClickHouse write is a 5xx (503), which it retries and which can succeed later.
- Append-only history: rows are keyed by fingerprint/startsAt/status and the table is a
  ReplacingMergeTree versioned by `received_at`, so a later row with the same key would win. The
  receiver therefore writes a key only once: before inserting it reads which keys are stored and
  drops those (and repeats within the request). A repeated notification (repeat interval, a
  retry) adds nothing, a `resolved` is a row of its own beside its `firing`, and no later POST,
  even one reusing a real fingerprint and start, can replace a stored row. Check and insert run
  on the receiver's single ClickHouse thread, so two requests cannot interleave between them
  (one receiver per table; the compose file runs one).
- No terminal or log control from the payload: ANSI escape sequences are removed and the other
  C0/C1 controls (newlines included) and Unicode line separators become spaces in every logged
  value and in the stored text columns (names, summaries, URL). The `labels`/`annotations`
  columns keep the alert's exact JSON (where a control character is a JSON escape, not a byte).

Also served: `GET /alerts` (the last notifications received, newest last, for tools and tests),
only when `alerts_list_enabled` is on (404 otherwise; token required), and `GET /-/healthy`
(open: the compose health check). ClickHouse calls are synchronous and run on one executor
thread. aiohttp comes with Faust; no other web framework is needed.
"""

import hmac
import logging
import os
import re
import secrets
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import orjson
from aiohttp import web
from mode import Service
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from psmon.errors import ConfigError
from psmon.sinks.clickhouse.client import ClickHouseExecutor, Client, connect
from psmon.sinks.clickhouse.schema import migrate

__all__ = [
    "ALERT_COLUMNS",
    "AlertReceiver",
    "AlertReceiverService",
    "PayloadError",
    "ReceiverLimits",
    "alert_rows",
    "clickhouse_store",
    "ensure_token_file",
    "parse_payload",
    "printable",
    "read_token_file",
]

log = logging.getLogger("psmon.alerts")

ALERT_COLUMNS = (
    "fingerprint",
    "status",
    "starts_at",
    "ends_at",
    "alertname",
    "severity",
    "province_code",
    "province_name",
    "metric",
    "value",
    "threshold",
    "volume",
    "summary_vi",
    "summary_en",
    "labels",
    "annotations",
    "receiver",
    "generator_url",
    "received_at",
)

#: Alertmanager's "no end time" (firing alerts).
_ZERO_TIME = "0001-01-01T00:00:00Z"

#: Per-alert bounds (not settings: psmon's rules use a handful of short labels and annotations).
MAX_LABELS: Final = 64
MAX_ANNOTATIONS: Final = 64
MAX_NAME_CHARS: Final = 128
MAX_LABEL_VALUE_CHARS: Final = 1024
MAX_ANNOTATION_VALUE_CHARS: Final = 8192
_MAX_URL_CHARS: Final = 4096

_RFC3339 = re.compile(r"^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
#: ANSI CSI (`ESC [ ... final`) and OSC (`ESC ] ... BEL|ST`) sequences, and any other `ESC x`.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
#: C0 controls, DEL, C1 controls and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """`text` without terminal escapes, every other control character a space: safe on one log line."""
    return _CONTROL.sub(" ", _ANSI.sub("", text))


def _time(text: str | None) -> datetime | None:
    """Alertmanager's RFC 3339 time (nanoseconds, any offset) as UTC, to the millisecond the
    table keeps (so a stored key compares equal to a new one); None for "no time"."""
    if not text or text.startswith("0001-01-01"):
        return None
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {printable(text)[:40]!r}")
    base, frac, tz = m.groups()
    iso = f"{base}.{(frac or '0')[:3]}{'+00:00' if tz == 'Z' else tz}"
    return datetime.fromisoformat(iso).astimezone(UTC)


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


_Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
_LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE_CHARS)]
_AnnotationValue = Annotated[str, StringConstraints(max_length=MAX_ANNOTATION_VALUE_CHARS)]


class WebhookAlert(BaseModel):
    """One alert of Alertmanager's webhook payload, as far as psmon uses it (strict types)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: Annotated[dict[_Name, _LabelValue], Field(max_length=MAX_LABELS)]
    annotations: Annotated[dict[_Name, _AnnotationValue], Field(max_length=MAX_ANNOTATIONS)] = {}
    starts_at: str = Field(alias="startsAt", max_length=64)
    ends_at: str = Field(_ZERO_TIME, alias="endsAt", max_length=64)
    generator_url: str = Field("", alias="generatorURL", max_length=_MAX_URL_CHARS)
    #: Alertmanager's is a 64-bit hash in 16 hex digits.
    fingerprint: str = Field(pattern=r"^[0-9a-f]{1,64}$")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _rfc3339(cls, v: str) -> str:
        _time(v)  # raises ValueError: a 422 naming the field
        return v


class WebhookPayload(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    receiver: str = Field("", max_length=MAX_NAME_CHARS)
    alerts: list[WebhookAlert]


@dataclass(frozen=True)
class ReceiverLimits:
    max_body_bytes: int = 1_048_576
    max_alerts: int = 500


class PayloadError(ValueError):
    """A request the receiver refuses: `status` (4xx) and a one-line `reason`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, printable(reason)


def parse_payload(body: bytes, limits: ReceiverLimits = ReceiverLimits()) -> WebhookPayload:
    """The validated payload, or PayloadError (400 not JSON, 413 too many alerts, 422 wrong shape)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("alerts"), list):
        raise PayloadError(422, "not an Alertmanager webhook payload: no `alerts` list")
    if len(raw["alerts"]) > limits.max_alerts:
        raise PayloadError(
            413, f"{len(raw['alerts'])} alerts in one request, more than {limits.max_alerts} (alerts_max_per_request)"
        )
    try:
        return WebhookPayload.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PayloadError(422, f"{where}: {first['msg']}{more}") from None


def alert_rows(payload: WebhookPayload, *, received_at: datetime) -> list[list[Any]]:
    """One `alerts` row per alert of a validated Alertmanager webhook payload (version 4)."""
    rows = []
    receiver = printable(payload.receiver)
    for a in payload.alerts:
        labels, ann = a.labels, a.annotations
        starts = _time(a.starts_at) or received_at.replace(microsecond=received_at.microsecond // 1000 * 1000)
        rows.append(
            [
                a.fingerprint,
                a.status,
                starts,
                _time(a.ends_at),
                printable(labels.get("alertname", "")),
                printable(labels.get("severity", "")),
                printable(labels.get("province", "")),
                printable(labels.get("province_name", "")),
                printable(labels.get("metric", "")),
                _float(ann.get("value")),
                _float(ann.get("threshold")),
                _float(ann.get("volume")),
                printable(ann.get("summary_vi", "")),
                printable(ann.get("summary_en", ann.get("summary", ""))),
                orjson.dumps(labels).decode(),
                orjson.dumps(ann).decode(),
                receiver,
                printable(a.generator_url),
                received_at,
            ]
        )
    return rows


#: What `store` is: write the rows (or raise), return how many were new.
Store = Callable[[Sequence[list[Any]]], int]


class AlertReceiver:
    """The aiohttp application; `store` writes rows (in an executor) or raises."""

    def __init__(
        self,
        store: Store,
        *,
        executor: ClickHouseExecutor,
        token: bytes,
        limits: ReceiverLimits = ReceiverLimits(),
        list_enabled: bool = False,
        keep: int = 500,
    ):
        if not token:
            raise ValueError("the webhook receiver needs a token")
        self._store, self._executor, self._token, self.limits = store, executor, token, limits
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.app = web.Application(client_max_size=limits.max_body_bytes)
        routes = [web.post("/alerts", self._post), web.post("/", self._post), web.get("/-/healthy", self._healthy)]
        if list_enabled:
            routes.append(web.get("/alerts", self._get))
        self.app.add_routes(routes)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._token)

    @staticmethod
    def _refuse(status: int, reason: str, request: web.Request) -> web.Response:
        log.warning("refused a webhook request from %s: %d %s", request.remote, status, reason)
        headers = {"WWW-Authenticate": 'Bearer realm="psmon alerts"'} if status == 401 else None
        return web.json_response({"error": reason}, status=status, headers=headers)

    async def _post(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse(401, "missing or wrong bearer token", request)
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._refuse(
                413, f"body of {request.content_length} bytes, over {limit} (alerts_max_body_bytes)", request
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, f"body over {limit} bytes (alerts_max_body_bytes)", request)
        try:
            payload = parse_payload(body, self.limits)
            rows = alert_rows(payload, received_at=datetime.now(UTC))
        except PayloadError as exc:
            return self._refuse(exc.status, exc.reason, request)
        for row, alert in zip(rows, payload.alerts, strict=True):
            log.info(
                "%s %s province=%s metric=%s value=%s threshold=%s volume=%s: %s",
                row[1].upper(),
                row[4],
                row[6] or "-",
                row[8] or "-",
                _short(row[9]),
                _short(row[10]),
                _short(row[11]),
                row[13],
            )
            self.recent.append({"receiver": payload.receiver, **alert.model_dump(by_alias=True)})
        try:
            stored = await self._executor.run(self._store, rows)
        except Exception as exc:  # Alertmanager retries on 5xx: nothing is lost while ClickHouse is down
            log.error("could not store %d alert(s) in ClickHouse: %s", len(rows), printable(str(exc)))
            return web.json_response({"error": "storage unavailable"}, status=503)
        return web.json_response({"received": len(rows), "stored": stored})

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse(401, "missing or wrong bearer token", request)
        return web.Response(body=orjson.dumps(list(self.recent)), content_type="application/json")

    async def _healthy(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")


def _short(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _utc_ms(t: datetime) -> datetime:
    """`t` as the table returns it: UTC, milliseconds (a naive result is UTC)."""
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def clickhouse_store(client: Client, database: str) -> Store:
    """Insert the rows whose fingerprint/startsAt/status is not stored yet (first write wins)."""

    def store(rows: Sequence[list[Any]]) -> int:
        if not rows:
            return 0
        fingerprints = sorted({row[0] for row in rows})
        stored = client.query(
            f"SELECT fingerprint, starts_at, status FROM {database}.alerts WHERE fingerprint IN {{fps:Array(String)}}",
            parameters={"fps": fingerprints},
        )
        seen = {(fp, _utc_ms(starts), status) for fp, starts, status in stored.result_rows}
        new = []
        for row in rows:
            key = (row[0], _utc_ms(row[2]), row[1])
            if key not in seen:
                seen.add(key)
                new.append(row)
        if new:
            client.insert(f"{database}.alerts", new, column_names=list(ALERT_COLUMNS))
        return len(new)

    return store


def read_token_file(path: Path) -> bytes:
    """The bearer token in `path` (surrounding whitespace ignored), or a one-line ConfigError."""
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"alerts token file {path}: {exc.strerror or exc} (set --token-file or PSMON_ALERTS_TOKEN_FILE)"
        ) from None
    if not token:
        raise ConfigError(f"alerts token file {path} is empty (set --token-file or PSMON_ALERTS_TOKEN_FILE)")
    return token


def ensure_token_file(path: Path) -> Path:
    """`path`, holding a random token: created 0600 when missing, an existing one kept (so a
    running Alertmanager and a restarted receiver keep agreeing). Returns the absolute path."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return path


class AlertReceiverService(Service):
    """The receiver as a mode service: in `psmon up` beside the pipeline, or alone.

    `sock`, when given, is an already bound listening socket (the CLI binds it first, so a port in
    use is a one-line error before anything starts); otherwise `host`:`port` is bound on start.
    """

    def __init__(
        self,
        *,
        dsn: str,
        database: str,
        host: str,
        port: int,
        token: bytes,
        limits: ReceiverLimits = ReceiverLimits(),
        list_enabled: bool = False,
        sock: socket.socket | None = None,
        run_migrations: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.dsn, self.database, self.host, self.port = dsn, database, host, port
        self.token, self.limits, self.list_enabled, self.sock = token, limits, list_enabled, sock
        self.run_migrations = run_migrations
        self._executor = ClickHouseExecutor()
        self._runner: web.AppRunner | None = None
        self.receiver: AlertReceiver | None = None

    async def on_start(self) -> None:
        client = await self._executor.run(connect, self.dsn)
        if self.run_migrations:
            await self._executor.run(migrate, client, self.database)
        self.receiver = AlertReceiver(
            clickhouse_store(client, self.database),
            executor=self._executor,
            token=self.token,
            limits=self.limits,
            list_enabled=self.list_enabled,
        )
        self._runner = web.AppRunner(self.receiver.app, access_log=None)
        await self._runner.setup()
        site = (
            web.SockSite(self._runner, self.sock)
            if self.sock is not None
            else web.TCPSite(self._runner, self.host, self.port)
        )
        await site.start()
        log.info("alert webhook receiver on http://%s:%d/alerts", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._executor.shutdown()
