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
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

from psmon.schemas.jsonschema import event_schemas

__all__ = ["MAX_SHAPES_PER_TYPE", "MISSING", "SHAPES", "Shape", "Shapes", "shapes_by_type"]

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
