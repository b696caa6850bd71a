"""Measurement 4: latency from produce to the rate visible on /metrics, under a steady load.

A `psmon worker` runs on a fresh prefix. The harness produces a steady background load
(`--latency-rate`, default 2,000 events/s, in 10 ms ticks) taken from the corpus with event
times re-stamped to now, leaving out one *marker province*. Every ~0.5 s it produces one marker
event (an online, full-online submission of the marker province, event time now), notes the
time just before the send, and polls the worker's /metrics every `POLL_S` until the marker
province's `psmon_dossiers_submitted_total` counter shows it. The difference is the latency of
that marker: stage 1 (take, validate, produce, ack), stage 2 (fetch, count) and the exporter.
p50/p99 are over all markers; the polling interval bounds the resolution.
"""

import asyncio
import random
import re
import statistics
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from benchmarks.common import Bench, read_lines
from psmon.schemas.provinces import registry
from testkit import sample, scrape, wait_until

__all__ = ["run_latency"]

POLL_S = 0.1
GIVE_UP_S = 30.0


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _background(bench: Bench, marker: str, limit: int) -> list[tuple[bytes, dict[str, Any] | bytes]]:
    """Corpus events not of the marker province: parsed objects (re-stamped at send) or raw bytes."""
    reg = registry()
    out: list[tuple[bytes, dict[str, Any] | bytes]] = []
    for line in read_lines(bench.corpus, limit):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append((b"?", line))
            continue
        code = obj.get("province_code") if isinstance(obj, dict) else None
        if isinstance(code, str) and reg.to_current(code) == marker:
            continue
        if isinstance(obj, dict) and isinstance(code, str) and "occurred_at" in obj:
            out.append((code.encode(), obj))
        else:
            out.append((b"?", line))
    return out


def _counter(port: int, pattern: re.Pattern[bytes]) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            m = pattern.search(resp.read())
    except OSError:
        return -1.0
    return float(m.group(1)) if m else 0.0


async def _measure(
    bench: Bench, topic: str, port: int, marker: str, rate_eps: float, duration_s: float
) -> dict[str, Any]:
    background = _background(bench, marker, min(bench.count, int(rate_eps * duration_s) + 10_000))
    # Labels in any order: the exposition format does not fix it.
    labels = (f'province="{marker}"', 'channel="online"', 'service_mode="full_online"')
    ahead = "".join(f"(?=[^}}]*{re.escape(label)})" for label in labels)
    pattern = re.compile(rf"^psmon_dossiers_submitted_total\{{{ahead}[^}}]*\}} (\S+)$".encode(), re.M)
    bg = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all", linger_ms=5)
    mk = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all", linger_ms=0)
    await bg.start()
    await mk.start()
    stop = asyncio.Event()
    sent_bg = 0
    saturated: list[int] = []

    async def load() -> None:
        nonlocal sent_bg
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            due = int((time.monotonic() - t0) * rate_eps) + 1
            while sent_bg < due:
                key, ev = background[i % len(background)]
                i += 1
                if isinstance(ev, dict):
                    ev = orjson.dumps({**ev, "occurred_at": _now_rfc3339(), "event_id": f"{ev['event_id']}-{i}"})
                await bg.send(topic, key=key, value=ev)
                sent_bg += 1
            await asyncio.sleep(0.01)

    async def markers() -> list[float]:
        seen = await asyncio.to_thread(_counter, port, pattern)
        latencies: list[float] = []
        n = 0
        end = time.monotonic() + duration_s
        rng = random.Random(7)
        while time.monotonic() < end:
            n += 1
            event = {
                "event_id": f"latency-marker-{n}",
                "event_type": "application.submitted",
                "schema_version": 1,
                "occurred_at": _now_rfc3339(),
                "province_code": marker,
                "level": "province",
                "procedure_code": "1.000001",
                "dossier_id": f"LAT-{n}",
                "channel": "online",
                "service_mode": "full_online",
                "fee_bearing": False,
            }
            t0 = time.monotonic()
            await mk.send(topic, key=marker.encode(), value=orjson.dumps(event))
            while True:
                value = await asyncio.to_thread(_counter, port, pattern)
                if value >= seen + 1:
                    latencies.append(time.monotonic() - t0)
                    seen = value
                    break
                if time.monotonic() - t0 > GIVE_UP_S:
                    # The worker is behind the load (a backlog): record the bound and stop.
                    latencies.append(time.monotonic() - t0)
                    saturated.append(n)
                    return latencies
                await asyncio.sleep(POLL_S)
            await asyncio.sleep(rng.uniform(0.3, 0.7))
        return latencies

    task = asyncio.create_task(load())
    t_start = time.monotonic()
    try:
        await asyncio.sleep(2.0)  # the load runs steady before the first marker
        latencies = await markers()
    finally:
        stop.set()
        await task
        elapsed = time.monotonic() - t_start
        await bg.stop()
        await mk.stop()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "rate_eps_target": rate_eps,
        "rate_eps_sent": round(sent_bg / elapsed, 1),
        "markers": len(latencies),
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "poll_ms": POLL_S * 1000,
        # A marker not visible after GIVE_UP_S: the worker could not keep up with this load.
        "saturated": bool(saturated),
    }


def run_latency(bench: Bench, prefix: str, *, rate_eps: float, duration_s: float) -> dict[str, Any]:
    marker = sorted(registry().codes)[0]
    proc, port = bench.start("worker", prefix, "worker")
    try:
        # Ready when stage 2 owns every partition live (first marker-free scrape with the gauge at 0).
        wait_until(
            lambda: (s := scrape(port)) and ("psmon_partitions_catching_up", ()) in s,
            timeout_s=120,
            what="worker metrics",
        )
        time.sleep(8)  # the consumer groups of both stages join (about half a session timeout each)
        result = asyncio.run(_measure(bench, f"{prefix}.events", port, marker, rate_eps, duration_s))
        result["worker_catching_up"] = sample(scrape(port), "psmon_partitions_catching_up")
        return result
    finally:
        bench.stop(proc)
