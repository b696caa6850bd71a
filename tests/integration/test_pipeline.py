"""End to end on real parts: Tansu broker, `psmon worker` and `psmon sink` processes, chDB.

A fixed set of events is produced whose per-province counts are written out by hand below,
including old province codes, a repeated event_id and one bad event per dead-letter reason.
The test then checks the worker's /metrics, the dead-letter topic, and (after stopping the
sink, which holds the embedded ClickHouse) the ClickHouse tables.
"""

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from psmon.embedded.broker import free_port
from psmon.sinks.clickhouse.client import connect
from tests.helpers import clickhouse_totals, psmon_env, psmon_process, sample, scrape, stop_process, wait_until

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def total_of(samples: dict[Any, float], name: str) -> float:
    """`name` summed over all its label sets (duplicates by province, dead letters by reason)."""
    return sum(v for (n, _labels), v in samples.items() if n == name)


def ev(i: int, event_type: str, province: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"it-{i}",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": (NOW - timedelta(minutes=30) + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        "province_code": province,
        "level": "commune",
        "procedure_code": "1.004227",
        "dossier_id": f"D{i}",
        **fields,
    }


def good_events() -> list[dict[str, Any]]:
    """Hà Nội (01): 4 submitted (3 online, 2 of them full-online; 1 counter), 2 fee-bearing.
    Phú Thọ (25), sent as 25, 17 (Hòa Bình) and 26 (Vĩnh Phúc): 5 submitted, 2 online (1 full).
    Payments: 01 two (1 online); 25 three (3 online). Resolved: 01 two (1 on time); 25 four (3).
    Digitized: 01 dossier 2, result 1; 25 dossier 1, result 4.
    """
    sub = "application.submitted"
    out = [
        ev(1, sub, "01", channel="online", service_mode="full_online", fee_bearing=True),
        ev(2, sub, "01", channel="online", service_mode="full_online", fee_bearing=False),
        ev(3, sub, "01", channel="online", service_mode="partial_online", fee_bearing=True),
        ev(4, sub, "01", channel="counter", service_mode="offline", fee_bearing=False),
        ev(5, sub, "25", channel="online", service_mode="full_online", fee_bearing=True),
        ev(6, sub, "17", channel="online", service_mode="partial_online", fee_bearing=False),
        ev(7, sub, "26", channel="counter", service_mode="partial_online", fee_bearing=True),
        ev(8, sub, "26", channel="postal", service_mode="offline", fee_bearing=False),
        ev(9, sub, "25", channel="counter", service_mode="offline", fee_bearing=False),
        ev(10, "payment.completed", "01", method="online", amount_vnd=50000),
        ev(11, "payment.completed", "01", method="counter", amount_vnd=50000),
        ev(12, "payment.completed", "25", method="online", amount_vnd=0),
        ev(13, "payment.completed", "17", method="online", amount_vnd=15000),
        ev(14, "payment.completed", "26", method="online", amount_vnd=15000),
        ev(15, "application.resolved", "01", on_time=True),
        ev(16, "application.resolved", "01", on_time=False),
        ev(17, "application.resolved", "25", on_time=True),
        ev(18, "application.resolved", "25", on_time=True),
        ev(19, "application.resolved", "17", on_time=True),
        ev(20, "application.resolved", "26", on_time=False),
        ev(21, "record.digitized", "01", kind="dossier"),
        ev(22, "record.digitized", "01", kind="dossier"),
        ev(23, "record.digitized", "01", kind="result"),
        ev(24, "record.digitized", "25", kind="dossier"),
        ev(25, "record.digitized", "25", kind="result"),
        ev(26, "record.digitized", "26", kind="result"),
        ev(27, "record.digitized", "17", kind="result"),
        ev(28, "record.digitized", "25", kind="result"),
    ]
    return out


EXPECTED = {
    "01": {
        "submitted": 4,
        "online": 3,
        "full_online": 2,
        "fee_bearing": 2,
        "payments": 2,
        "paid_online": 1,
        "resolved": 2,
        "on_time": 1,
        "dig_dossier": 2,
        "dig_result": 1,
    },
    "25": {
        "submitted": 5,
        "online": 2,
        "full_online": 1,
        "fee_bearing": 2,
        "payments": 3,
        "paid_online": 3,
        "resolved": 4,
        "on_time": 3,
        "dig_dossier": 1,
        "dig_result": 4,
    },
}


def bad_events() -> list[tuple[bytes, str]]:
    """(raw bytes, expected reason), one per reason; personal values must never be stored."""
    ok = ev(100, "application.resolved", "01", on_time=True)
    return [
        (b'{"event_id": "x"', "malformed_json"),
        (b"[1,2,3]", "not_an_object"),
        (orjson.dumps({**ok, "event_id": "big", "agency_code": "A" * 9000}), "too_large"),
        (
            orjson.dumps({k: v for k, v in {**ok, "event_id": "nod"}.items() if k != "dossier_id"}),
            "missing_field",
        ),
        (orjson.dumps({**ok, "event_id": "unk", "priority": "high"}), "unknown_field"),
        (orjson.dumps({**ok, "event_id": "inv", "on_time": 1}), "invalid_value"),
        (
            orjson.dumps({**ok, "event_id": "typ", "event_type": "application.withdrawn"}),
            "unknown_event_type",
        ),
        (
            orjson.dumps({**ok, "event_id": "ver", "schema_version": 2}),
            "unsupported_schema_version",
        ),
        (orjson.dumps({**ok, "event_id": "prov", "province_code": "99"}), "unknown_province"),
        (
            orjson.dumps({**ok, "event_id": "old", "occurred_at": "2014-06-01T00:00:00Z"}),
            "time_out_of_range",
        ),
        (
            orjson.dumps({**ok, "event_id": "pii", "ho_ten": "Nguyễn Văn Riêng", "so_cccd": "001099012345"}),
            "personal_data",
        ),
    ]


PII_VALUES = ("Nguyễn Văn Riêng".encode(), b"001099012345")


@pytest.fixture
def pipeline(kafka_bootstrap: str, unique: str, clickhouse_dsn: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    worker_port, sink_port = free_port(), free_port()
    env = psmon_env(
        kafka=kafka_bootstrap,
        prefix=unique,
        partitions=4,
        clickhouse=clickhouse_dsn,
        database=unique,
        data_dir=tmp_path / "data",
        rates_snapshot_interval_s=2,
        sink_flush_interval_ms=200,
    )
    worker = psmon_process(["worker", "--metrics-port", str(worker_port)], env=env, log_path=tmp_path / "worker.log")
    sink = psmon_process(["sink", "--metrics-port", str(sink_port)], env=env, log_path=tmp_path / "sink.log")
    procs = {"worker": worker, "sink": sink}
    try:
        yield {
            "env": env,
            "worker_port": worker_port,
            "sink_port": sink_port,
            "procs": procs,
            "topic": unique,
            "tmp": tmp_path,
        }
    finally:
        for p in procs.values():
            stop_process(p, sig=signal.SIGKILL)


def test_events_flow_to_metrics_dead_letters_and_clickhouse(
    pipeline, kafka_bootstrap: str, clickhouse_dsn: str
) -> None:  # type: ignore[no-untyped-def]
    prefix, wport, sport = pipeline["topic"], pipeline["worker_port"], pipeline["sink_port"]
    goods, bads = good_events(), bad_events()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for e in goods:
        producer.send(f"{prefix}.events", key=e["province_code"].encode(), value=orjson.dumps(e))
    # the same event_id again as a new message: a duplicate, counted once
    producer.send(f"{prefix}.events", key=b"01", value=orjson.dumps(goods[0]))
    for raw, _reason in bads:
        producer.send(f"{prefix}.events", key=b"01", value=raw)
    producer.flush()
    total = len(goods) + 1 + len(bads)

    samples = wait_until(
        lambda: (
            (s := scrape(wport)) and sample(s, "psmon_events_processed_total", stage="rates") >= len(goods) + 1 and s
        ),
        timeout_s=90,
        what="worker to process every valid record",
    )
    samples = wait_until(
        lambda: (
            (s := scrape(wport))
            and sample(s, "psmon_events_processed_total", stage="validate") == total
            and total_of(s, "psmon_events_invalid_total") == len(bads)  # counted by stage 2 from the log
            and s
        ),
        timeout_s=30,
        what="worker to validate every message and count its dead letters",
    )

    # -- Prometheus: contract counters per province, duplicates, dead letters by reason ----------
    for prov, exp in EXPECTED.items():
        sub = {
            k: v for k, v in samples.items() if k[0] == "psmon_dossiers_submitted_total" and ("province", prov) in k[1]
        }
        assert sum(sub.values()) == exp["submitted"]
        assert sum(v for k, v in sub.items() if ("channel", "online") in k[1]) == exp["online"]
        assert (
            sample(
                samples,
                "psmon_dossiers_submitted_total",
                province=prov,
                channel="online",
                service_mode="full_online",
            )
            == exp["full_online"]
        )
        assert sample(samples, "psmon_dossiers_fee_bearing_total", province=prov) == exp["fee_bearing"]
        assert sample(samples, "psmon_payments_total", province=prov, method="online") == exp["paid_online"]
        assert (
            sample(samples, "psmon_payments_total", province=prov, method="online")
            + sample(samples, "psmon_payments_total", province=prov, method="counter")
            == exp["payments"]
        )
        assert sample(samples, "psmon_dossiers_resolved_total", province=prov, on_time="true") == exp["on_time"]
        assert (
            sample(samples, "psmon_dossiers_resolved_total", province=prov, on_time="false")
            == exp["resolved"] - exp["on_time"]
        )
        assert sample(samples, "psmon_records_digitized_total", province=prov, kind="dossier") == exp["dig_dossier"]
        assert sample(samples, "psmon_records_digitized_total", province=prov, kind="result") == exp["dig_result"]
    assert not any(("province", "17") in k[1] or ("province", "26") in k[1] for k in samples)  # old codes mapped
    assert total_of(samples, "psmon_events_duplicate_total") == 1
    for _raw, reason in bads:
        assert sample(samples, "psmon_events_invalid_total", reason=reason) == 1, reason

    # live ratios over 1 h (all events are 30 min old): hand-computed
    samples = wait_until(
        lambda: (
            (s := scrape(wport))
            and ("psmon_ratio", (("metric", "on_time"), ("province", "25"), ("window", "1h"))) in s
            and s
        ),
        timeout_s=10,
        what="ratio gauges",
    )
    ratio = lambda p, m: sample(samples, "psmon_ratio", province=p, metric=m, window="1h")  # noqa: E731
    assert ratio("01", "online_submission") == pytest.approx(3 / 4)
    assert ratio("25", "online_submission") == pytest.approx(2 / 5)
    assert ratio("25", "full_online") == pytest.approx(1 / 5)
    assert ratio("01", "online_payment") == pytest.approx(1 / 2)
    assert ratio("25", "on_time") == pytest.approx(3 / 4)
    assert ratio("25", "result_digitization") == pytest.approx(4 / 4)
    assert ratio("01", "dossier_digitization") == pytest.approx(2 / 4)

    # -- dead-letter topic: every reason, nothing personal -----------------------------------
    # No consumer group (joins are slow on the local broker): read every partition from 0.
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(f"{prefix}.dead-letter", p) for p in range(4)])
    consumer.seek_to_beginning()
    letters: list[dict[str, Any]] = []

    def read_letters() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            letters.extend(orjson.loads(m.value) for m in records)
        return len(letters) >= len(bads)

    wait_until(read_letters, timeout_s=30, interval_s=0, what="dead letters on the topic")
    consumer.close()
    assert sorted(d["reason"] for d in letters) == sorted(r for _b, r in bads)
    for d in letters:
        blob = orjson.dumps(d)
        assert not any(v in blob for v in PII_VALUES)
        assert b"ho_ten" not in blob.replace(b"personal-data fields: ho_ten, so_cccd", b"")
        if d["reason"] in ("malformed_json", "not_an_object", "too_large"):
            assert d["redacted"] is None and len(d["payload_sha256"]) == 64

    # -- ClickHouse: wait for the sink, stop it (it holds chDB), then read --------------------
    wait_until(
        lambda: (
            sample(scrape(sport), "psmon_sink_rows_total", table="events") >= len(goods)
            and sample(scrape(sport), "psmon_sink_rows_total", table="dead_letters") >= len(bads)
            # three snapshots (every 2 s) at least, so some minute got several
            and sample(scrape(sport), "psmon_sink_rows_total", table="rate_snapshots") >= 3 * 36 * len(EXPECTED)
        ),
        timeout_s=60,
        what="sink to write events, dead letters and rates",
    )
    assert stop_process(pipeline["procs"]["sink"], sig=signal.SIGTERM) == 0
    db = pipeline["env"]["PSMON_CLICKHOUSE_DATABASE"]
    ch = connect(clickhouse_dsn)
    assert clickhouse_totals(ch, db) == EXPECTED
    raw_codes = ch.query(
        f"SELECT raw_province_code, count() FROM {db}.events FINAL WHERE province_code='25' GROUP BY 1 ORDER BY 1"
    ).result_rows
    assert raw_codes == [
        ("17", 4),
        ("25", 8),
        ("26", 5),
    ]  # events 6,13,19,27 · 5,9,12,17,18,24,25,28 · 7,8,14,20,26
    ratio_sql = ch.query(
        f"SELECT countIf(channel='online') / countIf(event_type='application.submitted') FROM {db}.events FINAL WHERE province_code='01'"
    )
    assert ratio_sql.result_rows[0][0] == pytest.approx(0.75)
    dl = ch.query(f"SELECT reason, redacted, payload_sha256 FROM {db}.dead_letters FINAL ORDER BY reason").result_rows
    assert sorted(r[0] for r in dl) == sorted(r for _b, r in bads)
    assert not any(v.decode() in (r[1] + r[0]) for r in dl for v in PII_VALUES)
    snap = ch.query(
        f"SELECT numerator, denominator FROM {db}.rate_snapshots FINAL WHERE province_code='25' AND metric='on_time' "
        "AND rate_window='1h' ORDER BY snapshot_at DESC LIMIT 1"
    ).result_rows
    assert snap == [(3, 4)]
    # One row per province x metric x window x minute, however often the worker snapshots.
    per_minute = ch.query(
        f"SELECT max(c), min(toSecond(at)) + max(toSecond(at)) FROM (SELECT count() c, any(snapshot_at) at "
        f"FROM {db}.rate_snapshots FINAL GROUP BY province_code, metric, rate_window, toStartOfMinute(snapshot_at))"
    ).result_rows
    assert per_minute == [(1, 0)]
    ch.close()
    assert pipeline["procs"]["worker"].poll() is None, "worker must survive bad input"
    assert os.path.exists(pipeline["tmp"] / "worker.log")
