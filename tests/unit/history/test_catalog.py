"""Catalog versions: how a load merges with what is stored, and what diff says it changes."""

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from psmon.history.catalog import diff_dates, diff_load, plan_load, read_catalog_file
from psmon.history.sources import SourceError
from psmon.schemas.catalog import CatalogEntry


def entry(
    code: str = "1.000001", start: date = date(2026, 1, 1), end: date | None = None, **kw: object
) -> CatalogEntry:
    fields: dict[str, object] = {
        "name": "Thủ tục",
        "level": "province",
        "online_level": "full",
        "fee_bearing": False,
        "payment_integrated": False,
    }
    fields.update(kw)
    return CatalogEntry("25", code, valid_from=start, valid_to=end, **fields)  # type: ignore[arg-type]


def test_first_load_writes_every_row_and_a_second_nothing() -> None:
    rows = [entry(), entry("1.000002")]
    plan = plan_load([], rows)
    assert plan.writes == rows and plan.newest == rows
    assert [r[0] for r in diff_load(plan).rows] == ["added", "added"]
    again = plan_load(rows, rows)
    assert again.writes == [] and diff_load(again).rows == []
    assert again.newest == rows  # still published: compaction makes it harmless


def test_a_new_version_closes_the_previous_at_its_start() -> None:
    old = entry()
    new = entry(start=date(2026, 5, 15), online_level="none")
    plan = plan_load([old], [new])
    assert plan.writes == [entry(end=date(2026, 5, 15)), new]
    assert plan.newest == [new]
    (row,) = diff_load(plan).rows  # the closed version is part of the change, not listed apart
    assert row[0] == "changed" and row[3] == date(2026, 5, 15) and row[5] == "online_level: full → none"


def test_an_older_row_loaded_late_ends_where_the_stored_one_starts() -> None:
    stored = entry(start=date(2026, 3, 1))
    late = entry(start=date(2026, 1, 1), fee_bearing=True)
    plan = plan_load([stored], [late])
    assert plan.writes == [entry(start=date(2026, 1, 1), end=date(2026, 3, 1), fee_bearing=True)]
    assert plan.newest == [stored]


def test_a_correction_replaces_the_version_with_the_same_start() -> None:
    plan = plan_load([entry()], [entry(name="Tên mới", payment_integrated=True)])
    (row,) = diff_load(plan).rows
    assert row[0] == "changed" and row[5] == "name; payment_integrated: false → true"


def test_setting_an_end_is_ended() -> None:
    plan = plan_load([entry()], [entry(end=date(2026, 7, 1))])
    (row,) = diff_load(plan).rows
    assert (row[0], row[4], row[5]) == ("ended", date(2026, 7, 1), "valid_to: open → 2026-07-01")


def test_diff_between_dates() -> None:
    before = [entry("1.000001"), entry("1.000002")]
    after = [entry("1.000002", online_level="partial"), entry("1.000003")]
    table = diff_dates(before, after, date(2026, 1, 1), date(2026, 6, 1))
    assert [(r[0], r[2]) for r in table.rows] == [("ended", "1.000001"), ("changed", "1.000002"), ("added", "1.000003")]
    assert table.title.endswith("1 added, 1 changed, 1 ended")


HEADER = "province_code,procedure_code,name,level,online_level,fee_bearing,payment_integrated,valid_from,valid_to"


def test_csv_rows_are_text_typed_and_lines_count_the_header(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        f"{HEADER}\n"
        "26,1.000001,Cấp phép,province,full,1,true,2026-01-01,\n"
        "25,1.000002,Cấp phép,province,half,0,false,2026-01-01,\n"
        "25,1.000003,Cấp phép,province,full,0,false,2026-01-01,,extra\n",
        encoding="utf-8",
    )
    entries, errors = read_catalog_file(path)
    assert entries == [entry(name="Cấp phép", fee_bearing=True, payment_integrated=True)]  # 26 -> 25
    assert [(e.line, e.field) for e in errors] == [(3, "online_level"), (4, "(cells beyond the header)")]
    assert str(errors[0]).startswith(f"{path}:3: online_level: allowed values: full, partial, none")


def test_jsonl_lines_and_parquet_rows(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        '{"province_code":"25","procedure_code":"1.000001","name":"Thủ tục","level":"province",'
        '"online_level":"full","fee_bearing":false,"payment_integrated":false,"valid_from":"2026-01-01"}\n'
        "not json\n",
        encoding="utf-8",
    )
    entries, errors = read_catalog_file(jsonl)
    assert entries == [entry()] and [(e.line, e.field) for e in errors] == [(2, "row")]
    parquet = tmp_path / "c.parquet"
    table = pa.table(
        {
            "province_code": ["25"],
            "procedure_code": ["1.000001"],
            "name": ["Thủ tục"],
            "level": ["province"],
            "online_level": ["full"],
            "fee_bearing": [False],
            "payment_integrated": [False],
            "valid_from": pa.array([date(2026, 1, 1)], pa.date32()),
            "valid_to": pa.array([None], pa.date32()),
        }
    )
    pq.write_table(table, parquet)
    assert read_catalog_file(parquet) == ([entry()], [])


def test_unreadable_files_are_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.csv"
    bad.write_bytes(HEADER.encode() + b"\n\xff\n")
    with pytest.raises(SourceError, match="not UTF-8"):
        read_catalog_file(bad)
    fake = tmp_path / "c.parquet"
    fake.write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read_catalog_file(fake)
