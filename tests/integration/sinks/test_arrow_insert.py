"""The writer's Arrow INSERT stores exactly what a plain clickhouse-connect insert of `event_row`
rows stores (every column, its type, and the rollups fed from it), and its "already stored?"
query, whose ids travel as one literal, finds ids of any content. Real chDB."""

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import msgspec
import pytest

from psmon.schemas.dead_letter import unstorable_letter
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent
from psmon.sinks.clickhouse.client import Client, connect
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import (
    EVENT_COLUMNS,
    ClickHouseWriter,
    EventTable,
    event_row,
    event_table,
    string_array,
    write_isolating,
)

INT64_MAX = 2**63 - 1
POISON = 777_777_777  # an amount the store of the isolation test refuses (a CHECK constraint)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    c = connect(f"chdb://{tmp_path_factory.mktemp('ch') / 'clickhouse'}")
    try:
        yield c
    finally:
        c.close()


def database(client: Client) -> str:
    name = "t" + uuid.uuid4().hex[:10]
    migrate(client, name)
    return name


def records(n: int, *, event_id: str = "e-{i}") -> list[ValidRecord]:
    rng = random.Random(7)
    # four years: under the 100 monthly partitions one INSERT may touch
    lo, hi = datetime(2024, 1, 1, tzinfo=UTC).timestamp(), datetime(2028, 1, 1, tzinfo=UTC).timestamp()
    out = []
    for i in range(n):
        occurred = rng.choice([rng.uniform(lo, hi), round(rng.uniform(lo, hi), 6), 1_780_000_000 + i / 1e6 + 0.5e-6])
        event = ValidEvent(
            event_id=event_id.format(i=i),
            event_type=rng.choice(["application.submitted", "payment.completed", "dossier.returned"]),
            occurred_at_s=occurred,
            province_code=rng.choice(["01", "79", "48"]),
            raw_province_code=rng.choice(["01", "79", "33"]),
            level=rng.choice(["province", "commune"]),
            procedure_code="1.004227",
            dossier_id=f"D-{i}",
            agency_code=rng.choice([None, "AG-1"]),
            commune_code=rng.choice([None, "00001"]),
            source_system=rng.choice([None, "dvc", "portal"]),
            channel=rng.choice([None, "online", "counter"]),
            service_mode=rng.choice([None, "full_online"]),
            fee_bearing=rng.choice([None, True, False]),
            on_time=rng.choice([None, True, False]),
            method=rng.choice([None, "card"]),
            amount_vnd=rng.choice([None, 0, 50_000, INT64_MAX, -INT64_MAX - 1]),
            kind=rng.choice([None, "fee"]),
        )
        out.append(
            ValidRecord(event, rng.choice([3, 2**31 + 99, 2**32 - 1]), rng.randrange(2**63), 1_780_000_000_000 + i)
        )
    return out


def contents(client: Client, db: str) -> dict[str, object]:
    """Every stored column of `events` (not `ingested_at`, the insert's time), the column types,
    and the rollups the materialized views filled."""
    columns = ", ".join(EVENT_COLUMNS)
    return {
        "events": client.query(f"SELECT {columns} FROM {db}.events ORDER BY event_id").result_rows,
        "types": client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'events' ORDER BY position"
        ).result_rows,
        **{table: rollup(client, db, table) for table in ("rollup_hour", "rollup_day")},
    }


def rollup(client: Client, db: str, table: str) -> list[tuple[object, ...]]:
    """A rollup's rows, aggregate states finalized (a state is not comparable as it is)."""
    columns = client.query(f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{table}'")
    exprs = [
        f"finalizeAggregation({name})" if type_.startswith("AggregateFunction") else name
        for name, type_ in columns.result_rows
    ]
    return sorted(tuple(row) for row in client.query(f"SELECT {', '.join(exprs)} FROM {db}.{table} FINAL").result_rows)


def test_the_writer_stores_what_a_plain_insert_of_event_rows_stores(client: Client) -> None:
    batch = records(3_000)
    plain, arrow = database(client), database(client)
    client.insert(f"{plain}.events", [event_row(r) for r in batch], column_names=list(EVENT_COLUMNS))

    assert ClickHouseWriter(client, database=arrow).write_events(batch, token="t") == len(batch)

    expected, stored = contents(client, plain), contents(client, arrow)
    assert len(stored["events"]) == len(batch)  # type: ignore[arg-type]
    assert stored["rollup_hour"] and stored["rollup_day"]
    assert stored == expected


ODD = ["a'b", "c\\d", "\\'", "ü ñ 中", "", "{ids:String}", "%s", "$ids$", "tab\there", "x" * 300]


def test_string_array_reads_back_any_strings(client: Client) -> None:
    assert client.query(f"SELECT {string_array(ODD)}").result_rows == [(ODD,)]
    with_newline = [*ODD, "line\nbreak", "\n"]  # the join cannot be split back: element by element
    assert client.query(f"SELECT {string_array(with_newline)}").result_rows == [(with_newline,)]


def test_the_check_finds_stored_ids_of_any_content_in_a_large_batch(client: Client) -> None:
    db = database(client)
    writer = ClickHouseWriter(client, database=db)
    odd = records(len(ODD))
    odd = [
        ValidRecord(msgspec.structs.replace(r.event, event_id=i), r.src_partition, r.src_offset, r.src_ts_ms)
        for r, i in zip(odd, ODD, strict=True)
    ]
    writer.write_events(odd, token="odd")
    # 60,000 ids, beyond ClickHouse's default max_query_size as one literal: the writer raises it
    many = records(60_000, event_id="many-{i}-" + "p" * 20)
    assert writer.write_events(many[:30_000] + odd, token="first") == 30_000

    new, redelivered = writer.partition_batch(many + odd)

    assert [r.event.event_id for r in new] == [r.event.event_id for r in many[30_000:]]
    assert sorted(r.event.event_id for r in redelivered) == sorted([*(r.event.event_id for r in many[:30_000]), *ODD])
    # The same check on the table `psmon replay` hands the writer, whose result is read as Arrow:
    # every stored id comes back as it was, so only the 30,000 new events are written.
    assert writer.write_events(EventTable.of(many + odd), token="second") == 30_000
    assert client.query(f"SELECT count() FROM {db}.events").result_rows == [(60_000 + len(ODD),)]


def test_an_event_table_is_written_like_its_records_and_isolates_a_row_clickhouse_refuses(client: Client) -> None:
    """`psmon replay` hands the writer an `EventTable` (the table built on a worker process): the
    rows stored are those of the plain records, an event already stored is skipped (the table is
    filtered), and a row ClickHouse refuses (here a CHECK constraint of a store narrower than the
    contract) is bisected out alone, rebuilt as a record whose dead letter is the plain one's."""
    batch = records(40)
    # As validation makes it: its time from an ISO string, so in whole microseconds.
    occurred_s = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC).timestamp()
    event = msgspec.structs.replace(batch[17].event, amount_vnd=POISON, occurred_at_s=occurred_s)
    bad = ValidRecord(event, 1, 17, batch[17].src_ts_ms)
    batch[17] = bad
    plain, tabled = database(client), database(client)
    for db in (plain, tabled):  # one event stored before: found, not written again
        ClickHouseWriter(client, database=db).write_events([batch[3]], token="before")
        client.command(f"ALTER TABLE {db}.events ADD CONSTRAINT poison CHECK ifNull(amount_vnd, 0) != {POISON}")

    events = EventTable.of(batch)
    assert isinstance(events, EventTable)
    by_plain, by_table = (
        write_isolating(write_to(client, db), items, "b") for db, items in ((plain, batch), (tabled, events))
    )

    assert (by_plain.written, [x.item for x in by_plain.refused]) == (38, [bad])
    assert by_table.written == 38 and len(by_table.refused) == 1
    rebuilt, error = by_table.refused[0].item, by_table.refused[0].error
    assert rebuilt == bad
    assert unstorable_letter(rebuilt, error=error) == unstorable_letter(bad, error=error)
    assert contents(client, tabled) == contents(client, plain)


def test_records_whose_table_cannot_be_built_stay_records() -> None:
    batch = records(10)
    batch[4] = ValidRecord(msgspec.structs.replace(batch[4].event, amount_vnd=2**63), 1, 4, batch[4].src_ts_ms)
    assert EventTable.of(batch) is batch  # the writer raises the data error and isolates the row


def test_a_slice_of_an_event_table_is_its_part_of_the_table_and_rebuilds_its_records() -> None:
    batch = records(10)
    events = EventTable.of(batch)
    part = events[3:8]
    assert isinstance(part, EventTable) and len(part) == 5
    assert part.table.equals(event_table(batch[3:8]))
    for original, rebuilt in zip(batch[3:8], part, strict=True):
        # every field as it was, the time to the microsecond the table (and ClickHouse) holds
        assert msgspec.structs.replace(rebuilt.event, occurred_at_s=original.event.occurred_at_s) == original.event
        assert abs(rebuilt.event.occurred_at_s - original.event.occurred_at_s) <= 0.5e-6
        assert (rebuilt.src, rebuilt.src_ts_ms) == (original.src, original.src_ts_ms)


def write_to(client: Client, db: str) -> Callable[[Sequence[ValidRecord], str], int]:
    writer = ClickHouseWriter(client, database=db)
    return lambda rows, token: writer.write_events(rows, token=token)
