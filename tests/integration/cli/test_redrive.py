"""`psmon dead-letters redrive` that selects nothing answers with its "0 of 0" line, naming the
filters, instead of the bare "no rows" of an empty table."""

import os
import subprocess
import sys
from pathlib import Path

PSMON = [sys.executable, "-m", "psmon.cli.main"]


def _psmon(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PSMON_")}
    return subprocess.run([*PSMON, *args], capture_output=True, text=True, timeout=120, env=env)


def test_a_redrive_that_selects_nothing_says_0_of_0_and_why(tmp_path: Path) -> None:
    migrated = _psmon("migrate", "--data-dir", str(tmp_path))
    assert migrated.returncode == 0, migrated.stderr
    dry = _psmon(
        "dead-letters", "redrive", "--reason", "invalid_value", "--id", "dl-1", "--dry-run", "--data-dir", str(tmp_path)
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == (
        "0 of 0 dead letters valid (dry run, not published): none with reason invalid_value, id dl-1"
    )
