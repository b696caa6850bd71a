"""Dead-letter ids come from the rejected content, never from where it was read.

The same bad payload from any Kafka partition/offset, or from any file, is one dead letter; the
same refused event from the sink and from a backfill is one `unstorable` letter."""

import msgspec
import orjson

from psmon.schemas.dead_letter import decode_dead_letter, encode_dead_letter, letter_id, unstorable_letter
from psmon.schemas.digest import set_key
from psmon.schemas.normalized import ValidRecord, decode_valid, encode_valid
from psmon.schemas.validation import Invalid, ValidEvent, validate_event

BAD = orjson.dumps({"event_id": "x-1", "event_type": "application.submitted", "schema_version": 1, "phone": "0"})


def _verdict(raw: bytes) -> Invalid:
    v = validate_event(raw)
    assert isinstance(v, Invalid)
    return v


def test_the_same_bad_payload_has_one_id_from_any_partition_offset_or_file() -> None:
    ids = {
        decode_dead_letter(encode_dead_letter(_verdict(BAD), src_partition=p, src_offset=o, src_ts_ms=1)).dead_letter_id
        for p, o in ((0, 7), (3, 7), (0, 1_000_000))
    }
    assert ids == {letter_id(_verdict(BAD).payload_sha256)}  # what `psmon replay` gives the same line
    other = _verdict(BAD.replace(b"x-1", b"x-2"))
    assert letter_id(other.payload_sha256) not in ids


def test_ids_are_keyed() -> None:
    builtin = letter_id(_verdict(BAD).payload_sha256)
    set_key(b"an installation's own key")
    try:
        assert letter_id(_verdict(BAD).payload_sha256) != builtin
    finally:
        set_key(b"")
    assert letter_id(_verdict(BAD).payload_sha256) == builtin


def _event(event_id: str) -> ValidEvent:
    v = validate_event(
        orjson.dumps(
            {
                "event_id": event_id,
                "event_type": "payment.completed",
                "schema_version": 1,
                "occurred_at": "2025-07-01T09:00:00+07:00",
                "province_code": "25",
                "level": "commune",
                "procedure_code": "1.004227",
                "dossier_id": "D-1",
                "method": "online",
                "amount_vnd": 15_000,
            }
        )
    )
    assert isinstance(v, ValidEvent)
    return v


def test_an_unstorable_event_has_one_id_from_the_sink_and_from_a_backfill() -> None:
    from_kafka = unstorable_letter(ValidRecord(_event("e-1"), 3, 110, 1_780_000_000_000), error=ValueError("x"))
    from_file = unstorable_letter(ValidRecord(_event("e-1"), 0x8000_0001, 17, 1_790_000_000_000), error=OSError())
    other = unstorable_letter(ValidRecord(_event("e-2"), 3, 110, 1_780_000_000_000), error=ValueError("x"))
    assert from_kafka.dead_letter_id == from_file.dead_letter_id != other.dead_letter_id
    assert from_kafka.dead_letter_id.startswith("dl-")
    named = unstorable_letter(ValidRecord(_event("e-1"), 3, 110, 0), error=ValueError(), dead_letter_id="given")
    assert named.dead_letter_id == "given"


def test_an_unstorable_id_survives_the_trip_through_psmon_valid() -> None:
    """The sink names a refused event from the record it decoded, a backfill from the validated
    line: times with sub-microsecond float noise must not make them two letters."""
    base = _event("e-1")
    for i in range(500):
        event = msgspec.structs.replace(base, occurred_at_s=1_790_000_000 + i * 0.1234567891)
        record = decode_valid(encode_valid(event, src_partition=1, src_offset=i, src_ts_ms=0))
        sink = unstorable_letter(record, error=ValueError())
        backfill = unstorable_letter(ValidRecord(event, 0x8000_0001, i, 0), error=ValueError())
        assert sink.dead_letter_id == backfill.dead_letter_id, event.occurred_at_s
