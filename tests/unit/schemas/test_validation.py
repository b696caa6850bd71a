"""Contract v1 validation: every rejection reason, strict types, PII, province mapping, redaction."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from psmon.schemas.dead_letter import encode_dead_letter
from psmon.schemas.digest import payload_digest, set_key
from psmon.schemas.events import ENVELOPE_FIELDS, MAX_AMOUNT_VND
from psmon.schemas.jsonschema import event_schemas
from psmon.schemas.validation import (
    DEAD_LETTER_REASONS,
    MAX_EVENT_BYTES,
    MAX_OCCURRED_AT,
    MAX_RECORD_AHEAD_S,
    REASONS,
    Invalid,
    ValidEvent,
    validate_event,
)

RECORD_TS = datetime(2026, 11, 25, 7, 6, 40, tzinfo=UTC).timestamp()


def submitted(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": "portal-25:000001",
        "event_type": "application.submitted",
        "schema_version": 1,
        "occurred_at": "2026-11-25T14:00:00+07:00",
        "province_code": "25",
        "level": "commune",
        "procedure_code": "1.004227",
        "dossier_id": "H25.1/2026-0001",
        "channel": "online",
        "service_mode": "full_online",
        "fee_bearing": True,
    }
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not _DROP}


_DROP = object()


def check(obj: Any) -> ValidEvent | Invalid:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return validate_event(raw, record_ts_s=RECORD_TS)


def reason(obj: Any) -> str:
    verdict = check(obj)
    assert isinstance(verdict, Invalid), verdict
    return verdict.reason


def test_valid_submitted_is_normalized() -> None:
    v = check(submitted(occurred_at="2026-11-25T14:00:00.123456+07:00"))
    assert isinstance(v, ValidEvent)
    assert v.province_code == "25" and v.raw_province_code == "25"
    assert v.occurred_at_s == pytest.approx(1_795_590_000.123456)
    assert v.occurred_at.utcoffset() is not None and v.occurred_at.hour == 7


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "application.resolved", "on_time": False},
        {"event_type": "payment.completed", "method": "online", "amount_vnd": 0},
        {"event_type": "record.digitized", "kind": "result"},
    ],
)
def test_each_event_type_validates(event: dict[str, Any]) -> None:
    base = {k: v for k, v in submitted().items() if k not in ("channel", "service_mode", "fee_bearing")}
    assert isinstance(check({**base, **event}), ValidEvent)


@pytest.mark.parametrize(
    ("old", "new"),
    [("17", "25"), ("26", "25"), ("80", "80"), ("72", "80"), ("02", "08"), ("95", "96")],
)
def test_old_province_codes_map_to_the_34(old: str, new: str) -> None:
    v = check(submitted(province_code=old))
    assert isinstance(v, ValidEvent)
    assert (v.raw_province_code, v.province_code) == (old, new)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe{}", "malformed_json"),
        (b"", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
    ],
)
def test_unparseable_input(raw: bytes, expected: str) -> None:
    v = check(raw)
    assert isinstance(v, Invalid) and v.reason == expected
    assert v.redacted is None and v.payload_bytes == len(raw) and len(v.payload_sha256) == 64


def test_too_large_is_checked_before_parsing() -> None:
    big = orjson.dumps(submitted(agency_code="A" * (MAX_EVENT_BYTES)))
    assert reason(big) == "too_large"
    # exactly at the limit is fine size-wise (and then fails only on its own merits)
    at_limit = orjson.dumps(submitted(source_system="x"))
    assert len(at_limit) <= MAX_EVENT_BYTES and isinstance(check(at_limit), ValidEvent)


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"dossier_id": _DROP}, "missing_field"),
        ({"channel": _DROP}, "missing_field"),
        ({"schema_version": _DROP}, "missing_field"),
        ({"event_type": _DROP}, "missing_field"),
        ({"priority": "high"}, "unknown_field"),
        ({"fee_bearing": 1}, "invalid_value"),
        ({"fee_bearing": "true"}, "invalid_value"),
        ({"schema_version": 1.0}, "invalid_value"),
        ({"schema_version": True}, "invalid_value"),
        ({"schema_version": 2}, "unsupported_schema_version"),
        ({"event_type": "application.withdrawn"}, "unknown_event_type"),
        ({"province_code": "99"}, "unknown_province"),
        ({"province_code": "03"}, "unknown_province"),
        ({"province_code": "1"}, "invalid_value"),
        ({"province_code": 25}, "invalid_value"),
        ({"level": "village"}, "invalid_value"),
        ({"channel": "online", "service_mode": "offline"}, "invalid_value"),
        ({"level": "district"}, "invalid_value"),
        ({"agency_code": None}, "invalid_value"),
        ({"commune_code": "1234"}, "invalid_value"),
        ({"event_id": "has space"}, "invalid_value"),
        ({"event_id": "x" * 65}, "invalid_value"),
        ({"occurred_at": "2026-11-25T14:00:00"}, "invalid_value"),  # no offset
        ({"occurred_at": "2026-11-25T14:00:00.1234567Z"}, "invalid_value"),  # 7 fraction digits
        ({"occurred_at": "2026-02-30T14:00:00Z"}, "invalid_value"),
        ({"occurred_at": "2014-12-31T23:59:59+07:00"}, "time_out_of_range"),
        ({"occurred_at": "2026-11-25T07:11:41Z"}, "time_out_of_range"),  # record ts + 5 min + 1 s
        ({"citizen_name": "Nguyễn Văn A"}, "personal_data"),
        ({"soCCCD": "001099012345"}, "personal_data"),
        ({"so_dien_thoai": "0912345678"}, "personal_data"),
        ({"Email": "a@b.vn"}, "personal_data"),
        ({"dia_chi": "1 Hùng Vương"}, "personal_data"),
        ({"ngày_sinh": "1990-01-01"}, "personal_data"),
    ],
)
def test_rejection_reasons(over: dict[str, Any], expected: str) -> None:
    assert reason(submitted(**over)) == expected


def test_every_reason_is_covered_by_the_table_above() -> None:
    covered = {
        "malformed_json",
        "not_an_object",
        "too_large",
        "missing_field",
        "unknown_field",
        "invalid_value",
        "unsupported_schema_version",
        "unknown_event_type",
        "unknown_province",
        "time_out_of_range",
        "personal_data",
    }
    assert covered == set(REASONS)


def test_time_window_edges_are_inclusive() -> None:
    assert isinstance(check(submitted(occurred_at="2015-01-01T00:00:00+07:00")), ValidEvent)
    assert isinstance(check(submitted(occurred_at="2026-11-25T07:11:40Z")), ValidEvent)  # ts + 300 s


def test_district_level_is_valid_before_the_merger_only() -> None:
    assert isinstance(check(submitted(level="district", occurred_at="2025-06-30T23:59:59+07:00")), ValidEvent)
    assert reason(submitted(level="district", occurred_at="2025-07-01T00:00:00+07:00")) == "invalid_value"


def test_personal_data_wins_over_other_faults_and_is_never_stored() -> None:
    v = check(submitted(ho_ten="Trần Thị B", extra="x", fee_bearing="no"))
    assert isinstance(v, Invalid) and v.reason == "personal_data" and v.redacted is not None
    stored = orjson.dumps(v.redacted) + v.detail.encode()
    assert "Trần".encode() not in stored and b"extra" not in stored
    assert "fee_bearing" not in v.redacted  # did not validate
    assert v.redacted["dossier_id"] == "H25.1/2026-0001"


def test_redaction_keeps_only_valid_contract_fields() -> None:
    v = check(submitted(province_code="99", priority="high"))
    assert isinstance(v, Invalid) and v.reason == "unknown_field" and v.redacted is not None
    assert "priority" not in v.redacted
    v = check(submitted(province_code="99"))
    assert isinstance(v, Invalid) and v.reason == "unknown_province" and v.redacted is not None
    assert "province_code" not in v.redacted and v.redacted["event_id"] == "portal-25:000001"


def test_contract_field_names_are_not_mistaken_for_personal_data() -> None:
    from psmon.schemas.events import EVENT_MODELS
    from psmon.schemas.pii import is_personal_field

    names = {n for m in EVENT_MODELS.values() for n in m.model_fields}
    assert [n for n in names if is_personal_field(n)] == []


# -- bounds: nothing valid may be unstorable -----------------------------------------------------


def payment(amount: Any) -> dict[str, Any]:
    base = {k: v for k, v in submitted().items() if k not in ("channel", "service_mode", "fee_bearing")}
    return {**base, "event_type": "payment.completed", "method": "online", "amount_vnd": amount}


@pytest.mark.parametrize("amount", [2**63, 2**63 - 1, MAX_AMOUNT_VND + 1, 2**64 - 1, 2**64, -1])
def test_an_amount_beyond_the_documented_bound_is_an_invalid_value(amount: int) -> None:
    v = check(json.dumps(payment(amount)).encode())  # the stdlib encodes integers of any size
    assert isinstance(v, Invalid) and v.reason == "invalid_value" and "amount_vnd" in v.detail
    assert "amount_vnd" not in (v.redacted or {})  # the value did not validate: not kept


def test_the_largest_amount_fits_the_int64_column_and_is_valid() -> None:
    assert MAX_AMOUNT_VND < 2**63 - 1
    v = check(payment(MAX_AMOUNT_VND))
    assert isinstance(v, ValidEvent) and v.amount_vnd == MAX_AMOUNT_VND


def test_json_schema_states_the_amount_bound() -> None:
    schema = event_schemas()["payment.completed"]["properties"]["amount_vnd"]
    assert (schema["minimum"], schema["maximum"]) == (0, MAX_AMOUNT_VND)


NOW = RECORD_TS + 3600.0  # the wall clock of the tests below


def check_at(obj: dict[str, Any], record_ts_s: float, now_s: float = NOW) -> ValidEvent | Invalid:
    return validate_event(orjson.dumps(obj), record_ts_s=record_ts_s, now_s=now_s)


@pytest.mark.parametrize(
    "record_ts_s",
    [
        RECORD_TS * 1000,  # a producer that set microseconds: year 58,000 and more
        datetime(2290, 1, 1, tzinfo=UTC).timestamp(),  # after 2286: dedup_version would be negative
        NOW + MAX_RECORD_AHEAD_S + 1,  # more than a day ahead of the wall clock
        datetime(2014, 12, 31, tzinfo=UTC).timestamp(),
        0.0,
        -0.001,  # Kafka's "no timestamp" (-1 ms)
        float("nan"),
    ],
)
def test_an_implausible_record_timestamp_is_time_out_of_range(record_ts_s: float) -> None:
    v = check_at(submitted(), record_ts_s)
    assert isinstance(v, Invalid) and v.reason == "time_out_of_range"
    assert "Kafka record timestamp" in v.detail and "milliseconds expected" in v.detail
    # The event's own time validated: it is kept, so a re-drive needs no --set.
    assert v.redacted is not None and v.redacted["occurred_at"] == submitted()["occurred_at"]


def test_a_record_timestamp_up_to_a_day_ahead_of_the_wall_clock_is_accepted() -> None:
    assert isinstance(check_at(submitted(), NOW + MAX_RECORD_AHEAD_S), ValidEvent)
    assert isinstance(check_at(submitted(), RECORD_TS, now_s=RECORD_TS), ValidEvent)


def test_the_record_timestamp_check_keeps_the_precedence_of_earlier_reasons() -> None:
    assert check_at(submitted(province_code="99"), RECORD_TS * 1000).reason == "unknown_province"  # type: ignore[union-attr]
    assert check_at(submitted(level="village"), RECORD_TS * 1000).reason == "invalid_value"  # type: ignore[union-attr]


def test_occurred_at_is_capped_before_2100_whatever_the_record_time() -> None:
    ts_2100 = MAX_OCCURRED_AT.timestamp()
    v = check_at(submitted(occurred_at="2100-01-01T00:00:00Z"), ts_2100, now_s=ts_2100)
    assert isinstance(v, Invalid) and v.reason == "time_out_of_range" and "2100" in v.detail
    ok = check_at(submitted(occurred_at="2099-12-31T23:59:59Z", level="province"), ts_2100, now_s=ts_2100)
    assert isinstance(ok, ValidEvent)


def test_the_dead_letter_reasons_are_validations_plus_unstorable() -> None:
    assert (*REASONS, "unstorable") == DEAD_LETTER_REASONS
    assert "unstorable" not in REASONS  # validation never gives it: only the history writers do


# -- personal data in values, strict code fields, no echo of what the portal made up -------------

CCCD, CMND, PHONE, PHONE_84, EMAIL = "001099012345", "123456789", "0912345678", "+84912345678", "nguyen.a@gmail.com"
#: the contract's free-form string fields (the rest are enums, two digits, five digits or a time)
STRING_FIELDS = ("event_id", "procedure_code", "dossier_id", "agency_code", "source_system", "occurred_at")


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"agency_code": "Nguyen Van A 0912345678"}, "personal_data"),
        ({"source_system": "CCCD 001099012345"}, "personal_data"),
        ({"dossier_id": "001099012345"}, "personal_data"),
        ({"procedure_code": "0912345678"}, "personal_data"),
        ({"event_id": "123456789"}, "personal_data"),  # a bare 9-digit id is a CMND
        ({"dossier_id": "H25.84912345678"}, "personal_data"),
        ({"agency_code": "Nguyen Van A"}, "invalid_value"),  # free text: not a code
        ({"source_system": "Cổng DVC Phú Thọ"}, "invalid_value"),
        ({"agency_code": "000.00.12.H26"}, None),
        ({"source_system": "dvc.phutho.gov.vn"}, None),
    ],
)
def test_code_fields_take_codes_and_no_personal_value(over: dict[str, Any], expected: str | None) -> None:
    v = check(submitted(**over))
    if expected is None:
        assert isinstance(v, ValidEvent), v
        return
    assert isinstance(v, Invalid) and v.reason == expected
    for value in over.values():
        assert value not in orjson.dumps(v.redacted).decode() + v.detail  # never kept


@pytest.mark.parametrize(
    "ident",
    [
        "550e8400-e29b-41d4-a716-001099012345",  # a UUID's last group may be 12 digits, even CCCD-shaped
        "000.00.12.H26-250101-0001",  # the national portal's dossier numbers
        "H25.99-260814-0001",
        "H25.000000123",  # psmon's simulator, 9-digit sequence
        "H25.123456789",
        "HS-123456789",
        "1.004227",
        "2.000889.000.00.00.H56",
        "dvc-25-2026-000123:sub",
        "0912345",  # too short for a phone
        "09123456789",  # too long for one
        "001099012345678",  # too long for a CCCD
        "000000012345",  # no province 000
        "001499012345",  # century digit 4: no CCCD yet
    ],
)
def test_legitimate_identifiers_are_not_personal_data(ident: str) -> None:
    for field in ("event_id", "dossier_id"):
        assert isinstance(check(submitted(**{field: ident})), ValidEvent), (field, ident)
    if len(ident) <= 32 and ":" not in ident:  # the code fields' character set
        assert isinstance(check(submitted(procedure_code=ident, agency_code=ident)), ValidEvent), ident


def _planted(value: str, field: str, position: str) -> str:
    base = submitted().get(field, "000.00.12.H26")
    sep = " "  # a word of its own, whatever the field's character set (that is invalid_value, later)
    return {
        "prefix": f"{value}{sep}{base}",
        "middle": f"{base}{sep}{value}{sep}{base}",
        "suffix": f"{base}{sep}{value}",
    }[position]


@pytest.mark.parametrize("value", [CCCD, CMND, PHONE, PHONE_84, EMAIL])
@pytest.mark.parametrize("position", ["whole", "prefix", "middle", "suffix"])
@pytest.mark.parametrize("field", [*STRING_FIELDS, "level", "channel", "priority", "ghi_chu"])
def test_personal_data_planted_in_any_string_field_is_rejected_and_never_stored(
    value: str, position: str, field: str
) -> None:
    planted = value if position == "whole" else _planted(value, field, position)
    v = check(submitted(**{field: planted}))
    assert isinstance(v, Invalid) and v.reason == "personal_data", (field, planted, v)
    letter = encode_dead_letter(v, src_partition=0, src_offset=1, src_ts_ms=1)
    assert value.encode() not in letter and value.lstrip("+").encode() not in letter
    assert planted.encode() not in letter
    if field in ENVELOPE_FIELDS or field == "channel":
        assert field in v.detail  # the operator learns where, not what
    else:
        assert field not in v.detail  # a name outside the contract is never repeated


@pytest.mark.parametrize("with_separator", ["-", "_", ".", ":", "/"])
def test_phone_and_cccd_inside_a_code_are_found_but_a_9_digit_group_is_a_sequence(with_separator: str) -> None:
    for value in (CCCD, PHONE):
        assert reason(submitted(dossier_id=f"H25{with_separator}{value}")) == "personal_data"
        assert reason(submitted(dossier_id=f"{value}{with_separator}0001")) == "personal_data"
    assert isinstance(check(submitted(dossier_id=f"H25{with_separator}{CMND}")), ValidEvent)


def test_personal_values_nested_in_unknown_fields_or_escaped_are_found() -> None:
    assert reason(submitted(extra={"a": [1, {"b": PHONE}]})) == "personal_data"
    assert reason(submitted(extra={EMAIL: True})) == "personal_data"
    escaped = orjson.dumps(submitted(dossier_id="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\\u0030912345678")
    assert reason(escaped) == "personal_data"
    depth = 1000  # as deep as orjson parses, and as Python's default recursion limit
    deep = orjson.dumps(submitted()).replace(b"}", b',"extra":' + b'{"x":' * depth + b'"' + PHONE.encode() + b'"')
    assert reason(deep + b"}" * (depth + 1)) == "personal_data"


def test_unknown_field_names_are_never_echoed_in_details() -> None:
    name = "Nguyen Van A - 001099012345"
    v = check(submitted(**{name: 1}))
    assert isinstance(v, Invalid) and v.reason == "personal_data"
    assert (
        "Nguyen" not in v.detail
        and CCCD not in v.detail
        and v.detail == ("personal data: 1 field name denoting personal data (not shown)")
    )
    v = check(submitted(priority="x", ghi_chu="y"))
    assert isinstance(v, Invalid) and v.reason == "unknown_field"
    assert v.detail == "unknown fields: 2 other names (not shown)"
    v = check(submitted(on_time=True, priority="x"))  # a contract field of another event type is named
    assert isinstance(v, Invalid) and v.detail == "unknown fields: on_time, 1 other name (not shown)"
    v = check(submitted(ho_ten="Trần Thị B", dossier_id=PHONE))
    assert isinstance(v, Invalid) and v.detail == (
        "personal data: 1 field name denoting personal data (not shown); phone number in dossier_id"
    )


def test_payload_fingerprints_are_keyed_not_plain_sha256() -> None:
    raw = b'"' + CCCD.encode() + b'"'  # a 12-digit ID number alone: 10^12 candidates, quick to try
    v = check(raw)
    assert isinstance(v, Invalid) and v.reason == "not_an_object"
    assert v.payload_sha256 != hashlib.sha256(raw).hexdigest()
    assert v.payload_sha256 == payload_digest(raw) and len(v.payload_sha256) == 64
    rejected = check(submitted(ho_ten="x"))
    assert isinstance(rejected, Invalid)
    assert rejected.payload_sha256 == payload_digest(orjson.dumps(submitted(ho_ten="x")))
    try:
        set_key(b"another installation's key")
        other = check(raw)
        assert isinstance(other, Invalid) and other.payload_sha256 != v.payload_sha256
    finally:
        set_key(b"")
    assert check(raw).payload_sha256 == v.payload_sha256  # type: ignore[union-attr]
