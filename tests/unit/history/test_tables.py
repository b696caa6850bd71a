"""Renderings of a `ResultTable`: shares and missing values, and stored values shown as data
(rich markup, emoji codes, terminal controls, spreadsheet formulas)."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from psmon.history.tables import ResultTable, csv_cell, local_time, render, to_parquet
from psmon.timeutil import LOCAL_TZ

TABLE = ResultTable(
    title="t",
    columns=["period", "province", "numerator", "denominator", "ratio"],
    rows=[("2025-07", "Hà Nội", 3, 4, 0.75), ("2025-07", "Huế", 0, 0, None)],
    notes=["a note"],
)


def test_csv_keeps_ratios_as_shares_and_missing_as_empty() -> None:
    assert render(TABLE, "csv").splitlines() == [
        "period,province,numerator,denominator,ratio",
        "2025-07,Hà Nội,3,4,0.75",
        "2025-07,Huế,0,0,",
    ]


def test_json_has_rows_as_objects_and_null_for_missing() -> None:
    body = orjson.loads(render(TABLE, "json"))
    assert body["rows"][1] == {"period": "2025-07", "province": "Huế", "numerator": 0, "denominator": 0, "ratio": None}
    assert body["notes"] == ["a note"]


def test_table_shows_percentages_and_notes() -> None:
    text = render(TABLE, "table")
    assert "75.00%" in text and "–" in text and "a note" in text


# -- stored values are data, never markup or formulas ---------------------------------------
def test_table_renders_rich_markup_and_emoji_codes_literally() -> None:
    stored = ResultTable(
        title="letters [bold]of[/bold] :x:",
        columns=["reason", "detail", "[red]n"],
        rows=[("invalid_value", "[/bold] closes nothing", 1), ("unknown_field", ":x: [link=http://x]y[/link]", 2)],
        notes=["[/i] :x:"],
    )
    text = render(stored, "table")
    for literal in ("letters [bold]of[/bold] :x:", "[red]n", "[/bold] closes nothing", ":x: [link=http://x]y[/link]"):
        assert literal in text
    assert text.splitlines()[-1] == "[/i] :x:"
    assert "❌" not in text


def test_table_shows_control_characters_as_escapes() -> None:
    stored = ResultTable(title="t", columns=["detail"], rows=[("\x1b[31mred\x1b[0m\x07",)])
    text = render(stored, "table")
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[31mred\\x1b[0m\\x07" in text


@pytest.mark.parametrize(
    "formula", ['=HYPERLINK("http://x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"]
)
def test_csv_neutralises_formula_cells(formula: str) -> None:
    stored = ResultTable(title="", columns=["detail"], rows=[(formula,)])
    (cell,) = next(csv.reader(io.StringIO(render(stored, "csv").split("\n", 1)[1])))
    assert cell == "'" + formula


def test_csv_keeps_numbers_and_plain_text() -> None:
    stored = ResultTable(
        title="",
        columns=["=header", "n", "x", "numeric_text", "text", "ratio"],
        rows=[("a", -1, -1.5, "-1.5", "Hà Nội = 1", None), ("b", Decimal("-2.25"), 3.0, "+4e3", "a-b", 0.5)],
    )
    assert render(stored, "csv").splitlines() == [
        "'=header,n,x,numeric_text,text,ratio",
        "a,-1,-1.5,-1.5,Hà Nội = 1,",
        "b,-2.25,3.0,+4e3,a-b,0.5",
    ]


@pytest.mark.parametrize(
    ("value", "expected"), [(-7, -7), (-0.5, -0.5), ("-", "'-"), ("-x", "'-x"), ("=", "'="), ("", "")]
)
def test_csv_cell(value: object, expected: object) -> None:
    assert csv_cell(value) == expected


def test_csv_quotes_a_carriage_return_inside_a_cell() -> None:
    # a bare CR starts a new row in spreadsheets, where `=1+1` would then begin a cell
    stored = ResultTable(title="", columns=["detail", "n"], rows=[("x\r=1+1", 1)])
    assert render(stored, "csv") == 'detail,n\n"x\r=1+1",1'
    assert list(csv.reader(io.StringIO(render(stored, "csv"), newline=""))) == [["detail", "n"], ["x\r=1+1", "1"]]


# -- empty answers and times ----------------------------------------------------------------
EMPTY = ResultTable(title="dead letters", columns=["dead_letter_id", "received_at"], rows=[], empty="no dead letters")


def test_an_empty_table_is_its_one_line_in_the_terminal() -> None:
    assert render(EMPTY, "table") == "no dead letters"
    assert render(ResultTable(title="t", columns=["a"], rows=[]), "table") == "no rows"


def test_an_empty_table_keeps_its_shape_for_programs() -> None:
    assert render(EMPTY, "csv") == "dead_letter_id,received_at"
    assert orjson.loads(render(EMPTY, "json"))["rows"] == []


def test_times_are_shown_in_vietnam_with_their_offset() -> None:
    utc_naive = datetime(2026, 11, 24, 2, 0, 0, 123000)  # as ClickHouse returns a UTC column
    saigon = datetime(2026, 11, 24, 9, 0, tzinfo=LOCAL_TZ)
    table = ResultTable(title="t", columns=["id", "received_at"], rows=[("a", utc_naive), ("b", saigon)])
    text = render(table, "table")
    assert text.count("2026-11-24 09:00:00+07:00") == 2
    assert local_time(utc_naive) == "2026-11-24 09:00:00+07:00"
    rows = list(csv.reader(io.StringIO(render(table, "csv"))))[1:]
    assert [datetime.fromisoformat(r[1]) for r in rows] == [utc_naive.replace(tzinfo=UTC), saigon]
    # for programs: UTC marked Z, never a bare time
    assert [r[1] for r in rows] == ["2026-11-24T02:00:00.123000Z", "2026-11-24T02:00:00Z"]
    body = orjson.loads(render(table, "json"))
    assert [r["received_at"] for r in body["rows"]] == ["2026-11-24T02:00:00.123000Z", "2026-11-24T02:00:00Z"]


# -- Parquet: the rows of CSV and JSON, typed ---------------------------------------------------
def test_parquet_round_trips_with_typed_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    naive_utc = datetime(2026, 11, 24, 2, 0)  # ClickHouse hands UTC back without a zone
    table = ResultTable(
        title="rates",
        columns=["at", "day", "province", "numerator", "ratio", "amount", "big", "ok", "none"],
        rows=[
            (naive_utc, date(2026, 11, 24), "Hà Nội", 3, 0.75, Decimal("1.5"), 2**64 - 1, True, None),
            (datetime(2026, 11, 24, 9, 0, tzinfo=LOCAL_TZ), None, "Huế", None, None, 2, 0, False, None),
        ],
        notes=["a note"],
    )
    path = tmp_path / "out.parquet"
    to_parquet(table, path)
    read = pq.read_table(path)
    assert read.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert read.schema.field("day").type == pa.date32()
    assert read.schema.field("province").type == pa.string()
    assert read.schema.field("numerator").type == pa.int64()
    assert read.schema.field("ratio").type == pa.float64()
    assert read.schema.field("amount").type == pa.float64()
    assert read.schema.field("big").type == pa.uint64()
    assert read.schema.field("ok").type == pa.bool_()
    rows = read.to_pylist()
    assert rows[0]["at"] == naive_utc.replace(tzinfo=UTC) and rows[1]["at"] == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert [r["numerator"] for r in rows] == [3, None] and [r["ratio"] for r in rows] == [0.75, None]
    assert [r["province"] for r in rows] == ["Hà Nội", "Huế"] and rows[0]["big"] == 2**64 - 1
    # the same rows as JSON
    as_json = orjson.loads(render(table, "json"))["rows"]
    assert [r["province"] for r in as_json] == [r["province"] for r in rows]
    assert read.schema.metadata[b"psmon.title"] == b"rates"
    assert orjson.loads(read.schema.metadata[b"psmon.notes"]) == ["a note"]


def test_parquet_of_an_empty_table_keeps_its_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "empty.parquet"
    to_parquet(ResultTable(title="t", columns=["a", "b"], rows=[]), path)
    read = pq.read_table(path)
    assert read.column_names == ["a", "b"] and read.num_rows == 0


def test_parquet_is_never_rendered_as_text() -> None:
    with pytest.raises(ValueError, match="binary"):
        render(TABLE, "parquet")
