import orjson

from psmon.history.tables import ResultTable, render

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
