"""Measurement 2: the raw baseline, a plain aiokafka consumer that reads and JSON-decodes a topic.

Nothing psmon does is in it: no validation, no output, no state, no metrics. It is the ceiling for
one Python process on this machine and broker, measured in the same run as the stages so that
the ratio (stage ÷ baseline) means something on a noisy machine. It runs in its own process, like
the stages it is compared with.
"""

import asyncio
import sys
import time

import orjson

from testkit import from_beginning

__all__ = ["consume_and_decode"]


async def _run(bootstrap: str, topic: str, partitions: int, count: int) -> dict[str, float]:
    async with from_beginning(bootstrap, topic, partitions, max_poll_records=10_000) as (consumer, _):
        seen = decoded = 0
        t0: float | None = None
        deadline = time.monotonic() + 600 + count / 500
        while seen < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            if t0 is None and batch:
                t0 = time.monotonic()
            for records in batch.values():
                for r in records:
                    seen += 1
                    try:
                        orjson.loads(r.value or b"")
                        decoded += 1
                    except orjson.JSONDecodeError:
                        pass
        elapsed = time.monotonic() - (t0 or time.monotonic())
        return {"events": seen, "decoded": decoded, "seconds": elapsed, "events_per_s": seen / max(elapsed, 1e-3)}


def consume_and_decode(bootstrap: str, topic: str, partitions: int, count: int) -> dict[str, float]:
    """Read `count` records of `topic` from the beginning, decoding each; returns timing."""
    return asyncio.run(_run(bootstrap, topic, partitions, count))


if __name__ == "__main__":  # python -m benchmarks.raw_consume BOOTSTRAP TOPIC PARTITIONS COUNT
    out = consume_and_decode(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
