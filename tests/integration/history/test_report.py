"""An empty period gives one line and exit 1, and writes nothing (no empty charts) (real chDB)."""

import sys
from pathlib import Path

import pytest

from psmon.cli.main import main
from psmon.history.periods import Period
from psmon.history.queries import History
from psmon.history.report import NoEventsError, write_report
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate


def test_an_empty_period_writes_no_report(
    module_client: Client,
    module_dsn: str,
    fresh_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    migrate(module_client, fresh_db)
    out = tmp_path / "report"
    with pytest.raises(NoEventsError, match=r"^không có sự kiện nào trong kỳ 2019$"):
        write_report(History(module_client, database=fresh_db), period=Period.parse("2019"), out_dir=out)
    assert not out.exists()

    capsys.readouterr()  # what came before the command is not its answer
    monkeypatch.setenv("PSMON_CLICKHOUSE_DSN", module_dsn)
    monkeypatch.setenv("PSMON_CLICKHOUSE_DATABASE", fresh_db)
    monkeypatch.setattr(sys, "argv", ["psmon", "report", "--period", "2019-07", "--out", str(out), "--lang", "en"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    # psmon's own log records may share stderr (an earlier in-process command set logging up);
    # the answer is the one line the CLI itself prints, and no traceback
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("psmon:")] == ["psmon: no events in 2019-07"]
    assert "Traceback" not in err
    assert not out.exists()
