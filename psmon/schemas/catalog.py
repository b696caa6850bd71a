"""The procedure catalog: which procedures each province offers, and how (online, fees, payment).

An entry is one province's procedure over a span of dates. The catalog is what Decision 766
items 3.1, 3.2, 3.5a and 3.5b divide by, so it is data with a contract of its own, like the
events: `parse_catalog_rows` is the single validator (for `psmon catalog load`, whatever the file
format, and for the compacted topic `psmon.catalog` through `decode_entry`), and
`psmon.schemas.jsonschema` publishes the same rules as a JSON Schema.

Design decisions:

- **Validity is a half-open span.** An entry is in force on day `d` iff `valid_from <= d` and
  (`valid_to` is empty or `d < valid_to`). An exclusive end lets a new version start on the day
  the previous one ends with no gap and no overlap, and `valid_to <= valid_from` (an empty span)
  is refused.
- **Codes as in the event contract.** Old 63-province codes are mapped to the 34 current ones
  (`psmon.schemas.provinces`), so the catalog joins the events on the same key. A procedure code
  is the national format, a digit, a dot and six digits (`1.001234`, `2.000123`), optionally
  followed by the national suffix (`2.000889.000.00.00.H56`), within the contract's character
  set and length, so every catalog code can appear in an event.
- **No personal data.** Every string value, the name included, goes through
  `psmon.schemas.pii.personal_value_kind`: a name holding an ID number, phone number or e-mail
  address is refused, and the error never repeats the value. Unknown columns are refused too
  (a column named like personal data is thereby never stored).
- **Types per source.** JSONL and Parquet carry types: booleans must be booleans, dates ISO
  strings (`2026-01-01`) or dates. CSV carries only text, so `text=True` (set by the CSV reader)
  also accepts `true`/`false`/`1`/`0` (any case) for booleans and an empty cell for an absent
  `valid_to`. A JSON `1` or `"yes"` is never a boolean: a catalog typo must not turn a procedure
  fee-bearing.
- **One error per bad row.** Each refused row gets exactly one `CatalogRowError`, for its first
  bad field in the column order below, naming the allowed values; a file is loaded only if no row
  is refused (the caller's rule), so fixing a file converges row by row without a flood of
  follow-on errors. Two rows for the same key and `valid_from` are refused as duplicates.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal, get_args

import orjson

from psmon.schemas.pii import personal_value_kind
from psmon.schemas.provinces import registry

__all__ = [
    "CATALOG_FIELDS",
    "MAX_DATE",
    "MAX_NAME_LEN",
    "MAX_PROCEDURE_CODE_LEN",
    "MIN_DATE",
    "NAME_PATTERN",
    "ONLINE_LEVELS",
    "PROCEDURE_CODE_PATTERN",
    "PROCEDURE_LEVELS",
    "REQUIRED_FIELDS",
    "CatalogEntry",
    "CatalogRowError",
    "OnlineLevel",
    "ProcedureLevel",
    "decode_entry",
    "encode_entry",
    "entry_row",
    "parse_catalog_rows",
]

OnlineLevel = Literal["full", "partial", "none"]
ProcedureLevel = Literal["province", "commune", "ministry"]
ONLINE_LEVELS: Final[tuple[str, ...]] = get_args(OnlineLevel)
PROCEDURE_LEVELS: Final[tuple[str, ...]] = get_args(ProcedureLevel)

#: Columns in the order they are checked (and written by `psmon catalog show`).
CATALOG_FIELDS: Final = (
    "province_code",
    "procedure_code",
    "name",
    "level",
    "online_level",
    "fee_bearing",
    "payment_integrated",
    "valid_from",
    "valid_to",
)
REQUIRED_FIELDS: Final = CATALOG_FIELDS[:-1]
#: National procedure code, optionally with the national suffix; at most 32 characters like the
#: event contract's procedure_code, whose character set it stays within.
PROCEDURE_CODE_PATTERN: Final = r"^[0-9]\.[0-9]{6}(\.[A-Za-z0-9._-]+)?$"
_PROCEDURE_CODE_RE: Final = re.compile(PROCEDURE_CODE_PATTERN)
MAX_PROCEDURE_CODE_LEN: Final = 32
MAX_NAME_LEN: Final = 500
#: A name is one line of printable text: no control characters (tab, line feed, ...).
NAME_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
_NAME_RE: Final = re.compile(NAME_PATTERN)
#: Dates a catalog may name: inside ClickHouse's Date range, and far around any real catalog.
MIN_DATE: Final = date(2000, 1, 1)
MAX_DATE: Final = date(2099, 12, 31)
_TRUE_TEXT: Final = frozenset({"true", "1"})
_FALSE_TEXT: Final = frozenset({"false", "0"})


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One province's procedure, in force from `valid_from` up to (not including) `valid_to`."""

    province_code: str
    procedure_code: str
    name: str
    level: ProcedureLevel
    online_level: OnlineLevel
    fee_bearing: bool
    payment_integrated: bool
    valid_from: date
    valid_to: date | None = None

    @property
    def is_online(self) -> bool:
        """Offered online, fully (toàn trình) or partly (một phần)."""
        return self.online_level != "none"

    def in_force(self, day: date) -> bool:
        """In force on `day` (valid_to is exclusive)."""
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def in_force_during(self, first: date, end: date) -> bool:
        """In force on any day of [first, end) (end exclusive)."""
        return first < end and self.valid_from < end and (self.valid_to is None or first < self.valid_to)

    @property
    def key(self) -> str:
        """`province/procedure`: the Kafka key on psmon.catalog and the dimension's key."""
        return f"{self.province_code}/{self.procedure_code}"


@dataclass(frozen=True)
class CatalogRowError:
    """Why one row was refused: where (source, line), which field, and what is allowed."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.message}"


class _Bad(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def parse_catalog_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str, first_line: int = 1, text: bool = False
) -> tuple[list[CatalogEntry], list[CatalogRowError]]:
    """Validate `rows` (line numbers count from `first_line`): the entries of the good rows and one
    error per bad row. `text=True` for sources that carry only strings (CSV; see module doc)."""
    entries: list[CatalogEntry] = []
    errors: list[CatalogRowError] = []
    seen: dict[tuple[str, date], int] = {}
    for line, row in enumerate(rows, start=first_line):
        try:
            entry = _parse_row(row, text=text)
        except _Bad as bad:
            errors.append(CatalogRowError(source, line, bad.field, bad.message))
            continue
        version = (entry.key, entry.valid_from)
        if version in seen:
            errors.append(
                CatalogRowError(
                    source,
                    line,
                    "valid_from",
                    f"duplicate of line {seen[version]}: one row per province, procedure and valid_from",
                )
            )
            continue
        seen[version] = line
        entries.append(entry)
    return entries, errors


def _parse_row(row: Mapping[str, Any], *, text: bool) -> CatalogEntry:
    if not isinstance(row, Mapping):
        raise _Bad("row", f"expected an object with the fields {', '.join(CATALOG_FIELDS)}")
    unknown = sorted(str(k) for k in row if k not in CATALOG_FIELDS)
    if unknown:
        # The name of an unknown column is not echoed if it looks personal (it could be a value).
        shown = unknown[0] if personal_value_kind(unknown[0]) is None else "(a column)"
        raise _Bad(shown, f"unknown field; allowed fields: {', '.join(CATALOG_FIELDS)}")
    province_code = _province(_required(row, "province_code", text))
    procedure_code = _procedure_code(_required(row, "procedure_code", text))
    name = _name(_required(row, "name", text))
    level = _choice(row, "level", PROCEDURE_LEVELS, text)
    online_level = _choice(row, "online_level", ONLINE_LEVELS, text)
    fee_bearing = _bool(row, "fee_bearing", text)
    payment_integrated = _bool(row, "payment_integrated", text)
    valid_from = _date("valid_from", _required(row, "valid_from", text))
    raw_to = row.get("valid_to")
    valid_to = None if raw_to is None or (text and raw_to == "") else _date("valid_to", raw_to)
    if valid_to is not None and valid_to <= valid_from:
        raise _Bad("valid_to", f"must be after valid_from ({valid_from.isoformat()}); it is the exclusive end")
    return CatalogEntry(
        province_code=province_code,
        procedure_code=procedure_code,
        name=name,
        level=level,  # type: ignore[arg-type]  # checked against PROCEDURE_LEVELS
        online_level=online_level,  # type: ignore[arg-type]  # checked against ONLINE_LEVELS
        fee_bearing=fee_bearing,
        payment_integrated=payment_integrated,
        valid_from=valid_from,
        valid_to=valid_to,
    )


def _required(row: Mapping[str, Any], field: str, text: bool) -> Any:
    value = row.get(field)
    if value is None or (text and value == ""):
        raise _Bad(field, "missing; it is required")
    return value


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(field, f"expected a string, got {type(value).__name__}")
    kind = personal_value_kind(value)
    if kind is not None:
        # Never repeat the value: it holds personal data.
        raise _Bad(field, f"holds personal data ({kind}); catalog rows carry none")
    return value


def _province(value: Any) -> str:
    code = _string("province_code", value)
    current = registry().to_current(code) if re.fullmatch(r"[0-9]{2}", code) else None
    if current is None:
        raise _Bad("province_code", "unknown; allowed: one of the 34 province codes or an old 63-province code")
    return current


def _procedure_code(value: Any) -> str:
    code = _string("procedure_code", value)
    if len(code) > MAX_PROCEDURE_CODE_LEN or _PROCEDURE_CODE_RE.fullmatch(code) is None:
        raise _Bad(
            "procedure_code",
            "bad format; allowed: the national procedure code, a digit, a dot and six digits "
            f"(1.001234, 2.000123), optionally a suffix (2.000889.000.00.00.H56), at most {MAX_PROCEDURE_CODE_LEN} "
            "characters",
        )
    return code


def _name(value: Any) -> str:
    name = _string("name", value)
    if not name.strip() or len(name) > MAX_NAME_LEN or _NAME_RE.fullmatch(name) is None:
        raise _Bad("name", f"allowed: one line of 1 to {MAX_NAME_LEN} characters, no control characters")
    return name


def _choice(row: Mapping[str, Any], field: str, allowed: tuple[str, ...], text: bool) -> str:
    value = _string(field, _required(row, field, text))
    if value not in allowed:
        raise _Bad(field, f"allowed values: {', '.join(allowed)}")
    return value


def _bool(row: Mapping[str, Any], field: str, text: bool) -> bool:
    value = _required(row, field, text)
    if isinstance(value, bool):
        return value
    if text and isinstance(value, str):
        folded = value.strip().lower()
        if folded in _TRUE_TEXT:
            return True
        if folded in _FALSE_TEXT:
            return False
    allowed = "true, false, 1, 0 (CSV text)" if text else "true, false (JSON booleans)"
    raise _Bad(field, f"allowed values: {allowed}")


def _date(field: str, value: Any) -> date:
    parsed: date | None = None
    if type(value) is date:  # a datetime is a date subclass: refused, a catalog names days
        parsed = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or not MIN_DATE <= parsed <= MAX_DATE:
        raise _Bad(field, f"allowed: a date YYYY-MM-DD from {MIN_DATE.isoformat()} to {MAX_DATE.isoformat()}")
    return parsed


def entry_row(entry: CatalogEntry) -> dict[str, Any]:
    """The entry as a JSON-ready row (dates ISO), the fields in `CATALOG_FIELDS` order."""
    return {
        "province_code": entry.province_code,
        "procedure_code": entry.procedure_code,
        "name": entry.name,
        "level": entry.level,
        "online_level": entry.online_level,
        "fee_bearing": entry.fee_bearing,
        "payment_integrated": entry.payment_integrated,
        "valid_from": entry.valid_from.isoformat(),
        "valid_to": entry.valid_to.isoformat() if entry.valid_to is not None else None,
    }


def encode_entry(entry: CatalogEntry) -> bytes:
    """JSON bytes of an entry (orjson; dates ISO, an open end null): the psmon.catalog value."""
    return orjson.dumps(entry_row(entry))


def decode_entry(raw: bytes) -> CatalogEntry:
    """The entry encoded by `encode_entry`; ValueError (with the reason) for anything else."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    entries, errors = parse_catalog_rows([obj], source="catalog record")
    if errors:
        raise ValueError(str(errors[0]))
    return entries[0]
