"""The webhook receiver: Alertmanager payloads become `alerts` rows; a failed write answers 503
(so Alertmanager retries) and a good one 200; the recent list serves what arrived."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from psmon.alerting.receiver import ALERT_COLUMNS, AlertReceiver, alert_rows
from psmon.sinks.clickhouse.client import ClickHouseExecutor

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


def test_alert_rows() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    rows = [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in alert_rows(PAYLOAD, received_at=now)]
    a, b = rows
    assert (a["fingerprint"], a["status"], a["province_code"], a["province_name"], a["metric"]) == (
        "abc123",
        "firing",
        "25",
        "Phú Thọ",
        "online_submission",
    )
    assert (a["value"], a["threshold"], a["volume"]) == (0.123, 0.5, 456.0)
    assert a["starts_at"] == datetime(2026, 11, 23, 2, 10, 1, 123456, tzinfo=UTC)
    assert a["ends_at"] is None  # Alertmanager's zero time: still firing
    assert orjson.loads(a["labels"])["window"] == "1h"
    assert (b["status"], b["province_code"], b["value"], b["summary_en"]) == ("resolved", "", None, "down")
    assert b["starts_at"] == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert b["ends_at"] == datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
    assert a["receiver"] == "psmon-province-ops" and a["received_at"] == now


def test_receiver_stores_then_answers_and_503_when_storage_fails() -> None:
    stored: list[Sequence[list[Any]]] = []
    failing = {"on": False}

    def store(rows: Sequence[list[Any]]) -> None:
        if failing["on"]:
            raise RuntimeError("ClickHouse down")
        stored.append(rows)

    async def scenario() -> None:
        executor = ClickHouseExecutor()
        receiver = AlertReceiver(store, executor=executor)
        async with TestClient(TestServer(receiver.app)) as client:
            resp = await client.post("/alerts", data=orjson.dumps(PAYLOAD))
            assert resp.status == 200 and (await resp.json()) == {"stored": 2}
            failing["on"] = True
            resp = await client.post("/alerts", data=orjson.dumps(PAYLOAD))
            assert resp.status == 503
            resp = await client.post("/alerts", data=b"not json")
            assert resp.status == 400
            recent = await (await client.get("/alerts")).json()
            assert [a["fingerprint"] for a in recent] == ["abc123", "def456", "abc123", "def456"]
            assert (await client.get("/-/healthy")).status == 200
        executor.shutdown()

    asyncio.run(scenario())
    assert len(stored) == 1 and len(stored[0]) == 2
