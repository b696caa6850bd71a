"""Validation of raw portal messages: bytes in, a `ValidEvent` or an `Invalid` verdict out.

This is stage 1's pure core; it never raises on input. Every rejection carries exactly one
reason from the fixed list of the contract (docs/contract.md, "Bad input"), chosen by a fixed
precedence so the same input always gets the same reason:

    too_large > malformed_json > not_an_object > personal_data > (schema_version)
    > (event_type) > unknown_field > missing_field > invalid_value > unknown_province
    > time_out_of_range > cross-field rules (invalid_value)

`personal_data` comes before everything that reads values, so a message with a personal field is
never half-processed. The redacted payload kept for dead letters contains only contract fields
whose values validated on their own; input that could not be parsed as an object is kept as its
SHA-256 and length only.

Every number and time that a valid event carries into storage is bounded, because a value that
passes here but that ClickHouse cannot hold would stop the history sink: `amount_vnd` is at most
`MAX_AMOUNT_VND` (`invalid_value`), `occurred_at` is before `MAX_OCCURRED_AT`, and the Kafka
record timestamp itself must be plausible (not before 2015, at most `MAX_RECORD_AHEAD_S` after
the wall clock): a producer that sets it in microseconds, or from a clock centuries off, gets
`time_out_of_range` instead of an event stored in year 58,000. The record timestamp is not
portal content, but a portal's producer sets it, so it is treated like the event time it bounds.

`REASONS` are the reasons validation gives. `DEAD_LETTER_REASONS` adds `unstorable`: a row that
passed validation (or bypassed it: a record from an older worker) and that ClickHouse still
refused as a data error; the sink and `psmon replay` set it aside with that reason instead of
retrying it forever.
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Annotated, Any, Final, Literal, get_args

import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError

from psmon.schemas.events import EVENT_MODELS, PortalEvent
from psmon.schemas.pii import is_personal_field
from psmon.schemas.provinces import registry
from psmon.timeutil import LOCAL_TZ, MERGER_EFFECTIVE

__all__ = [
    "DEAD_LETTER_REASONS",
    "MAX_EVENT_BYTES",
    "MAX_FUTURE_S",
    "MAX_OCCURRED_AT",
    "MAX_RECORD_AHEAD_S",
    "MIN_OCCURRED_AT",
    "MIN_RECORD_TS",
    "REASONS",
    "UNSTORABLE",
    "DeadLetterReason",
    "Invalid",
    "Reason",
    "ValidEvent",
    "redact",
    "validate_event",
]

Reason = Literal[
    "malformed_json",
    "not_an_object",
    "too_large",
    "missing_field",
    "unknown_field",
    "invalid_value",
    "unknown_event_type",
    "unsupported_schema_version",
    "unknown_province",
    "time_out_of_range",
    "personal_data",
]
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)
#: Every reason a dead letter can carry: validation's, and `unstorable` (set by the history writers).
DeadLetterReason = Literal[Reason, "unstorable"]
UNSTORABLE: Final = "unstorable"
DEAD_LETTER_REASONS: Final[tuple[DeadLetterReason, ...]] = (*REASONS, UNSTORABLE)

MAX_EVENT_BYTES: Final = 8 * 1024
MAX_FUTURE_S: Final = 300.0
MIN_OCCURRED_AT: Final = datetime(2015, 1, 1, tzinfo=LOCAL_TZ)
#: Absolute upper bound of `occurred_at` (exclusive), whatever the record timestamp says.
MAX_OCCURRED_AT: Final = datetime(2100, 1, 1, tzinfo=UTC)
#: Earliest plausible Kafka record timestamp; the latest is `MAX_RECORD_AHEAD_S` after the wall clock.
MIN_RECORD_TS: Final = MIN_OCCURRED_AT
MAX_RECORD_AHEAD_S: Final = 86_400.0
_MIN_OCCURRED_S: Final = MIN_OCCURRED_AT.timestamp()
_MAX_OCCURRED_S: Final = MAX_OCCURRED_AT.timestamp()
_MIN_RECORD_S: Final = MIN_RECORD_TS.timestamp()
_MERGER_S: Final = MERGER_EFFECTIVE.timestamp()


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """A validated event, normalized: 34-province code, UTC event time."""

    event_id: str
    event_type: str
    occurred_at_s: float  # UTC epoch seconds
    province_code: str  # 34-province code
    raw_province_code: str  # as sent (may be an old 63-province code)
    level: str
    procedure_code: str
    dossier_id: str
    agency_code: str | None = None
    commune_code: str | None = None
    source_system: str | None = None
    channel: str | None = None
    service_mode: str | None = None
    fee_bearing: bool | None = None
    on_time: bool | None = None
    method: str | None = None
    amount_vnd: int | None = None
    kind: str | None = None

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_at_s, UTC)


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a message was rejected, and what of it may be stored."""

    reason: Reason
    detail: str
    #: Contract fields whose values validated; None when the input was not a JSON object.
    redacted: dict[str, Any] | None
    payload_sha256: str
    payload_bytes: int


def validate_event(raw: bytes, *, record_ts_s: float | None = None, now_s: float | None = None) -> ValidEvent | Invalid:
    """Validate one message. `record_ts_s` is the Kafka record timestamp (None: wall clock);
    `now_s` the wall clock that bounds it (None: `time.time()`, read only when a record
    timestamp is given)."""
    if len(raw) > MAX_EVENT_BYTES:
        return _opaque(raw, "too_large", f"{len(raw)} bytes > limit {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _opaque(raw, "malformed_json", f"not valid UTF-8 JSON: {exc.msg}")
    if not isinstance(obj, dict):
        return _opaque(raw, "not_an_object", f"top-level JSON value is {type(obj).__name__}")
    return _validate_object(obj, raw, record_ts_s, now_s)


def _validate_object(
    obj: dict[str, Any], raw: bytes, record_ts_s: float | None, now_s: float | None
) -> ValidEvent | Invalid:
    personal = [k for k in obj if _personal(k)]
    if personal:
        return _reject(obj, raw, "personal_data", f"personal-data fields: {', '.join(sorted(personal))}")

    if "schema_version" not in obj:
        return _reject(obj, raw, "missing_field", "schema_version is required")
    version = obj["schema_version"]
    if type(version) is not int:
        return _reject(obj, raw, "invalid_value", "schema_version must be a JSON integer")
    if version != 1:
        return _reject(obj, raw, "unsupported_schema_version", f"schema_version {version} (supported: 1)")

    if "event_type" not in obj:
        return _reject(obj, raw, "missing_field", "event_type is required")
    event_type = obj["event_type"]
    if not isinstance(event_type, str):
        return _reject(obj, raw, "invalid_value", "event_type must be a string")
    model = EVENT_MODELS.get(event_type)
    if model is None:
        return _reject(obj, raw, "unknown_event_type", "event_type is not one of the v1 types")

    nulls = sorted(k for k, v in obj.items() if v is None and k in model.model_fields)
    try:
        event = model.model_validate(obj)
    except ValidationError as exc:
        return _from_validation_error(exc, obj, raw, nulls)
    if nulls:
        return _reject(obj, raw, "invalid_value", f"null is not allowed; omit {', '.join(nulls)}")

    current = registry().to_current(event.province_code)
    if current is None:
        return _reject(obj, raw, "unknown_province", f"province_code {event.province_code} is not known")

    try:
        occurred = datetime.fromisoformat(event.occurred_at)
    except ValueError:
        return _reject(obj, raw, "invalid_value", "occurred_at is not a valid date-time")
    occurred_s = occurred.timestamp()
    if record_ts_s is not None:
        wall_s = time.time() if now_s is None else now_s
        if not _MIN_RECORD_S <= record_ts_s <= wall_s + MAX_RECORD_AHEAD_S:
            # Not the event's fault: occurred_at stays in the redacted payload (no semantic drop).
            detail = (
                f"Kafka record timestamp {record_ts_s * 1000:.0f} ms is out of range (milliseconds "
                "expected, not before 2015-01-01T00:00:00+07:00, at most 1 day after the wall clock)"
            )
            return Invalid("time_out_of_range", detail, redact(obj), hashlib.sha256(raw).hexdigest(), len(raw))
    if occurred_s < _MIN_OCCURRED_S:
        return _reject(obj, raw, "time_out_of_range", "occurred_at is before 2015-01-01T00:00:00+07:00")
    if occurred_s >= _MAX_OCCURRED_S:
        return _reject(obj, raw, "time_out_of_range", "occurred_at is not before 2100-01-01T00:00:00Z")
    limit_s = (record_ts_s if record_ts_s is not None else time.time()) + MAX_FUTURE_S
    if occurred_s > limit_s:
        return _reject(obj, raw, "time_out_of_range", "occurred_at is more than 5 min after the record time")

    if event.level == "district" and occurred_s >= _MERGER_S:
        return _reject(obj, raw, "invalid_value", "level 'district' is not valid from 2025-07-01")
    if obj.get("channel") == "online" and obj.get("service_mode") == "offline":
        return _reject(obj, raw, "invalid_value", "channel 'online' with service_mode 'offline'")

    return ValidEvent(
        event_id=event.event_id,
        event_type=event_type,
        occurred_at_s=occurred_s,
        province_code=current,
        raw_province_code=event.province_code,
        level=event.level,
        procedure_code=event.procedure_code,
        dossier_id=event.dossier_id,
        agency_code=event.agency_code,
        commune_code=event.commune_code,
        source_system=event.source_system,
        channel=obj.get("channel"),
        service_mode=obj.get("service_mode"),
        fee_bearing=obj.get("fee_bearing"),
        on_time=obj.get("on_time"),
        method=obj.get("method"),
        amount_vnd=obj.get("amount_vnd"),
        kind=obj.get("kind"),
    )


@lru_cache(maxsize=4096)
def _personal(name: str) -> bool:
    # Field names repeat across messages, so the folding work is paid once per name.
    return is_personal_field(name)


_ERROR_REASON: Final[dict[str, Reason]] = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
}
_REASON_RANK: Final[dict[Reason, int]] = {
    "unknown_field": 0,
    "missing_field": 1,
    "invalid_value": 2,
}


def _from_validation_error(exc: ValidationError, obj: dict[str, Any], raw: bytes, nulls: list[str]) -> Invalid:
    by_reason: dict[Reason, list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "(event)"
        by_reason.setdefault(_ERROR_REASON.get(err["type"], "invalid_value"), []).append(field)
    if nulls:
        by_reason.setdefault("invalid_value", []).extend(nulls)
    reason = min(by_reason, key=_REASON_RANK.__getitem__)
    verb = {"unknown_field": "unknown fields", "missing_field": "missing fields"}.get(reason, "invalid values")
    return _reject(obj, raw, reason, f"{verb}: {', '.join(sorted(set(by_reason[reason])))}")


def _opaque(raw: bytes, reason: Reason, detail: str) -> Invalid:
    return Invalid(reason, detail, None, hashlib.sha256(raw).hexdigest(), len(raw))


def _reject(obj: dict[str, Any], raw: bytes, reason: Reason, detail: str) -> Invalid:
    return Invalid(reason, detail, redact(obj, reason), hashlib.sha256(raw).hexdigest(), len(raw))


def redact(obj: dict[str, Any], reason: Reason | None = None) -> dict[str, Any]:
    """Keep only contract fields whose values validate on their own.

    A field that caused a semantic rejection (the unknown province, the out-of-range time) is
    dropped too, since its value did not validate. Values of unknown and personal fields are
    never kept, whatever their name.
    """
    event_type = obj.get("event_type")
    model = EVENT_MODELS.get(event_type, PortalEvent) if isinstance(event_type, str) else PortalEvent
    dropped = _SEMANTIC_FIELD.get(reason) if reason else None
    return {
        name: value
        for name, value in obj.items()
        if name in model.model_fields
        and name != dropped
        and value is not None
        and not (name == "schema_version" and type(value) is not int)
        and _field_ok(model, name, value)
    }


_SEMANTIC_FIELD: Final[dict[str, str]] = {
    "unknown_province": "province_code",
    "time_out_of_range": "occurred_at",
}


def _field_ok(model: type[PortalEvent], name: str, value: Any) -> bool:
    try:
        _field_adapter(model, name).validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


@cache
def _field_adapter(model: type[PortalEvent], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    annotated: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotated, config=ConfigDict(strict=True))
