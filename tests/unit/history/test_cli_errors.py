"""Mistakes in `psmon query` options become one readable line and exit code 1 (no traceback)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "rates", "--metric", "online_sub", "--year", "2025"], "unknown metric 'online_sub'"),
        (["query", "rank", "--metric", "on_time", "--period", "2026-Q5"], "period must be YYYY, YYYY-Qn"),
        (["query", "below", "--threshold", "150%", "--year", "2025"], "--threshold must be within 0..1"),
        (["query", "rates", "--metric", "on_time", "--by", "week", "--year", "2025"], "--by must be one of"),
        (["query", "index", "--month", "2026-08", "--rule", "4.2=half"], "rule must be linear or full:X"),
    ],
)
def test_bad_options_give_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", *args, "--clickhouse", "chdb:///nonexistent-never-opened"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
