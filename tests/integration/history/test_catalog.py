"""The procedure catalog on real chDB: `psmon catalog load|show|diff`, the four catalog items of the
766 index and the idle-procedures question, against a hand-built catalog and month of events.

The expected values are computed here in plain Python from the same rows (which entries are in
force during the month, which procedures got an online dossier or payment on a local day of
it) and scored with `psmon.schemas.index766.score`; psmon's SQL is never the reference.
"""

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from psmon.cli.main import app
from psmon.errors import BrokerError
from psmon.history.periods import Period
from psmon.history.queries import History
from psmon.history.replay import replay_files
from psmon.schemas.catalog import CATALOG_FIELDS, CatalogEntry, decode_entry, parse_catalog_rows
from psmon.schemas.index766 import ALL_ITEMS, item_points, score
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from psmon.timeutil import LOCAL_TZ
from tests.helpers import wait_until
from tests.history_dataset import hand_counters

MAY = Period.parse("2026-05")

# province, procedure, online_level, fee_bearing, payment_integrated, valid_from, valid_to
CATALOG: list[tuple[str, str, str, bool, bool, str, str]] = [
    ("25", "1.000001", "full", True, True, "2026-01-01", ""),
    ("25", "1.000002", "partial", True, False, "2026-01-01", ""),
    ("25", "1.000003", "full", False, False, "2026-01-01", ""),
    ("25", "1.000004", "none", True, False, "2026-01-01", ""),
    ("25", "2.000005", "partial", True, True, "2026-01-01", ""),
    ("25", "1.000008", "full", False, False, "2026-01-01", "2026-05-10"),  # ended mid-May: in force in May
    ("25", "1.000009", "full", True, True, "2026-06-01", ""),  # starts after May
    ("26", "1.000010", "partial", False, True, "2026-01-01", ""),  # old code (Vĩnh Phúc), counted under 25
    ("01", "1.000001", "full", True, True, "2026-01-01", ""),
    ("01", "1.000006", "full", False, False, "2026-01-01", ""),
    ("01", "1.000007", "none", False, False, "2026-01-01", ""),
]


def catalog_csv() -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CATALOG_FIELDS)
    for p, code, online, fee, integrated, start, end in CATALOG:
        w.writerow([p, code, f"Thủ tục {code}", "province", online, str(fee).lower(), int(integrated), start, end])
    return out.getvalue()


def event(event_type: str, n: int, province: str, procedure: str, when: str, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"cat-{n}",
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": when,
            "province_code": province,
            "level": "province",
            "procedure_code": procedure,
            "dossier_id": f"D-{province}-{n}",
            **extra,
        }
    )


def submitted(n: int, province: str, procedure: str, when: str, channel: str = "online") -> bytes:
    mode = {"online": "full_online", "counter": "offline"}[channel]
    return event(
        "application.submitted", n, province, procedure, when, channel=channel, service_mode=mode, fee_bearing=True
    )


def paid(n: int, province: str, procedure: str, when: str, method: str) -> bytes:
    return event("payment.completed", n, province, procedure, when, method=method, amount_vnd=50_000)


MAY_10 = "2026-05-10T09:00:00+07:00"
EVENTS: list[bytes] = [
    submitted(1, "25", "1.000001", MAY_10),
    submitted(2, "25", "1.000001", MAY_10),
    paid(3, "25", "1.000001", MAY_10, "online"),
    event("application.resolved", 4, "25", "1.000001", MAY_10, on_time=True),
    event("application.resolved", 5, "25", "1.000002", MAY_10, on_time=False),
    submitted(6, "25", "1.000002", "2026-05-31T23:30:00+07:00"),  # the last local hour of May
    paid(7, "25", "1.000002", MAY_10, "counter"),
    submitted(8, "25", "1.000004", MAY_10, channel="counter"),
    submitted(9, "25", "2.000005", MAY_10),
    paid(10, "25", "2.000005", MAY_10, "counter"),
    submitted(11, "25", "9.999999", MAY_10),  # not in the catalog: counts for the event items only
    paid(12, "25", "9.999999", MAY_10, "online"),
    submitted(13, "25", "1.000003", "2026-06-01T00:30:00+07:00"),  # 31 May in UTC, June locally
    event("record.digitized", 14, "25", "1.000001", MAY_10, kind="dossier"),
    event("record.digitized", 15, "25", "1.000001", MAY_10, kind="result"),
    submitted(16, "01", "1.000001", MAY_10),
    paid(17, "01", "1.000001", MAY_10, "online"),
    submitted(18, "01", "1.000007", MAY_10, channel="counter"),
    event("application.resolved", 19, "01", "1.000001", MAY_10, on_time=True),
    submitted(20, "79", "1.000001", MAY_10),  # a province without a catalog
    submitted(21, "26", "1.000010", MAY_10),  # the old code's procedure, under 25
]


def valid(lines: list[bytes]) -> list[ValidEvent]:
    out = [validate_event(line) for line in lines]
    assert all(isinstance(v, ValidEvent) for v in out), out
    return [v for v in out if isinstance(v, ValidEvent)]


def local_day(e: ValidEvent) -> date:
    return datetime.fromtimestamp(e.occurred_at_s, UTC).astimezone(LOCAL_TZ).date()


def hand_catalog_counters(entries: list[CatalogEntry], events: list[ValidEvent]) -> dict[str, dict[str, int]]:
    """The catalog counters of May per province, in plain Python."""
    in_may = [e for e in events if MAY.start <= local_day(e) < MAY.end]
    dossier = {
        (e.province_code, e.procedure_code)
        for e in in_may
        if e.event_type == "application.submitted" and e.channel == "online"
    }
    payment = {
        (e.province_code, e.procedure_code)
        for e in in_may
        if e.event_type == "payment.completed" and e.method == "online"
    }
    newest: dict[str, CatalogEntry] = {}
    for c in sorted(entries, key=lambda c: c.valid_from):
        if c.in_force_during(MAY.start, MAY.end):
            newest[c.key] = c
    out: dict[str, Counter[str]] = {}
    for c in newest.values():
        k = out.setdefault(c.province_code, Counter())
        pair = (c.province_code, c.procedure_code)
        k["catalog_procedures"] += 1
        k["catalog_online"] += c.is_online
        k["catalog_online_with_dossier"] += c.is_online and pair in dossier
        k["catalog_fee_online"] += c.is_online and c.fee_bearing
        k["catalog_fee_online_integrated"] += c.is_online and c.fee_bearing and c.payment_integrated
        k["catalog_integrated"] += c.payment_integrated
        k["catalog_integrated_paid_online"] += c.payment_integrated and pair in payment
    return {p: dict(k) for p, k in out.items()}


def run(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def env(module_dsn: str, module_client: Client, fresh_db: str) -> dict[str, str]:
    """A fresh database holding the month of events (no catalog yet)."""
    migrate(module_client, fresh_db)
    return {"PSMON_CLICKHOUSE_DSN": module_dsn, "PSMON_CLICKHOUSE_DATABASE": fresh_db, "PSMON_TOPIC_PREFIX": fresh_db}


def load_events(module_client: Client, database: str, tmp_path: Path) -> list[ValidEvent]:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in EVENTS))
    stats = replay_files([path], writer=ClickHouseWriter(module_client, database=database))
    assert stats.summary()["inserted"] == len(EVENTS)
    return valid(EVENTS)


def entries_of(text: str) -> list[CatalogEntry]:
    entries, errors = parse_catalog_rows(csv.DictReader(io.StringIO(text)), source="x", text=True)
    assert errors == []
    return entries


def test_the_catalog_items_52_points_and_rank_equal_python(
    env: dict[str, str], module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    events = load_events(module_client, fresh_db, tmp_path)
    history = History(module_client, database=fresh_db)
    before = history.index766(period=MAY)
    assert before.rows and before.rows[0][-1] == 42  # max_points: no catalog yet
    assert any(
        "3.2 online procedures with an online dossier (4 pts): no procedure catalog in force" in n for n in before.notes
    )

    path = tmp_path / "catalog.csv"
    path.write_text(catalog_csv(), encoding="utf-8")
    run(env, "catalog", "load", str(path), "--no-publish")
    table = history.index766(period=MAY)

    entries = entries_of(catalog_csv())
    catalog = hand_catalog_counters(entries, events)
    # the hand numbers of province 25: 7 entries in force in May (1.000008 ended on the 10th and
    # counts, 1.000009 starts in June and does not, the old code 26's 1.000010 counts here), 6
    # online, 4 with an online dossier in May (not 1.000003: its dossier is 1 June locally, 31 May
    # in UTC), 3 fee-bearing online, 2 of them integrated, 3 integrated, 1 paid online
    assert catalog["25"] == {
        "catalog_procedures": 7,
        "catalog_online": 6,
        "catalog_online_with_dossier": 4,
        "catalog_fee_online": 3,
        "catalog_fee_online_integrated": 2,
        "catalog_integrated": 3,
        "catalog_integrated_paid_online": 1,
    }
    events_by_province = hand_counters(
        events, lambda e: e.province_code if MAY.start <= local_day(e) < MAY.end else None
    )
    zero = dict.fromkeys(
        [
            "catalog_procedures",
            "catalog_online",
            "catalog_online_with_dossier",
            "catalog_fee_online",
            "catalog_fee_online_integrated",
            "catalog_integrated",
            "catalog_integrated_paid_online",
        ],
        0,
    )
    expected: dict[str, dict[str, float]] = {}
    unrounded: dict[str, float] = {}
    denominators: dict[str, dict[str, int]] = {}
    for province in ("25", "01", "79"):
        counters = {**zero, **dict(events_by_province[province]), **catalog.get(province, {})}
        counters = {
            k: counters.get(k, 0) for k in {*(i.numerator for i in ALL_ITEMS), *(i.denominator for i in ALL_ITEMS)}
        }
        expected[province] = score(counters, ALL_ITEMS)
        denominators[province] = counters
        unrounded[province] = sum(item_points(i, counters[i.numerator], counters[i.denominator]) for i in ALL_ITEMS)
    cols = table.columns
    got = {r[cols.index("province_code")]: dict(zip(cols, r, strict=True)) for r in table.rows}
    assert set(got) == set(expected)
    for province, points in expected.items():
        row = got[province]
        assert row["max_points"] == 52
        assert row["total"] == points["total"]
        for item in ALL_ITEMS:
            if denominators[province][item.denominator] == 0:
                assert row[item.column] is None, (province, item.item)  # no data, not 0 points
            else:
                assert row[item.column] == points[item.column], (province, item.item)
    ranking = sorted(expected, key=lambda p: (-unrounded[p], p))
    assert [r[cols.index("province_code")] for r in sorted(table.rows, key=lambda r: r[0])] == ranking
    assert any("3.5a and 3.5b: their definitions are assumptions" in n for n in table.notes)
    assert not any(n.startswith("not computed: 3.") for n in table.notes)

    # --rule reaches the catalog items too: 3.5a linear for 25 is 2 x 2/3
    out = orjson.loads(run(env, "query", "index", "--month", "2026-05", "--rule", "3.5a=linear", "-f", "json").stdout)
    row25 = next(r for r in out["rows"] if r["province_code"] == "25")
    assert row25["i3_5a_payment_integrated"] == round(2 * 2 / 3, 2)


def test_a_change_mid_month_leaves_the_previous_month_unchanged(
    env: dict[str, str], module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    load_events(module_client, fresh_db, tmp_path)
    path = tmp_path / "catalog.csv"
    path.write_text(catalog_csv(), encoding="utf-8")
    run(env, "catalog", "load", str(path), "--no-publish")
    history = History(module_client, database=fresh_db)
    may_before = history.index766(period=MAY)
    idle_before = history.idle_procedures(period=MAY)
    june_change = tmp_path / "june.csv"
    header, *_ = catalog_csv().splitlines()
    june_change.write_text(
        f"{header}\n"
        "25,1.000003,Thủ tục 1.000003,province,none,false,false,2026-06-15,\n"
        "25,1.000001,Thủ tục 1.000001,province,full,true,false,2026-06-15,\n",
        encoding="utf-8",
    )
    diff = orjson.loads(run(env, "catalog", "diff", str(june_change), "-f", "json").stdout)
    assert [(r["change"], r["procedure_code"], r["fields"]) for r in diff["rows"]] == [
        ("changed", "1.000001", "payment_integrated: true → false"),
        ("changed", "1.000003", "online_level: full → none"),
    ]
    summary = orjson.loads(run(env, "catalog", "load", str(june_change), "--no-publish", "-f", "json").stdout)
    assert summary == {
        "rows": 2,
        "written": 4,
        "added": 0,
        "changed": 2,
        "ended": 0,
        "published": 0,
        "topic": None,
    }  # two new versions, and the two they close
    assert history.index766(period=MAY).rows == may_before.rows
    assert history.idle_procedures(period=MAY).rows == idle_before.rows

    def on(day: str) -> dict[str, str]:
        shown = orjson.loads(run(env, "catalog", "show", "-p", "25", "--date", day, "-f", "json").stdout)
        return {r["procedure_code"]: r["online_level"] for r in shown["rows"]}

    assert on("2026-06-14")["1.000003"] == "full" and on("2026-06-15")["1.000003"] == "none"
    between = orjson.loads(
        run(env, "catalog", "diff", "--from", "2026-06-14", "--to", "2026-06-15", "-f", "json").stdout
    )
    assert [(r["change"], r["procedure_code"]) for r in between["rows"]] == [
        ("changed", "1.000001"),
        ("changed", "1.000003"),
    ]


def test_idle_procedures_per_province(
    env: dict[str, str], module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    events = load_events(module_client, fresh_db, tmp_path)
    path = tmp_path / "catalog.csv"
    path.write_text(catalog_csv(), encoding="utf-8")
    run(env, "catalog", "load", str(path), "--no-publish")
    out = orjson.loads(run(env, "query", "idle-procedures", "--period", "2026-05", "-f", "json").stdout)
    got = [(r["province_code"], r["procedure_code"]) for r in out["rows"]]
    in_may = {
        (e.province_code, e.procedure_code)
        for e in events
        if e.event_type == "application.submitted" and e.channel == "online" and MAY.start <= local_day(e) < MAY.end
    }
    expected = sorted(
        (c.province_code, c.procedure_code)
        for c in entries_of(catalog_csv())
        if c.is_online and c.in_force_during(MAY.start, MAY.end) and (c.province_code, c.procedure_code) not in in_may
    )
    assert got == expected == [("01", "1.000006"), ("25", "1.000003"), ("25", "1.000008")]
    one = orjson.loads(run(env, "query", "idle-procedures", "--period", "2026-05", "-p", "01", "-f", "json").stdout)
    assert [r["procedure_code"] for r in one["rows"]] == ["1.000006"]
    assert "01 Hà Nội: 1 of 2 online procedures idle" in one["notes"]


def test_bad_rows_are_all_reported_and_nothing_is_stored(
    env: dict[str, str], module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    header, *rows = catalog_csv().splitlines()
    path = tmp_path / "bad.csv"
    path.write_text(
        "\n".join(
            [
                header,
                rows[0],
                "25,1.00001,Thủ tục,province,full,true,true,2026-01-01,",
                "25,1.000002,Liên hệ 0912345678,province,full,true,true,2026-01-01,",
                "25,1.000003,Thủ tục,province,full,yes,true,2026-01-01,",
                "25,1.000004,Thủ tục,province,full,true,true,2026-02-01,2026-01-01",
                "99,1.000005,Thủ tục,province,full,true,true,2026-01-01,",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = run(env, "catalog", "load", str(path), "--no-publish", code=1)
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"psmon: {path}:3: procedure_code: bad format; allowed: the national procedure code, a digit, a dot and six "
        "digits (1.001234, 2.000123), optionally a suffix (2.000889.000.00.00.H56), at most 32 characters",
        f"psmon: {path}:4: name: holds personal data (phone number); catalog rows carry none",
        f"psmon: {path}:5: fee_bearing: allowed values: true, false, 1, 0 (CSV text)",
        f"psmon: {path}:6: valid_to: must be after valid_from (2026-02-01); it is the exclusive end",
        f"psmon: {path}:7: province_code: unknown; allowed: one of the 34 province codes or an old 63-province code",
        f"psmon: {path}: 5 bad rows; nothing loaded",
    ]
    assert "0912345678" not in result.output
    assert module_client.query(f"SELECT count() FROM {fresh_db}.procedure_catalog").result_rows[0][0] == 0
    assert run(env, "catalog", "diff", str(path), code=1).stderr.count("\n") == 6  # diff validates the same way


def test_load_show_diff_round_trip_through_csv_jsonl_and_parquet(
    env: dict[str, str], module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    source = tmp_path / "catalog.csv"
    source.write_text(catalog_csv(), encoding="utf-8")
    assert run(env, "catalog", "diff", str(source), "-f", "json").stdout.count('"added"') == len(CATALOG)
    first = orjson.loads(run(env, "catalog", "load", str(source), "--no-publish", "-f", "json").stdout)
    assert (first["written"], first["added"]) == (len(CATALOG), len(CATALOG))
    # every version, as CSV, JSONL (from -f json rows) and Parquet: each loads back as no change
    as_csv, as_parquet, as_jsonl = tmp_path / "all.csv", tmp_path / "all.parquet", tmp_path / "all.jsonl"
    run(env, "catalog", "show", "--all", "-f", "csv", "-o", str(as_csv))
    run(env, "catalog", "show", "--all", "-f", "parquet", "-o", str(as_parquet))
    shown = orjson.loads(run(env, "catalog", "show", "--all", "-f", "json").stdout)["rows"]
    as_jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in shown))
    assert len(shown) == len(CATALOG) and pq.read_table(as_parquet).num_rows == len(CATALOG)
    for path in (as_csv, as_jsonl, as_parquet):
        assert "nothing to change" in run(env, "catalog", "diff", str(path)).stdout
        again = orjson.loads(run(env, "catalog", "load", str(path), "--no-publish", "-f", "json").stdout)
        assert (again["rows"], again["written"]) == (len(CATALOG), 0), path
    assert {(r["province_code"], r["procedure_code"]) for r in shown} == {
        (e.province_code, e.procedure_code) for e in entries_of(catalog_csv())
    }
    # the catalog of a day: 25/1.000008 ended on 10 May, 1.000009 starts in June
    may_20 = orjson.loads(run(env, "catalog", "show", "--date", "2026-05-20", "-p", "25", "-f", "json").stdout)["rows"]
    assert {r["procedure_code"] for r in may_20} == {
        "1.000001",
        "1.000002",
        "1.000003",
        "1.000004",
        "2.000005",
        "1.000010",
    }


def test_read_commands_create_no_database(tmp_path: Path) -> None:
    env = {"PSMON_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'none'}"}
    result = run(env, "catalog", "show", code=1)
    assert "no such directory" in result.stderr
    assert not (tmp_path / "none").exists()


def test_load_publishes_the_newest_version_per_key(env: dict[str, str], kafka_bootstrap: str, tmp_path: Path) -> None:
    kafka_env = {**env, "PSMON_KAFKA_BOOTSTRAP": kafka_bootstrap, "PSMON_TOPIC_PARTITIONS": "2"}
    topic = f"{env['PSMON_TOPIC_PREFIX']}.catalog"
    source, change = tmp_path / "catalog.csv", tmp_path / "change.csv"
    source.write_text(catalog_csv(), encoding="utf-8")
    header = catalog_csv().splitlines()[0]
    change.write_text(
        f"{header}\n25,1.000003,Thủ tục 1.000003,province,none,false,false,2026-06-15,\n", encoding="utf-8"
    )
    summary = orjson.loads(run(kafka_env, "catalog", "load", str(source), "-f", "json").stdout)
    assert (summary["published"], summary["topic"]) == (len(CATALOG), topic)
    assert orjson.loads(run(kafka_env, "catalog", "load", str(change), "-f", "json").stdout)["published"] == 1
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(2)])
    consumer.seek_to_beginning()
    latest: dict[str, CatalogEntry] = {}
    seen = 0

    def read() -> bool:
        nonlocal seen
        for batch in consumer.poll(timeout_ms=500).values():
            for m in batch:  # one key is on one partition, in order: the last record is its newest
                latest[m.key.decode()] = decode_entry(m.value)
                seen += 1
        return seen >= len(CATALOG) + 1

    try:
        wait_until(read, timeout_s=60, interval_s=0, what=f"{len(CATALOG) + 1} catalog records on {topic}")
    finally:
        consumer.close()
    expected = {e.key: e for e in entries_of(catalog_csv())}
    expected["25/1.000003"] = entries_of(change.read_text(encoding="utf-8"))[0]
    assert latest == expected


def test_an_unreachable_broker_stores_nothing(
    env: dict[str, str], module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    source = tmp_path / "catalog.csv"
    source.write_text(catalog_csv(), encoding="utf-8")
    refused = {**env, "PSMON_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # nothing listens on port 1
    result = CliRunner().invoke(app, ["catalog", "load", str(source)], env=refused)
    assert isinstance(result.exception, BrokerError), result.output  # `psmon` prints it as one line
    assert module_client.query(f"SELECT count() FROM {fresh_db}.procedure_catalog").result_rows[0][0] == 0
