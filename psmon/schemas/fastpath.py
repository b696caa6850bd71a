"""The contract's per-field checks, compiled from its published JSON Schema for stage 1's hot path.

`validation.validate_event` runs on every event, and running the pydantic models on each one
(plus the personal-data scan, the province map and the time rules) costs about 40 µs an event
on the 2-core CI machine, a ceiling near 25,000-40,000 events/s. Most of that is not pydantic's
core but everything around it per event: building the model, a frozen dataclass, a regex call
per string field. This module turns the contract into something a valid event can be checked
against with a handful of C-level calls, and nothing else.

It is compiled, once per event type and *shape* (the message's field names in their order, since
a portal always sends the same ones), from the JSON Schema that `psmon schema export` publishes
(`jsonschema.event_schemas`, itself generated from the pydantic models in `events.py`), so the
models stay the single source of the contract:

- the field names must lie between the schema's `required` and its `properties` (else no shape);
- every string-typed field becomes one segment of one regular expression: its `pattern`, or its
  `enum`/`const` as an alternation, behind a lookahead for `minLength`/`maxLength`. The message's
  string values, joined by line feeds in the shape's order, are checked with one `fullmatch`.
  That is exact: a caller first checks that the joined text holds exactly one line feed per
  separator, so no value contains one, and since the pattern has exactly that many literal line
  feeds, each segment matches exactly one value;
- integer and boolean fields become strict type checks (`type(v) is int`, never `True` for 1 or
  `1.0`) with their `const` or `minimum`/`maximum`.

Any keyword this compiler does not understand raises at compile time rather than being ignored,
so a contract change that the fast path cannot express fails loudly (and the differential test,
`tests/unit/schemas/test_fastpath.py`, catches one it misreads). The JSON Schema patterns are
written for pydantic's Rust regex engine, where `$` means the end of the text; here they are
matched as a whole (anchors stripped, `fullmatch`), which means the same, where Python's `$`
would also accept a trailing line feed.

A shape is only ever an *acceptance* test: anything it does not accept goes to the model-based
path, which gives the reason and details with the contract's precedence.

The typed decoder (`typed_decoder`) goes one step further and is what `validate_event` tries
first: one msgspec struct per event type, compiled from the same schemas, decodes the raw bytes
and checks names and types in the same C pass (`forbid_unknown_fields`, `event_type` as the
tag, strict types so `true` is not 1 and `1.0` not an integer, null refused because no field
admits it, enums as `Literal`, integer bounds and string lengths as `msgspec.Meta`). The string
patterns stay one joined `fullmatch` as for a shape: as `msgspec.Meta(pattern=...)` they cost
6.9 µs a message against 1.1 µs for the decode without them (msgspec calls the regex per field),
and the joined regex about 1 µs. msgspec, not a hand-written check, because the parse and the
type checks together are then one call, and its JSON reading agrees with orjson's where it
matters (checked by the differential test): the last of repeated keys counts, escapes decode
the same, invalid UTF-8, lone surrogates, a byte order mark and trailing data are refused. Like a
shape, it only accepts: whatever it refuses or leaves in doubt goes to the general path.

Why, from cProfile of `validate_event` over 100,000 lines of the benchmark corpus (simulator
JSONL, 1% bad), shares of the profiled time (a loaded 2-core machine; cProfile inflates calls):

    before (orjson + shape)                         after (typed decoder first)
    _accept's own bytecode           37%            validate_event's own bytecode     38%
    has_personal_value (cumulative)  22%            has_personal_value (cumulative)   22%
    dict.get, 14 calls an event       7%            msgspec Decoder.decode             9%
    orjson.loads                      7%            the joined fullmatch               7%
    the joined fullmatch              5%            datetime.timestamp                 3%
    3.39 M function calls                           1.81 M function calls

(`has_personal_value` no longer enters its regex at a 9-digit group inside a code, as in every
simulator dossier number; see `pii`.)

Then (`validation.validate_stream`, what stage 1 calls: 128 messages per `validate_events`), the
personal-data check became one pre-scan of a batch's raw bytes (`pii.personal_value_candidates`)
and `ValidEvent` a msgspec struct; cProfile of `validate_stream` over the same 100,000 lines:
its loop's own bytecode 41%, the 1% of rejected messages 16% (cumulative), msgspec decode 11%,
the joined fullmatch 10%, the pre-scan 6.5%, `timestamp` and `fromisoformat` 6%; 0.91 M function
calls. Measured in one process against the per-message path: 1.22-1.43x (docs/performance.md).

The shape path's field-name tuple and shape lookup, its integer and boolean loops and the ten
`dict.get` of optional fields are gone (one `attrgetter` reads every field of any event type's
struct, since each struct has the other types' fields as class attributes set to None). What is
left per valid event is the personal-data check, the joined regex, the event time and building
the `ValidEvent`, each already one or two C calls, and the interpreter between them.
"""

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Final, Literal

import msgspec

from psmon.schemas.jsonschema import event_schemas
from psmon.schemas.pii import personal_value_kind

__all__ = [
    "ABSENT",
    "DECODE",
    "MAX_SHAPES_PER_TYPE",
    "MISSING",
    "SHAPES",
    "TYPED",
    "Shape",
    "Shapes",
    "Typed",
    "shapes_by_type",
    "typed_decoder",
]

#: Field orders kept per event type; a portal sends a few, so more means a sender varying its
#: field order, and those get their (cached) shape through a sort per message instead of a cache
#: that grows without bound.
MAX_SHAPES_PER_TYPE: Final = 256

#: A pattern body that is one character class repeated (`[A-Za-z0-9._-]+`); no escapes or nested
#: brackets, so the class ends at the first `]` after its first character.
_ONE_CLASS_REPEATED: Final = re.compile(r"(\[\^?\]?[^\]\\]*\])\+")
#: Syntax that Rust's regex engine (pydantic's) and Python's read differently, or that the
#: compiler's reasoning above does not cover: nested or set-operation classes, flags and
#: lookarounds, inner anchors, escapes other than of punctuation (`\d`, `\w`, `\p{..}`).
_NOT_PORTABLE: Final = re.compile(r"\[\[|&&|--|~~|\(\?|[\^$](?<!\[\^)|\\[A-Za-z0-9]")
#: Keywords that only document a property.
_ANNOTATIONS: Final = frozenset({"title", "description", "default"})


@dataclass(frozen=True, slots=True)
class Shape:
    """How to check one event type's messages that have exactly these fields in this order."""

    #: The string fields' values, as a tuple in shape order.
    strings: Callable[[dict[str, Any]], tuple[Any, ...]]
    #: Line feeds in the joined string values when no value holds one.
    separators: int
    #: All string values joined by line feeds must match this as a whole.
    pattern: re.Pattern[str]
    #: (name, lowest, highest) of integer fields; the bounds are inclusive, equal for a const.
    integers: tuple[tuple[str, int | float, int | float], ...]
    #: Names of boolean fields.
    booleans: tuple[str, ...]


class Shapes:
    """The compiled shapes of one event type, by field names (in order); None: not a valid shape."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._schema = schema
        self._by_names: dict[tuple[str, ...], Shape | None] = {}
        self._by_set: dict[tuple[str, ...], Shape] = {}
        #: The hot path's lookup: `get(names, MISSING)`.
        self.get: Callable[[tuple[str, ...], object], Shape | object | None] = self._by_names.get

    def __len__(self) -> int:
        return len(self._by_names)

    def compile(self, names: tuple[str, ...]) -> Shape | None:
        """The shape of these field names, kept for this order (up to `MAX_SHAPES_PER_TYPE` orders).

        It is compiled once per *set* of names, in sorted order, so a sender that varies its
        field order costs a sort, not a regex compilation, per message: the checks do not depend
        on the order (the joined values are split at line feeds whatever their order)."""
        canonical = tuple(sorted(names))
        shape = self._by_set.get(canonical)
        if shape is None:
            shape = _compile(self._schema, canonical)
            # Only valid sets are kept: at most one per combination of optional fields.
            if shape is not None:
                self._by_set[canonical] = shape
        if len(self._by_names) < MAX_SHAPES_PER_TYPE:
            self._by_names[names] = shape
        return shape


#: What `Shapes.get` returns for names not compiled yet.
MISSING: Final = object()


def shapes_by_type() -> dict[str, Shapes]:
    """event_type -> its `Shapes`, for every event type of the contract (built on first use)."""
    if not SHAPES:
        SHAPES.update({event_type: Shapes(schema) for event_type, schema in event_schemas().items()})
    return SHAPES


#: `shapes_by_type()` once built (the hot path reads it without a call).
SHAPES: Final[dict[str, Shapes]] = {}


def _compile(schema: dict[str, Any], names: tuple[str, ...]) -> Shape | None:
    properties: dict[str, dict[str, Any]] = schema["properties"]
    if schema.get("additionalProperties") is not False:
        raise ValueError("the fast path needs additionalProperties: false")
    if not set(schema["required"]) <= set(names) <= set(properties) or len(set(names)) != len(names):
        return None
    strings: list[str] = []
    segments: list[str] = []
    integers: list[tuple[str, int | float, int | float]] = []
    booleans: list[str] = []
    for name in names:
        prop = properties[name]
        kind = prop.get("type")
        if kind == "string":
            strings.append(name)
            segments.append(_string_segment(name, prop))
        elif kind == "integer":
            integers.append((name, *_integer_bounds(name, prop)))
        elif kind == "boolean":
            _only(name, prop, {"type"})
            booleans.append(name)
        else:
            raise ValueError(f"the fast path cannot check {name}: {prop}")
    if len(strings) < 2:
        return None  # itemgetter of one name gives a value, not a tuple: not worth a special case
    return Shape(
        strings=itemgetter(*strings),
        separators=len(strings) - 1,
        pattern=re.compile("\n".join(segments)),
        integers=tuple(integers),
        booleans=tuple(booleans),
    )


def _only(name: str, prop: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(prop) - allowed - _ANNOTATIONS
    if unknown:
        raise ValueError(f"the fast path does not understand {sorted(unknown)} of {name}")


def _string_segment(name: str, prop: dict[str, Any]) -> str:
    _only(name, prop, {"type", "pattern", "enum", "const", "minLength", "maxLength"})
    if "const" in prop or "enum" in prop:
        if "pattern" in prop or "minLength" in prop or "maxLength" in prop:
            raise ValueError(f"the fast path does not combine enum with other constraints ({name})")
        values = [prop["const"]] if "const" in prop else prop["enum"]
        if not all(type(v) is str and "\n" not in v for v in values):
            raise ValueError(f"the fast path needs string enum values without line feeds ({name})")
        return "(?:" + "|".join(re.escape(v) for v in values) + ")"
    body = "[^\n]*"
    if "pattern" in prop:
        pattern: str = prop["pattern"]
        if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
            raise ValueError(f"the fast path needs a pattern anchored at both ends ({name}: {pattern})")
        body = pattern[1:-1]
        if _NOT_PORTABLE.search(body) is not None:
            raise ValueError(f"the fast path reads this pattern differently from pydantic's engine ({name})")
    low, high = prop.get("minLength", 0), prop.get("maxLength")
    repeated = _ONE_CLASS_REPEATED.fullmatch(body)
    if repeated is not None and low >= 1:
        # `[...]+` with length bounds is `[...]{low,high}`: no lookahead needed.
        return f"{repeated[1]}{{{low},{'' if high is None else high}}}"
    length = ""
    if low or high is not None:
        # Counted in characters, as pydantic counts them; the value ends at a line feed or the end.
        length = f"(?=[^\n]{{{low},{'' if high is None else high}}}(?:\n|\\Z))"
    return f"{length}(?:{body})"


def _integer_bounds(name: str, prop: dict[str, Any]) -> tuple[int | float, int | float]:
    _only(name, prop, {"type", "const", "minimum", "maximum"})
    if "const" in prop:
        if type(prop["const"]) is not int or "minimum" in prop or "maximum" in prop:
            raise ValueError(f"the fast path needs an integer const alone ({name})")
        return prop["const"], prop["const"]
    return prop.get("minimum", float("-inf")), prop.get("maximum", float("inf"))


# --- The typed decoder: msgspec structs compiled from the same schemas ---------------------------


@dataclass(frozen=True, slots=True)
class Typed:
    """What is left to check of a message that the typed decoder turned into one event type's struct.

    msgspec has checked, in C and in the same pass as the JSON parse, every field name (none
    unknown, none missing, none repeated but as JSON's last-one-wins), every type (strict: no
    `true` for 1, no `1.0`, no null), every enum and const, integer bounds and string lengths.
    Left: the string fields' character patterns, one `fullmatch` over their values joined by line
    feeds, as for a `Shape` (an absent optional one is `""`, its segment optional)."""

    event_type: str
    #: The pattern-checked string fields' values, as a tuple in a fixed order.
    strings: Callable[[Any], tuple[str, ...]]
    #: Line feeds in the joined string values when no value holds one.
    separators: int
    #: All string values joined by line feeds must match this as a whole.
    pattern: re.Pattern[str]


#: Default of an absent optional string field: never a decoded value (their `min_length` is >= 1).
ABSENT: Final = ""


def typed_decoder() -> tuple[Callable[[bytes], Any], dict[type, Typed]]:
    """(decode, struct class -> `Typed`) for every event type of the contract (built on first use).

    `decode(raw)` returns an instance of one event type's struct (chosen by `event_type`, msgspec's
    tag), or raises for anything the structs do not describe. Every struct also has, as class
    attributes set to None, the fields of the *other* event types, so one `attrgetter` reads the
    same names from any of them; those are not fields, so a message that sends one is rejected
    as an unknown field."""
    if not TYPED:
        schemas = event_schemas()
        everything = {name for schema in schemas.values() for name in schema["properties"]}
        structs = []
        for event_type, schema in schemas.items():
            struct, typed = _typed(event_type, schema, everything)
            structs.append(struct)
            TYPED[struct] = typed
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(reduce(operator.or_, structs))
        DECODE.append(decoder.decode)
    return DECODE[0], TYPED


#: `typed_decoder()`'s parts once built (the hot path reads them without a call): struct class ->
#: `Typed`, and a list that holds the decode function.
TYPED: Final[dict[type, Typed]] = {}
DECODE: Final[list[Callable[[bytes], Any]]] = []


def _typed(event_type: str, schema: dict[str, Any], everything: set[str]) -> tuple[type, Typed]:
    properties: dict[str, dict[str, Any]] = schema["properties"]
    if schema.get("additionalProperties") is not False:
        raise ValueError("the fast path needs additionalProperties: false")
    if properties.get("event_type", {}).get("const") != event_type or "event_type" not in schema["required"]:
        raise ValueError(f"the typed decoder needs event_type const {event_type!r}, required")
    required = set(schema["required"])
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    strings: list[str] = []
    segments: list[str] = []
    for name, prop in properties.items():
        if name == "event_type":
            continue  # msgspec's tag
        optional = name not in required
        kind = prop.get("type")
        if kind == "string" and ("enum" in prop or "const" in prop):
            _string_segment(name, prop)  # the same restrictions as the shapes
            values = [prop["const"]] if "const" in prop else prop["enum"]
            if any(personal_value_kind(v) is not None for v in values):
                raise ValueError(f"the fast path does not scan enum values for personal data ({name})")
            annotation: Any = Literal[tuple(values)]
            default: Any = None
        elif kind == "string":
            _string_segment(name, prop)
            body = prop["pattern"][1:-1] if "pattern" in prop else "[^\n]*"
            low, high = prop.get("minLength", 0), prop.get("maxLength")
            if optional:
                # An absent field reads as "" (ABSENT), matched by an optional segment, so a
                # value sent must not be "": only sound where the pattern refuses "" anyway.
                if re.fullmatch(body, "") is not None:
                    raise ValueError(f"the typed decoder needs a pattern that refuses '' for optional {name}")
                low = max(low, 1)
            annotation = Annotated[str, msgspec.Meta(min_length=low, max_length=high)]
            default = ABSENT
            strings.append(name)
            segments.append(f"(?:{body})?" if optional else f"(?:{body})")
        elif kind == "integer":
            low_int, high_int = _integer_bounds(name, prop)
            if "const" in prop:
                annotation = Literal[prop["const"]]
            else:
                low_meta = None if low_int in _UNBOUNDED else low_int
                high_meta = None if high_int in _UNBOUNDED else high_int
                annotation = Annotated[int, msgspec.Meta(ge=low_meta, le=high_meta)]
            default = None
        elif kind == "boolean":
            _only(name, prop, {"type"})
            annotation, default = bool, None
        else:
            raise ValueError(f"the fast path cannot check {name}: {prop}")
        fields.append((name, annotation, default) if optional else (name, annotation))
    if len(strings) < 2:
        raise ValueError(f"the typed decoder needs at least two pattern-checked strings ({event_type})")
    struct = msgspec.defstruct(
        "".join(part.title() for part in re.split(r"[._]", event_type)),
        fields,
        kw_only=True,
        tag_field="event_type",
        tag=event_type,
        forbid_unknown_fields=True,
        namespace=dict.fromkeys(everything - set(properties) - {"event_type"}),
        # Its fields are strings, integers, booleans and None: it can never be in a cycle, so the
        # collector need not track the one allocated per message.
        gc=False,
    )
    typed = Typed(event_type, attrgetter(*strings), len(strings) - 1, re.compile("\n".join(segments)))
    return struct, typed


_UNBOUNDED: Final = (float("-inf"), float("inf"))
