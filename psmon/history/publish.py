"""Publishing rows to a topic for replay `--publish`, dead-letter re-drives and catalog loads.

Callers are synchronous (a file read row by row, a table of letters), so this is a blocking
facade over an aiokafka producer that runs on its own event loop in a background thread. Why
aiokafka and not kafka-python's synchronous producer: kafka-python builds records and hashes
keys in pure Python, about 290 µs a message here (10.4 of the 16 s `psmon up` spent storing and
publishing the demo's 33,559-row catalog, cProfile); aiokafka does both in C.

Messages are handed to the loop in chunks (`CHUNK` messages, at most `IN_FLIGHT` chunks queued),
so memory stays bounded on a file of any size and the caller's thread overlaps with the sends.
Keys are the province code as sent, as portals do; aiokafka's default partitioner is the same
murmur2 as kafka-python's and Java's, so a key lands on the same partition as before. Delivery
errors are collected from every send and raised by `flush()`, so a replay never reports success
for rows the broker did not take.
"""

import asyncio
import threading
from collections import deque
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, Final, TypeVar

from aiokafka import AIOKafkaProducer

from psmon.errors import BrokerError
from psmon.kafka import PLAINTEXT, KafkaAuth

__all__ = ["KafkaPublisher"]

#: Messages handed to the producer's loop at once.
CHUNK: Final = 5_000
#: Chunks queued before `send` waits for the oldest one (bounds memory).
IN_FLIGHT: Final = 4

T = TypeVar("T")


class KafkaPublisher:
    def __init__(self, bootstrap: str, topic: str, *, auth: KafkaAuth = PLAINTEXT):
        self._topic = topic
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="psmon-publisher", daemon=True)
        self._thread.start()
        try:
            self._producer = self._call(self._start(bootstrap, auth))
        except BaseException:
            self._stop_loop()
            raise
        self._pending: list[tuple[bytes | None, bytes]] = []
        self._inflight: deque[Future[list[BaseException]]] = deque()
        self._errors: list[BaseException] = []
        self.sent = 0

    @staticmethod
    async def _start(bootstrap: str, auth: KafkaAuth) -> AIOKafkaProducer:
        # aiokafka binds a producer to the loop it is created on: created and started there.
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=50,
            max_batch_size=256 * 1024,
            client_id="psmon-replay",
            **auth.aiokafka(),
        )
        await producer.start()
        return producer

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, key: bytes | None, value: bytes) -> None:
        self._pending.append((key, value))
        self.sent += 1
        if len(self._pending) >= CHUNK:
            self._ship()

    def _ship(self) -> None:
        chunk, self._pending = self._pending, []
        self._inflight.append(asyncio.run_coroutine_threadsafe(self._send_all(chunk), self._loop))
        while len(self._inflight) > IN_FLIGHT:
            self._errors += self._inflight.popleft().result()

    async def _send_all(self, chunk: list[tuple[bytes | None, bytes]]) -> list[BaseException]:
        acks = []
        errors: list[BaseException] = []
        for key, value in chunk:
            try:
                acks.append(await self._producer.send(self._topic, key=key, value=value))
            except Exception as exc:  # a message the producer refused outright (too large, closed)
                errors.append(exc)
        results = await asyncio.gather(*acks, return_exceptions=True)
        return errors + [r for r in results if isinstance(r, BaseException)]

    def flush(self) -> None:
        if self._pending:
            self._ship()
        while self._inflight:
            self._errors += self._inflight.popleft().result()
        if self._errors:
            raise BrokerError(f"{len(self._errors)} of {self.sent} messages were not delivered: {self._errors[0]}")

    def close(self) -> None:
        """Send what is queued (like kafka-python's close), then stop; errors are `flush`'s."""
        if self._pending:
            self._ship()
        try:
            self._call(self._producer.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
