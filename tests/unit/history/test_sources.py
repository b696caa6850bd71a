"""File readers: every format yields the message bytes a portal would have sent."""

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from psmon.history.sources import SourceError, read_messages, size_hint
from psmon.schemas.validation import ValidEvent, validate_event

EVENT = {
    "event_id": "e-1",
    "event_type": "application.submitted",
    "schema_version": 1,
    "occurred_at": "2025-06-30T09:00:00+07:00",
    "province_code": "80",
    "level": "district",
    "procedure_code": "1.004227",
    "dossier_id": "D-1",
    "channel": "online",
    "service_mode": "full_online",
    "fee_bearing": False,
}


def test_jsonl_passes_lines_through_and_skips_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(orjson.dumps(EVENT) + b"\n\n{bad\n")
    seen: list[int] = []
    rows = list(read_messages(f, progress=seen.append))
    assert rows == [(1, orjson.dumps(EVENT)), (3, b"{bad")]
    assert sum(seen) == size_hint(f)


def test_csv_cells_are_typed_as_the_contract_wants(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    header = ",".join(EVENT)
    values = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in EVENT.values())
    f.write_text(f"{header},amount_vnd\n{values},\n", encoding="utf-8")
    ((row, message),) = list(read_messages(f))
    assert row == 1
    assert orjson.loads(message) == EVENT  # schema_version int, fee_bearing bool, empty cell left out
    v = validate_event(message)
    assert isinstance(v, ValidEvent) and v.province_code == "80" and v.raw_province_code == "80"


def test_csv_keeps_untypable_cells_as_text_so_validation_rejects_them(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text("schema_version,fee_bearing\n1.0,yes\n", encoding="utf-8")
    ((_, message),) = list(read_messages(f))
    assert orjson.loads(message) == {"schema_version": "1.0", "fee_bearing": "yes"}


def test_parquet_rows_with_timestamps_and_nulls(tmp_path: Path) -> None:
    f = tmp_path / "e.parquet"
    rows = [
        {**EVENT, "occurred_at": datetime(2025, 6, 30, 2, 0, tzinfo=UTC), "amount_vnd": None},
        {**EVENT, "event_id": "e-2", "occurred_at": datetime(2025, 7, 1, 2, 0, tzinfo=UTC), "amount_vnd": None},
    ]
    pq.write_table(pa.Table.from_pylist(rows), f)
    assert size_hint(f) == 2
    out = [orjson.loads(m) for _, m in read_messages(f)]
    assert out[0]["occurred_at"] == "2025-06-30T02:00:00Z"
    assert "amount_vnd" not in out[0]
    assert [o["event_id"] for o in out] == ["e-1", "e-2"]


def test_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"\.jsonl, \.csv or \.parquet"):
        list(read_messages(tmp_path / "events.xlsx"))
