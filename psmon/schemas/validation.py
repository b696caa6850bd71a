"""Validation of raw portal messages: bytes in, a `ValidEvent` or an `Invalid` verdict out.

This is stage 1's pure core; it never raises on input. Every rejection carries exactly one
reason from the fixed list of the contract (docs/contract.md, "Bad input"), chosen by a fixed
precedence so the same input always gets the same reason:

    too_large > malformed_json > not_an_object > personal_data > (schema_version)
    > (event_type) > unknown_field > missing_field > invalid_value > unknown_province
    > time_out_of_range > cross-field rules (invalid_value)

`personal_data` comes before everything that reads values, so a message with a personal field is
never half-processed: a field *name* that denotes personal data, or a string *value* anywhere in
the message (any field, nested ones included) that contains an ID number, a mobile number or an
e-mail address (`psmon.schemas.pii`). The value check is one regex call per message over its
string values joined, because it runs on every valid event too.

Nothing a portal sent outside the contract is repeated: details name only contract fields
(`unknown fields: on_time, 2 other names (not shown)`), since an unknown field's *name* can itself
be personal (`"Nguyen Van A - 001099012345": 1`). The redacted payload kept for dead letters
contains only contract fields whose values validated on their own and hold no personal data;
input that could not be parsed as an object is kept as its keyed digest and length only. Every
payload fingerprint (`Invalid.payload_sha256`, named for the column that stores it) is an
HMAC-SHA-256 under the installation's key (`psmon.schemas.digest`), not a plain SHA-256, which
anyone could reverse for a short payload by trying every 12-digit ID number.

Every number and time that a valid event carries into storage is bounded, because a value that
passes here but that ClickHouse cannot hold would stop the history sink: `amount_vnd` is at most
`MAX_AMOUNT_VND` (`invalid_value`), `occurred_at` is before `MAX_OCCURRED_AT`, and the Kafka
record timestamp itself must be plausible (not before 2015, at most `MAX_RECORD_AHEAD_S` after
the wall clock): a producer that sets it in microseconds, or from a clock centuries off, gets
`time_out_of_range` instead of an event stored in year 58,000. The record timestamp is not
portal content, but a portal's producer sets it, so it is treated like the event time it bounds.

Two paths give the same verdicts. `validate_event_reference` is the contract as written: the
pydantic models in strict mode, then the rules above; every reason and detail comes from it.
`validate_event` (one message) and `validate_events` / `validate_stream` (a batch, the same
verdicts; stage 1 calls `validate_stream`) first try two fast paths, both compiled by
`psmon.schemas.fastpath` from the models' published JSON Schema: the typed decoder (msgspec
structs: parse and type checks in one C pass, then the patterns, personal data, province and
time rules on the struct), and for what it refuses, orjson and the shape checks (`_accept`).
Both only ever *accept*: a message neither accepts goes to the reference path, so rejections,
their precedence and details are the reference's by construction, and
`tests/unit/schemas/test_fastpath.py` checks on tens of thousands of generated and mutated
messages, one at a time and in batches, that what it accepts equals the reference's
`ValidEvent`. Why: cProfile of the reference over the benchmark corpus (simulator JSONL, 1% bad;
`python -m benchmarks --only cpu` measures both paths), shares of its time:

    _personal_data (bytes scan, string list, regex over every value)  ~30%
    pydantic model_validate (core validator ~13%, wrapper ~2%)        ~15%
    _validate_object's own bytecode, incl. the frozen ValidEvent      ~25%
      (a frozen dataclass's __init__ sets 18 fields via object.__setattr__: ~4 µs)
    nulls list + sorted(), registry call, fromisoformat, timestamp    ~15%
    orjson.loads                                                      ~4%

so pydantic itself was a minor part: what costs is Python-level work per field and per value.
The fast path does a fixed number of C-level calls per message: the field names as a tuple (the
shape's key), the string values joined and matched by one compiled regex, strict type checks of
the integers and booleans, the personal-data regex tried only where 9 digits in a row start
(`pii.has_personal_value`, instead of at every digit of the event time), the province map's
`dict.get`, `datetime.fromisoformat`, and `ValidEvent` (a msgspec struct). Its profile on the same
corpus: orjson.loads, the personal-data check and the joined-string regex are the largest items,
then `ValidEvent.__init__`, `timestamp()` and the dict lookups; the typed decoder removes the
shape lookup, the type checks and the dict lookups from that list (its profile is in
`fastpath`'s docstring). Rejected messages cost what they did (the fast paths add a few percent
before handing over); about 40% of a rejection is `redact`
(a pydantic TypeAdapter per field), which bounds a flood of bad input at about a tenth of the
valid-event rate.

`REASONS` are the reasons validation gives. `DEAD_LETTER_REASONS` adds `unstorable`: a row that
passed validation (or bypassed it: a record from an older worker) and that ClickHouse still
refused as a data error; the sink and `psmon replay` set it aside with that reason instead of
retrying it forever.
"""

import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import attrgetter
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError

from psmon.schemas.digest import payload_digest
from psmon.schemas.events import EVENT_MODELS, PortalEvent
from psmon.schemas.fastpath import DECODE, MISSING, SHAPES, Shape, shapes_by_type, typed_decoder
from psmon.schemas.pii import (
    has_personal_value,
    is_personal_field,
    may_hold_personal_value,
    personal_value_candidates,
    personal_value_kind,
    scan,
)
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
    "STREAM_BATCH",
    "UNSTORABLE",
    "DeadLetterReason",
    "Invalid",
    "Reason",
    "ValidEvent",
    "redact",
    "validate_event",
    "validate_event_reference",
    "validate_events",
    "validate_stream",
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
#: Province code as sent -> 34-province code (None: unknown), bound once for the hot path.
_TO_CURRENT: Final = registry().to_current_fast


class ValidEvent(msgspec.Struct, frozen=True, gc=False):
    """A validated event, normalized: 34-province code, UTC event time.

    Immutable and hashable by value. A msgspec struct, not a dataclass, because its `__init__` is
    C: building one costs about a third of a slotted dataclass's generated `__init__` (18 slot
    stores in Python bytecode, about 0.7 µs), and a frozen dataclass's, which sets each field
    through `object.__setattr__`, cost 4 µs an event. `gc=False`: its fields are strings, numbers
    and None, so it can never be part of a reference cycle. Its field names are
    `ValidEvent.__struct_fields__`; `msgspec.structs.replace` makes a changed copy."""

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
    #: One line that names contract fields only, never a value or a name the portal made up.
    detail: str
    #: Contract fields whose values validated; None when the input was not a JSON object.
    redacted: dict[str, Any] | None
    #: Keyed digest (HMAC-SHA-256, `digest.payload_digest`) of the raw bytes, 64 hex digits.
    payload_sha256: str
    payload_bytes: int


def validate_event(raw: bytes, *, record_ts_s: float | None = None, now_s: float | None = None) -> ValidEvent | Invalid:
    """Validate one message. `record_ts_s` is the Kafka record timestamp (None: wall clock);
    `now_s` the wall clock that bounds it (None: `time.time()`, read only when a record
    timestamp is given). A message at a time; `validate_events` and `validate_stream` give the
    same verdicts for many at a lower cost per message.

    The fast path: accept a valid event with a few C-level calls (`_accept_typed`, the typed
    decoder of `fastpath.typed_decoder`, see that module's docstring); anything it does not
    accept goes to `_validate_untyped` (the shape checks, then the model-based path of
    `validate_event_reference`, which gives the verdict), so reasons, precedence and details are
    the reference's by construction."""
    if len(raw) > MAX_EVENT_BYTES:
        return _opaque(raw, "too_large", f"{len(raw)} bytes > limit {MAX_EVENT_BYTES}")
    if not _PARTS:
        _typed_parts()
    if record_ts_s is None:
        limit_s = time.time() + MAX_FUTURE_S
    elif _MIN_RECORD_S <= record_ts_s <= (time.time() if now_s is None else now_s) + MAX_RECORD_AHEAD_S:
        limit_s = record_ts_s + MAX_FUTURE_S
    else:
        limit_s = -1.0  # an implausible record timestamp: the reference gives time_out_of_range
    valid = _accept_typed(raw, limit_s, True)
    return valid if valid is not None else _validate_untyped(raw, record_ts_s, now_s)


#: Messages per `validate_events` call in `validate_stream`: enough for the batch pre-scan's saving,
#: few enough that a batch's verdicts (and the strings they hold) stay in the CPU caches until the
#: caller uses them; 2,000 at a time measured about 20% slower than 128.
STREAM_BATCH: Final = 128


def validate_stream(
    messages: Sequence[bytes], record_ts_s: Sequence[float] | None = None, *, now_s: float | None = None
) -> Iterator[ValidEvent | Invalid]:
    """The verdicts of `validate_events(messages, record_ts_s, now_s=now_s)`, in order, computed
    `STREAM_BATCH` messages at a time as they are consumed: what stage 1 calls on each poll."""
    for start in range(0, len(messages), STREAM_BATCH):
        end = start + STREAM_BATCH
        timestamps = None if record_ts_s is None else record_ts_s[start:end]
        yield from validate_events(messages[start:end], timestamps, now_s=now_s)


def validate_events(
    messages: Sequence[bytes], record_ts_s: Sequence[float] | None = None, *, now_s: float | None = None
) -> list[ValidEvent | Invalid]:
    """`validate_event` of each message, in order: the verdict of `messages[i]` is the one it gets
    alone with the record timestamp `record_ts_s[i]` (None: no record timestamps, the wall clock
    bounds event times). The wall clock is read once per call, not once per message.

    What a batch saves over one call per message: the personal-data pre-scan runs once over the
    batch's raw bytes (`pii.personal_value_candidates`), so the exact check of `_accept_typed`
    runs only for the few messages it flags, and the per-call set-up is paid once."""
    if not _PARTS:
        _typed_parts()
    # A few messages get the exact check each (every index is "in" the range): the pre-scan's
    # fixed cost per call is about that of the exact check of one message.
    candidates: Container[int] = (
        personal_value_candidates(messages) if len(messages) >= _PRESCAN_MIN else range(len(messages))
    )
    if record_ts_s is None:
        untimed_limit_s = time.time() + MAX_FUTURE_S
        latest_record_s = 0.0  # unused
    else:
        untimed_limit_s = 0.0  # unused
        latest_record_s = (time.time() if now_s is None else now_s) + MAX_RECORD_AHEAD_S
    verdicts: list[ValidEvent | Invalid] = []
    append = verdicts.append
    decode = DECODE[0]
    parts = _PARTS
    fields = _TYPED_FIELDS
    to_current = _TO_CURRENT
    fromisoformat = datetime.fromisoformat
    # Usually no message is too large: then one C-level pass checks them all.
    any_too_large = bool(messages) and max(map(len, messages)) > MAX_EVENT_BYTES
    timestamps: Sequence[float | None] = [None] * len(messages) if record_ts_s is None else record_ts_s
    # `_accept_typed`'s checks, inlined: a Python call per message costs about a fifth of the
    # batch's gain. The differential tests hold both to the reference's verdicts.
    for i, (raw, record_s) in enumerate(zip(messages, timestamps, strict=True)):
        if any_too_large and len(raw) > MAX_EVENT_BYTES:
            append(_opaque(raw, "too_large", f"{len(raw)} bytes > limit {MAX_EVENT_BYTES}"))
            continue
        try:
            event = decode(raw)
            strings, separators, fullmatch, event_type = parts[type(event)]
            joined = "\n".join(strings(event))
            (
                event_id,
                occurred_at,
                raw_province,
                level,
                procedure_code,
                dossier_id,
                agency_code,
                commune_code,
                source_system,
                channel,
                service_mode,
                fee_bearing,
                on_time,
                method,
                amount_vnd,
                kind,
            ) = fields(event)
            occurred_s = fromisoformat(occurred_at).timestamp()
        except (msgspec.DecodeError, ValueError):
            append(_validate_untyped(raw, record_s, now_s))
            continue
        if record_s is None:
            limit_s = untimed_limit_s
        elif _MIN_RECORD_S <= record_s <= latest_record_s:
            limit_s = record_s + MAX_FUTURE_S
        else:
            limit_s = -1.0  # an implausible record timestamp: the reference gives time_out_of_range
        province = to_current(raw_province)
        if (
            (i in candidates and (joined.count("\n") != separators or has_personal_value(joined)))
            or fullmatch(joined) is None
            or province is None
            or not _MIN_OCCURRED_S <= occurred_s < _MAX_OCCURRED_S
            or occurred_s > limit_s
            or (level == "district" and occurred_s >= _MERGER_S)
            or (channel == "online" and service_mode == "offline")
        ):
            append(_validate_untyped(raw, record_s, now_s))
            continue
        append(
            ValidEvent(
                event_id,
                event_type,
                occurred_s,
                province,
                raw_province,
                level,
                procedure_code,
                dossier_id,
                agency_code or None,
                commune_code or None,
                source_system or None,
                channel,
                service_mode,
                fee_bearing,
                on_time,
                method,
                amount_vnd,
                kind,
            )
        )
    return verdicts


def _accept_typed(raw: bytes, limit_s: float, maybe_personal: bool) -> ValidEvent | None:
    """The event if the typed decoder accepts `raw` and it passes every rule left after it, else
    None (the general path then gives the verdict). `limit_s`: the latest acceptable event time
    (below every event time when the record timestamp is implausible). `maybe_personal`: False
    when a pre-scan of the raw bytes ruled out a personal value in its strings."""
    try:
        event = DECODE[0](raw)
        # The typed decoder checked names, types, enums, bounds and lengths; what is left, in the
        # cheapest order, is each a necessary condition of validity as the reference checks it.
        strings, separators, fullmatch, event_type = _PARTS[type(event)]
        joined = "\n".join(strings(event))
        (
            event_id,
            occurred_at,
            raw_province,
            level,
            procedure_code,
            dossier_id,
            agency_code,
            commune_code,
            source_system,
            channel,
            service_mode,
            fee_bearing,
            on_time,
            method,
            amount_vnd,
            kind,
        ) = _TYPED_FIELDS(event)
        # Parsed before the pattern check (below) says it is an RFC 3339 date-time: a ValueError
        # here is one more refusal.
        occurred_s = datetime.fromisoformat(occurred_at).timestamp()
    except (msgspec.DecodeError, ValueError):  # ValueError: invalid UTF-8 (UnicodeDecodeError)
        return None
    province = _TO_CURRENT(raw_province)
    if (
        # The personal-data scan of the reference over the same strings: every other string of
        # an accepted message is an enum value (none personal, `typed_decoder` checks) or
        # event_type. Only a message the pre-scan flags can also have a line feed in a value: a
        # JSON text holds one in a string only as an escape, whose backslash the pre-scan flags.
        (maybe_personal and (joined.count("\n") != separators or has_personal_value(joined)))
        or fullmatch(joined) is None
        or province is None
        or not _MIN_OCCURRED_S <= occurred_s < _MAX_OCCURRED_S
        or occurred_s > limit_s
        or (level == "district" and occurred_s >= _MERGER_S)
        or (channel == "online" and service_mode == "offline")
    ):
        return None
    return ValidEvent(
        event_id,
        event_type,
        occurred_s,
        province,
        raw_province,
        level,
        procedure_code,
        dossier_id,
        agency_code or None,  # ABSENT ("") when not sent
        commune_code or None,
        source_system or None,
        channel,
        service_mode,
        fee_bearing,
        on_time,
        method,
        amount_vnd,
        kind,
    )


#: Batches from this size get the personal-data pre-scan; smaller ones the exact check per message.
_PRESCAN_MIN: Final = 4

#: Every field a `ValidEvent` takes from the message, read from any event type's struct (the
#: fields of other event types are None there, the optional strings not sent `fastpath.ABSENT`).
_TYPED_FIELDS: Final = attrgetter(
    "event_id",
    "occurred_at",
    "province_code",
    "level",
    "procedure_code",
    "dossier_id",
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
)

#: Struct class -> (strings getter, separators, pattern's fullmatch, event type): a `Typed` as a
#: tuple, unpacked in one step by the hot loop.
_PARTS: Final[dict[type, tuple[Callable[[Any], tuple[str, ...]], int, Callable[[str], Any], str]]] = {}


def _typed_parts() -> dict[type, tuple[Callable[[Any], tuple[str, ...]], int, Callable[[str], Any], str]]:
    _PARTS.update(
        {cls: (t.strings, t.separators, t.pattern.fullmatch, t.event_type) for cls, t in typed_decoder()[1].items()}
    )
    return _PARTS


def _validate_untyped(raw: bytes, record_ts_s: float | None, now_s: float | None) -> ValidEvent | Invalid:
    """The verdict on a message the typed decoder did not accept: the shape-based fast path
    (`_accept`), then the model-based reference path, which says why."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _opaque(raw, "malformed_json", f"not valid UTF-8 JSON: {exc.msg}")
    if type(obj) is not dict:
        return _opaque(raw, "not_an_object", f"top-level JSON value is {type(obj).__name__}")
    valid = _accept(obj, record_ts_s, now_s)
    if valid is not None:
        return valid
    return _validate_object(obj, raw, record_ts_s, now_s)


def _accept(obj: dict[str, Any], record_ts_s: float | None, now_s: float | None) -> ValidEvent | None:
    """The event if `obj` is valid by every rule, else None (the reference path then says why).

    Each test here is a necessary condition of validity as the reference path checks it, in
    whatever order is cheapest; only a message passing all of them is accepted."""
    event_type = obj.get("event_type")
    if type(event_type) is not str:
        return None
    shapes = (SHAPES or shapes_by_type()).get(event_type)
    if shapes is None:
        return None
    names = tuple(obj)
    found = shapes.get(names, MISSING)
    shape = shapes.compile(names) if found is MISSING else found
    if type(shape) is not Shape:  # None: not a valid set of names
        return None
    try:
        joined = "\n".join(shape.strings(obj))
    except TypeError:  # a string field holds another JSON type (null included)
        return None
    if joined.count("\n") != shape.separators or shape.pattern.fullmatch(joined) is None:
        return None
    for name, low, high in shape.integers:
        value = obj[name]
        if type(value) is not int or not low <= value <= high:
            return None
    for name in shape.booleans:
        if type(obj[name]) is not bool:
            return None
    # The personal-data scan of the reference over the same strings: every other value of an
    # accepted message is an integer or a boolean, and its field names are the contract's.
    if has_personal_value(joined):
        return None
    raw_province = obj["province_code"]
    province = _TO_CURRENT(raw_province)
    if province is None:
        return None
    occurred_at = obj["occurred_at"]
    try:
        occurred_s = datetime.fromisoformat(occurred_at).timestamp()
    except ValueError:
        return None
    if record_ts_s is not None:
        wall_s = time.time() if now_s is None else now_s
        if not _MIN_RECORD_S <= record_ts_s <= wall_s + MAX_RECORD_AHEAD_S:
            return None
        limit_s = record_ts_s + MAX_FUTURE_S
    else:
        limit_s = time.time() + MAX_FUTURE_S
    if not _MIN_OCCURRED_S <= occurred_s < _MAX_OCCURRED_S or occurred_s > limit_s:
        return None
    level = obj["level"]
    if level == "district" and occurred_s >= _MERGER_S:
        return None
    get = obj.get
    channel = get("channel")
    service_mode = get("service_mode")
    if channel == "online" and service_mode == "offline":
        return None
    return ValidEvent(
        obj["event_id"],
        event_type,
        occurred_s,
        province,
        raw_province,
        level,
        obj["procedure_code"],
        obj["dossier_id"],
        get("agency_code"),
        get("commune_code"),
        get("source_system"),
        channel,
        service_mode,
        get("fee_bearing"),
        get("on_time"),
        get("method"),
        get("amount_vnd"),
        get("kind"),
    )


def validate_event_reference(
    raw: bytes, *, record_ts_s: float | None = None, now_s: float | None = None
) -> ValidEvent | Invalid:
    """`validate_event` by the pydantic models alone, without the fast path: the reference that
    the fast path is tested against (`tests/unit/schemas/test_fastpath.py`) and measured against
    (`benchmarks/cpu.py`)."""
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
    personal = _personal_data(obj, raw)
    if personal is not None:
        return _reject(obj, raw, "personal_data", personal)

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
            return Invalid("time_out_of_range", detail, redact(obj), payload_digest(raw), len(raw))
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


#: Every field name of contract v1, of any event type: the only names a detail may show.
_CONTRACT_FIELDS: Final = frozenset(name for model in EVENT_MODELS.values() for name in model.model_fields)


@lru_cache(maxsize=4096)
def _personal(name: str) -> bool:
    # Field names repeat across messages, so the folding work is paid once per name. A name that
    # holds a personal value ("Nguyen Van A - 001099012345") is as personal as one that says so.
    return is_personal_field(name) or personal_value_kind(name) is not None


def _personal_data(obj: dict[str, Any], raw: bytes) -> str | None:
    """The `personal_data` detail of a message, or None when it has no personal name or value.

    The fast path (every valid event) is C-level work: a set difference with the contract's names
    (those are not personal, a test checks it; only other names, cached, are looked at), a bytes
    scan of the raw message and, only if that finds 9 digits in a row or an `@`, one regex call
    over the string values. Only fields outside the contract can nest arrays or objects.
    Working out which fields were personal is left to the rare message that has some."""
    extra = obj.keys() - _CONTRACT_FIELDS
    found = False
    for name in extra:
        if _personal(name):
            found = True
            break
    if not found and may_hold_personal_value(raw):
        texts = [value for value in obj.values() if type(value) is str]
        for name in extra:
            value = obj[name]
            if type(value) is list or type(value) is dict:
                texts.extend(_nested_strings(value))
        found = scan(texts)
    if not found:
        return None
    names = sum(1 for name in obj if _personal(name))
    kinds: dict[str, list[str]] = {}
    for name, value in obj.items():
        strings = [value] if type(value) is str else _nested_strings(value)
        kind = next((k for s in strings if (k := personal_value_kind(s)) is not None), None)
        if kind is not None and not _personal(name):
            kinds.setdefault(kind, []).append(name)
    parts = [f"{names} field name{'s' if names != 1 else ''} denoting personal data (not shown)"] if names else []
    parts += [f"{kind} in {_names(fields)}" for kind, fields in sorted(kinds.items())]
    return "personal data: " + "; ".join(parts)


def _nested_strings(value: Any) -> list[str]:
    """Every string inside a JSON array or object, its keys included (iterative: JSON may nest
    deeper than Python's recursion limit)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            out.append(item)
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            out.extend(item)
            stack.extend(item.values())
    return out


def _names(names: list[str] | set[str]) -> str:
    """Field names for a detail: contract names as they are, any other name only counted."""
    shown = sorted({n for n in names if n in _CONTRACT_FIELDS})
    hidden = len(set(names)) - len(shown)
    if hidden:
        shown.append(f"{hidden} other name{'s' if hidden != 1 else ''} (not shown)")
    return ", ".join(shown)


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
    return _reject(obj, raw, reason, f"{verb}: {_names(by_reason[reason])}")


def _opaque(raw: bytes, reason: Reason, detail: str) -> Invalid:
    return Invalid(reason, detail, None, payload_digest(raw), len(raw))


def _reject(obj: dict[str, Any], raw: bytes, reason: Reason, detail: str) -> Invalid:
    return Invalid(reason, detail, redact(obj, reason), payload_digest(raw), len(raw))


def redact(obj: dict[str, Any], reason: Reason | None = None) -> dict[str, Any]:
    """Keep only contract fields whose values validate on their own and hold no personal data.

    A field that caused a semantic rejection (the unknown province, the out-of-range time) is
    dropped too, since its value did not validate. Values of unknown and personal fields are
    never kept, whatever their name, nor a contract field whose value looks personal (a phone
    number sent as `dossier_id` fits the field's character set).
    """
    event_type = obj.get("event_type")
    model = EVENT_MODELS.get(event_type, PortalEvent) if isinstance(event_type, str) else PortalEvent
    dropped = _SEMANTIC_FIELD.get(reason) if reason else None
    names = _MODEL_FIELDS[model]
    return {
        name: value
        for name, value in obj.items()
        if name in names
        and name != dropped
        and value is not None
        and not (name == "schema_version" and type(value) is not int)
        and _field_ok(model, name, value)
        and not (type(value) is str and personal_value_kind(value) is not None)
    }


#: Each model's field names: `model_fields` is a pydantic property that costs more per read than
#: the membership test (redact reads it once a field of every rejected message).
_MODEL_FIELDS: Final[dict[type[PortalEvent], frozenset[str]]] = {
    model: frozenset(model.model_fields) for model in EVENT_MODELS.values()
}
_MODEL_FIELDS[PortalEvent] = frozenset(PortalEvent.model_fields)

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
