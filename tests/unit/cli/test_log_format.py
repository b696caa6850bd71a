"""`psmon simulate` logs in the format the command line or PSMON_LOG_FORMAT chose, as the
worker and the sink do (it used to configure plain text whatever was asked)."""

import logging
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from psmon.cli.main import app


@pytest.mark.parametrize("chosen_by", ["--log-format", "PSMON_LOG_FORMAT"])
def test_simulate_logs_in_the_chosen_format(
    chosen_by: str,
    root: logging.Logger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a working morning: at night the simulator follows the wall clock, and 20 events take a minute
    start = ["--start", "2026-11-24T09:00:00+07:00"]
    args = ["simulate", "--count", "20", "--unpaced", "--seed", "1", *start, "--output", str(tmp_path / "events.jsonl")]
    if chosen_by == "--log-format":
        args = ["--log-format", "json", *args]
    else:
        monkeypatch.setenv("PSMON_LOG_FORMAT", "json")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    capsys.readouterr()
    # a record written after the command, through the handler the command configured
    logging.getLogger("psmon.simulator").warning("a record after simulate")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert orjson.loads(line) | {"ts": None} == {
        "ts": None,
        "level": "WARNING",
        "logger": "psmon.simulator",
        "msg": "a record after simulate",
    }
