"""Non-interactive `psmon up` logs every record in psmon's format, Faust's and mode's included
(its worker used to fall back to Faust's own `[time] [pid] [LEVEL]` lines)."""

import os
import subprocess
import sys
from pathlib import Path

import orjson

from psmon.embedded.broker import free_port


def test_up_without_a_terminal_logs_only_psmon_records(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PSMON_")}
    env |= {
        "PSMON_LOG_FORMAT": "json",  # every line must then parse: nothing else may share stderr
        "PSMON_LOG_LEVEL": "info",
        "PSMON_PROMETHEUS_PORT": "0",
        "PSMON_ALERTMANAGER_PORT": "0",
        "PSMON_ALERTS_PORT": str(free_port()),
        "PSMON_SESSION_TIMEOUT_S": "6",
        "PYTHONWARNINGS": "ignore",
    }
    args = ["up", "--no-view", "--rate", "20", "--duration-s", "15", "--data-dir", str(tmp_path)]
    up = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", *args, "--metrics-port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,  # a guard against a hang, not a speed measure
    )
    assert up.returncode == 0, up.stderr[-3000:]
    records = [orjson.loads(line) for line in up.stderr.splitlines() if line.strip()]
    loggers = {r["logger"].split(".")[0] for r in records}
    assert {"faust", "mode"} & loggers, loggers  # the worker's own records came through psmon's handler
    assert "psmon" in loggers
