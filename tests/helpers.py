"""Test helpers: bounded polling, metric scraping, process control."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from psmon.embedded.process import die_with_parent

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """All samples of a /metrics endpoint: (name, sorted labels) -> value. Empty if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def psmon_process(args: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `psmon ARGS` as a real process in its own process group."""
    fh = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "psmon.cli.main", *args],
        env={**os.environ, **env},
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,  # a killed test run leaves no psmon process behind
    )


def stop_process(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
    """Signal a process group and wait; SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie is dead for our purposes.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TOTAL_KEYS = (
    "submitted", "online", "full_online", "fee_bearing", "payments", "paid_online",
    "resolved", "on_time", "dig_dossier", "dig_result",
)  # fmt: skip


def metric_totals(*scrapes: Samples) -> dict[str, dict[str, int]]:
    """Per-province contract counters summed over several workers' /metrics, in TOTAL_KEYS terms."""
    out: dict[str, dict[str, int]] = {}
    for samples in scrapes:
        for (name, labels), value in samples.items():
            lab = dict(labels)
            if "province" not in lab:
                continue
            t = out.setdefault(lab["province"], dict.fromkeys(TOTAL_KEYS, 0))
            v = int(value)
            if name == "psmon_dossiers_submitted_total":
                t["submitted"] += v
                t["online"] += v if lab["channel"] == "online" else 0
                t["full_online"] += v if lab["channel"] == "online" and lab["service_mode"] == "full_online" else 0
            elif name == "psmon_dossiers_fee_bearing_total":
                t["fee_bearing"] += v
            elif name == "psmon_payments_total":
                t["payments"] += v
                t["paid_online"] += v if lab["method"] == "online" else 0
            elif name == "psmon_dossiers_resolved_total":
                t["resolved"] += v
                t["on_time"] += v if lab["on_time"] == "true" else 0
            elif name == "psmon_records_digitized_total":
                t["dig_dossier" if lab["kind"] == "dossier" else "dig_result"] += v
    return {p: t for p, t in out.items() if any(t.values())}


CLICKHOUSE_TOTALS_SQL = """
SELECT province_code,
       countIf(event_type = 'application.submitted'),
       countIf(channel = 'online'),
       countIf(service_mode = 'full_online' AND channel = 'online'),
       countIf(fee_bearing),
       countIf(event_type = 'payment.completed'),
       countIf(method = 'online'),
       countIf(event_type = 'application.resolved'),
       countIf(on_time),
       countIf(kind = 'dossier'),
       countIf(kind = 'result')
FROM {db}.events GROUP BY province_code ORDER BY province_code
"""


def clickhouse_totals(client: Any, db: str) -> dict[str, dict[str, int]]:
    """Per-province totals of the raw events table, read without FINAL (no repeat may be stored)."""
    rows = client.query(CLICKHOUSE_TOTALS_SQL.format(db=db)).result_rows
    return {r[0]: dict(zip(TOTAL_KEYS, (int(x) for x in r[1:]), strict=True)) for r in rows}


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Next offset per partition: the fetch responses' high watermark, once every partition has
    been read up to it (the local broker's ListOffsets answers are wrong, fetches are right)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                await consumer.getmany(*tps, timeout_ms=500, max_records=100_000)
                ends = {tp.partition: consumer.highwater(tp) for tp in tps}
                positions = {tp.partition: await consumer.position(tp) for tp in tps}
                if all(e is not None and positions[p] >= e for p, e in ends.items()):
                    return {p: int(e or 0) for p, e in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def sink_caught_up(samples: Samples, topic: str, ends: dict[int, int]) -> bool:
    """True when the sink committed every partition of `topic` up to `ends`."""
    return all(
        sample(samples, "psmon_sink_committed_offset", topic=topic, partition=str(p)) == end
        for p, end in ends.items()
        if end
    )


#: windows.COUNTERS (rollup columns) -> TOTAL_KEYS
_ROLLUP_KEYS = {
    "submitted": "submitted", "submitted_online": "online", "submitted_full_online": "full_online",
    "submitted_fee_bearing": "fee_bearing", "payments": "payments", "payments_online": "paid_online",
    "resolved": "resolved", "resolved_on_time": "on_time", "digitized_dossier": "dig_dossier",
    "digitized_result": "dig_result",
}  # fmt: skip


def rollup_totals(client: Any, db: str, source: str) -> dict[str, dict[str, int]]:
    """Per-province totals summed over a rollup table or counters view (`rollup_hour`,
    `counters_year`, ...), in TOTAL_KEYS terms."""
    cols = ", ".join(f"sum({c})" for c in _ROLLUP_KEYS)
    rows = client.query(f"SELECT province_code, {cols} FROM {db}.{source} GROUP BY province_code").result_rows
    out = {r[0]: dict(zip(_ROLLUP_KEYS.values(), (int(x) for x in r[1:]), strict=True)) for r in rows}
    return {p: t for p, t in out.items() if any(t.values())}
