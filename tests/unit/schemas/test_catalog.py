"""The catalog contract: good rows parse, every bad row gets one error that says where and why."""

from datetime import date
from typing import Any

import pytest

from psmon.schemas.catalog import (
    CatalogEntry,
    CatalogRowError,
    decode_entry,
    encode_entry,
    parse_catalog_rows,
)

GOOD: dict[str, Any] = {
    "province_code": "25",
    "procedure_code": "1.001234",
    "name": "Cấp giấy phép xây dựng",
    "level": "province",
    "online_level": "full",
    "fee_bearing": True,
    "payment_integrated": False,
    "valid_from": "2026-01-01",
    "valid_to": None,
}
GOOD_TEXT = {**GOOD, "fee_bearing": "true", "payment_integrated": "0", "valid_to": ""}


def _one_error(row: dict[str, Any], *, text: bool = False) -> CatalogRowError:
    entries, errors = parse_catalog_rows([row], source="cat.csv", first_line=2, text=text)
    assert entries == []
    assert len(errors) == 1
    return errors[0]


def test_good_row_parses_to_entry() -> None:
    entries, errors = parse_catalog_rows([GOOD], source="x.jsonl")
    assert errors == []
    assert entries == [
        CatalogEntry("25", "1.001234", "Cấp giấy phép xây dựng", "province", "full", True, False, date(2026, 1, 1))
    ]
    assert entries[0].key == "25/1.001234"
    assert entries[0].is_online


def test_csv_text_booleans_and_empty_end() -> None:
    entries, errors = parse_catalog_rows(
        [GOOD_TEXT, {**GOOD_TEXT, "procedure_code": "2.000123", "fee_bearing": "FALSE", "payment_integrated": "1"}],
        source="x.csv",
        text=True,
    )
    assert errors == []
    assert [(e.fee_bearing, e.payment_integrated, e.valid_to) for e in entries] == [
        (True, False, None),
        (False, True, None),
    ]


@pytest.mark.parametrize("value", ["true", "1", 1, 0, "yes"])
def test_typed_sources_need_real_booleans(value: object) -> None:
    err = _one_error({**GOOD, "fee_bearing": value})
    assert (err.field, err.message) == ("fee_bearing", "allowed values: true, false (JSON booleans)")


@pytest.mark.parametrize("value", ["yes", "2", "", "t"])
def test_csv_booleans_are_true_false_1_0(value: str) -> None:
    err = _one_error({**GOOD_TEXT, "payment_integrated": value}, text=True)
    assert err.field == "payment_integrated"
    assert ("missing" in err.message) if value == "" else ("true, false, 1, 0" in err.message)


def test_old_province_code_is_mapped() -> None:
    # 26 was Vĩnh Phúc, merged into Phú Thọ (25) on 2025-07-01.
    entries, errors = parse_catalog_rows([{**GOOD, "province_code": "26"}], source="x")
    assert errors == [] and entries[0].province_code == "25"


def test_error_names_source_line_field_and_allowed_values() -> None:
    rows = [GOOD, {**GOOD, "procedure_code": "2.000123", "online_level": "half"}]
    entries, errors = parse_catalog_rows(rows, source="cat.csv", first_line=2)
    assert len(entries) == 1
    assert errors == [CatalogRowError("cat.csv", 3, "online_level", "allowed values: full, partial, none")]
    assert str(errors[0]) == "cat.csv:3: online_level: allowed values: full, partial, none"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"province_code": "99"}, "province_code", "34 province codes"),
        ({"province_code": 25}, "province_code", "expected a string"),
        ({"procedure_code": "1.1234"}, "procedure_code", "bad format"),
        ({"procedure_code": "TTHC-001"}, "procedure_code", "1.001234"),
        ({"procedure_code": "1.001234." + "A" * 30}, "procedure_code", "at most 32"),
        ({"level": "district"}, "level", "province, commune, ministry"),
        ({"name": ""}, "name", "1 to 500"),
        ({"name": "a\nb"}, "name", "control characters"),
        ({"valid_from": "2026-13-01"}, "valid_from", "YYYY-MM-DD"),
        ({"valid_from": "01/01/2026"}, "valid_from", "YYYY-MM-DD"),
        ({"valid_to": "2026-01-01"}, "valid_to", "after valid_from"),
        ({"valid_to": "2025-12-31"}, "valid_to", "after valid_from"),
        ({"extra": "x"}, "extra", "unknown field"),
    ],
)
def test_bad_field_is_refused_with_reason(change: dict[str, Any], field: str, fragment: str) -> None:
    err = _one_error({**GOOD, **change})
    assert err.field == field
    assert fragment in err.message


def test_missing_field() -> None:
    row = dict(GOOD)
    del row["level"]
    err = _one_error(row)
    assert (err.field, err.message) == ("level", "missing; it is required")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Thủ tục của 079203012345", "ID number"),
        ("Liên hệ 0912345678", "phone number"),
        ("Hỏi nguyenvana@example.vn", "e-mail address"),
    ],
)
def test_personal_data_in_name_is_refused_without_echo(name: str, kind: str) -> None:
    err = _one_error({**GOOD, "name": name})
    assert err.field == "name"
    assert kind in err.message
    assert name.split()[-1] not in str(err)


def test_personal_data_in_any_string_field() -> None:
    err = _one_error({**GOOD, "level": "0912345678"})
    assert err.field == "level" and "personal data" in err.message


def test_duplicate_version_refused_other_versions_kept() -> None:
    rows = [GOOD, {**GOOD, "valid_from": "2026-03-01"}, GOOD]
    entries, errors = parse_catalog_rows(rows, source="x", first_line=1)
    assert len(entries) == 2
    assert [(e.line, e.field) for e in errors] == [(3, "valid_from")]
    assert "duplicate of line 1" in errors[0].message


def test_in_force_is_half_open() -> None:
    e = CatalogEntry("25", "1.001234", "x", "province", "none", False, False, date(2026, 1, 10), date(2026, 2, 1))
    assert not e.in_force(date(2026, 1, 9))
    assert e.in_force(date(2026, 1, 10))
    assert e.in_force(date(2026, 1, 31))
    assert not e.in_force(date(2026, 2, 1))
    assert not e.is_online
    assert e.in_force_during(date(2026, 1, 1), date(2026, 1, 11))
    assert not e.in_force_during(date(2026, 1, 1), date(2026, 1, 10))
    assert not e.in_force_during(date(2026, 2, 1), date(2026, 3, 1))
    assert e.in_force_during(date(2026, 1, 31), date(2026, 3, 1))


def test_encode_decode_round_trip() -> None:
    (entry,) = parse_catalog_rows([{**GOOD, "valid_to": "2027-01-01"}], source="x")[0]
    assert decode_entry(encode_entry(entry)) == entry
    assert b'"valid_to":"2027-01-01"' in encode_entry(entry)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"province_code":"25"}'])
def test_decode_refuses_bad_records(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"not JSON|catalog record:1: "):
        decode_entry(raw)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"valid_to": "2027-01-01"},
        {"procedure_code": "2.000889.000.00.00.H56"},
        {"online_level": "half"},
        {"level": "district"},
        {"procedure_code": "TTHC-001"},
        {"fee_bearing": "true"},
        {"valid_from": "01/01/2026"},
        {"name": "a\nb"},
        {"extra": "x"},
    ],
)
def test_published_json_schema_agrees_with_the_validator(change: dict[str, Any]) -> None:
    import jsonschema  # type: ignore[import-untyped]

    from psmon.schemas.jsonschema import catalog_schema

    row = {**GOOD, **change}
    schema_ok = jsonschema.Draft202012Validator(catalog_schema()).is_valid(row)
    assert schema_ok == (parse_catalog_rows([row], source="x")[1] == [])
