"""The shared CLI pieces: an option means the same before and after a subcommand, one settings
builder, one failure line. ClickHouse is a stand-in that records the DSN a command opens."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from psmon.cli.main import app
from psmon.history.tables import ResultTable
from psmon.settings import Settings

runner = CliRunner()
RANK = ["rank", "--metric", "on_time", "--period", "2026-08"]


class _Client:
    def close(self) -> None:
        pass


class _History:
    """Stands in for `psmon.history.queries.History`: remembers the database, answers `rank`."""

    def __init__(self, client: _Client, *, database: str) -> None:
        self.database = database

    def check_schema(self) -> None:
        pass

    def rank(self, metric: str, **_: Any) -> ResultTable:
        return ResultTable(title=f"rank {metric}", columns=["database"], rows=[(self.database,)])


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The DSNs commands connect to; the connection itself is a stand-in."""
    dsns: list[str] = []

    def connect(dsn: str, **_: Any) -> _Client:  # read_only=True: readers may read through psmon up
        dsns.append(dsn)
        return _Client()

    monkeypatch.setattr("psmon.sinks.clickhouse.client.connect", connect)
    monkeypatch.setattr("psmon.history.queries.History", _History)
    for var in ("PSMON_CLICKHOUSE_DSN", "PSMON_DATA_DIR", "PSMON_CLICKHOUSE_DATABASE"):
        monkeypatch.delenv(var, raising=False)
    return dsns


def _dsn_of(data_dir: Path) -> str:
    """The DSN of `data_dir`, whose ClickHouse directory is made (query commands need it to exist)."""
    dsn = Settings(data_dir=data_dir).resolved_clickhouse_dsn
    Path(dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    return dsn


def test_query_data_dir_before_or_after_the_question_is_the_same(tmp_path: Path, opened: list[str]) -> None:
    _dsn_of(tmp_path)
    before = runner.invoke(app, ["query", "--data-dir", str(tmp_path), *RANK])
    after = runner.invoke(app, ["query", *RANK, "--data-dir", str(tmp_path)])
    assert before.exit_code == 0, before.output
    assert after.exit_code == 0, after.output
    assert opened == [_dsn_of(tmp_path), _dsn_of(tmp_path)]


def test_the_subcommand_wins_when_both_are_given(tmp_path: Path, opened: list[str]) -> None:
    _dsn_of(tmp_path)
    result = runner.invoke(app, ["query", "--data-dir", str(tmp_path / "group"), *RANK, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert opened == [_dsn_of(tmp_path)]


def test_query_format_and_clickhouse_before_the_question(tmp_path: Path, opened: list[str]) -> None:
    dsn = f"chdb://{tmp_path}"
    result = runner.invoke(app, ["query", "-f", "json", "--clickhouse", dsn, *RANK])
    assert result.exit_code == 0, result.output
    assert opened == [dsn]
    assert orjson.loads(result.stdout)["rows"] == [{"database": "psmon"}]
    # the subcommand's --format wins over the group's
    table = runner.invoke(app, ["query", "-f", "json", *RANK, "-f", "csv", "--clickhouse", dsn])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == ["database", "psmon"]


def test_a_bad_group_format_is_reported_like_a_bad_subcommand_format(opened: list[str]) -> None:
    for args in (["query", "-f", "xml", *RANK], ["query", *RANK, "-f", "xml"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "--format must be one of table, csv, json, parquet; got 'xml'" in result.output


@pytest.mark.parametrize(
    ("group", "command"),
    [(["dead-letters"], ["explain"]), (["dead-letters"], ["list"]), (["alerts"], ["history"])],
)
def test_dead_letters_and_alerts_groups_take_the_data_dir_too(
    tmp_path: Path, opened: list[str], monkeypatch: pytest.MonkeyPatch, group: list[str], command: list[str]
) -> None:
    def stop(dsn: str, **_: Any) -> None:  # the command resolved its settings and tried to open the store
        opened.append(dsn)
        raise SystemExit(3)

    monkeypatch.setattr("psmon.sinks.clickhouse.client.connect", stop)
    _dsn_of(tmp_path)
    before = runner.invoke(app, [*group, "--data-dir", str(tmp_path), *command])
    after = runner.invoke(app, [*group, *command, "--data-dir", str(tmp_path)])
    assert before.exit_code == after.exit_code == 3, before.output + after.output
    assert opened == [_dsn_of(tmp_path), _dsn_of(tmp_path)]


def test_invalid_settings_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSMON_TOPIC_PARTITIONS", "0")
    result = runner.invoke(app, ["topics"])
    assert result.exit_code == 1
    assert result.stderr == "psmon: invalid PSMON_TOPIC_PARTITIONS='0': Input should be greater than or equal to 1\n"


def test_a_bad_drop_is_one_line() -> None:
    result = runner.invoke(app, ["simulate", "--drop", "25:online_submission", "--output", "x.jsonl"])
    assert result.exit_code == 1
    assert "--drop wants PROVINCE:METRIC:VALUE" in result.output and "'25:online_submission'" in result.output


def test_dashboards_read_the_thresholds_file_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("PSMON_THRESHOLDS_FILE", str(missing))
    result = runner.invoke(app, ["dashboards", "build", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"thresholds file {missing} does not exist" in result.output


def test_the_command_line_sits_above_what_it_runs() -> None:
    """cli imports local and the stages, never the other way; cli.alerts does not import cli.main."""
    code = (
        "import sys; import psmon.local.runtime, psmon.logs, psmon.history.replay, psmon.cli.alerts; "
        "print(sorted(m for m in sys.modules if m.startswith('psmon.cli')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert orjson.loads(out.stdout.replace("'", '"')) == [
        "psmon.cli",
        "psmon.cli.alerts",
        "psmon.cli.help",
        "psmon.cli.options",
    ]


# -- --format parquet and --output ---------------------------------------------------------------
def test_parquet_is_refused_on_stdout_before_anything_is_opened(tmp_path: Path, opened: list[str]) -> None:
    _dsn_of(tmp_path)
    for args in (["query", "-f", "parquet", *RANK], ["dead-letters", "list", "-f", "parquet"]):
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            "psmon: --format parquet is binary and is not written to the terminal or stdout: give --output FILE"
        ]
    assert opened == []


def test_parquet_and_csv_go_to_the_output_file(tmp_path: Path, opened: list[str]) -> None:
    import pyarrow.parquet as pq

    _dsn_of(tmp_path)
    parquet, csv_file = tmp_path / "rank.parquet", tmp_path / "rank.csv"
    result = runner.invoke(app, ["query", "-f", "parquet", "-o", str(parquet), *RANK, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert pq.read_table(parquet).to_pylist() == [{"database": "psmon"}]
    # --output given to the group, --format to the question
    result = runner.invoke(app, ["query", "-o", str(csv_file), *RANK, "-f", "csv", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert csv_file.read_text().splitlines() == ["database", "psmon"]


def test_alerts_history_takes_the_shared_format_and_hides_the_old_json_flag() -> None:
    text = runner.invoke(app, ["alerts", "history", "--help"], terminal_width=200).stdout
    assert "--format" in text and "parquet" in text and "--output" in text
    assert "--json" not in text


def test_log_format_is_a_setting_of_every_command(tmp_path: Path, opened: list[str]) -> None:
    _dsn_of(tmp_path)
    result = runner.invoke(app, ["--log-format", "xml", "query", *RANK, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("psmon: invalid --log-format='xml': Input should be 'text' or 'json'")
    ok = runner.invoke(app, ["--log-format", "json", "query", *RANK, "--data-dir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
