"""The fast path agrees with the model-based reference on every verdict (a seeded differential fuzzer).

`validate_event` accepts valid events through the checks `psmon.schemas.fastpath` compiles from
the published JSON Schema, and hands everything else to the pydantic path; so a disagreement can
only be the fast path accepting what the models reject, or accepting with other field values.
This generates valid events of every type and shape and mutates them (every reason, every field,
type confusions, unicode, nested and planted personal data, huge numbers, bad timestamps and
offsets, record timestamps), then asserts the same verdict from both: equal `ValidEvent`s, or
the same reason, details, redacted payload and fingerprint.
"""

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest

from psmon.schemas import fastpath
from psmon.schemas.events import EVENT_MODELS, MAX_AMOUNT_VND
from psmon.schemas.pii import _DIGITS_RE, has_personal_value, personal_value_candidates, personal_value_kind
from psmon.schemas.provinces import registry
from psmon.schemas.validation import (
    REASONS,
    Invalid,
    ValidEvent,
    validate_event,
    validate_event_reference,
    validate_events,
    validate_stream,
)

SEED = 20261130
N = 20_000
NOW_S = datetime(2026, 11, 25, 7, 0, tzinfo=UTC).timestamp()

_CODE = "ABCXYZabcxyz0123456789._-"
_ID = _CODE + ":"
_DOSSIER = _ID + "/"
_PERSONAL = ["001099012345", "123456789", "0912345678", "+84912345678", "84912345678", "nguyen.a@gmail.com"]
_STRANGE = ["", " ", "\n", "é", "Đ", "\u0000", "\\", "@", "\u200b", "😀", "\t", "\r"]
_CONFUSED: list[Any] = [True, False, 0, 1, -1, 1.0, 0.5, "1", "true", None, [], {}, [1], {"a": 1}, 2**63, 2**64 + 1]


def _text(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def _time(rng: random.Random, around_s: float) -> str:
    offset = timezone(timedelta(minutes=rng.choice([0, 420, -300, 330, 840, -720])))
    when = datetime.fromtimestamp(around_s - rng.uniform(0, 30 * 86400), offset)
    text = when.isoformat(timespec=rng.choice(["seconds", "milliseconds", "microseconds"]))
    if text.endswith("+00:00") and rng.random() < 0.5:
        text = text[:-6] + "Z"
    return text


def valid_event(rng: random.Random) -> dict[str, Any]:
    """A valid event of a random type, optional fields at random, in a random field order."""
    event_type = rng.choice(list(EVENT_MODELS))
    codes = [*registry().codes, *registry().old_codes]
    ev: dict[str, Any] = {
        "event_id": _text(rng, _ID, 1, 64),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": _time(rng, NOW_S),
        "province_code": rng.choice(codes),
        "level": rng.choice(["province", "commune", "ministry"]),
        "procedure_code": _text(rng, _CODE, 1, 32),
        "dossier_id": rng.choice(
            [_text(rng, _DOSSIER, 1, 64), f"H{rng.randint(1, 96):02d}.{rng.randint(0, 10**9):09d}"]
        ),
    }
    if rng.random() < 0.5:
        ev["agency_code"] = _text(rng, _CODE, 1, 32)
    if rng.random() < 0.5:
        ev["commune_code"] = f"{rng.randint(0, 99999):05d}"
    if rng.random() < 0.7:
        ev["source_system"] = _text(rng, _CODE, 1, 32)
    if event_type == "application.submitted":
        ev["channel"] = rng.choice(["online", "counter", "postal"])
        modes = ["full_online", "partial_online"] + ([] if ev["channel"] == "online" else ["offline"])
        ev["service_mode"] = rng.choice(modes)
        ev["fee_bearing"] = rng.choice([True, False])
    elif event_type == "application.resolved":
        ev["on_time"] = rng.choice([True, False])
    elif event_type == "payment.completed":
        ev["method"] = rng.choice(["online", "counter"])
        ev["amount_vnd"] = rng.choice([0, 1, rng.randint(0, 10**7), MAX_AMOUNT_VND])
    else:
        ev["kind"] = rng.choice(["dossier", "result"])
    items = list(ev.items())
    rng.shuffle(items)
    return dict(items)


def _mutate(rng: random.Random, ev: dict[str, Any]) -> None:
    names = list(ev)
    field = rng.choice([*names, "on_time", "channel", "kind", "amount_vnd", "commune_code"])
    op = rng.randrange(13)
    if op == 0:
        ev.pop(field, None)
    elif op == 1:
        ev[field] = rng.choice(_CONFUSED)
    elif op == 2 and isinstance(ev.get(field), str):
        s = ev[field]
        at = rng.randint(0, len(s))
        ev[field] = s[:at] + rng.choice(_STRANGE + _PERSONAL + [" " + rng.choice(_PERSONAL)]) + s[at:]
    elif op == 3:
        name = rng.choice(["priority", "ho_ten", "soCCCD", "note", "Email", "ghi_chu", "x" * 40, "a"])
        ev[name] = rng.choice([*_CONFUSED, *_PERSONAL, {"a": [1, {"b": rng.choice(_PERSONAL)}]}, "ok"])
    elif op == 4:
        ev["occurred_at"] = rng.choice(
            [
                "2026-11-25T14:00:00",
                "2026-11-25T14:00:00+24:00",
                "2026-11-25T14:00:00+07:60",
                "2026-11-25T14:00:00-00:00",
                "2026-11-25T14:00:00+0700",
                "2026-11-25T14:00:00.1234567Z",
                "2026-02-30T14:00:00Z",
                "2026-11-25T24:00:00Z",
                "2026-11-25T14:00:00z",
                "2026-11-25 14:00:00Z",
                "2014-12-31T23:59:59+07:00",
                "2015-01-01T00:00:00+07:00",
                "2099-12-31T23:59:59Z",
                "2100-01-01T00:00:00Z",
                "9999-12-31T23:59:59+14:00",
                "0000-01-01T00:00:00Z",
                "0001-01-01T00:00:00+07:00",
                "2026-11-25T07:05:00Z",
                "2026-11-25T07:05:00.000001Z",
                "2026-11-25T14:00:00+07:00\n",
                "２０２６-11-25T14:00:00Z",
                "2025-06-30T23:59:59+07:00",
                "2025-07-01T00:00:00+07:00",
            ]
        )
    elif op == 5:
        ev["province_code"] = rng.choice(["99", "03", "1", "001", "", "٢٥", "25 ", *registry().old_codes[:5]])
    elif op == 6:
        ev["level"] = rng.choice(["district", "village", "Province"])
    elif op == 7:
        ev["channel"], ev["service_mode"] = "online", "offline"
    elif op == 8:
        ev["schema_version"] = rng.choice([2, 0, "1", 1.0, True, None, 10**30])
    elif op == 9:
        ev["event_type"] = rng.choice([*EVENT_MODELS, "application.withdrawn", 1, None, ["x"]])
    elif op == 10:
        ev["amount_vnd"] = rng.choice([-1, MAX_AMOUNT_VND, MAX_AMOUNT_VND + 1, 2**63, 2**64, 1e15, 5.0])
    elif op == 11 and isinstance(ev.get(field), str):
        ev[field] = ev[field] * rng.choice([2, 20, 200]) or "x"
    else:
        ev[field] = rng.choice([*_PERSONAL, *_STRANGE, "x"])


def _encode(rng: random.Random, ev: dict[str, Any]) -> bytes:
    try:
        raw = orjson.dumps(ev)
    except TypeError:  # an integer beyond 64 bits: the stdlib writes those
        import json

        raw = json.dumps(ev, separators=(",", ":")).encode()
    roll = rng.random()
    if roll < 0.02:
        raw = raw[:-1] + b',"event_id":"dup"}'  # a repeated key: the last one counts
    elif roll < 0.04:
        raw = raw.replace(b'"0', b'"\\u0030', 1)  # an escape that spells a digit
    elif roll < 0.05:
        raw = rng.choice([b"[1]", b"null", b"{", raw + b" x", b"\xff" + raw])
    return raw


def _record_ts(rng: random.Random) -> float | None:
    roll = rng.random()
    if roll < 0.85:
        return NOW_S + rng.uniform(-600, 600)
    return rng.choice([None, NOW_S * 1000, 0.0, -0.001, float("nan"), NOW_S + 2 * 86400])


def test_fast_path_and_reference_agree_on_every_verdict() -> None:
    rng = random.Random(SEED)
    verdicts: Counter[str] = Counter()
    accepted = 0
    for i in range(N):
        ev = valid_event(rng)
        if i % 3:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                _mutate(rng, ev)
        raw = _encode(rng, ev)
        record_ts_s = _record_ts(rng)
        if record_ts_s is None and "occurred_at" in ev:
            ev["occurred_at"] = "2026-01-01T00:00:00Z"  # the wall clock is read: stay far from its bound
            raw = _encode(rng, ev)
        fast = validate_event(raw, record_ts_s=record_ts_s, now_s=NOW_S)
        ref = validate_event_reference(raw, record_ts_s=record_ts_s, now_s=NOW_S)
        assert fast == ref, (raw, record_ts_s, fast, ref)
        verdicts[ref.reason if isinstance(ref, Invalid) else "valid"] += 1
        accepted += isinstance(fast, ValidEvent)
    # The generator reaches every reason and plenty of valid events: the comparison means something.
    assert set(verdicts) == {*REASONS, "valid"}, verdicts
    assert accepted > N // 4, verdicts


def test_oversized_and_unparseable_input_agree() -> None:
    big = orjson.dumps({"event_id": "x" * 9000})
    for raw in (big, b"", b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe{}"):
        assert validate_event(raw, record_ts_s=NOW_S, now_s=NOW_S) == validate_event_reference(
            raw, record_ts_s=NOW_S, now_s=NOW_S
        )


def test_has_personal_value_is_personal_value_kind() -> None:
    rng = random.Random(SEED)
    pieces = [*_PERSONAL, *_STRANGE, "H25.", "-", ".", "0", "9", "84", "+", "550e8400-e29b-41d4-a716-", "x", "a@b.c"]
    for _ in range(50_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        text += "\n".join(_text(rng, "0123456789.-_:/ a@", 0, 14) for _ in range(rng.randint(0, 3)))
        assert has_personal_value(text) == (personal_value_kind(text) is not None), text
    # The regex started at the first 9-digit run still sees what precedes it (lookbehinds).
    assert _DIGITS_RE.search("H25.000000123", 4) is None and not has_personal_value("H25.000000123")


def test_the_shape_cache_is_bounded_and_every_order_still_validates() -> None:
    rng = random.Random(SEED)
    shapes = fastpath.shapes_by_type()["application.submitted"]
    ev = {k: v for k, v in valid_event(rng).items()}
    while ev["event_type"] != "application.submitted":
        ev = valid_event(rng)
    for _ in range(fastpath.MAX_SHAPES_PER_TYPE + 200):
        items = list(ev.items())
        rng.shuffle(items)
        raw = orjson.dumps(dict(items))
        assert isinstance(validate_event(raw, record_ts_s=NOW_S, now_s=NOW_S), ValidEvent)
    assert len(shapes) <= fastpath.MAX_SHAPES_PER_TYPE


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        ({"type": "string", "format": "date-time"}, "does not understand"),
        ({"type": "number"}, "cannot check"),
        ({"type": "string", "pattern": "[0-9]+"}, "anchored"),
        ({"type": "string", "pattern": r"^\d+$"}, "differently"),
        ({"type": "string", "pattern": "^[[a-z]]+$"}, "differently"),
        ({"type": "string", "pattern": "^(?i)abc$"}, "differently"),
        ({"type": "integer", "const": 1, "minimum": 0}, "const alone"),
        ({"type": "string", "enum": ["a"], "maxLength": 3}, "enum"),
    ],
)
def test_a_contract_the_fast_path_cannot_express_fails_loudly(prop: dict[str, Any], message: str) -> None:
    schema = {
        "properties": {"a": {"type": "string"}, "b": prop},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        fastpath.Shapes(schema).compile(("a", "b"))


# --- The typed decoder (msgspec structs): what it accepts, and a fallback per reason ---------------

_BASE = (
    b'{"event_id":"portal-79:1","event_type":"record.digitized","schema_version":1,'
    b'"occurred_at":"2026-11-25T14:00:00+07:00","province_code":"79","level":"province",'
    b'"procedure_code":"1.004227","dossier_id":"H79.000000123","kind":"result"'
)


def _typed_accepts(raw: bytes) -> bool:
    decode, _ = fastpath.typed_decoder()
    try:
        decode(raw)
    except (msgspec.DecodeError, ValueError):
        return False
    return True


@pytest.mark.parametrize(
    "raw",
    [
        _BASE + b"}",
        _BASE + b',"agency_code":"000.00.12.H26","commune_code":"25717","source_system":"dvc-phutho"}',
        b' \t\n{"kind":"dossier",' + _BASE[1:].replace(b",", b" , ") + b"}\r\n",  # whitespace, kind repeated
        _BASE.replace(b'"event_id"', b'"\\u0065vent_id"') + b"}",  # an escaped field name
        _BASE + b',"event_id":"dup"}',  # a repeated key: the last one counts, as in orjson's dict
        _BASE.replace(b'"record.digitized"', b'"payment.completed"').replace(b',"kind":"result"', b"")
        + b',"method":"online","amount_vnd":-0}',
        _BASE.replace(b'"record.digitized"', b'"application.submitted"').replace(b',"kind":"result"', b"")
        + b',"channel":"online","service_mode":"full_online","fee_bearing":false}',
    ],
)
def test_the_typed_decoder_accepts_valid_events_exactly_as_the_reference(raw: bytes) -> None:
    assert _typed_accepts(raw)
    fast = validate_event(raw, record_ts_s=NOW_S, now_s=NOW_S)
    assert isinstance(fast, ValidEvent)
    assert fast == validate_event_reference(raw, record_ts_s=NOW_S, now_s=NOW_S)


#: (message, reason, whether the typed decoder itself refuses it): every reason, each rule left
#: after the decode included, goes to the general path and gets the reference's verdict.
_FALLBACKS: list[tuple[bytes, str, bool]] = [
    (b"{" + b'"a":' * 3000 + b"1}", "too_large", True),
    (b"[" * 2000, "malformed_json", True),
    (_BASE + b"} x", "malformed_json", True),
    (b"\xef\xbb\xbf" + _BASE + b"}", "malformed_json", True),  # a byte order mark
    (_BASE.replace(b"H79", b"H\xff") + b"}", "malformed_json", True),  # not UTF-8
    (_BASE.replace(b"H79", b"H\\ud800") + b"}", "malformed_json", True),  # a lone surrogate
    (b"[1]", "not_an_object", True),
    (_BASE + b',"ho_ten":"x"}', "personal_data", True),
    (_BASE.replace(b"H79.000000123", b"0912345678") + b"}", "personal_data", False),
    (_BASE.replace(b"H79.000000123", b"\\u0030912345678") + b"}", "personal_data", False),
    (_BASE.replace(b'"schema_version":1', b'"schema_version":2') + b"}", "unsupported_schema_version", True),
    (_BASE.replace(b'"schema_version":1', b'"schema_version":true') + b"}", "invalid_value", True),
    (_BASE.replace(b'"schema_version":1', b'"schema_version":1.0') + b"}", "invalid_value", True),
    (_BASE.replace(b"record.digitized", b"application.withdrawn") + b"}", "unknown_event_type", True),
    (_BASE + b',"channel":"online"}', "unknown_field", True),  # another event type's field
    (_BASE.replace(b',"kind":"result"', b"") + b"}", "missing_field", True),
    (_BASE + b',"agency_code":null}', "invalid_value", True),
    (_BASE + b',"agency_code":""}', "invalid_value", True),  # "" is how the struct reads an absent one
    (_BASE + b',"commune_code":""}', "invalid_value", True),
    (_BASE + b',"commune_code":"2571"}', "invalid_value", False),
    (_BASE.replace(b"1.004227", b"1.004227 ") + b"}", "invalid_value", False),
    (_BASE.replace(b"1.004227", b"1.004227\\n") + b"}", "invalid_value", False),
    (_BASE.replace(b'"province"', b'"village"') + b"}", "invalid_value", True),
    (_BASE.replace(b'"79"', b'"99"') + b"}", "unknown_province", False),
    (_BASE.replace(b"14:00:00+07:00", b"14:00:00+24:00") + b"}", "invalid_value", False),
    (_BASE.replace(b"2026-11-25T14", b"2014-11-25T14") + b"}", "time_out_of_range", False),
    (_BASE.replace(b"2026-11-25T14", b"2026-11-26T14") + b"}", "time_out_of_range", False),
    (_BASE.replace(b'"province"', b'"district"') + b"}", "invalid_value", False),
    (
        _BASE.replace(b"record.digitized", b"application.submitted").replace(b',"kind":"result"', b"")
        + b',"channel":"online","service_mode":"offline","fee_bearing":true}',
        "invalid_value",
        False,
    ),
    (
        _BASE.replace(b"record.digitized", b"payment.completed").replace(b',"kind":"result"', b"")
        + b',"method":"online","amount_vnd":1000000000000001}',
        "invalid_value",
        True,
    ),
]


@pytest.mark.parametrize(("raw", "reason", "decoder_refuses"), _FALLBACKS)
def test_every_reason_falls_back_to_the_reference_verdict(raw: bytes, reason: str, decoder_refuses: bool) -> None:
    if len(raw) <= 8192:
        assert _typed_accepts(raw) is not decoder_refuses, "the case no longer tests the branch it names"
    fast = validate_event(raw, record_ts_s=NOW_S, now_s=NOW_S)
    assert isinstance(fast, Invalid) and fast.reason == reason, fast
    assert fast == validate_event_reference(raw, record_ts_s=NOW_S, now_s=NOW_S)


def test_a_record_timestamp_out_of_range_falls_back_too() -> None:
    raw = _BASE + b"}"
    assert isinstance(validate_event(raw, record_ts_s=NOW_S, now_s=NOW_S), ValidEvent)
    for record_ts_s in (NOW_S * 1000, 0.0, NOW_S + 2 * 86400):
        fast = validate_event(raw, record_ts_s=record_ts_s, now_s=NOW_S)
        assert isinstance(fast, Invalid) and fast.reason == "time_out_of_range"
        assert fast == validate_event_reference(raw, record_ts_s=record_ts_s, now_s=NOW_S)


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        ({"type": "string", "pattern": "^[a-z]*$"}, "refuses ''"),
        ({"type": "string", "enum": ["0912345678"]}, "personal data"),
        ({"type": "number"}, "cannot check"),
        ({"type": "string", "pattern": "^(?i)abc$"}, "differently"),
    ],
)
def test_a_contract_the_typed_decoder_cannot_express_fails_loudly(prop: dict[str, Any], message: str) -> None:
    schema = {
        "properties": {
            "event_type": {"type": "string", "const": "x"},
            "a": {"type": "string", "pattern": "^[a-z]+$"},
            "b": {"type": "string", "pattern": "^[a-z]+$"},
            "c": prop,
        },
        "required": ["event_type", "a", "b"],
        "additionalProperties": False,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        fastpath._typed("x", schema, {"a", "b", "c"})


# --- Batches (`validate_events`, `validate_stream`): the verdicts of one message at a time ---------


def _fuzzed(rng: random.Random, n: int) -> tuple[list[bytes], list[float]]:
    """`n` messages of the differential fuzzer (a third valid, the rest mutated), each with a
    plausible record timestamp, and now and then one too large."""
    messages, timestamps = [], []
    for i in range(n):
        ev = valid_event(rng)
        if i % 3:
            _mutate(rng, ev)
        raw = _encode(rng, ev)
        messages.append(raw + b" " * 9000 if rng.random() < 0.01 else raw)
        timestamps.append(rng.choice([NOW_S, NOW_S - 3600, NOW_S * 1000]))
    return messages, timestamps


def test_a_batch_gets_the_verdicts_of_one_message_at_a_time() -> None:
    rng = random.Random(SEED + 1)
    messages, timestamps = _fuzzed(rng, 3000)
    alone = [
        validate_event_reference(raw, record_ts_s=ts, now_s=NOW_S) for raw, ts in zip(messages, timestamps, strict=True)
    ]
    assert sum(isinstance(v, ValidEvent) for v in alone) > 500
    start = 0
    while start < len(messages):  # batches of every size, a bad message anywhere in them
        end = start + rng.choice([1, 2, 7, 127, 128, 129, 300, 1000])
        batch = validate_events(messages[start:end], timestamps[start:end], now_s=NOW_S)
        assert batch == alone[start:end], start
        start = end
    assert list(validate_stream(messages, timestamps, now_s=NOW_S)) == alone


def test_a_batch_without_record_timestamps_is_bounded_by_the_wall_clock() -> None:
    rng = random.Random(SEED + 2)
    messages = []
    for i in range(300):
        ev = valid_event(rng)
        ev["occurred_at"] = "2026-01-01T00:00:00Z" if i % 2 else "2099-01-01T00:00:00Z"  # far in the future
        messages.append(orjson.dumps(ev))
    verdicts = validate_events(messages)
    assert verdicts == [validate_event_reference(raw) for raw in messages]
    assert [isinstance(v, ValidEvent) for v in verdicts] == [bool(i % 2) for i in range(300)]


#: Personal values that every pattern-checked field's character set admits, so that only the
#: personal-data check can refuse them: an ID number, a mobile number after a code separator (the
#: pre-scan's other branch), a 12-digit CCCD.
_PLANTED = ["123456789", "H25-0912345678", "001099012345"]
_STRING_FIELDS = ["event_id", "procedure_code", "dossier_id", "agency_code", "source_system"]


@pytest.mark.parametrize("planted", _PLANTED)
def test_a_personal_value_in_any_field_of_any_batch_member_is_caught(planted: str) -> None:
    rng = random.Random(SEED + 3)
    events = []
    while len(events) < 260:  # more than two of the pre-scan's chunks
        ev = valid_event(rng)
        ev.update(level="province", dossier_id=f"H{len(events) % 96 + 1:02d}.{len(events):09d}")
        if ev.get("channel") == "online" and ev.get("service_mode") == "offline":
            continue
        events.append(ev)
    clean = [orjson.dumps(ev) for ev in events]
    assert all(isinstance(v, ValidEvent) for v in validate_events(clean, [NOW_S] * len(clean), now_s=NOW_S))
    for k in (0, 1, 126, 127, 128, 129, 200, 259):
        for field in _STRING_FIELDS:
            raw = orjson.dumps({**events[k], field: planted})
            assert _typed_accepts(raw)  # only the personal-data check can refuse it
            batch = [*clean[:k], raw, *clean[k + 1 :]]
            verdicts = validate_events(batch, [NOW_S] * len(batch), now_s=NOW_S)
            expected = validate_event_reference(raw, record_ts_s=NOW_S, now_s=NOW_S)
            assert isinstance(expected, Invalid) and expected.reason == "personal_data", (field, planted)
            assert verdicts[k] == expected, (k, field, planted)
            assert all(isinstance(v, ValidEvent) for i, v in enumerate(verdicts) if i != k)


def test_the_batch_pre_scan_flags_every_message_whose_strings_hold_a_personal_value() -> None:
    """`personal_value_candidates` is a superset of the messages `has_personal_value` refuses."""
    rng = random.Random(SEED + 4)
    pieces = ["0", "9", "12345678", "0912345678", "84", "+", "-", ".", ":", "/", "_", " ", "a", "@", "é", '\\"']
    pieces += ["\\u0030", "\\n", "H25."]
    for _ in range(300):
        texts = [
            [
                "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))),
                "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))),
            ]
            for _ in range(rng.randint(1, 200))
        ]
        messages = [b'{"a":"' + a.encode() + b'","n":12345678,"b":"' + b.encode() + b'"}' for a, b in texts]
        flagged = personal_value_candidates(messages)
        for i, raw in enumerate(messages):
            values = orjson.loads(raw)
            if has_personal_value(values["a"] + "\n" + values["b"]):
                assert i in flagged, raw
    # A run at the very start of the batch counts as after a line feed, as between messages.
    assert personal_value_candidates([b"123456789", b'"H25.000000123"', b"123456789"]) == {0, 2}
