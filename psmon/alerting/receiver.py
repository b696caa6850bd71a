"""The webhook receiver (`psmon alerts listen`): logs Alertmanager notifications and keeps their
history in ClickHouse, so analysts can ask when each province was below target.

Alertmanager POSTs its webhook payload (version 4) to `/alerts`. For every alert in it the
receiver logs one line (status, alert, province, value, threshold, volume, English summary) and
writes one row to the `alerts` table (schema migration 3). The HTTP answer is sent only after the
write: a failed write answers 503 and Alertmanager retries, so nothing is lost while ClickHouse is
down. The table is a ReplacingMergeTree keyed by fingerprint/startsAt/status, so a retried or
repeated notification is one row (read with FINAL). A `resolved` row carries `ends_at` and the
annotations of the alert's last evaluation while firing (its last value under the floor).

Also served: `GET /alerts` (the last notifications received, newest last, for tools and tests)
and `GET /-/healthy`. ClickHouse calls are synchronous and run on one executor thread.
aiohttp comes with Faust; no other web framework is needed.
"""

import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from mode import Service

from psmon.sinks.clickhouse.client import ClickHouseExecutor, Client, connect
from psmon.sinks.clickhouse.schema import migrate

__all__ = ["ALERT_COLUMNS", "AlertReceiver", "AlertReceiverService", "alert_rows"]

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


_RFC3339 = re.compile(r"^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def _time(text: str | None) -> datetime | None:
    """Alertmanager's RFC 3339 time (nanoseconds, any offset) as UTC; None for "no time"."""
    if not text or text.startswith("0001-01-01"):
        return None
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, frac, tz = m.groups()
    iso = f"{base}.{(frac or '0')[:6]}{'+00:00' if tz == 'Z' else tz}"
    return datetime.fromisoformat(iso).astimezone(UTC)


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def alert_rows(payload: dict[str, Any], *, received_at: datetime) -> list[list[Any]]:
    """One `alerts` row per alert of an Alertmanager webhook payload (version 4)."""
    rows = []
    receiver = str(payload.get("receiver", ""))
    for a in payload.get("alerts", []):
        labels: dict[str, str] = a.get("labels", {})
        ann: dict[str, str] = a.get("annotations", {})
        starts = _time(a.get("startsAt")) or received_at
        rows.append(
            [
                str(a.get("fingerprint", "")),
                str(a.get("status", "")),
                starts,
                _time(a.get("endsAt", _ZERO_TIME)),
                labels.get("alertname", ""),
                labels.get("severity", ""),
                labels.get("province", ""),
                labels.get("province_name", ""),
                labels.get("metric", ""),
                _float(ann.get("value")),
                _float(ann.get("threshold")),
                _float(ann.get("volume")),
                ann.get("summary_vi", ""),
                ann.get("summary_en", ann.get("summary", "")),
                orjson.dumps(labels).decode(),
                orjson.dumps(ann).decode(),
                receiver,
                str(a.get("generatorURL", "")),
                received_at,
            ]
        )
    return rows


class AlertReceiver:
    """The aiohttp application; `store` writes rows (in an executor) or raises."""

    def __init__(self, store: Callable[[Sequence[list[Any]]], Any], *, executor: ClickHouseExecutor, keep: int = 500):
        self._store = store
        self._executor = executor
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.add_routes(
            [
                web.post("/alerts", self._post),
                web.post("/", self._post),
                web.get("/alerts", self._get),
                web.get("/-/healthy", self._healthy),
            ]
        )

    async def _post(self, request: web.Request) -> web.Response:
        try:
            payload = orjson.loads(await request.read())
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            rows = alert_rows(payload, received_at=datetime.now(UTC))
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("ignored a bad webhook payload: %s", exc)
            return web.json_response({"error": f"bad payload: {exc}"}, status=400)
        for row, alert in zip(rows, payload.get("alerts", []), strict=True):
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
            self.recent.append({"receiver": payload.get("receiver"), **alert})
        try:
            await self._executor.run(self._store, rows)
        except Exception as exc:  # Alertmanager retries on 5xx: nothing is lost while ClickHouse is down
            log.error("could not store %d alert(s) in ClickHouse: %s", len(rows), exc)
            return web.json_response({"error": "storage unavailable"}, status=503)
        return web.json_response({"stored": len(rows)})

    async def _get(self, _request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(list(self.recent)), content_type="application/json")

    async def _healthy(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")


def _short(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def clickhouse_store(client: Client, database: str) -> Callable[[Sequence[list[Any]]], None]:
    def store(rows: Sequence[list[Any]]) -> None:
        if rows:
            client.insert(f"{database}.alerts", list(rows), column_names=list(ALERT_COLUMNS))

    return store


class AlertReceiverService(Service):
    """The receiver as a mode service: in `psmon up` beside the pipeline, or alone."""

    def __init__(self, *, dsn: str, database: str, host: str, port: int, run_migrations: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.dsn, self.database, self.host, self.port = dsn, database, host, port
        self.run_migrations = run_migrations
        self._executor = ClickHouseExecutor()
        self._runner: web.AppRunner | None = None
        self.receiver: AlertReceiver | None = None

    async def on_start(self) -> None:
        client = await self._executor.run(connect, self.dsn)
        if self.run_migrations:
            await self._executor.run(migrate, client, self.database)
        self.receiver = AlertReceiver(clickhouse_store(client, self.database), executor=self._executor)
        self._runner = web.AppRunner(self.receiver.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("alert webhook receiver on http://%s:%d/alerts", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._executor.shutdown()
