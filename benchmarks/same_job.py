"""Measurement 3b: the same-job baseline, plain aiokafka doing exactly what `psmon worker` does.

The raw baseline (`raw_consume.py`) only reads and decodes; the worker also validates, produces,
waits for acknowledgements, commits and counts. To say how much of the worker's time is psmon's
runtime rather than the job itself, this program does the job with psmon's own code and nothing
else, in one process and one event loop like the worker:

- stage 1: a consumer in a group of its own reads `<prefix>.events` (`getmany`), each record is
  validated by `psmon.schemas.validation.validate_stream` (as stage 1 does) and encoded (`encode_valid` /
  `encode_dead_letter`, with its source coordinates), sent to the valid topic keyed by province
  or the dead-letter topic keyed by reason; the batch's acknowledgements are awaited, then the
  batch's next offsets committed;
- stage 2: a consumer assigned every partition of the valid and dead-letter topics decodes each
  record and feeds it to `LiveRates.observe` / `observe_letter` (de-duplication and counting).

It reads the corpus the worker measurement read, and writes to topics of its own. It is timed
like the worker: from stage 1's first batch until every event is validated and every output
counted by stage 2. It runs in its own process (`python -m benchmarks.same_job`), like the worker
it is compared with.
"""

import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import decode_dead_letter, encode_dead_letter
from psmon.schemas.normalized import decode_valid, encode_valid
from psmon.schemas.validation import ValidEvent, validate_stream
from psmon.settings import Settings
from psmon.streams.live import LiveRates
from psmon.streams.topics import ensure_topics

__all__ = ["same_job"]

#: the worker's stage-1 batch (PSMON_VALIDATE_BATCH_MAX_EVENTS default), so both take the same bites
BATCH = Settings().validate_batch_max_events


async def _stage1(
    bootstrap: str, events: str, out: Settings, group: str, count: int, started: asyncio.Future[float]
) -> int:
    consumer = AIOKafkaConsumer(
        events,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=BATCH,
        fetch_max_wait_ms=100,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    valid_topic, dead_topic = out.topic_valid, out.topic_dead_letter
    done = invalid = 0
    try:
        while done < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            if not batch:
                continue
            if not started.done():
                started.set_result(time.monotonic())
            sent = []
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                verdicts = validate_stream([r.value or b"" for r in records], [r.timestamp / 1000 for r in records])
                for r, verdict in zip(records, verdicts, strict=True):
                    if isinstance(verdict, ValidEvent):
                        value = encode_valid(
                            verdict, src_partition=tp.partition, src_offset=r.offset, src_ts_ms=r.timestamp
                        )
                        sent.append(await producer.send(valid_topic, value, key=verdict.province_code.encode()))
                    else:
                        invalid += 1
                        value = encode_dead_letter(
                            verdict, src_partition=tp.partition, src_offset=r.offset, src_ts_ms=r.timestamp
                        )
                        sent.append(await producer.send(dead_topic, value, key=verdict.reason.encode()))
                offsets[tp] = records[-1].offset + 1
                done += len(records)
            await asyncio.gather(*sent)
            await consumer.commit(offsets)
        return invalid
    finally:
        await consumer.stop()
        await producer.stop()


async def _stage2(bootstrap: str, out: Settings, partitions: int, count: int) -> None:
    live = LiveRates(metrics=PipelineMetrics(), dedup_max_ids=out.dedup_max_ids, worker="same-job")
    for p in range(partitions):  # empty topics: every partition is live from the start
        live.caught_up(p)
        live.letters_caught_up(p)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=5000,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in (out.topic_valid, out.topic_dead_letter) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                if tp.topic == out.topic_valid:
                    for r in records:
                        live.observe(decode_valid(r.value or b""), partition=tp.partition)
                else:
                    for r in records:
                        live.observe_letter(decode_dead_letter(r.value or b""), partition=tp.partition)
                seen += len(records)
    finally:
        await consumer.stop()


async def _run(bootstrap: str, events: str, out_prefix: str, partitions: int, count: int) -> dict[str, Any]:
    out = Settings(kafka_bootstrap=bootstrap, topic_prefix=out_prefix, topic_partitions=partitions)
    await asyncio.to_thread(ensure_topics, out)
    started: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    counting = asyncio.create_task(_stage2(bootstrap, out, partitions, count))
    invalid = await asyncio.wait_for(
        _stage1(bootstrap, events, out, f"{out_prefix}-validate", count, started), 600 + count / 200
    )
    validated_at = time.monotonic()
    await asyncio.wait_for(counting, 600)
    t0 = started.result()
    elapsed = max(time.monotonic() - t0, 1e-3)
    return {
        "events": count,
        "invalid": invalid,
        "seconds": round(elapsed, 2),
        "events_per_s": count / elapsed,
        "stage1_seconds": round(validated_at - t0, 2),
    }


def same_job(bootstrap: str, events: str, out_prefix: str, partitions: int, count: int) -> dict[str, Any]:
    """Validate the `count` events of `events` into `<out_prefix>.*` topics and count them; timing."""
    return asyncio.run(_run(bootstrap, events, out_prefix, partitions, count))


if __name__ == "__main__":  # python -m benchmarks.same_job BOOTSTRAP EVENTS_TOPIC OUT_PREFIX PARTITIONS COUNT
    result = same_job(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
