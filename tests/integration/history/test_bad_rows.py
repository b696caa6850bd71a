"""A backfill fails per row, never per file, and a dead letter is one row whatever path brought it.

Real chDB, the sink's writer and stage 1's dead-letter encoding: an adversarial review found
that one bad CSV field or Parquet column ended `psmon replay` with a traceback (nothing before it
written), that two files named alike in different folders shared dead-letter ids and insert
tokens (one file's dead letters were dropped), and that a backfill overlapping what Kafka had
delivered stored every dead letter twice, because the ids came from the source coordinates.
"""

import decimal
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from psmon.history.replay import replay_files
from psmon.schemas.dead_letter import decode_dead_letter, encode_dead_letter
from psmon.schemas.validation import Invalid, validate_event
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from tests.integration.history.dataset import Dataset

EVENT = {
    "event_id": "g-0",
    "event_type": "application.submitted",
    "schema_version": 1,
    "occurred_at": "2025-07-02T09:00:00+07:00",
    "province_code": "79",
    "level": "commune",
    "procedure_code": "1.004227",
    "dossier_id": "D-1",
    "channel": "online",
    "service_mode": "full_online",
    "fee_bearing": False,
}


def _good(i: int) -> dict[str, object]:
    return {**EVENT, "event_id": f"g-{i}", "dossier_id": f"D-{i}"}


def _csv_row(event: dict[str, object]) -> bytes:
    return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in event.values()).encode()


def _letters(client: Client, db: str) -> list[tuple[str, str]]:
    return [
        (str(i), str(r))
        for i, r in client.query(f"SELECT dead_letter_id, reason FROM {db}.dead_letters FINAL").result_rows
    ]


def _event_ids(client: Client, db: str) -> set[str]:
    return {str(r[0]) for r in client.query(f"SELECT event_id FROM {db}.events").result_rows}


def test_bad_csv_and_parquet_rows_are_dead_letters_and_every_good_row_is_loaded(
    module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "e.csv"
    rows = [",".join(EVENT).encode()]
    rows += [_csv_row(_good(i)) for i in range(4)]
    rows.append(b"w" * 200_000)  # a field over the csv module's 128 KiB limit: too_large
    rows += [_csv_row(_good(i)) for i in range(4, 6)]
    rows.append(_csv_row({**_good(99), "dossier_id": "@"}).replace(b"@", b"\xff"))  # not UTF-8
    rows.append(b"g-98,a\rb")  # the csv module cannot parse it
    rows.append(_csv_row(_good(97)) + b",surplus")  # a cell beyond the header
    rows += [_csv_row(_good(i)) for i in range(6, 9)]
    csv_file.write_bytes(b"\n".join(rows) + b"\n")
    parquet = tmp_path / "e.parquet"
    amounts = [None, decimal.Decimal("1500.00"), None]
    pq.write_table(
        pa.table(
            {
                **{k: pa.array([v] * 3) for k, v in EVENT.items()},
                "event_id": pa.array(["p-0", "p-1", "p-2"]),
                "amount_vnd": pa.array(amounts, pa.decimal128(10, 2)),
            }
        ),
        parquet,
    )
    migrate(module_client, fresh_db)
    writer = ClickHouseWriter(module_client, database=fresh_db)

    stats = replay_files([csv_file, parquet], writer=writer, batch_rows=3)

    assert _event_ids(module_client, fresh_db) == {f"g-{i}" for i in range(9)} | {"p-0", "p-2"}
    reasons = sorted(r for _, r in _letters(module_client, fresh_db))
    assert reasons == ["invalid_value", "malformed_json", "malformed_json", "too_large", "unknown_field"]
    assert (stats.rows, stats.valid, stats.inserted, stats.invalid) == (16, 11, 11, 5)


def _bad_jsonl(path: Path, marker: str) -> list[bytes]:
    """Two good events and two bad lines, all of them naming `marker`."""
    lines = [
        orjson.dumps({**_good(0), "event_id": f"{marker}-0"}),
        orjson.dumps({**_good(1), "event_id": f"{marker}-1", "province_code": "99"}),  # unknown_province
        orjson.dumps({**_good(2), "event_id": f"{marker}-2"}),
        f'{{"event_id": "{marker}-3", '.encode(),  # malformed_json
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def test_files_with_the_same_name_in_different_folders_keep_their_own_dead_letters(
    module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "north" / "events.jsonl", tmp_path / "south" / "events.jsonl"
    _bad_jsonl(first, "n")
    _bad_jsonl(second, "s")
    migrate(module_client, fresh_db)
    writer = ClickHouseWriter(module_client, database=fresh_db)

    replay_files([first, second], writer=writer, batch_rows=100)
    replay_files([second], writer=writer, batch_rows=2)  # again, in other batches: nothing new

    assert _event_ids(module_client, fresh_db) == {"n-0", "n-2", "s-0", "s-2"}
    assert sorted(r for _, r in _letters(module_client, fresh_db)) == [
        "malformed_json",
        "malformed_json",
        "unknown_province",
        "unknown_province",
    ]


def test_a_backfill_overlapping_kafka_stores_each_dead_letter_once(
    module_client: Client, fresh_db: str, dataset: Dataset, tmp_path: Path
) -> None:
    """Part of the generated history (bad rows of every reason) reached the sink through Kafka;
    then the whole part is backfilled, from two folders. Each bad payload is one row."""
    lines = dataset.path.read_bytes().splitlines()[:1500]  # as the portals sent them
    part = tmp_path / "history.jsonl"
    part.write_bytes(b"\n".join(lines) + b"\n")
    copy = tmp_path / "copy" / part.name
    copy.parent.mkdir()
    copy.write_bytes(part.read_bytes())
    migrate(module_client, fresh_db)
    writer = ClickHouseWriter(module_client, database=fresh_db)
    # Stage 1 on Kafka: validate with the record timestamp, encode the dead-letter record; the
    # sink decodes `psmon.dead-letter` and writes it (months before the backfill: other partition).
    now_s = time.time()
    kafka_ts_ms = int((now_s - 90 * 86400) * 1000)
    records = []
    for offset, line in enumerate(lines[:1000]):
        verdict = validate_event(line, record_ts_s=kafka_ts_ms / 1000, now_s=now_s)
        if isinstance(verdict, Invalid):
            raw = encode_dead_letter(verdict, src_partition=offset % 4, src_offset=offset, src_ts_ms=kafka_ts_ms)
            records.append(decode_dead_letter(raw))
    writer.write_dead_letters(records, token=f"psmon.dead-letter/0:0-{len(records)}")
    from_kafka = len(_letters(module_client, fresh_db))

    first = replay_files([part], writer=writer, batch_rows=500)
    again = replay_files([copy], writer=writer, batch_rows=377)

    bad = {hashlib.sha256(line).digest() for line in lines if isinstance(validate_event(line), Invalid)}
    stored = _letters(module_client, fresh_db)
    assert 0 < from_kafka < len(bad) == first.invalid == again.invalid
    assert len(stored) == len({i for i, _ in stored}) == len(bad)
    assert first.inserted > len(bad) and again.inserted == 0  # mostly good events, loaded once


def test_an_unreadable_csv_header_is_one_line_in_validate_and_replay(tmp_path: Path) -> None:
    """A file that cannot be read at all (its header is not UTF-8) ends the command in one line;
    a missing file does too (tests/integration/cli/test_errors.py)."""
    path = tmp_path / "e.csv"
    path.write_bytes(b"event_\xffid,level\ne-1,commune\n")
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    for command in (["validate"], ["replay", "--no-progress", "--clickhouse", dsn]):
        proc = subprocess.run(
            [sys.executable, "-m", "psmon.cli.main", *command, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith(f"psmon: {path}: the CSV header line cannot be read: not valid UTF-8")
        assert proc.stderr.count("\n") == 1, proc.stderr
