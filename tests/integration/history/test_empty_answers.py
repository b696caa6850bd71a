"""Answers without data say so: one line instead of a bare header or a ranking of zeros, "–" for
766 items without data, and times in Vietnam's zone with their offset.

The database holds only the submissions of the session's dataset (no resolutions, no payments),
written through the sink's writer: every province then has rows in the metric views, with a
denominator of 0 for the metrics of resolved dossiers.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from psmon.cli.main import app
from psmon.history.periods import Period
from psmon.history.queries import History
from psmon.history.tables import render
from psmon.schemas.normalized import ValidRecord
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from tests.integration.history.dataset import Dataset, Loaded

YEAR = Period.parse("2025")


@pytest.fixture(scope="module")
def submitted_only(module_client: Client, dataset: Dataset) -> str:
    database = "submitted_only"
    migrate(module_client, database)
    events = [e for e in dataset.events if e.event_type == "application.submitted"]
    records = [ValidRecord(e, 0, i, int(e.occurred_at_s * 1000)) for i, e in enumerate(events)]
    assert ClickHouseWriter(module_client, database=database).write_events(records, token="submitted-only") > 0
    return database


def _run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _env(module_dsn: str, database: str) -> dict[str, str]:
    return {"PSMON_CLICKHOUSE_DSN": module_dsn, "PSMON_CLICKHOUSE_DATABASE": database}


def test_rank_without_any_denominator_says_there_is_no_data(module_client: Client, submitted_only: str) -> None:
    h = History(module_client, database=submitted_only)
    assert len(h.rank("online_submission", period=YEAR).rows) >= 20  # submissions are ranked
    metric_rows = h.metric_rows("on_time", "year", YEAR.start, YEAR.end)
    assert metric_rows and not any(r.denominator for r in metric_rows)  # rows, all 0 of 0
    table = h.rank("on_time", period=YEAR)
    assert table.rows == []
    assert render(table, "table") == "no on_time data in 2025: nothing to rank"


def test_rank_without_data_is_one_line_in_the_cli(module_dsn: str, submitted_only: str) -> None:
    out = _run(_env(module_dsn, submitted_only), "query", "rank", "--metric", "on_time", "--period", "2025")
    assert out.strip() == "no on_time data in 2025: nothing to rank"
    csv_out = _run(_env(module_dsn, submitted_only), "query", "rank", "-m", "on_time", "--period", "2025", "-f", "csv")
    assert csv_out.strip() == "rank,province_code,province,numerator,denominator,ratio"  # programs read a header


def test_766_items_without_data_have_no_points(module_client: Client, submitted_only: str) -> None:
    table = History(module_client, database=submitted_only).index766(period=YEAR)
    assert len(table.rows) >= 20
    resolved_items = {"i2_1_on_time", "i4_1_result_digitized"}  # denominator: resolved dossiers
    for row in table.dicts():
        assert all(row[c] is None for c in resolved_items), row
        assert isinstance(row["i3_3_online_submission"], float)
    rows_text = render(table, "table").split("Computable")[0]
    assert rows_text.count("│ – │") + rows_text.count(" – │") >= 2 * len(table.rows)  # shown as "–", not 0.00
    assert any(n.startswith("– (empty in CSV, null in JSON): no data") for n in table.notes)


def test_empty_listings_are_one_line(module_dsn: str, submitted_only: str) -> None:
    env = _env(module_dsn, submitted_only)
    assert _run(env, "dead-letters", "list").strip() == "no dead letters stored"
    assert _run(env, "dead-letters", "list", "--reason", "bad_json", "--since", "2025-07-01T00:00:00").strip() == (
        "no dead letters with reason bad_json since 2025-07-01 07:00:00+07:00"
    )
    assert _run(env, "dead-letters", "explain").strip() == "no dead letters stored"
    assert _run(env, "alerts", "history").strip() == "no alert notifications stored"
    assert _run(env, "alerts", "history", "--province", "01", "--status", "firing").strip() == (
        "no alert notifications stored for province 01 with status firing"
    )
    assert _run(env, "alerts", "history", "--json").strip() == ""  # JSON lines: none
    period = _run(env, "query", "rates", "-m", "online_submission", "--by", "day", "--period", "2019")
    assert period.strip() == "no online_submission data in 2019"


def test_dead_letter_times_are_shown_in_vietnam_with_their_offset(loaded: Loaded, module_dsn: str) -> None:
    newest: Any = loaded.client.query(
        f"SELECT received_at FROM {loaded.database}.dead_letters FINAL ORDER BY received_at DESC LIMIT 1"
    ).result_rows[0][0]
    utc = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
    local = (utc + timedelta(hours=7)).replace(tzinfo=None)
    out = _run(_env(module_dsn, loaded.database), "dead-letters", "list", "--limit", "1")
    assert f"{local:%Y-%m-%d %H:%M:%S}+07:00" in out
    assert not re.search(r"\d\d:\d\d:\d\d(\.\d+)?(?!\+07:00)\s", out.split("\n", 3)[-1])
    csv_out = _run(_env(module_dsn, loaded.database), "dead-letters", "list", "--limit", "1", "-f", "csv")
    stamp = csv_out.splitlines()[1].split(",")[1]
    assert datetime.fromisoformat(stamp) == utc  # CSV: the same instant, with its offset
