"""`psmon up` as a user runs it: everything in one process, stops cleanly, leaves nothing behind,
and the history can be asked from another shell while it runs (its read-only query endpoint)."""

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from psmon.embedded.broker import free_port
from psmon.simulator.catalog import simulated_catalog
from psmon.sinks.clickhouse.client import ENDPOINT_FILE, connect, is_served
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
            "40",  # the catalog shares need the demo catalog read by the worker (seconds)
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
            timeout_s=120,  # after the demo catalog is stored and published (seconds; more on a loaded machine)
            what="events written by the sink inside psmon up",
        )

        def provinces() -> set[str | None]:
            return {dict(k[1]).get("province") for k in scrape(port) if k[0] == "psmon_dossiers_submitted_total"}

        wait_until(lambda: len(provinces()) >= 20, timeout_s=30, what="live counters for most provinces")

        def catalog_provinces() -> set[str | None]:
            return {
                dict(k[1]).get("province")
                for k in scrape(port)
                if k[0] == "psmon_ratio" and dict(k[1]).get("metric") == "procedures_online"
            }

        # the simulator's catalog, loaded by psmon up, gives the catalog shares from the start
        wait_until(lambda: len(catalog_provinces()) >= 20, timeout_s=35, what="catalog shares for most provinces")
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
    stored = ch.query("SELECT count() FROM psmon.procedure_catalog FINAL").result_rows[0][0]
    assert stored == sum(len(c) for c in simulated_catalog().values())
    ch.close()


COUNT_EVENTS = "SELECT count() AS n FROM psmon.events FINAL"


@pytest.mark.timeout(900)  # seven CLI processes; on 2 shared cores each takes tens of seconds
def test_history_answers_while_up_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`psmon query`, `report`, `dead-letters list` and `alerts history` answer from another
    process while `psmon up` holds the embedded directory, read-only, consistent with the data.

    The simulator keeps writing, so counts taken at different moments can only grow: each answer
    of the CLI is checked between a count through the endpoint just before and one just after,
    and the count on the directory after `up` stops is at least the last one."""
    monkeypatch.delenv("PSMON_KAFKA_BOOTSTRAP", raising=False)
    port = free_port()
    data = tmp_path / "data"
    chdb_dir = data / "clickhouse"
    proc = psmon_process(
        [
            "up",
            "--duration-s",
            "800",
            "--rate",
            "300",
            "--bad-fraction",
            "0.05",
            "--start",
            "2026-11-24T09:00:00+07:00",
            "--metrics-port",
            str(port),
            "--data-dir",
            str(data),
            "--no-view",
        ],
        env=psmon_env(rates_snapshot_interval_s=2),
        log_path=tmp_path / "up.log",
    )
    try:
        wait_until(
            lambda: (
                sample(scrape(port), "psmon_sink_rows_total", table="events") > 100
                and sample(scrape(port), "psmon_sink_rows_total", table="dead_letters") > 0
            ),
            timeout_s=150,  # after the demo catalog is stored and published (25-30 s on a loaded machine)
            what="events and dead letters written by the sink inside psmon up",
        )
        endpoint = json.loads((chdb_dir / ENDPOINT_FILE).read_text())
        assert endpoint["pid"] == proc.pid and endpoint["host"] == "127.0.0.1"
        assert (chdb_dir / ENDPOINT_FILE).stat().st_mode & 0o777 == 0o600

        served = connect(f"chdb://{chdb_dir}", read_only=True)
        assert is_served(served)

        def count() -> int:
            return int(served.query(COUNT_EVENTS).result_rows[0][0])

        before = count()
        by_cli = int(_rows(_cli(data, "query", "--sql", COUNT_EVENTS, "-f", "csv"))[0]["n"])
        after = count()
        assert 0 < before <= by_cli <= after

        before = count()
        rank = _rows(
            _cli(data, "query", "rank", "--metric", "online_submission", "--period", "2026-11-24", "-f", "csv")
        )
        after = count()
        submitted = sum(int(r["denominator"]) for r in rank)
        assert len(rank) >= 20 and 0 < submitted <= after
        assert {int(r["rank"]) for r in rank} == set(range(1, len(rank) + 1))

        letters = _rows(_cli(data, "dead-letters", "list", "--limit", "5", "-f", "csv"))
        assert 0 < len(letters) <= 5 and all(r["reason"] for r in letters)
        _cli(data, "alerts", "history")  # exit 0: the alerts table is read, not migrated, through up
        # One metric: each one is three charts, and the charts, not the queries, take the time.
        report = _cli(data, "report", "--period", "2026-11-24", "-m", "online_submission", "--out", str(tmp_path / "r"))
        html = Path(report.split()[0])
        assert "rank" in html.read_text().lower()

        # Writes never reach the directory through the endpoint, whatever the client sends.
        for statement in (
            "INSERT INTO psmon.events (event_id) VALUES ('written-through-the-endpoint')",
            "DROP TABLE psmon.events",
            "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        ):
            with pytest.raises(DatabaseError, match="read-only"):
                served.command(statement)
        last = count()
        served.close()
        proc.send_signal(signal.SIGTERM)  # what Ctrl-C and --duration-s do: the graceful stop
        assert proc.wait(timeout=120) == 0
    finally:
        stop_process(proc)
    assert not (chdb_dir / ENDPOINT_FILE).exists(), "psmon up left its endpoint file behind"
    ch = connect(f"chdb://{chdb_dir}")  # the directory itself, free again
    assert ch.query(COUNT_EVENTS).result_rows[0][0] >= last
    stray = "SELECT count() FROM psmon.events WHERE event_id = 'written-through-the-endpoint'"
    assert ch.query(stray).result_rows[0][0] == 0
    ch.close()


def _cli(data_dir: Path, *args: str) -> str:
    """`psmon ARGS` as another shell runs it; its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", *args],
        env={**os.environ, "PSMON_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"psmon {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
