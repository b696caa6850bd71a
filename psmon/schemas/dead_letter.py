"""The dead-letter record on `psmon.dead-letter`: a rejected message, reason and redacted payload.

Its id is the source coordinates (`events:<partition>:<offset>`), so a dead letter re-emitted
after a stage-1 crash is the same row in ClickHouse, not a second one. The payload is the
redacted form from `validation.redact` (contract fields that validated) or, for input that was
not a JSON object, nothing but its SHA-256 and length.

`unstorable_letter` makes the dead letter of a record that passed validation (or bypassed it)
but that ClickHouse refused (`unstorable`): the same redaction applied to the contract fields the
record still holds, so it can be inspected and re-driven like any other letter, and the SHA-256
and length of the record as encoded on `psmon.valid`.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from psmon.schemas.normalized import ValidRecord, encode_valid
from psmon.schemas.validation import UNSTORABLE, Invalid, redact

__all__ = ["DeadLetter", "decode_dead_letter", "encode_dead_letter", "unstorable_letter"]

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


def encode_dead_letter(verdict: Invalid, *, src_partition: int, src_offset: int, src_ts_ms: int) -> bytes:
    return orjson.dumps(
        {
            "dead_letter_id": f"events:{src_partition}:{src_offset}",
            "reason": verdict.reason,
            "detail": verdict.detail,
            "redacted": verdict.redacted,
            "payload_sha256": verdict.payload_sha256,
            "payload_bytes": verdict.payload_bytes,
            "src_partition": src_partition,
            "src_offset": src_offset,
            "src_ts_ms": src_ts_ms,
        }
    )


def decode_dead_letter(raw: bytes) -> DeadLetter:
    return DeadLetter(**orjson.loads(raw))


def unstorable_letter(record: ValidRecord, *, dead_letter_id: str, error: BaseException) -> DeadLetter:
    """The `unstorable` dead letter of a valid record that ClickHouse refused with `error`."""
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
    return DeadLetter(
        dead_letter_id=dead_letter_id,
        reason=UNSTORABLE,
        detail=detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 3] + "...",
        redacted=redact(contract),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_bytes=len(payload),
        src_partition=record.src_partition,
        src_offset=record.src_offset,
        src_ts_ms=record.src_ts_ms,
    )
