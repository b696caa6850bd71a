"""Alerting end to end on real parts: Tansu broker, `psmon worker`, the simulator, Prometheus,
Alertmanager, `psmon alerts listen` and chDB.

The simulator's clock is pinned to a working morning (09:00 UTC+7 on a recent weekday). After a
warm-up with normal traffic, it is restarted with Phú Thọ (25) forced to 0% online submission; the
alert must reach Alertmanager's API for that province only, then the webhook receiver, then
resolve once normal traffic resumes; the ClickHouse `alerts` table must hold both notifications.
The time from the restart with the drop to the alert at Alertmanager is printed (run with -s).
Timings come from `tests/data/thresholds-fast.yaml` (20 s window, `for: 3s`, 1 s scrape/eval).
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from psmon.timeutil import LOCAL_TZ
from psmon.workcalendar import is_holiday
from tests.helpers import psmon_env, psmon_process, stop_process, wait_until
from tests.integration.monitoring import Monitoring

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DROPPED = "25"


def working_morning() -> str:
    """09:00 local on the latest working day before today (so event time is never in the future)."""
    d = datetime.now(LOCAL_TZ).date() - timedelta(days=1)
    while d.weekday() >= 5 or is_holiday(d):
        d -= timedelta(days=1)
    return f"{date.isoformat(d)}T09:00:00+07:00"


def get_json(url: str, *, token_file: Path | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def prom_query(m: Monitoring, expr: str) -> list[dict[str, Any]]:
    body = get_json(f"{m.prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    return body["data"]["result"] if body and body.get("status") == "success" else []


#: every province seen in any alert at Alertmanager during the test
seen_provinces: set[str] = set()


def am_alerts(m: Monitoring) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = get_json(f"{m.alertmanager.url}/api/v2/alerts?active=true") or []
    seen_provinces.update(a["labels"]["province"] for a in alerts if a["labels"].get("province"))
    return alerts


def ratio_alerts(m: Monitoring) -> list[dict[str, Any]]:
    return [a for a in am_alerts(m) if a["labels"]["alertname"] == "PsmonRatioBelowFloor"]


def test_province_below_floor_alerts_reaches_receiver_and_clickhouse_then_resolves(
    monitoring: Monitoring, kafka_bootstrap: str, unique: str, clickhouse_dsn: str, tmp_path: Path
) -> None:
    m = monitoring
    env = psmon_env(
        kafka=kafka_bootstrap,
        prefix=unique,
        partitions=4,
        clickhouse=clickhouse_dsn,
        database=unique,
        data_dir=tmp_path / "data",
        alerts_port=m.receiver_port,
        alerts_token_file=m.alerts_token_file,  # what the generated Alertmanager config sends
        alerts_list_enabled=True,
    )
    start = working_morning()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def simulate(name: str, seed: int, *extra: str) -> None:
        procs[name] = psmon_process(
            ["simulate", "--rate", "300", "--start", start, "--seed", str(seed), "--old-code-fraction", "0", *extra],
            env=env,
            log_path=tmp_path / f"{name}.log",
        )

    try:
        procs["worker"] = psmon_process(
            ["worker", "--metrics-port", str(m.worker_metrics_port)], env=env, log_path=tmp_path / "worker.log"
        )
        procs["receiver"] = psmon_process(["alerts", "listen"], env=env, log_path=tmp_path / "receiver.log")
        receiver = f"http://127.0.0.1:{m.receiver_port}"
        wait_until(
            lambda: get_json(f"{receiver}/alerts", token_file=m.alerts_token_file) == [],
            timeout_s=60,
            what="the webhook receiver",
        )
        assert get_json(f"{receiver}/alerts") is None  # the list needs the token too (401)

        # 1. normal traffic: Prometheus records Phú Thọ's ratio above its floor, with volume
        simulate("sim-normal", 1)
        floor = m.thresholds.floor("online_submission", DROPPED)
        sel = f'province="{DROPPED}",metric="online_submission",window="20s"'
        wait_until(
            lambda: (r := prom_query(m, f"province:psmon_ratio:increase{{{sel}}}")) and float(r[0]["value"][1]) > 0.5,
            timeout_s=120,
            what="Phú Thọ's online ratio recorded by Prometheus",
        )
        assert floor is not None
        assert ratio_alerts(m) == []

        # 2. the drop: Phú Thọ's online filings stop
        stop_process(procs.pop("sim-normal"), sig=signal.SIGKILL)
        dropped_at = time.monotonic()
        simulate("sim-drop", 2, "--drop", f"{DROPPED}:online_submission:0")
        alerts = wait_until(lambda: ratio_alerts(m), timeout_s=90, interval_s=0.2, what="the alert at Alertmanager")
        drop_to_alert_s = time.monotonic() - dropped_at
        print(f"\ndrop -> alert at Alertmanager: {drop_to_alert_s:.1f} s", file=sys.stderr)
        # only the dropped province alerts (every province-labelled alert, any metric)
        assert {a["labels"]["province"] for a in alerts} == {DROPPED}
        assert {a["labels"].get("province") for a in am_alerts(m) if a["labels"].get("province")} == {DROPPED}
        alert = next(a for a in alerts if a["labels"]["metric"] == "online_submission")
        assert alert["labels"]["province_name"] == "Phú Thọ"
        ann = alert["annotations"]
        assert float(ann["value"]) < floor and float(ann["threshold"]) == floor
        assert float(ann["volume"]) >= m.thresholds.min_volume("online_submission", DROPPED)  # type: ignore[operator]
        assert "Phú Thọ (25): tỷ lệ hồ sơ nộp trực tuyến" in ann["summary_vi"]
        assert "online submission ratio" in ann["summary_en"] and "below the alert floor 15%" in ann["summary_en"]

        # 3. the webhook receiver got the notification
        def received(status: str) -> list[dict[str, Any]]:
            return [
                a
                for a in get_json(f"{receiver}/alerts", token_file=m.alerts_token_file) or []
                if a["status"] == status
                and a["labels"].get("province") == DROPPED
                and a["labels"]["alertname"] == "PsmonRatioBelowFloor"
            ]

        wait_until(lambda: received("firing"), timeout_s=30, what="the firing notification at the receiver")

        # 4. recovery: normal traffic again; the alert resolves at Alertmanager and the receiver
        stop_process(procs.pop("sim-drop"), sig=signal.SIGKILL)
        simulate("sim-recovered", 3)
        wait_until(lambda: not ratio_alerts(m), timeout_s=90, what="the alert to resolve at Alertmanager")
        wait_until(lambda: received("resolved"), timeout_s=30, what="the resolved notification at the receiver")
        assert seen_provinces == {DROPPED}  # no other province alerted at any point
    finally:
        for name in list(procs):
            stop_process(procs.pop(name), sig=signal.SIGTERM if name == "receiver" else signal.SIGKILL)

    # 5. ClickHouse history (the receiver is stopped: it held the embedded ClickHouse)
    out = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", "alerts", "history", "--json", "--province", DROPPED],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    ours = [r for r in rows if r["alertname"] == "PsmonRatioBelowFloor" and r["metric"] == "online_submission"]
    assert {r["status"] for r in ours} == {"firing", "resolved"}, rows
    for r in ours:
        assert r["province_name"] == "Phú Thọ"
        assert r["value"] < floor and r["threshold"] == floor and r["volume"] >= 40
    resolved = next(r for r in ours if r["status"] == "resolved")
    assert resolved["ends_at"] is not None and resolved["ends_at"] > resolved["starts_at"]
    everything = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", "alerts", "history", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    provinces = {json.loads(line)["province_code"] for line in everything.stdout.splitlines()}
    assert provinces - {""} == {DROPPED}


def test_up_runs_prometheus_alertmanager_and_marks_the_alerting_province(tmp_path: Path) -> None:
    from psmon.alerting.servers import ALERTMANAGER_BINARIES, PROMETHEUS_BINARIES, find_binary
    from psmon.embedded.broker import free_port

    if not find_binary(PROMETHEUS_BINARIES) or not find_binary(ALERTMANAGER_BINARIES):
        pytest.fail("Prometheus/Alertmanager are not installed: run `make sysdeps`")
    metrics, prom, am, receiver = free_port(), free_port(), free_port(), free_port()
    env = psmon_env(
        thresholds_file=Path(__file__).parents[1] / "data" / "thresholds-fast.yaml",
        prometheus_port=prom,
        alertmanager_port=am,
        alerts_port=receiver,
    )
    env_without_kafka = {k: v for k, v in os.environ.items() if k != "PSMON_KAFKA_BOOTSTRAP"}
    log = tmp_path / "up.log"
    fh = log.open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "psmon.cli.main",
            "up",
            "--duration-s",
            "75",
            "--rate",
            "300",
            "--start",
            working_morning(),
            "--drop",
            f"{DROPPED}:online_submission:0",
            "--metrics-port",
            str(metrics),
            "--data-dir",
            str(tmp_path / "data"),
            "--no-view",
        ],
        env={**env_without_kafka, **env},
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{am}/api/v2/alerts?active=true"
        alerts = wait_until(
            lambda: [a for a in get_json(url) or [] if a["labels"]["alertname"] == "PsmonRatioBelowFloor"],
            timeout_s=70,
            what="psmon up's Alertmanager to hold the alert",
        )
        assert {a["labels"]["province"] for a in alerts} == {DROPPED}
        # the live view (logging without a terminal) names the alerting province
        wait_until(lambda: f"alerting: {DROPPED}" in log.read_text(), timeout_s=20, what="the live view's alert mark")
        assert proc.wait(timeout=90) == 0
    finally:
        stop_process(proc)
        fh.close()
    text = log.read_text()
    assert f"Prometheus on http://127.0.0.1:{prom}" in text and f"Alertmanager on http://127.0.0.1:{am}" in text
    for port in (prom, am):  # stopped with psmon up
        assert get_json(f"http://127.0.0.1:{port}/-/ready") is None
    out = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", "alerts", "history", "--json", "--data-dir", str(tmp_path / "data")],
        env=env_without_kafka,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert any(r["province_code"] == DROPPED and r["status"] == "firing" for r in rows), rows
    # out of the box: psmon up made the receiver's token, private, and Alertmanager sent it
    token_file = tmp_path / "data" / "alerts-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    am_config = yaml.safe_load((tmp_path / "data" / "alertmanager" / "alertmanager.yml").read_text())
    auth = am_config["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]
    assert auth == {"type": "Bearer", "credentials_file": str(token_file.resolve())}
