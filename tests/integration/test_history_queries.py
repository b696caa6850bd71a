"""Every SQL query of the History dashboard, run on ClickHouse (chDB) over generated history.

History is made by the simulator's own generator (realistic per-province shares, office hours,
old province codes before the 2025 merger) over 18 months, validated by the contract code and
written with the sink's `ClickHouseWriter`, so the table looks as stage 3 leaves it. Each panel
query is expanded as Grafana and the ClickHouse plugin would (time range, `$province`), run,
and must return rows; a few values are checked against counts computed here in Python.
"""

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from psmon.dashboards.build import build_all
from psmon.dashboards.datasources import CLICKHOUSE
from psmon.history.catalog import CatalogStore
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.provinces import registry
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.simulator.catalog import entries, simulated_catalog
from psmon.simulator.generator import EventGenerator
from psmon.simulator.profiles import default_profiles
from psmon.sinks.clickhouse.client import connect
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from psmon.timeutil import LOCAL_TZ
from tests.integration.grafana_expand import expand

# local calendar months, as the 766 index counts them
START = datetime(2025, 1, 1, tzinfo=LOCAL_TZ)
END = datetime(2026, 7, 1, tzinfo=LOCAL_TZ)


def generate_history() -> list[ValidEvent]:
    gen = EventGenerator(default_profiles(), seed=766, old_code_fraction=0.1)
    out: list[ValidEvent] = []
    t, end = START.timestamp(), END.timestamp()
    step = 3600.0
    while t < end:
        for ev in gen.advance(t, t + step, dossiers_per_s=0.0015):
            v = validate_event(ev.value, record_ts_s=ev.occurred_at_s)
            assert isinstance(v, ValidEvent), v
            out.append(v)
        t += step
    return out


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    events = generate_history()
    client = connect(f"chdb://{tmp_path_factory.mktemp('history') / 'ch'}")
    migrate(client, "psmon")
    store = CatalogStore(client, database="psmon")  # the catalog the simulator files against
    store.write(store.plan(list(entries(simulated_catalog()))))
    writer = ClickHouseWriter(client, database="psmon")
    records = [ValidRecord(e, 0, i, int(e.occurred_at_s * 1000)) for i, e in enumerate(events)]
    for i in range(0, len(records), 20_000):
        writer.write_events(records[i : i + 20_000], token=f"history/0:{i}")
    yield client, events
    client.close()


def clickhouse_targets() -> list[tuple[str, str, str]]:
    out = []
    for uid, doc in build_all().items():
        for p in doc["panels"]:
            for t in p.get("targets", []):
                if t["datasource"]["uid"] == CLICKHOUSE.uid:
                    out.append((uid, p["title"], t["rawSql"]))
    return out


def test_history_has_every_clickhouse_panel() -> None:
    titles = {title for _uid, title, _sql in clickhouse_targets()}
    assert len(titles) == 7  # six of events, one of the procedure catalog


@pytest.mark.parametrize(("province", "expect_all"), [("$__all", True), ("25", False)])
def test_every_history_query_returns_rows(history_db: Any, province: str, expect_all: bool) -> None:
    client, events = history_db
    history = build_all()["psmon-history"]
    (var,) = history["templating"]["list"]
    # the variable's own query, as Grafana runs it on dashboard load
    codes = [r[0] for r in client.query(var["query"]).result_rows]
    assert set(codes) == set(registry().codes)
    values = codes if province == "$__all" else [province]
    window = {"from_s": int(START.timestamp()), "to_s": int(END.timestamp())}
    results = {}
    for _uid, title, sql in clickhouse_targets():
        result = client.query(expand(sql, {"province": values}, **window))
        assert result.result_rows, f"{title}: no rows"
        results[title] = (result.column_names, result.result_rows)

    submitted = [e for e in events if e.event_type == "application.submitted" and e.province_code in values]
    # monthly volume: online dossiers per month add up to the generated ones
    cols, rows = results["Dossiers per month by channel"]
    assert sum(r[cols.index("online")] for r in rows) == sum(e.channel == "online" for e in submitted)
    assert len(rows) == 18  # one row per calendar month
    # quarterly table: six quarters, 2025-Q1 .. 2026-Q2, per province
    cols, rows = results["Quarterly rates by province"]
    assert {r[0] for r in rows} == {"2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"}
    assert len({r[1] for r in rows}) == len(values)
    # ranking and the 766 index: one row per province, ranks from 1, at most 42 points
    cols, rows = results["766 index, computable part (42 of 100 points)"]
    assert len(rows) == len(values) and rows[0][0] == 1
    assert all(0 < r[cols.index("points")] <= 42 for r in rows)
    cols, rows = results["Ranking by online submission"]
    ranked = [r[cols.index("online_submission")] for r in rows]
    assert ranked == sorted(ranked, reverse=True)
    by_province = Counter(e.province_code for e in submitted if e.channel == "online")
    totals = Counter(e.province_code for e in submitted)
    for r in rows:
        code = r[cols.index("province")].split()[0]
        assert r[cols.index("online_submission")] == pytest.approx(by_province[code] / totals[code])
    if not expect_all:
        assert rows[0][cols.index("province")] == "25 Phú Thọ"
