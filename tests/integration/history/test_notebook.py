"""`psmon.History` in a notebook: a data directory loaded by `psmon replay`, read back as
DataFrames equal to the hand computation (real chDB), and nothing created where there is no
history."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import psmon
from psmon.cli.main import app
from psmon.history.notebook import NoHistoryError
from psmon.history.queries import ReadOnlyError
from tests.integration.history.dataset import Dataset, expected_metrics


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Path:
    d = tmp_path_factory.mktemp("notebook") / "psmon-data"
    result = CliRunner().invoke(
        app, ["replay", str(dataset.path), "--data-dir", str(d), "--no-progress"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return d


def test_named_questions_are_dataframes_equal_to_the_hand_computation(data_dir: Path, dataset: Dataset) -> None:
    with psmon.History.open(data_dir) as h:
        df = h.rates("online_submission_ratio", by="month", period="2025")
        ranked = h.rank("on_time", period="2025-Q3")
        points = h.index766(period="2025")
        counted = h.sql("SELECT count() AS n FROM psmon.events FINAL")
    assert isinstance(df, pd.DataFrame)
    got = {(r.period, r.province_code): (r.numerator, r.denominator) for r in df.itertuples()}
    expected = {
        (p, c): nd for (p, c, m), nd in expected_metrics(dataset.events, "month").items() if m == "online_submission"
    }
    assert got == expected
    assert df.attrs["title"].startswith("online_submission by month")
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["ratio"].dropna().is_monotonic_decreasing
    assert any("not computed" in note for note in points.attrs["notes"])
    assert int(counted["n"].iloc[0]) == len(dataset.events)


def test_a_notebook_only_reads(data_dir: Path) -> None:
    with psmon.History.open(data_dir) as h, pytest.raises(ReadOnlyError):
        h.sql("INSERT INTO psmon.events (event_id) VALUES ('x')")


def test_opening_where_there_is_no_history_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(NoHistoryError, match=f"no psmon history at {missing}"):
        psmon.History.open(missing)
    assert not missing.exists()
    empty = tmp_path / "empty"
    (empty / "clickhouse").mkdir(parents=True)
    with pytest.raises(NoHistoryError, match="no psmon history in"):
        psmon.History.open(empty)


def test_the_readme_example_runs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'psmon.History.open("psmon-data")' in code
    monkeypatch.chdir(data_dir.parent)  # the example opens ./psmon-data
    exec(compile(code, "README.md", "exec"), {})
    assert "province" in capsys.readouterr().out
