"""`psmon replay` writes each batch on a writer thread while it validates the next one: the
at-most-once check must still see every earlier batch, so an event repeated a few batches later
is stored once, as its first copy, exactly as when the writes were made in turn. Real chDB."""

from pathlib import Path

import orjson

from psmon.history.replay import replay_files
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter

EVENT = {
    "event_id": "r-0",
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


def test_an_event_repeated_in_a_later_batch_is_stored_once_as_its_first_copy(
    module_client: Client, fresh_db: str, tmp_path: Path
) -> None:
    # 60 events, each sent twice: the copy (another dossier) 7 rows later, so in a later batch
    # of 5 rows, often the very next one, whose write follows the first copy's immediately.
    rows: list[dict[str, object]] = []
    for i in range(60):
        rows.append({**EVENT, "event_id": f"r-{i}", "dossier_id": f"first-{i}"})
        if i >= 7:
            rows.append({**EVENT, "event_id": f"r-{i - 7}", "dossier_id": f"copy-{i - 7}"})
    for i in range(53, 60):
        rows.append({**EVENT, "event_id": f"r-{i}", "dossier_id": f"copy-{i}"})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    migrate(module_client, fresh_db)

    stats = replay_files([path], writer=ClickHouseWriter(module_client, database=fresh_db), batch_rows=5)

    assert (stats.rows, stats.valid, stats.inserted, stats.already_stored) == (120, 120, 60, 60)
    stored = module_client.query(f"SELECT event_id, dossier_id FROM {fresh_db}.events").result_rows
    assert sorted(stored) == sorted((f"r-{i}", f"first-{i}") for i in range(60))  # raw rows: no FINAL
    daily = module_client.query(f"SELECT count() FROM {fresh_db}.events FINAL").result_rows
    assert daily == [(60,)]
