"""Recovery in O(state): a SIGKILLed worker's successor restores checkpoints and replays the tail.

A large history is produced straight to `psmon.valid` (already-validated records, as stage 1
writes them), a real `psmon worker` counts it and checkpoints every partition, and is killed
with SIGKILL. While no worker runs, a tail arrives: new events, redeliveries of records from
before the checkpoints (same source message) and duplicates of them (same event_id, another
source). A new worker process, sharing the data dir, must then:
- restore every partition of `psmon.valid` from its checkpoint and replay exactly the tail
  (`psmon_events_processed_total{stage="rebuild"}` equals the tail, not the history);
- export exact de-duplicated totals: redeliveries absorbed, duplicates counted once, through the
  duplicate memory restored from the dead worker's files;
- never export a counter below what the killed worker exported (no spike in `increase()`).
"""

import asyncio
import signal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from psmon.embedded.broker import free_port
from psmon.metrics import PipelineMetrics
from psmon.schemas.normalized import decode_valid, encode_valid
from psmon.schemas.provinces import registry
from psmon.schemas.validation import ValidEvent
from psmon.settings import Settings
from psmon.streams.checkpoint import Checkpoint, CheckpointStore, record_digest
from psmon.streams.live import LiveRates
from psmon.streams.rates_service import RatesService
from psmon.streams.topics import ensure_topics
from psmon.timeutil import utc_now
from tests.helpers import (
    TOTAL_KEYS,
    Samples,
    metric_totals,
    psmon_env,
    psmon_process,
    sample,
    scrape,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTITIONS = 8
HISTORY = 150_000
PROVINCES = registry().codes

Record = tuple[str, tuple[int, int], ValidEvent]
#: the counters a worker owns per province (contract counters and duplicates)
OWNED = {
    "psmon_dossiers_submitted_total",
    "psmon_dossiers_fee_bearing_total",
    "psmon_payments_total",
    "psmon_events_duplicate_total",
}


def event(i: int, now_s: float) -> ValidEvent:
    province = PROVINCES[i % len(PROVINCES)]
    common = {
        "event_id": f"ev-{i}",
        "occurred_at_s": now_s - 60 - (i % 3000) * 20,  # within the last day: minute and day buckets
        "province_code": province,
        "raw_province_code": province,
        "level": "commune",
        "procedure_code": "1.1",
        "dossier_id": f"d-{i}",
    }
    if i % 3 == 0:
        return ValidEvent(event_type="payment.completed", method="online" if i % 2 else "cash", **common)  # type: ignore[arg-type]
    return ValidEvent(
        event_type="application.submitted",
        channel="online" if i % 5 else "counter",
        service_mode="full_online" if i % 7 else "partial_online",
        fee_bearing=i % 4 == 0,
        **common,  # type: ignore[arg-type]
    )


def produce(bootstrap: str, topic: str, records: list[Record]) -> dict[int, int]:
    """Produce stage 1's records for `records` (keyed by province); returns the next offset of
    every partition written to, from the broker's acknowledgements."""

    async def run() -> dict[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
        await producer.start()
        ends: dict[int, int] = {}
        try:
            pending = []
            for key, src, ev in records:
                value = encode_valid(
                    ev, src_partition=src[0], src_offset=src[1], src_ts_ms=int(ev.occurred_at_s * 1000)
                )
                pending.append(await producer.send(topic, key=key.encode(), value=value))
                if len(pending) >= 20_000:
                    for meta in await asyncio.gather(*pending):
                        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
                    pending.clear()
            for meta in await asyncio.gather(*pending):
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        finally:
            await producer.stop()
        return ends

    return asyncio.run(run())


def registry_samples(registry: CollectorRegistry) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for metric in registry.collect() for s in metric.samples}


def totals(events: list[ValidEvent]) -> dict[str, dict[str, int]]:
    """Per-province counters in `metric_totals` terms, counting each event once."""
    out: dict[str, dict[str, int]] = {}
    for e in events:
        t = out.setdefault(e.province_code, dict.fromkeys(TOTAL_KEYS, 0))
        if e.event_type == "payment.completed":
            t["payments"] += 1
            t["paid_online"] += e.method == "online"
        else:
            t["submitted"] += 1
            t["online"] += e.channel == "online"
            t["full_online"] += e.channel == "online" and e.service_mode == "full_online"
            t["fee_bearing"] += bool(e.fee_bearing)
    return out


def test_a_killed_worker_is_recovered_from_checkpoints_not_from_history(
    kafka_bootstrap: str, unique: str, clickhouse_dsn: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=unique, app_id=unique, topic_partitions=PARTITIONS
    )
    ensure_topics(settings)
    now_s = utc_now().timestamp()
    history = [event(i, now_s) for i in range(HISTORY)]
    ends = produce(kafka_bootstrap, settings.topic_valid, [(e.province_code, (0, i), e) for i, e in enumerate(history)])

    env = psmon_env(
        kafka=kafka_bootstrap,
        prefix=unique,
        partitions=PARTITIONS,
        clickhouse=clickhouse_dsn,
        database=unique,
        data_dir=tmp_path / "data",
        checkpoint_interval_s=1,
        log_level="info",
    )
    port = free_port()

    def start(name: str):  # type: ignore[no-untyped-def]
        return psmon_process(["worker", "--metrics-port", str(port)], env=env, log_path=tmp_path / f"{name}.log")

    first = start("first")
    try:
        wait_until(
            lambda: metric_totals(scrape(port)) == totals(history), timeout_s=300, what="the first worker's totals"
        )
        # Every partition checkpointed at its end: the successor's replay is then exactly the tail.
        store = CheckpointStore(tmp_path / "data" / "checkpoints", app_id=unique)

        def checkpointed() -> bool:
            found = {p: store.read(settings.topic_valid, p, PARTITIONS) for p in ends}
            return all(c is not None and c.next_offset == ends[p] for p, c in found.items())

        wait_until(checkpointed, timeout_s=60, what="checkpoints at the end of every partition")
        before = scrape(port)
    finally:
        stop_process(first, sig=signal.SIGKILL)

    # The tail, produced while no worker runs: new events, redeliveries and duplicates of old ones.
    fresh = [event(i, now_s) for i in range(HISTORY, HISTORY + 1000)]
    redelivered = [(i, history[i]) for i in range(0, HISTORY, HISTORY // 300)]
    repeated = [(i, history[i]) for i in range(7, HISTORY, HISTORY // 300)]
    tail: list[Record] = [(e.province_code, (0, HISTORY + j), e) for j, e in enumerate(fresh)]
    tail += [(e.province_code, (0, i), e) for i, e in redelivered]  # same source message
    tail += [(e.province_code, (1, i), e) for i, e in repeated]  # the portal sent it again
    produce(kafka_bootstrap, settings.topic_valid, tail)
    expected = totals(history + fresh)
    duplicates: dict[str, int] = {}
    for _, e in repeated:
        duplicates[e.province_code] = duplicates.get(e.province_code, 0) + 1

    second = start("second")
    try:
        exported_before = {k: v for k, v in before.items() if k[0] in OWNED}

        def recovered() -> bool:
            now = scrape(port)
            for key, value in now.items():  # every series exported so far: never below the old value
                if key in exported_before:
                    assert value >= exported_before[key], f"{key} went down: {exported_before[key]} -> {value}"
            return metric_totals(now) == expected

        wait_until(recovered, timeout_s=300, interval_s=0.1, what="the restarted worker's totals")
        after = scrape(port)
    finally:
        stop_process(second)

    assert sample(after, "psmon_checkpoint_restored_total", topic=settings.topic_valid) == len(ends)
    # Read and prepared while the join was in flight: the partitions the dead worker held.
    second_log = (tmp_path / "second.log").read_text()
    for p in ends:
        assert (
            f"{settings.topic_valid}[{p}] restored from its checkpoint at offset {ends[p]} (read ahead)" in second_log
        )
    assert sample(after, "psmon_events_processed_total", stage="rebuild") == len(tail)
    for province, n in duplicates.items():
        assert sample(after, "psmon_events_duplicate_total", province=province) == n
    assert sum(v for (name, _), v in after.items() if name == "psmon_events_duplicate_total") == len(repeated)


@pytest.mark.parametrize("log", ["shorter", "grown"])
def test_a_checkpoint_of_another_log_is_discarded(kafka_bootstrap: str, unique: str, tmp_path: Path, log: str) -> None:
    """A checkpoint left by a former topic of the same name (the local broker restarted empty):
    beyond the new log's end ("shorter"), or within it but over other records ("grown"). Its
    state must not be counted: the partition is re-read from the beginning."""
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=unique,
        app_id=unique,
        topic_partitions=1,
        session_timeout_s=6,
        data_dir=tmp_path,
        metrics_port=0,
    )
    ensure_topics(settings)
    now_s = utc_now().timestamp()
    events = [event(i, now_s) for i in range(50)]
    produce(kafka_bootstrap, settings.topic_valid, [(e.province_code, (0, i), e) for i, e in enumerate(events)])
    # The former log's checkpoint: a state of 1,000 other events, at offset 20 or 5,000.
    former = LiveRates(metrics=PipelineMetrics(CollectorRegistry()), dedup_max_ids=1000, worker="former")
    for i in range(1000):
        former.observe(
            decode_valid(encode_valid(event(10_000 + i, now_s), src_partition=0, src_offset=i, src_ts_ms=0)),
            partition=0,
        )
    offset = 20 if log == "grown" else 5_000
    CheckpointStore(settings.resolved_checkpoint_dir, app_id=unique).write(
        settings.topic_valid,
        0,
        1,
        Checkpoint(next_offset=offset, state=former.partition_state(0), last_record=(1, record_digest(b"former"))),
    )

    async def run() -> dict[str, dict[str, int]]:
        metrics = PipelineMetrics(CollectorRegistry())
        service = RatesService(settings, LiveRates(metrics=metrics, dedup_max_ids=10_000, worker="w"))
        await service.start()
        try:
            deadline = asyncio.get_running_loop().time() + 120
            while asyncio.get_running_loop().time() < deadline:
                got = metric_totals(registry_samples(metrics.registry))
                if got and not service.live.catching_up:
                    return got
                await asyncio.sleep(0.2)
            raise AssertionError("the partition never went live")
        finally:
            await service.stop()

    assert asyncio.run(run()) == totals(events)


def test_a_worker_restarted_after_sigkill_rejoins_as_its_dead_predecessor(
    kafka_bootstrap: str, unique: str, clickhouse_dsn: str, tmp_path: Path
) -> None:
    """The successor joins the group with the member id the killed worker held (membership.py),
    so its partitions come back without waiting for the dead session to expire. The session
    timeout is long, so the dead member is still in the group when the successor joins: a
    coordinator that refused the id would hand out a new one, which the file would then hold."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique, app_id=unique, topic_partitions=4)
    ensure_topics(settings)
    now_s = utc_now().timestamp()
    events = [event(i, now_s) for i in range(2000)]
    produce(kafka_bootstrap, settings.topic_valid, [(e.province_code, (0, i), e) for i, e in enumerate(events)])
    data = tmp_path / "data"
    env = psmon_env(
        kafka=kafka_bootstrap,
        prefix=unique,
        partitions=4,
        clickhouse=clickhouse_dsn,
        database=unique,
        data_dir=data,
        session_timeout_s=20,
    )
    member_file = data / "members" / f"{unique}-rates.member"
    port = free_port()

    def start(name: str):  # type: ignore[no-untyped-def]
        return psmon_process(["worker", "--metrics-port", str(port)], env=env, log_path=tmp_path / f"{name}.log")

    first = start("first")
    try:
        wait_until(lambda: metric_totals(scrape(port)) == totals(events), timeout_s=120, what="the first totals")
        dead = wait_until(
            lambda: member_file.exists() and member_file.read_text().partition("\n")[0], timeout_s=10, what="member id"
        )
    finally:
        stop_process(first, sig=signal.SIGKILL)

    second = start("second")
    try:
        wait_until(lambda: metric_totals(scrape(port)) == totals(events), timeout_s=120, what="the successor's totals")
    finally:
        stop_process(second)
    assert f"as member {dead} " in (tmp_path / "second.log").read_text()
    # The coordinator took the id: no new member was made.
    assert member_file.read_text().partition("\n")[0] == dead
