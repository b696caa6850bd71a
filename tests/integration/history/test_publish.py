"""The publisher behind replay --publish, re-drives and catalog loads, on the real broker.

It hands messages to a producer on its own loop in chunks: every message of a run longer than
several chunks must arrive once, in order per key, and a message the broker cannot take must make
`flush` fail with the count, never a silent success.
"""

import asyncio
from collections import defaultdict

import pytest
from kafka.partitioner.default import murmur2

from psmon.errors import BrokerError
from psmon.history.publish import CHUNK, KafkaPublisher
from psmon.settings import Settings
from psmon.streams.topics import ensure_topics
from testkit import from_beginning

pytestmark = pytest.mark.integration

PARTITIONS = 4


def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    async def read() -> list[tuple[bytes, bytes]]:
        got: list[tuple[bytes, bytes]] = []
        async with from_beginning(bootstrap, topic, PARTITIONS) as (consumer, _):
            for _ in range(200):
                batch = await consumer.getmany(timeout_ms=200)
                got += [(r.key or b"", r.value or b"") for rs in batch.values() for r in rs]
                if len(got) >= count:
                    # One more poll: anything beyond `count` would be a duplicate.
                    extra = await consumer.getmany(timeout_ms=500)
                    got += [(r.key or b"", r.value or b"") for rs in extra.values() for r in rs]
                    break
        return got

    return asyncio.run(read())


def topic_of(bootstrap: str, unique: str) -> str:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=unique, topic_partitions=PARTITIONS)
    ensure_topics(settings)
    return settings.topic_events


def test_every_message_of_many_chunks_arrives_once_in_order_per_key(kafka_bootstrap: str, unique: str) -> None:
    topic = topic_of(kafka_bootstrap, unique)
    n = 2 * CHUNK + 7  # two full chunks and a partial one left for flush
    publisher = KafkaPublisher(kafka_bootstrap, topic)
    try:
        for i in range(n):
            publisher.send(f"{i % 34:02d}".encode(), str(i).encode())
        publisher.flush()
    finally:
        publisher.close()
    assert publisher.sent == n
    got = read_all(kafka_bootstrap, topic, n)
    assert sorted(int(v) for _, v in got) == list(range(n))
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for key, value in got:
        per_key[key].append(int(value))
    assert all(values == sorted(values) for values in per_key.values())


def test_a_message_the_broker_cannot_take_fails_flush_with_the_count(kafka_bootstrap: str, unique: str) -> None:
    topic = topic_of(kafka_bootstrap, unique)
    publisher = KafkaPublisher(kafka_bootstrap, topic)
    try:
        publisher.send(b"01", b"a")
        publisher.send(b"01", b"x" * (2 * 1024 * 1024))  # over the producer's 1 MiB request limit
        publisher.send(b"01", b"b")
        with pytest.raises(BrokerError, match=r"^1 of 3 messages were not delivered"):
            publisher.flush()
    finally:
        publisher.close()
    assert sorted(v for _, v in read_all(kafka_bootstrap, topic, 2)) == [b"a", b"b"]


def test_close_sends_what_was_queued(kafka_bootstrap: str, unique: str) -> None:
    topic = topic_of(kafka_bootstrap, unique)
    publisher = KafkaPublisher(kafka_bootstrap, topic)
    publisher.send(b"02", b"queued")
    publisher.close()
    assert read_all(kafka_bootstrap, topic, 1) == [(b"02", b"queued")]


def test_partitions_follow_the_key_like_every_kafka_client(kafka_bootstrap: str, unique: str) -> None:
    """murmur2 of the key, as kafka-python and Java clients do: a province stays on its partition."""
    topic = topic_of(kafka_bootstrap, unique)
    publisher = KafkaPublisher(kafka_bootstrap, topic)
    try:
        for code in (b"01", b"79", b"48"):
            publisher.send(code, code)
        publisher.flush()
    finally:
        publisher.close()

    async def partitions() -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        async with from_beginning(kafka_bootstrap, topic, PARTITIONS) as (consumer, _):
            for _ in range(20):
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    out.update({r.key or b"": tp.partition for r in records})
                if len(out) == 3:
                    break
        return out

    # kafka-python's (the previous publisher's) partitioner, the Java client's formula.
    expected = {code: (murmur2(code) & 0x7FFFFFFF) % PARTITIONS for code in (b"01", b"79", b"48")}
    assert asyncio.run(partitions()) == expected
