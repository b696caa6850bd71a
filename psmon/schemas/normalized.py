"""The normalized record on `psmon.valid`: what stage 1 emits and stages 2 and 3 read.

It is the validated contract event with the province in 34-province terms, the code as sent
kept beside it, event time as UTC epoch microseconds, and the coordinates of the source message
(`src`: partition and offset on `psmon.events`, and its record timestamp).

The source coordinates make duplicates exact downstream: a stage-1 crash re-emits records with
the *same* `src` (a redelivery, absorbed silently), while a portal re-sending an `event_id` gives a
*different* `src` (a duplicate, counted). Key on the topic is the 34-province code, so one
province's records share one partition.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from psmon.schemas.validation import ValidEvent

__all__ = ["ValidRecord", "decode_valid", "encode_valid"]

_EVENT_FIELDS: tuple[str, ...] = ValidEvent.__struct_fields__
_ENCODED_FIELDS = tuple(f for f in _EVENT_FIELDS if f != "occurred_at_s")


@dataclass(frozen=True, slots=True)
class ValidRecord:
    event: ValidEvent
    src_partition: int
    src_offset: int
    src_ts_ms: int

    @property
    def src(self) -> tuple[int, int]:
        return (self.src_partition, self.src_offset)


def encode_valid(event: ValidEvent, *, src_partition: int, src_offset: int, src_ts_ms: int) -> bytes:
    # Stage 1's hot path: getattr over a fixed field list, not dataclasses.asdict (a deep copy).
    body: dict[str, Any] = {k: v for k in _ENCODED_FIELDS if (v := getattr(event, k)) is not None}
    body["occurred_at_us"] = round(event.occurred_at_s * 1_000_000)
    body["src"] = [src_partition, src_offset, src_ts_ms]
    return orjson.dumps(body)


def decode_valid(raw: bytes) -> ValidRecord:
    """Inverse of `encode_valid`. Raises ValueError/KeyError on a record psmon did not write."""
    body = orjson.loads(raw)
    src_partition, src_offset, src_ts_ms = body.pop("src")
    body["occurred_at_s"] = body.pop("occurred_at_us") / 1_000_000
    unknown = set(body) - set(_EVENT_FIELDS)
    if unknown:
        raise ValueError(f"unexpected fields on valid record: {sorted(unknown)}")
    return ValidRecord(ValidEvent(**body), int(src_partition), int(src_offset), int(src_ts_ms))
