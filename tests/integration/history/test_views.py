"""Every rollup and view of schema v2 against a hand computation over the same events.

The dataset spans the 1 Jul 2025 merger (June → July, Q2 → Q3) with old 63-province codes on
both sides, bad events and re-sent duplicates. The expected numbers are computed here in plain
Python from the events' fields (the contract's definitions written out again in `dataset.py`), never
from psmon's SQL.
"""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from psmon.history.periods import Period
from psmon.history.queries import History
from psmon.history.replay import replay_files
from psmon.schemas.index766 import ITEMS, score
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent
from psmon.sinks.clickhouse import schema
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from tests.history_dataset import hand_counters, local_day, period_labels
from tests.integration.history.dataset import COUNTERS, Dataset, Loaded, expected_metrics

GRAINS = ("day", "month", "quarter", "year")


def test_dataset_covers_the_merger_and_every_path(dataset: Dataset, loaded: Loaded) -> None:
    days = {local_day(e) for e in dataset.events}
    assert min(days) < date(2025, 7, 1) <= max(days)
    old = [e for e in dataset.events if e.raw_province_code != e.province_code]
    assert {local_day(e) < date(2025, 7, 1) for e in old} == {True, False}
    s = loaded.stats
    assert s.invalid > 0 and s.already_stored > 0  # bad lines and re-sent duplicates
    assert s.inserted == len(dataset.events)


@pytest.mark.parametrize("grain", GRAINS)
def test_metric_views_equal_hand_computation(dataset: Dataset, loaded: Loaded, grain: str) -> None:
    rows = loaded.client.query(
        f"SELECT period, province_code, metric, numerator, denominator, ratio, province_name "
        f"FROM {loaded.database}.metrics_{grain}"
    ).result_rows
    got = {(p, c, m): (int(n), int(d)) for p, c, m, n, d, _r, _name in rows}
    assert got == expected_metrics(dataset.events, grain)
    for _p, _c, _m, n, d, ratio, name in rows:
        assert ratio == (None if d == 0 else pytest.approx(n / d))
        assert name  # every province has its name from the dimension table


@pytest.mark.parametrize("grain", GRAINS)
def test_counter_views_equal_hand_computation(dataset: Dataset, loaded: Loaded, grain: str) -> None:
    cols = ", ".join(COUNTERS)
    rows = loaded.client.query(
        f"SELECT period, province_code, {cols} FROM {loaded.database}.counters_{grain}"
    ).result_rows
    got = {(r[0], r[1]): dict(zip(COUNTERS, (int(v) for v in r[2:]), strict=True)) for r in rows}
    hand = hand_counters(dataset.events, lambda e: (period_labels(local_day(e))[grain], e.province_code))
    assert got == {k: {c: v[c] for c in COUNTERS} for k, v in hand.items()}


def test_hourly_rollup_keeps_codes_as_sent(dataset: Dataset, loaded: Loaded) -> None:
    cols = ", ".join(f"sum({c})" for c in COUNTERS)
    rows = loaded.client.query(
        f"SELECT province_code, raw_province_code, hour, {cols} FROM {loaded.database}.rollup_hour "
        "GROUP BY province_code, raw_province_code, hour"
    ).result_rows
    got = {
        (p, raw, hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour): tuple(int(v) for v in r)
        for p, raw, hour, *r in rows
    }

    def key(e: ValidEvent) -> tuple[str, str, datetime]:
        t = datetime.fromtimestamp(e.occurred_at_s, UTC).replace(minute=0, second=0, microsecond=0)
        return (e.province_code, e.raw_province_code, t)

    hand = hand_counters(dataset.events, key)
    assert got == {k: tuple(c[n] for n in COUNTERS) for k, c in hand.items()}


def test_historical_codes_name_each_code_as_it_was_then(dataset: Dataset, loaded: Loaded) -> None:
    h = History(loaded.client, database=loaded.database)
    rows = h.metric_rows("online_submission", "month", date(2025, 1, 1), date(2026, 1, 1), historical_codes=True)
    got = {(r.period, r.province_code, r.province): (r.numerator, r.denominator) for r in rows}
    hand = hand_counters(dataset.events, lambda e: (f"{local_day(e):%Y-%m}", e.raw_province_code))
    assert {(p, code): nd for (p, code, _name), nd in got.items()} == {
        k: (c["submitted_online"], c["submitted"]) for k, c in hand.items() if c["submitted"] or c["submitted_online"]
    } | {k: (0, 0) for k, c in hand.items() if not (c["submitted"] or c["submitted_online"])}
    names = {(p, code): name for p, code, name in got}
    assert names[("2025-06", "80")] == "Long An"  # before the merger, 80 was Long An
    assert names[("2025-07", "80")] == "Tây Ninh"  # after it, 80 is Tây Ninh
    assert names[("2025-06", "70")] == "Bình Phước"  # an old code keeps its old name


def test_index766_view_matches_the_python_scorer(dataset: Dataset, loaded: Loaded) -> None:
    cols = [i.column for i in ITEMS]
    rows = loaded.client.query(
        f"SELECT period, province_code, {', '.join(cols)}, total, rank FROM {loaded.database}.index766_month"
    ).result_rows
    hand = hand_counters(dataset.events, lambda e: (f"{local_day(e):%Y-%m}", e.province_code))
    assert {(r[0], r[1]) for r in rows} == set(hand)
    for period, province, *points, total, _rank in rows:
        expected = score({c: 0 for c in COUNTERS} | dict(hand[(period, province)]))
        assert dict(zip([*cols, "total"], [*points, total], strict=True)) == pytest.approx(expected, abs=0.0051)
    for period in {r[0] for r in rows}:
        ranked = sorted((r for r in rows if r[0] == period), key=lambda r: r[-1])
        totals = [r[-2] for r in ranked]
        assert totals == sorted(totals, reverse=True)
        assert [r[-1] for r in ranked] == list(range(1, len(ranked) + 1))


def rollup_snapshot(client: Client, db: str) -> dict[str, Any]:
    cols = ", ".join(f"sum({c})" for c in COUNTERS)
    return {
        "hour": sorted(
            client.query(
                f"SELECT province_code, raw_province_code, hour, {cols} FROM {db}.rollup_hour "
                "GROUP BY province_code, raw_province_code, hour"
            ).result_rows
        ),
        "day": sorted(
            client.query(
                f"SELECT province_code, raw_province_code, day, {cols}, uniqExactMerge(online_procedures) "
                f"FROM {db}.rollup_day GROUP BY province_code, raw_province_code, day"
            ).result_rows
        ),
        "events": client.query(f"SELECT count() FROM {db}.events FINAL").result_rows,
        "dead_letters": client.query(f"SELECT count() FROM {db}.dead_letters FINAL").result_rows,
        "metrics_year": sorted(
            client.query(
                f"SELECT period, province_code, metric, numerator, denominator FROM {db}.metrics_year"
            ).result_rows
        ),
    }


class _WriterWithoutLookup(ClickHouseWriter):
    """The sink's writer minus its "already stored?" lookup, to exercise the token layer alone."""

    def new_events(self, records: Any) -> list[ValidRecord]:
        first: dict[str, ValidRecord] = {}
        for r in records:
            first.setdefault(r.event.event_id, r)
        return list(first.values())


def test_reinsert_and_replay_leave_every_rollup_unchanged(dataset: Dataset, loaded: Loaded) -> None:
    before = rollup_snapshot(loaded.client, loaded.database)
    # 1. The same batches again through the sink's writer (same tokens): the lookup drops them.
    records = [ValidRecord(e, 7, i, 1_750_000_000_000) for i, e in enumerate(dataset.events)]
    for i in range(0, len(records), 1000):
        assert loaded.writer.write_events(records[i : i + 1000], token=f"valid/7:{i}-{i + 999}") == 0
    # 2. The same file replayed twice more, with other batch boundaries.
    for batch_rows in (50_000, 333):
        stats = replay_files([dataset.path], writer=loaded.writer, batch_rows=batch_rows)
        assert stats.inserted == 0 and stats.already_stored == stats.valid
    assert rollup_snapshot(loaded.client, loaded.database) == before


def test_same_token_is_dropped_whole_even_without_the_lookup(
    dataset: Dataset, module_client: Client, fresh_db: str
) -> None:
    """Second line of defence: ClickHouse drops a re-sent block with the same token, views included."""
    schema.migrate(module_client, fresh_db)
    writer = _WriterWithoutLookup(module_client, database=fresh_db)
    records = [ValidRecord(e, 3, i, 1_750_000_000_000) for i, e in enumerate(dataset.events[:2000])]
    writer.write_events(records, token="valid/3:0-1999")
    before = rollup_snapshot(module_client, fresh_db)
    writer.write_events(records, token="valid/3:0-1999")
    assert rollup_snapshot(module_client, fresh_db) == before
    assert before["events"] == [(2000,)]


def test_migration_2_backfills_events_stored_under_version_1(
    dataset: Dataset, module_client: Client, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, old = module_client, fresh_db
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        assert [x.version for x in schema.migrate(client, old)] == [1]
    ClickHouseWriter(client, database=old).write_events(
        [ValidRecord(e, 0, i, 1_750_000_000_000) for i, e in enumerate(dataset.events)], token="v1"
    )
    assert [x.version for x in schema.migrate(client, old)] == [m.version for m in schema.MIGRATIONS if m.version > 1]
    assert schema.migrate(client, old) == []  # idempotent
    rows = client.query(f"SELECT period, province_code, metric, numerator, denominator FROM {old}.metrics_month")
    got = {(p, c, mt): (int(n), int(d)) for p, c, mt, n, d in rows.result_rows}
    assert got == expected_metrics(dataset.events, "month")
    # After the migration, new events flow through the materialized views (no double count).
    ClickHouseWriter(client, database=old).write_events(
        [ValidRecord(e, 0, i, 1_750_000_000_000) for i, e in enumerate(dataset.events)], token="v1-again"
    )
    rows = client.query(f"SELECT period, province_code, metric, numerator, denominator FROM {old}.metrics_month")
    assert {(p, c, mt): (int(n), int(d)) for p, c, mt, n, d in rows.result_rows} == got


def test_provinces_tables_and_events_ttl(module_client: Client, fresh_db: str) -> None:
    c, db = module_client, fresh_db
    schema.migrate(c, db)
    assert c.query(f"SELECT count() FROM {db}.provinces FINAL").result_rows == [(34,)]
    assert c.query(f"SELECT count() FROM {db}.province_codes FINAL").result_rows == [(63,)]
    assert c.query(f"SELECT new_name FROM {db}.province_codes FINAL WHERE old_code = '80'").result_rows == [
        ("Tây Ninh",)
    ]
    schema.migrate(c, db, events_ttl_days=400)
    assert "toIntervalDay(400)" in c.query(f"SHOW CREATE TABLE {db}.events").result_rows[0][0]
    schema.migrate(c, db, events_ttl_days=0)
    assert "TTL" not in c.query(f"SHOW CREATE TABLE {db}.events").result_rows[0][0]


def test_replay_skips_events_beyond_the_raw_retention(dataset: Dataset, module_client: Client, fresh_db: str) -> None:
    client, db = module_client, fresh_db
    schema.migrate(client, db)
    now = datetime(2025, 7, 2, 17, 0, tzinfo=UTC).timestamp()  # local 3 Jul 00:00
    stats = replay_files(
        [dataset.path], writer=ClickHouseWriter(client, database=db), retention_days=2, clock=lambda: now
    )
    old = [e for e in dataset.events if e.occurred_at_s < now - 2 * 86400]
    assert old and stats.beyond_retention >= len(old)
    assert client.query(f"SELECT count() FROM {db}.events FINAL").result_rows == [(len(dataset.events) - len(old),)]


def test_query_rates_rank_below(dataset: Dataset, loaded: Loaded) -> None:
    h = History(loaded.client, database=loaded.database)
    expected = expected_metrics(dataset.events, "quarter")
    q3 = {c: nd for (p, c, m), nd in expected.items() if p == "2025-Q3" and m == "on_time"}
    ranked = h.rank("on_time", period=Period.parse("2025-Q3"))
    assert {r[1]: (r[3], r[4]) for r in ranked.rows} == q3
    ratios = [r[5] for r in ranked.rows]
    assert ratios == sorted(ratios, reverse=True)

    monthly = expected_metrics(dataset.events, "month")
    low = h.below("online_submission", threshold=0.5, by="month", period=Period.parse("2025"))
    assert {(r[0], r[1]) for r in low.rows} == {
        (p, c) for (p, c, m), (n, d) in monthly.items() if m == "online_submission" and d and n / d < 0.5
    }
