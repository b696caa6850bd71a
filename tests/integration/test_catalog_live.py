"""Catalog gauges on the real broker: a catalog on the compacted topic plus events through a real
`psmon worker` give the hand-computed shares on /metrics, a catalog change published while the
worker runs reaches /metrics (polled, no sleeps), and the live shares score what the history
(`psmon catalog load` + the sink + `psmon query index`) scores for the same month."""

import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from psmon.embedded.broker import free_port
from psmon.history.periods import Period
from psmon.history.queries import History
from psmon.schemas.catalog import CatalogEntry, encode_entry
from psmon.schemas.index766 import CATALOG_ITEMS, item_points, with_rule
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import connect
from psmon.streams.topics import ensure_topics
from psmon.timeutil import local_date
from tests.helpers import psmon_env, psmon_process, scrape, stop_process, wait_until

NOW = datetime.now(UTC) - timedelta(seconds=5)
TODAY = local_date(NOW.timestamp())


def entry(
    province: str, code: str, online: str, fee: bool = False, integrated: bool = False, **kw: Any
) -> CatalogEntry:
    return CatalogEntry(province, code, f"Thủ tục {code}", "province", online, fee, integrated, date(2025, 7, 1), **kw)  # type: ignore[arg-type]


#: Hà Nội (01): 6 procedures in force (A..F), G ended before this month.
CATALOG = [
    entry("01", "1.000001", "full"),  # A: online dossier
    entry("01", "1.000002", "full"),  # B: counter dossier only
    entry("01", "1.000003", "partial", fee=True, integrated=True),  # C: online dossier and online payment
    entry("01", "1.000004", "none", fee=True),  # D: offline, fee-bearing
    entry("01", "1.000005", "full", fee=True, integrated=True),  # E: integrated, paid at the counter only
    entry("01", "1.000006", "partial", fee=True),  # F: fee-bearing online, not integrated
    entry("01", "1.000007", "full", valid_to=date(2025, 8, 1)),  # G: not in force
    entry("25", "1.000001", "full"),  # Phú Thọ: one online procedure, filed online (sent as 17)
]
#: By hand, month to date for 01 (A..F in force):
#: 3.1 online 5 of 6; 3.2 online with an online dossier: A, C of A,B,C,E,F = 2/5;
#: 3.5a fee-bearing online C, E, F, integrated C, E = 2/3; 3.5b integrated C, E, paid online C = 1/2.
EXPECTED_01 = {
    "procedures_online": (5 / 6, 6),
    "procedures_with_dossiers": (2 / 5, 5),
    "procedures_payment_integrated": (2 / 3, 3),
    "procedures_paid_online": (1 / 2, 2),
}


def ev(i: int, event_type: str, province: str, procedure: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"cat-{i}",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": NOW.isoformat().replace("+00:00", "Z"),
        "province_code": province,
        "level": "province",
        "procedure_code": procedure,
        "dossier_id": f"D{i}",
        **fields,
    }


SUB, PAY = "application.submitted", "payment.completed"
EVENTS = [
    ev(1, SUB, "01", "1.000001", channel="online", service_mode="full_online", fee_bearing=False),
    ev(2, SUB, "01", "1.000001", channel="online", service_mode="full_online", fee_bearing=False),
    ev(3, SUB, "01", "1.000002", channel="counter", service_mode="offline", fee_bearing=False),
    ev(4, SUB, "01", "1.000003", channel="online", service_mode="partial_online", fee_bearing=True),
    ev(5, PAY, "01", "1.000003", method="online", amount_vnd=50000),
    ev(6, PAY, "01", "1.000005", method="counter", amount_vnd=50000),
    ev(7, SUB, "01", "1.000007", channel="online", service_mode="full_online", fee_bearing=False),  # G: not in force
    ev(8, SUB, "17", "1.000001", channel="online", service_mode="full_online", fee_bearing=False),
]


def gauges(port: int, province: str) -> dict[str, tuple[float, float]]:
    """The catalog gauges of a province on /metrics: metric -> (ratio, denominator), present ones."""
    s = scrape(port)
    out = {}
    for metric in EXPECTED_01:
        key = tuple(sorted({"province": province, "metric": metric, "window": "month"}.items()))
        if ("psmon_ratio", key) in s:
            out[metric] = (s[("psmon_ratio", key)], s[("psmon_ratio_denominator", key)])
    return out


def test_catalog_and_events_give_the_hand_computed_gauges_and_a_change_reaches_them(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    env = psmon_env(kafka=kafka_bootstrap, prefix=unique, partitions=2, data_dir=tmp_path / "data")
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique, topic_partitions=2)
    assert settings.topic_catalog == f"{unique}.catalog"
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for e in CATALOG[:4]:  # half the catalog before the worker starts: read from the beginning
        producer.send(settings.topic_catalog, key=e.key.encode(), value=encode_entry(e))
    producer.flush()
    port = free_port()
    worker = psmon_process(["worker", "--metrics-port", str(port)], env=env, log_path=tmp_path / "worker.log")
    try:
        for e in CATALOG[4:]:  # the rest while it runs
            producer.send(settings.topic_catalog, key=e.key.encode(), value=encode_entry(e))
        for event in EVENTS:
            producer.send(settings.topic_events, key=event["province_code"].encode(), value=orjson.dumps(event))
        producer.flush()
        wait_until(lambda: gauges(port, "01") == EXPECTED_01, timeout_s=90, what="the catalog gauges of 01")
        # Phú Thọ (its dossier sent with the old code 17): no fee-bearing or integrated procedure,
        # so 3.5a and 3.5b have no denominator and no series.
        assert gauges(port, "25") == {"procedures_online": (1.0, 1), "procedures_with_dossiers": (1.0, 1)}

        # Mid-month change: B leaves the online offer from today and D goes fully online with
        # payment integrated; new versions of their keys, published while the worker runs.
        changed = [
            replace(entry("01", "1.000002", "none"), valid_from=TODAY),
            replace(entry("01", "1.000004", "full", fee=True, integrated=True), valid_from=TODAY),
        ]
        for e in changed:
            producer.send(settings.topic_catalog, key=e.key.encode(), value=encode_entry(e))
        producer.flush()
        # 3.1: online A,C,D,E,F of 6; 3.2: A,C of A,C,D,E,F; 3.5a: C,D,E of C,D,E,F; 3.5b: C of C,D,E
        after = {
            "procedures_online": (5 / 6, 6),
            "procedures_with_dossiers": (2 / 5, 5),
            "procedures_payment_integrated": (3 / 4, 4),
            "procedures_paid_online": (1 / 3, 3),
        }
        wait_until(
            lambda: gauges(port, "01") == after,
            timeout_s=30,
            what="the catalog change to reach /metrics",
        )
    finally:
        producer.close()
        stop_process(worker, sig=signal.SIGKILL)


def test_live_gauges_equal_the_history_of_the_same_month(
    kafka_bootstrap: str, unique: str, clickhouse_dsn: str, tmp_path: Path
) -> None:
    """The catalog loaded with `psmon catalog load` (ClickHouse and the topic), the events through
    a worker and a sink: the worker's month-to-date shares score exactly what `psmon query index`
    scores for the month (rules set linear so that the points follow every count)."""
    env = psmon_env(
        kafka=kafka_bootstrap,
        prefix=unique,
        partitions=2,
        clickhouse=clickhouse_dsn,
        database=unique,
        data_dir=tmp_path / "data",
        sink_flush_interval_ms=200,
    )
    path = tmp_path / "catalog.jsonl"
    path.write_bytes(b"\n".join(encode_entry(e) for e in CATALOG) + b"\n")
    load = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", "catalog", "load", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert load.returncode == 0, load.stderr
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique, topic_partitions=2)
    worker_port, sink_port = free_port(), free_port()
    worker = psmon_process(["worker", "--metrics-port", str(worker_port)], env=env, log_path=tmp_path / "worker.log")
    sink = psmon_process(["sink", "--metrics-port", str(sink_port)], env=env, log_path=tmp_path / "sink.log")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for event in EVENTS:
            producer.send(settings.topic_events, key=event["province_code"].encode(), value=orjson.dumps(event))
        producer.flush()
        wait_until(lambda: gauges(worker_port, "01") == EXPECTED_01, timeout_s=90, what="the catalog gauges of 01")
        live = {p: gauges(worker_port, p) for p in ("01", "25")}
        wait_until(
            lambda: scrape(sink_port).get(("psmon_sink_rows_total", (("table", "events"),))) == len(EVENTS),
            timeout_s=90,
            what="the sink to store every event",
        )
    finally:
        producer.close()
        stop_process(worker, sig=signal.SIGKILL)
        stop_process(sink)  # SIGTERM: it releases the embedded ClickHouse directory
    items = CATALOG_ITEMS
    for i in CATALOG_ITEMS:
        items = with_rule(items, i.item, "linear")
    client = connect(clickhouse_dsn)
    try:
        table = History(client, database=unique).index766(period=Period.parse(f"{TODAY:%Y-%m}"), items=items)
    finally:
        client.close()
    by_province = {r[1]: dict(zip(table.columns[3:], r[3:], strict=False)) for r in table.rows}
    assert set(by_province) == {"01", "25"}
    for province, shares in live.items():
        for item, metric in zip(CATALOG_ITEMS, EXPECTED_01, strict=True):
            history_points = by_province[province][item.column]
            if metric not in shares:  # no denominator live: no data in the history either
                assert history_points is None, (province, metric)
                continue
            ratio, denominator = shares[metric]
            numerator = round(ratio * denominator)
            assert numerator / denominator == ratio
            assert history_points == round(
                item_points(with_rule((item,), item.item, "linear")[0], numerator, int(denominator)), 2
            ), (
                province,
                metric,
            )
