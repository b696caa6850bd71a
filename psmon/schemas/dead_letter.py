"""The dead-letter record on `psmon.dead-letter`: a rejected message, reason and redacted payload.

Its id comes from the rejected *content*, not from where it was read (`letter_id`): the keyed
digest (`digest.payload_digest`) of the payload's fingerprint. So the same bad input gets the same id
from Kafka (a re-emission after a stage-1 crash included), from any backfill file, or from a
file that overlaps what Kafka already delivered, and `dead_letters` (keyed by id, read with
FINAL) holds it once. The trade-off, the contract's "a repeated event counts once": a portal that
sends byte-identical bad messages twice gets one dead letter, not two. The id is derived from
the fingerprint (`Invalid.payload_sha256`, itself keyed) rather than from the payload so that it
exists wherever a verdict does, including for a line too long to hold (`history.sources`
streams a 100 MB line), and it is keyed again so that an id never becomes a reversible
fingerprint, whatever fingerprint it was made from. The payload is the redacted form from
`validation.redact` (contract fields that validated) or, for input that was not a JSON object,
nothing but its fingerprint and length.

`unstorable_letter` makes the dead letter of a record that passed validation (or bypassed it)
but that ClickHouse refused (`unstorable`): the same redaction applied to the contract fields the
record still holds, so it can be inspected and re-driven like any other letter, and the keyed
digest and length of the record as encoded on `psmon.valid`. Unless the caller names it, its id is the
`letter_id` of the event's contract fields, so the same event refused by the sink and by a
backfill is one letter.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from psmon.schemas.digest import payload_digest
from psmon.schemas.normalized import ValidRecord, encode_valid
from psmon.schemas.validation import UNSTORABLE, Invalid, redact

__all__ = ["DeadLetter", "dead_letter_of", "decode_dead_letter", "encode_dead_letter", "letter_id", "unstorable_letter"]

_MAX_DETAIL: Final = 300


@dataclass(frozen=True, slots=True)
class DeadLetter:
    dead_letter_id: str
    reason: str
    detail: str
    redacted: dict[str, Any] | None
    payload_sha256: str
    payload_bytes: int
    src_partition: int
    src_offset: int
    src_ts_ms: int


def letter_id(payload_sha256: str) -> str:
    """The id of the dead letter of a payload, from its fingerprint: `dl-` + 32 hex digits.

    Keyed (`payload_digest`) and cut to 128 bits, which is ample against collisions."""
    return "dl-" + payload_digest(payload_sha256.encode())[:32]


def dead_letter_of(verdict: Invalid, *, src_partition: int, src_offset: int, src_ts_ms: int) -> DeadLetter:
    """The dead letter of a rejected message, from Kafka or a file row; its id is from content (`letter_id`)."""
    return DeadLetter(
        dead_letter_id=letter_id(verdict.payload_sha256),
        reason=verdict.reason,
        detail=verdict.detail,
        redacted=verdict.redacted,
        payload_sha256=verdict.payload_sha256,
        payload_bytes=verdict.payload_bytes,
        src_partition=src_partition,
        src_offset=src_offset,
        src_ts_ms=src_ts_ms,
    )


def encode_dead_letter(verdict: Invalid, *, src_partition: int, src_offset: int, src_ts_ms: int) -> bytes:
    """The `psmon.dead-letter` record of a rejected message (orjson writes the dataclass's fields in order)."""
    letter = dead_letter_of(verdict, src_partition=src_partition, src_offset=src_offset, src_ts_ms=src_ts_ms)
    return orjson.dumps(letter)


def decode_dead_letter(raw: bytes) -> DeadLetter:
    return DeadLetter(**orjson.loads(raw))


def unstorable_letter(record: ValidRecord, *, error: BaseException, dead_letter_id: str | None = None) -> DeadLetter:
    """The `unstorable` dead letter of a valid record that ClickHouse refused with `error`.

    Its id is `dead_letter_id` when given, else the `letter_id` of the event's contract fields."""
    e = record.event
    contract: dict[str, Any] = {
        "event_id": e.event_id,
        "event_type": e.event_type,
        "schema_version": 1,
        "province_code": e.raw_province_code,
        "level": e.level,
        "procedure_code": e.procedure_code,
        "dossier_id": e.dossier_id,
    }
    try:
        occurred = datetime.fromtimestamp(e.occurred_at_s, UTC).isoformat(timespec="microseconds")
        contract["occurred_at"] = occurred.replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        pass  # out of datetime's range: not kept (it did not validate either)
    for name in (
        "agency_code",
        "commune_code",
        "source_system",
        "channel",
        "service_mode",
        "fee_bearing",
        "on_time",
        "method",
        "amount_vnd",
        "kind",
    ):
        value = getattr(e, name)
        if value is not None:
            contract[name] = value
    try:
        payload = encode_valid(
            e, src_partition=record.src_partition, src_offset=record.src_offset, src_ts_ms=record.src_ts_ms
        )
    except (TypeError, ValueError, OverflowError):
        payload = repr(record).encode()
    reason = " ".join(str(error).split())  # one line, whatever the driver's message looks like
    detail = f"ClickHouse cannot store this event: {type(error).__name__}: {reason}"
    if dead_letter_id is None:
        # The event's fields with its time in whole microseconds, as `psmon.valid` carries it, so
        # the sink (which decoded the record) and a backfill (which validated the line) agree.
        basis = {**contract, "occurred_at": round(e.occurred_at_s * 1_000_000)}
        dead_letter_id = letter_id(payload_digest(orjson.dumps(basis, option=orjson.OPT_SORT_KEYS)))
    return DeadLetter(
        dead_letter_id=dead_letter_id,
        reason=UNSTORABLE,
        detail=detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 3] + "...",
        redacted=redact(contract),
        payload_sha256=payload_digest(payload),
        payload_bytes=len(payload),
        src_partition=record.src_partition,
        src_offset=record.src_offset,
        src_ts_ms=record.src_ts_ms,
    )
