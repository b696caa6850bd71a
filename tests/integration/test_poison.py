"""A row that ClickHouse cannot store never halts history: real sink process, real chDB.

The security review found that one record passing validation but refused by ClickHouse (an
`amount_vnd` beyond Int64, a Kafka timestamp in microseconds) made the sink retry forever:
`psmon_clickhouse_up 0`, nothing written after it, an alert while ClickHouse was healthy.
Validation now bounds those values, so the poison here bypasses it the way an older worker
would: a record produced straight onto `psmon.valid`, and, for `psmon replay`, a validation
without the bound injected through the Python API. Every good row must be stored, the poison
one must land in `dead_letters` as `unstorable`, and ClickHouse must never be reported down.
The last test sends the microsecond timestamp through a real worker: validation now turns it
into a `time_out_of_range` dead letter, which the sink can store.
"""

import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from kafka import KafkaProducer

import psmon.history.replay_validation as replay_validation
from psmon.embedded.broker import free_port
from psmon.history.replay import replay_files
from psmon.schemas.dead_letter import encode_dead_letter, letter_id, unstorable_letter
from psmon.schemas.normalized import ValidRecord, encode_valid
from psmon.schemas.validation import Invalid, ValidEvent, validate_event
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import connect
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from psmon.streams.topics import ensure_topics
from tests.helpers import (
    end_offsets,
    psmon_env,
    psmon_process,
    sample,
    scrape,
    sink_caught_up,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PARTITIONS = 2
POISON_AMOUNT = 2**63  # one above the Nullable(Int64) column


def payment(event_id: str, amount: int, occurred_s: float) -> ValidEvent:
    return ValidEvent(
        event_id=event_id,
        event_type="payment.completed",
        occurred_at_s=occurred_s,
        province_code="25",
        raw_province_code="25",
        level="commune",
        procedure_code="1.004227",
        dossier_id=f"HS-{event_id}",
        method="online",
        amount_vnd=amount,
    )


@pytest.fixture
def env(kafka_bootstrap: str, unique: str, clickhouse_dsn: str, tmp_path: Path) -> dict[str, str]:
    ensure_topics(Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique, topic_partitions=PARTITIONS))
    return psmon_env(
        kafka=kafka_bootstrap,
        prefix=unique,
        partitions=PARTITIONS,
        clickhouse=clickhouse_dsn,
        database=unique,
        data_dir=tmp_path / "data",
        sink_flush_interval_ms=200,
        sink_retry_max_backoff_s=1,
    )


@pytest.fixture
def sink_proc(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = psmon_process(["sink", "--metrics-port", str(port)], env=env, log_path=tmp_path / "sink.log")
    try:
        yield proc, port
    finally:
        stop_process(proc, sig=signal.SIGKILL)


def contract_event(event_id: str, occurred_s: float) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_type": "record.digitized",
        "schema_version": 1,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred_s)),
        "province_code": "25",
        "level": "commune",
        "procedure_code": "1.004227",
        "dossier_id": f"HS-{event_id}",
        "kind": "dossier",
    }


def test_a_poison_row_on_the_valid_topic_is_dead_lettered_and_every_good_row_stored(
    kafka_bootstrap: str, unique: str, clickhouse_dsn: str, sink_proc: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = sink_proc
    # Before it has connected, the gauge is 0; the claim is about what follows.
    wait_until(lambda: sample(scrape(port), "psmon_clickhouse_up") == 1, timeout_s=45, what="the sink up")
    now_s = time.time()
    # 20 good events around one poison event, all in one poll of the sink.
    events = [payment(f"ok-{i}", 15_000, now_s - 600 + i) for i in range(20)]
    events.insert(10, payment("poison", POISON_AMOUNT, now_s - 300))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=50)
    for offset, ev in enumerate(events):
        value = encode_valid(ev, src_partition=0, src_offset=offset, src_ts_ms=int(now_s * 1000))
        producer.send(f"{unique}.valid", key=b"25", value=value, partition=0)
    # A stage-1 dead letter of a record stamped in microseconds: its received_at must still fit.
    us_ts_s = now_s * 1_000_000
    verdict = validate_event(orjson.dumps(contract_event("us", now_s - 60)), record_ts_s=us_ts_s)
    assert isinstance(verdict, Invalid) and verdict.reason == "time_out_of_range"
    letter = encode_dead_letter(verdict, src_partition=1, src_offset=7, src_ts_ms=int(us_ts_s * 1000))
    producer.send(f"{unique}.dead-letter", key=b"bad", value=letter, partition=0)
    producer.flush()
    producer.close()

    ends = {t: end_offsets(kafka_bootstrap, f"{unique}.{t}", PARTITIONS) for t in ("valid", "dead-letter")}
    seen_up: set[float] = set()

    def committed_everything() -> bool:
        samples = scrape(port)
        if ("psmon_clickhouse_up", ()) in samples:
            seen_up.add(sample(samples, "psmon_clickhouse_up"))
        assert not sample(samples, "psmon_clickhouse_errors_total"), "a data error counted as a ClickHouse failure"
        return bool(samples) and all(sink_caught_up(samples, f"{unique}.{t}", e) for t, e in ends.items())

    wait_until(committed_everything, timeout_s=45, what="the sink to commit past the poison row")
    samples = scrape(port)
    assert seen_up == {1.0}, f"psmon_clickhouse_up took the values {seen_up}"
    assert sample(samples, "psmon_events_invalid_total", reason="unstorable") == 1
    assert sample(samples, "psmon_sink_rows_unstorable_total", table="events") == 1
    assert sample(samples, "psmon_sink_rows_total", table="events") == 20
    assert stop_process(proc, sig=signal.SIGTERM) == 0  # chDB allows one process: release it

    ch = connect(clickhouse_dsn)
    try:
        stored = {r[0] for r in ch.query(f"SELECT event_id FROM {unique}.events").result_rows}
        assert stored == {f"ok-{i}" for i in range(20)}
        letters = ch.query(
            f"SELECT dead_letter_id, reason, detail, redacted FROM {unique}.dead_letters FINAL ORDER BY reason"
        ).result_rows
    finally:
        ch.close()
    # Dead-letter ids come from content (the payload's keyed digest; the refused event's fields).
    assert [(r[0], r[1]) for r in letters] == [
        (letter_id(verdict.payload_sha256), "time_out_of_range"),
        (unstorable_letter(ValidRecord(events[10], 0, 10, 0), error=ValueError()).dead_letter_id, "unstorable"),
    ]
    _id, _reason, detail, redacted = letters[1]
    assert "amount_vnd" in detail
    kept = orjson.loads(redacted)
    assert kept["event_id"] == "poison" and "amount_vnd" not in kept  # redacted like any dead letter


def test_replay_sets_a_row_clickhouse_refuses_aside_and_writes_the_rest(
    clickhouse_dsn: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now_s = time.time()
    lines = []
    for i in range(30):
        amount = 1 if i == 16 else 50_000  # rp-16, on row 17 (rows count from 1), is the poison
        event = {
            "event_id": f"rp-{i}",
            "event_type": "payment.completed",
            "schema_version": 1,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s - 3600 + i)),
            "province_code": "25",
            "level": "commune",
            "procedure_code": "1.004227",
            "dossier_id": f"HS-{i}",
            "method": "counter",
            "amount_vnd": amount,
        }
        lines.append(orjson.dumps(event))
    path = tmp_path / "poison.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    real = replay_validation.validate_events

    def without_the_bound(messages: Sequence[bytes], *args: Any, **kwargs: Any) -> list[ValidEvent | Invalid]:
        # A validation missing the amount bound: rp-16 reaches the writer with 2**63.
        verdicts = real(messages, *args, **kwargs)
        return [
            msgspec.structs.replace(v, amount_vnd=POISON_AMOUNT)
            if isinstance(v, ValidEvent) and v.event_id == "rp-16"
            else v
            for v in verdicts
        ]

    monkeypatch.setattr(replay_validation, "validate_events", without_the_bound)
    client = connect(clickhouse_dsn)
    try:
        migrate(client, unique)
        writer = ClickHouseWriter(client, database=unique)
        first = replay_files([path], writer=writer, batch_rows=100)
        again = replay_files([path], writer=writer, batch_rows=100)  # idempotent, poison included
        stored = {r[0] for r in client.query(f"SELECT event_id FROM {unique}.events").result_rows}
        letters = client.query(f"SELECT dead_letter_id, reason, detail FROM {unique}.dead_letters FINAL").result_rows
    finally:
        client.close()
    assert (first.valid, first.inserted, first.unstorable, first.already_stored) == (30, 29, 1, 0)
    assert (again.inserted, again.unstorable, again.already_stored) == (0, 1, 29)
    assert stored == {f"rp-{i}" for i in range(30) if i != 16}
    assert [r[1] for r in letters] == ["unstorable"]  # one letter, its id from content: stored once
    assert "amount_vnd" in letters[0][2]


def test_an_event_stamped_in_microseconds_is_a_dead_letter_through_the_real_worker(
    kafka_bootstrap: str,
    unique: str,
    clickhouse_dsn: str,
    env: dict[str, str],
    sink_proc: tuple[subprocess.Popen[bytes], int],
    tmp_path: Path,
) -> None:
    sink, sink_port = sink_proc
    worker_port = free_port()
    worker = psmon_process(["worker", "--metrics-port", str(worker_port)], env=env, log_path=tmp_path / "worker.log")
    try:
        now_s = time.time()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        topic = f"{unique}.events"
        producer.send(topic, key=b"25", value=orjson.dumps(contract_event("before", now_s - 120)))
        # A producer that sets the record timestamp in microseconds (year 58,000 in milliseconds).
        micro = int(now_s * 1_000_000)
        producer.send(topic, key=b"25", value=orjson.dumps(contract_event("micro", now_s - 90)), timestamp_ms=micro)
        producer.send(topic, key=b"25", value=orjson.dumps(contract_event("after", now_s - 60)))
        producer.flush()
        producer.close()
        wait_until(
            lambda: sample(scrape(worker_port), "psmon_events_processed_total", stage="validate") >= 3,
            timeout_s=45,
            what="the worker to validate the three events",
        )
        # Stage 2 counts dead letters from psmon.dead-letter, a moment after stage 1 sent them.
        wait_until(
            lambda: sample(scrape(worker_port), "psmon_events_invalid_total", reason="time_out_of_range") >= 1,
            timeout_s=45,
            what="the worker to count the dead letter",
        )
        assert sample(scrape(worker_port), "psmon_events_invalid_total", reason="time_out_of_range") == 1
        ends = {t: end_offsets(kafka_bootstrap, f"{unique}.{t}", PARTITIONS) for t in ("valid", "dead-letter")}
        wait_until(
            lambda: (s := scrape(sink_port)) and all(sink_caught_up(s, f"{unique}.{t}", e) for t, e in ends.items()),
            timeout_s=45,
            what="the sink to commit the worker's outputs",
        )
        samples = scrape(sink_port)
        assert sample(samples, "psmon_clickhouse_up") == 1
        assert not sample(samples, "psmon_clickhouse_errors_total")
    finally:
        stop_process(worker, sig=signal.SIGKILL)
    assert stop_process(sink, sig=signal.SIGTERM) == 0
    ch = connect(clickhouse_dsn)
    try:
        stored = {r[0] for r in ch.query(f"SELECT event_id FROM {unique}.events").result_rows}
        letters = ch.query(f"SELECT reason, detail, redacted FROM {unique}.dead_letters FINAL").result_rows
    finally:
        ch.close()
    assert stored == {"before", "after"}
    [(reason, detail, redacted)] = letters
    assert reason == "time_out_of_range" and "milliseconds expected" in detail
    assert orjson.loads(redacted)["event_id"] == "micro"
