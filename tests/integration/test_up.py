"""`psmon up` as a user runs it: everything in one process, stops cleanly, leaves nothing behind."""

import re
from pathlib import Path

import pytest

from psmon.embedded.broker import free_port
from psmon.sinks.clickhouse.client import connect
from tests.helpers import pids_alive, psmon_env, psmon_process, sample, scrape, stop_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_produces_metrics_and_rows_then_stops_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PSMON_KAFKA_BOOTSTRAP", raising=False)
    port = free_port()
    log = tmp_path / "up.log"
    proc = psmon_process(
        [
            "up",
            "--duration-s",
            "20",
            "--rate",
            "300",
            "--start",
            "2026-11-24T09:00:00+07:00",
            "--metrics-port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--no-view",
        ],
        env=psmon_env(rates_snapshot_interval_s=2),
        log_path=log,
    )
    try:
        wait_until(
            lambda: sample(scrape(port), "psmon_sink_rows_total", table="events") > 100,
            timeout_s=60,
            what="events written by the sink inside psmon up",
        )

        def provinces() -> set[str | None]:
            return {dict(k[1]).get("province") for k in scrape(port) if k[0] == "psmon_dossiers_submitted_total"}

        wait_until(lambda: len(provinces()) >= 20, timeout_s=30, what="live counters for most provinces")
        samples = scrape(port)
        assert sample(samples, "psmon_events_processed_total", stage="validate") > 100
        assert proc.wait(timeout=60) == 0
    finally:
        stop_process(proc)
    text = log.read_text()
    broker_pid = int(re.search(r"pid (\d+)", text).group(1))  # type: ignore[union-attr]
    assert pids_alive([broker_pid]) == [], "the local broker outlived psmon up"
    leftovers = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(tmp_path).encode() in _cmdline(p) and pids_alive([int(p.name)])
    ]
    assert leftovers == [], "processes of psmon up are still running"
    ch = connect(f"chdb://{tmp_path / 'data' / 'clickhouse'}")
    n, provs = ch.query("SELECT count(), uniqExact(province_code) FROM psmon.events FINAL").result_rows[0]
    assert n > 100 and provs >= 20
    assert ch.query("SELECT count() FROM psmon.rate_snapshots").result_rows[0][0] > 0
    ch.close()


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
