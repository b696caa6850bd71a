"""`psmon up` never prints the password of its ClickHouse DSN: not in its banner, not in the
error when that ClickHouse cannot be reached, not in its logs.

`psmon up` runs as a user runs it (`python -m psmon.cli.main up`, its own local broker, no
simulator) against a ClickHouse URL with credentials on a loopback port nothing listens on, and
stops after a few seconds; its stdout, stderr and data directory are searched for the password.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from psmon.embedded.broker import free_port

PASSWORD = "hunter2-secret"


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_up_never_prints_the_clickhouse_password(tmp_path: Path, where: str) -> None:
    port = free_port()
    dsn = (
        f"http://psmon:{PASSWORD}@127.0.0.1:{port}/"
        if where == "userinfo"
        else f"http://127.0.0.1:{port}/?user=psmon&password={PASSWORD}"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PSMON_")}
    data = tmp_path / "data"
    args = ["up", "--clickhouse", dsn, "--rate", "0", "--duration-s", "5", "--metrics-port", "0", "--no-view"]
    proc = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang, not a speed measure
        env=env,
    )
    # the banner names the ClickHouse it uses, without the password
    banner = next(line for line in proc.stdout.splitlines() if line.startswith("ClickHouse at "))
    assert f"127.0.0.1:{port}" in banner and "***" in banner
    files = "".join(p.read_text(errors="replace") for p in data.rglob("*") if p.is_file())
    assert PASSWORD not in proc.stdout + proc.stderr + files
