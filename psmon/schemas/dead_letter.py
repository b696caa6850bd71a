"""The dead-letter record on `psmon.dead-letter`: a rejected message, reason and redacted payload.

Its id is the source coordinates (`events:<partition>:<offset>`), so a dead letter re-emitted
after a stage-1 crash is the same row in ClickHouse, not a second one. The payload is the
redacted form from `validation.redact` (contract fields that validated) or, for input that was
not a JSON object, nothing but its SHA-256 and length.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from psmon.schemas.validation import Invalid

__all__ = ["DeadLetter", "decode_dead_letter", "encode_dead_letter"]


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
