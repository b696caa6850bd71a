"""The webhook receiver: Alertmanager payloads become `alerts` rows; a failed write answers 503
(so Alertmanager retries) and a good one 200. What the adversarial review found, each with the
request that showed it: an unauthenticated POST stored a forged alert; a reused fingerprint
replaced a real row; a 4 MB request stored 27,000 rows; a newline in a summary forged a log line;
a non-string label answered 503 (retried forever). The store runs on a real embedded chDB."""

import asyncio
import copy
import logging
import stat
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from psmon.alerting.receiver import (
    ALERT_COLUMNS,
    AlertReceiver,
    ReceiverLimits,
    alert_rows,
    clickhouse_store,
    ensure_token_file,
    parse_payload,
    printable,
    read_token_file,
)
from psmon.errors import ConfigError
from psmon.sinks.clickhouse.client import ClickHouseExecutor, Client, connect
from psmon.sinks.clickhouse.schema import migrate

TOKEN = b"s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN.decode()}"}

PAYLOAD: dict[str, Any] = {
    "version": "4",
    "receiver": "psmon-province-ops",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "PsmonRatioBelowFloor",
                "province": "25",
                "province_name": "Phú Thọ",
                "metric": "online_submission",
                "window": "1h",
                "severity": "warning",
            },
            "annotations": {
                "value": "0.123",
                "threshold": "0.5",
                "volume": "456",
                "summary_vi": "vi",
                "summary_en": "en",
            },
            "startsAt": "2026-11-23T02:10:01.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph",
            "fingerprint": "abc123",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "PsmonWorkerDown", "severity": "critical", "job": "psmon-worker"},
            "annotations": {"summary": "down"},
            "startsAt": "2026-11-23T09:00:00+07:00",
            "endsAt": "2026-11-23T02:05:00Z",
            "fingerprint": "def456",
        },
    ],
}


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {**PAYLOAD, "alerts": [copy.deepcopy(a) for a in alerts]}


class Recorder:
    """A store that keeps what it is given (or fails, when told to)."""

    def __init__(self) -> None:
        self.calls: list[Sequence[list[Any]]] = []
        self.failing = False

    def __call__(self, rows: Sequence[list[Any]]) -> int:
        if self.failing:
            raise RuntimeError("ClickHouse down")
        self.calls.append(rows)
        return len(rows)


Scenario = Callable[[TestClient[Any, Any], AlertReceiver], Awaitable[None]]


def serve(store: Callable[[Sequence[list[Any]]], int], scenario: Scenario, **kwargs: Any) -> None:
    """Run `scenario` against a receiver with `store` on a real loopback aiohttp server."""

    async def main() -> None:
        executor = ClickHouseExecutor()
        receiver = AlertReceiver(store, executor=executor, token=TOKEN, **kwargs)
        try:
            async with TestClient(TestServer(receiver.app)) as client:
                await scenario(client, receiver)
        finally:
            executor.shutdown()

    asyncio.run(main())


def test_alert_rows() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    parsed = parse_payload(orjson.dumps(PAYLOAD))
    rows = [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in alert_rows(parsed, received_at=now)]
    a, b = rows
    assert (a["fingerprint"], a["status"], a["province_code"], a["province_name"], a["metric"]) == (
        "abc123",
        "firing",
        "25",
        "Phú Thọ",
        "online_submission",
    )
    assert (a["value"], a["threshold"], a["volume"]) == (0.123, 0.5, 456.0)
    assert a["starts_at"] == datetime(2026, 11, 23, 2, 10, 1, 123000, tzinfo=UTC)  # the table's milliseconds
    assert a["ends_at"] is None  # Alertmanager's zero time: still firing
    assert orjson.loads(a["labels"])["window"] == "1h"
    assert (b["status"], b["province_code"], b["value"], b["summary_en"]) == ("resolved", "", None, "down")
    assert b["starts_at"] == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert b["ends_at"] == datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
    assert a["receiver"] == "psmon-province-ops" and a["received_at"] == now


def test_receiver_stores_then_answers_and_503_when_storage_fails() -> None:
    store = Recorder()

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        resp = await client.post("/alerts", data=orjson.dumps(PAYLOAD), headers=AUTH)
        assert resp.status == 200 and (await resp.json()) == {"received": 2, "stored": 2}
        store.failing = True
        resp = await client.post("/alerts", data=orjson.dumps(PAYLOAD), headers=AUTH)
        assert resp.status == 503
        resp = await client.post("/alerts", data=b"not json", headers=AUTH)
        assert resp.status == 400
        recent = await (await client.get("/alerts", headers=AUTH)).json()
        assert [a["fingerprint"] for a in recent] == ["abc123", "def456", "abc123", "def456"]
        assert (await client.get("/-/healthy")).status == 200  # the health check needs no token

    serve(store, scenario, list_enabled=True)
    assert len(store.calls) == 1 and len(store.calls[0]) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN.decode()}x"},
        {"Authorization": f"Basic {TOKEN.decode()}"},
        {"Authorization": TOKEN.decode()},
    ],
    ids=["none", "wrong", "longer", "basic", "no-scheme"],
)
def test_a_post_without_the_token_is_refused_and_stores_nothing(headers: dict[str, str]) -> None:
    """The review's forged "resolved": anyone who could reach the port wrote history."""
    store = Recorder()
    forged = payload({**PAYLOAD["alerts"][0], "status": "resolved", "endsAt": "2026-11-23T02:11:00Z"})

    async def scenario(client: TestClient[Any, Any], receiver: AlertReceiver) -> None:
        resp = await client.post("/alerts", data=orjson.dumps(forged), headers=headers)
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/alerts", headers=headers)).status == 401
        assert not receiver.recent

    serve(store, scenario, list_enabled=True)
    assert store.calls == []


def test_the_alert_list_is_off_unless_enabled() -> None:
    """The open `GET /alerts` handed out the fingerprints a forgery needed."""

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        assert (await client.post("/alerts", data=orjson.dumps(PAYLOAD), headers=AUTH)).status == 200
        assert (await client.get("/alerts", headers=AUTH)).status in (404, 405)
        assert (await client.get("/alerts")).status in (404, 405)

    serve(Recorder(), scenario)


# -- append-only history on a real chDB ----------------------------------------------------------


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = connect(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    migrate(client, "psmon")
    yield client
    client.close()


def history(client: Client, fingerprint: str) -> list[dict[str, Any]]:
    result = client.query(
        "SELECT status, summary_en, value, ends_at FROM psmon.alerts FINAL "
        "WHERE fingerprint = {fp:String} ORDER BY status",
        parameters={"fp": fingerprint},
    )
    return list(result.named_results())


def test_a_reused_fingerprint_never_replaces_a_stored_row(chdb: Client) -> None:
    """The review's forgery: the real alert's fingerprint and start, read from `GET /alerts`, with
    other annotations, replaced the real row (ReplacingMergeTree keeps the newest received_at)."""
    chdb.command("TRUNCATE TABLE psmon.alerts")
    real = PAYLOAD["alerts"][0]
    forged = copy.deepcopy(real)
    forged["annotations"].update(value="0.9", summary_en="all fine, ignore")
    resolved = {**copy.deepcopy(real), "status": "resolved", "endsAt": "2026-11-23T02:30:00Z"}

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        for body, stored in (
            (payload(real), 1),
            (payload(forged), 0),
            (payload(real, real), 0),
            (payload(resolved), 1),
        ):
            resp = await client.post("/alerts", data=orjson.dumps(body), headers=AUTH)
            assert resp.status == 200 and (await resp.json())["stored"] == stored

    serve(clickhouse_store(chdb, "psmon"), scenario)
    chdb.command("OPTIMIZE TABLE psmon.alerts FINAL")  # merge now: a replacement would show
    rows = history(chdb, real["fingerprint"])
    assert [(r["status"], r["summary_en"], r["value"]) for r in rows] == [
        ("firing", "en", 0.123),
        ("resolved", "en", 0.123),
    ]
    assert rows[1]["ends_at"] is not None
    count = chdb.query("SELECT count() FROM psmon.alerts").result_rows[0][0]
    assert count == 2  # not merged away either: never written


def test_one_request_holds_the_new_key_once(chdb: Client) -> None:
    chdb.command("TRUNCATE TABLE psmon.alerts")
    store = clickhouse_store(chdb, "psmon")
    rows = alert_rows(
        parse_payload(orjson.dumps(payload(*PAYLOAD["alerts"], PAYLOAD["alerts"][0]))), received_at=datetime.now(UTC)
    )
    assert store(rows) == 2
    assert store(rows) == 0


# -- bounds --------------------------------------------------------------------------------------

SMALL = ReceiverLimits(max_body_bytes=64 * 1024, max_alerts=50)


def tiny_alert(i: int) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "X"},
        "startsAt": "2026-11-23T02:00:00Z",
        "fingerprint": f"{i:x}",
    }


def test_a_huge_request_is_refused_whole() -> None:
    """The review's 4 MB request of 27,000 alerts: stored 27,000 rows."""
    store = Recorder()
    huge = orjson.dumps(payload(*(tiny_alert(i) for i in range(27_000))))
    assert len(huge) > ReceiverLimits().max_body_bytes

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        resp = await client.post("/alerts", data=huge, headers=AUTH)
        assert resp.status == 413 and "alerts_max_body_bytes" in (await resp.json())["error"]

        async def chunks() -> Any:  # no Content-Length: refused once the read passes the bound
            for i in range(0, len(huge), 65536):
                yield huge[i : i + 65536]

        resp = await client.post("/alerts", data=chunks(), headers=AUTH)
        assert resp.status == 413

    serve(store, scenario)
    assert store.calls == []


def test_too_many_alerts_are_refused_under_the_body_bound() -> None:
    store = Recorder()
    body = orjson.dumps(payload(*(tiny_alert(i) for i in range(SMALL.max_alerts + 1))))
    assert len(body) < SMALL.max_body_bytes

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        resp = await client.post("/alerts", data=body, headers=AUTH)
        assert resp.status == 413
        assert (await resp.json())["error"] == "51 alerts in one request, more than 50 (alerts_max_per_request)"
        ok = orjson.dumps(payload(*(tiny_alert(i) for i in range(SMALL.max_alerts))))
        assert (await client.post("/alerts", data=ok, headers=AUTH)).status == 200

    serve(store, scenario, limits=SMALL)
    assert [len(c) for c in store.calls] == [SMALL.max_alerts]


def test_an_oversized_body_is_refused_before_it_is_read() -> None:
    """A Content-Length over the bound is answered at once: the body is never waited for."""

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        host, port = client.server.host, client.server.port
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN.decode()}\r\nContent-Length: {SMALL.max_body_bytes + 1}\r\n\r\n".encode()
            + b'{"alerts": ['
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)  # the old code waited for the rest
        writer.close()
        assert status_line.split()[1] == b"413"

    serve(Recorder(), scenario, limits=SMALL)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"labels": {"alertname": "X", "province": 25}}, 422),  # the review's non-string label: was 503
        ({"labels": {"alertname": "X", "severity": None}}, 422),
        ({"labels": ["alertname", "X"]}, 422),
        ({"annotations": {"summary": {"nested": "x"}}}, 422),
        ({"status": "bogus"}, 422),
        ({"fingerprint": None}, 422),
        ({"fingerprint": 123}, 422),
        ({"fingerprint": "not hex\n"}, 422),
        ({"startsAt": "yesterday"}, 422),
        ({"startsAt": 1700000000}, 422),
        ({"endsAt": "2026-13-45T00:00:00Z"}, 422),
        ({"labels": {f"l{i}": "v" for i in range(65)}}, 422),
        ({"labels": {"alertname": "x" * 1025}}, 422),
        ({"labels": {"n" * 129: "v"}}, 422),
        ({"annotations": {"summary": "x" * 8193}}, 422),
    ],
)
def test_a_malformed_alert_is_a_4xx_never_a_5xx(change: dict[str, Any], status: int) -> None:
    store = Recorder()
    bad = {**copy.deepcopy(PAYLOAD["alerts"][0]), **change}

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        resp = await client.post("/alerts", data=orjson.dumps(payload(PAYLOAD["alerts"][1], bad)), headers=AUTH)
        error = (await resp.json())["error"]
        assert resp.status == status, error
        assert error.startswith("alerts.1.") and printable(error) == error

    serve(store, scenario)
    assert store.calls == []  # the good alert beside it is not stored either: the request is refused whole


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 422),
        (b'{"alerts": {}}', 422),
        (b'{"receiver": 5, "alerts": []}', 422),
        (b'{"alerts": [1]}', 422),
        (b'{"alerts": [{}]}', 422),
    ],
)
def test_a_malformed_payload_is_a_4xx(body: bytes, status: int) -> None:
    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        assert (await client.post("/alerts", data=body, headers=AUTH)).status == status

    serve(Recorder(), scenario)


# -- control characters --------------------------------------------------------------------------

HOSTILE = "drop\nPsmon FIRING PsmonWorkerDown province=01: forged\r\x1b[2J\x1b]0;title\x07\x1b[31mred\x9b\x00\u2028end"


def test_control_characters_never_reach_the_log_or_the_text_columns(caplog: pytest.LogCaptureFixture) -> None:
    """The review's newline in a summary: a second, forged log line."""
    store = Recorder()
    alert = copy.deepcopy(PAYLOAD["alerts"][0])
    alert["annotations"]["summary_en"] = HOSTILE
    alert["labels"]["province_name"] = "Phú\x1b[1mThọ\n"

    async def scenario(client: TestClient[Any, Any], _r: AlertReceiver) -> None:
        assert (await client.post("/alerts", data=orjson.dumps(payload(alert)), headers=AUTH)).status == 200
        assert (await client.post("/alerts", data=b"\n\x1b[31m", headers=AUTH)).status == 400

    with caplog.at_level(logging.INFO, logger="psmon.alerts"):
        serve(store, scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "psmon.alerts"]
    assert len(lines) == 2
    for line in lines:
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in line), repr(line)
    assert "forged" in lines[0] and "[2J" not in lines[0] and "red" in lines[0]
    row = dict(zip(ALERT_COLUMNS, store.calls[0][0], strict=True))
    assert row["summary_en"] == printable(HOSTILE) and "\n" not in row["summary_en"]
    assert row["province_name"] == "PhúThọ "
    assert orjson.loads(row["annotations"])["summary_en"] == HOSTILE  # the exact alert, as JSON


def test_printable() -> None:
    assert printable("a\nb\r\tc") == "a b  c"
    assert printable("\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\") == "red link"
    assert printable("Phú Thọ — 15%") == "Phú Thọ — 15%"


# -- the token file ------------------------------------------------------------------------------


def test_the_token_file_is_made_private_once_and_read_back(tmp_path: Path) -> None:
    path = ensure_token_file(tmp_path / "sub" / "alerts-token")
    assert path.is_absolute() and stat.S_IMODE(path.stat().st_mode) == 0o600
    token = read_token_file(path)
    assert len(token) >= 32
    assert ensure_token_file(path) == path and read_token_file(path) == token  # kept across restarts
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token_file(tmp_path / "empty")
    with pytest.raises(ConfigError, match="PSMON_ALERTS_TOKEN_FILE"):
        read_token_file(tmp_path / "missing")


def test_the_receiver_needs_a_token() -> None:
    executor = ClickHouseExecutor()
    with pytest.raises(ValueError, match="token"):
        AlertReceiver(Recorder(), executor=executor, token=b"")
    executor.shutdown()
