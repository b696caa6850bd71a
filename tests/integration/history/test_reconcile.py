"""Rollups stay exact when a write was cut short between the raw part and a view's part.

A process killed inside an INSERT can leave `events` written and a materialized view's rollup
not; the redelivered events are then found already stored and never inserted again. The writer
reconciles the rollup keys of redelivered events with the raw table. Here the cut is made by
deleting a day's rows from a rollup, then the same records arrive again.
"""

from psmon.history.replay import replay_files
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.rollups import reconcile_rollups
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from tests.helpers import clickhouse_totals, rollup_totals
from tests.integration.history.dataset import BATCH_ROWS, Dataset


def test_redelivery_refills_a_rollup_left_short_and_changes_nothing_else(
    module_client: Client, fresh_db: str, dataset: Dataset
) -> None:
    ch, db = module_client, fresh_db
    migrate(ch, db)
    writer = ClickHouseWriter(ch, database=db)
    replay_files([dataset.path], writer=writer, batch_rows=BATCH_ROWS)
    raw = clickhouse_totals(ch, db)
    assert rollup_totals(ch, db, "rollup_day") == raw == rollup_totals(ch, db, "rollup_hour")

    # The cut: one busy province-day is missing from each rollup, as after a kill mid-INSERT.
    province, day = ch.query(
        f"SELECT province_code, day FROM {db}.rollup_day GROUP BY province_code, day ORDER BY sum(submitted) DESC LIMIT 1"
    ).result_rows[0]
    settings = {"mutations_sync": 2}
    ch.command(
        f"ALTER TABLE {db}.rollup_day DELETE WHERE province_code = '{province}' AND day = '{day}'", settings=settings
    )
    ch.command(
        f"ALTER TABLE {db}.rollup_hour DELETE WHERE province_code = '{province}' "
        f"AND toDate(hour, 'Asia/Ho_Chi_Minh') = '{day}'",
        settings=settings,
    )
    assert rollup_totals(ch, db, "rollup_day")[province] != raw[province]

    # The redelivery: the same records (same source coordinates) are written again.
    replay_files([dataset.path], writer=writer, batch_rows=BATCH_ROWS)
    assert clickhouse_totals(ch, db) == raw  # nothing inserted twice
    for source in ("rollup_hour", "rollup_day", "counters_month", "counters_year"):
        assert rollup_totals(ch, db, source) == raw, source
    procedures = ch.query(
        f"SELECT uniqExactMerge(online_procedures) FROM {db}.rollup_day WHERE province_code = '{province}' AND day = '{day}'"
    ).result_rows[0][0]
    assert procedures > 0
    # Reconciling agreeing rollups adds nothing.
    assert reconcile_rollups(ch, db, [(province, day)]) == 0
