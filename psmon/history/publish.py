"""Publishing rows to `psmon.events` for replay `--publish` and dead-letter re-drives.

A thin kafka-python producer tuned for bulk (large batches, some linger, lz4-free defaults so
no extra codec is needed), keyed by the province code as sent, as portals do. Delivery errors
are collected from the futures and raised by `flush()`, so a replay never reports success for
rows the broker did not take.
"""

from kafka import KafkaProducer

from psmon.errors import BrokerError
from psmon.kafka import PLAINTEXT, KafkaAuth

__all__ = ["KafkaPublisher"]


class KafkaPublisher:
    def __init__(self, bootstrap: str, topic: str, *, auth: KafkaAuth = PLAINTEXT):
        self._topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=50,
            batch_size=256 * 1024,
            client_id="psmon-replay",
            **auth.kafka_python(),
        )
        self._errors: list[Exception] = []
        self.sent = 0

    def send(self, key: bytes | None, value: bytes) -> None:
        self._producer.send(self._topic, key=key, value=value).add_errback(self._errors.append)
        self.sent += 1

    def flush(self) -> None:
        self._producer.flush()
        if self._errors:
            raise BrokerError(f"{len(self._errors)} of {self.sent} messages were not delivered: {self._errors[0]}")

    def close(self) -> None:
        self._producer.close()
