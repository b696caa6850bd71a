"""A query result as a small table, and its renderings: terminal table, CSV, JSON, Parquet.

Every named question returns a `ResultTable` (columns, rows, notes), so the CLI, the report and
the tests read one shape. Ratios stay floats in CSV and JSON (0–1, as the metric naming convention says `_ratio`
means) and are shown as percentages only where people read them: the terminal table and the
report's HTML tables (`cell_text`). A missing ratio (denominator 0) is empty in CSV, `null` in
JSON and `–` in the tables.

Cells hold what portals and analysts stored, so every rendering shows them as data, never as
instructions to the program that reads the output. The terminal table passes titles, headers,
cells and notes to rich as plain `Text` (no console markup, emoji codes or highlighting), so a
stored `[/bold]` neither crashes `psmon dead-letters list` nor `:x:` becomes an emoji, and shows
control characters as `\\xNN` escapes so a stored ANSI sequence cannot drive the terminal. CSV
is opened in spreadsheets, which execute a cell beginning with `=`, `+`, `-`, `@`, tab or
carriage return as a formula (CSV injection): such text cells get a leading `'` (the usual
neutralisation), numbers never do (`-1.5` stays a number), and headers are treated like cells.

A table without rows says so in the terminal: its `empty` line (`no dead letters`, `no data for
online_submission in 2026-11-24`) instead of a bare header, so an empty answer is never mistaken
for a failure. CSV keeps its header and JSON its empty `rows`, which programs read as they are.

Times are shown as people in Vietnam read them, like the live table: a datetime is written in
Asia/Ho_Chi_Minh (UTC+7) with its offset (`2026-11-24 09:00:00+07:00`) in the terminal table;
ClickHouse hands the UTC columns back without a zone, so one without a zone is UTC. CSV and JSON,
formats for programs, write the same instant in UTC, ISO 8601 marked `Z`, so programs never guess
the zone either.

Parquet (`to_parquet`) holds the same rows as CSV and JSON, typed, for pandas, DuckDB and Spark:
times as `timestamp[us, tz=UTC]`, whole numbers as int64 (uint64 above its range), other
numbers as float64, dates as date32, text as strings, a missing value as null; the title and
notes go into the file's metadata. It is binary, so it is only ever written to a file.
"""

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import orjson

from psmon.timeutil import LOCAL_TZ

if TYPE_CHECKING:
    from rich.text import Text

__all__ = [
    "BINARY_FORMATS",
    "OUTPUT_FORMATS",
    "OutputFormat",
    "ResultTable",
    "cell_text",
    "csv_cell",
    "local_time",
    "render",
    "to_parquet",
]

OutputFormat = Literal["table", "csv", "json", "parquet"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
#: Formats that are bytes, not text: written to a file, never to a terminal or stdout.
BINARY_FORMATS: Final[frozenset[OutputFormat]] = frozenset({"parquet"})


@dataclass
class ResultTable:
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)
    #: What the terminal shows instead of a table without rows (`no dead letters`).
    empty: str = "no rows"

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def _aware(v: datetime) -> datetime:
    """`v` with its zone: ClickHouse's UTC columns come back without one."""
    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):  # for programs: UTC, marked `Z`, whatever zone it came in
        return _aware(v).astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):  # a Decimal column of --sql: a JSON number, as in CSV and Parquet
        return float(v)
    return v


def cell_text(column: str, v: Any, *, other: Callable[[Any], str]) -> str:
    """A cell as people read it: a missing value `–`, a ratio (column `ratio` or `*_ratio`) a
    percentage, another float two decimals, and any other value as `other` writes it."""
    if v is None:
        return "–"
    if isinstance(v, float) and (column == "ratio" or column.endswith("_ratio")):
        return f"{v * 100:.2f}%"
    if isinstance(v, float):
        return f"{v:.2f}"
    return other(v)


def _terminal(v: Any) -> str:
    if isinstance(v, datetime):
        return local_time(v)
    return f"{v:,}" if isinstance(v, int) else str(_plain(v))


def local_time(v: datetime) -> str:
    """An instant as people in Vietnam read it, with its offset: `2026-11-24 09:00:00+07:00`."""
    return _aware(v).astimezone(LOCAL_TZ).isoformat(sep=" ", timespec="seconds")


#: C0 controls but tab and newline, DEL and C1 controls: shown as `\xNN` in the terminal table.
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)}


def _literal(text: str) -> "Text":
    """`text` for rich exactly as it is: no markup, no emoji codes, no terminal control."""
    from rich.text import Text

    return Text(text.translate(_CONTROLS))


#: What a spreadsheet reads as the start of a formula.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(v: Any) -> Any:
    """A cell as CSV writes it: missing empty, numbers as they are, and text that a spreadsheet
    would run as a formula behind a `'` (text that is just a number, `-1.5`, stays as it is)."""
    if v is None:
        return ""
    if isinstance(v, int | float | Decimal):  # bool too: written True/False
        return v
    text = str(_plain(v))
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv(records: Iterable[list[Any]]) -> str:
    """Records joined by "\\n", any field holding "\\r" or "\\n" quoted. (The csv module quotes the
    characters of its line terminator only: with "\\n" a lone "\\r" would stay bare, and
    spreadsheets start a new row there, so a neutralised `'\\r=...` would become `=...` again.)"""
    lines: list[str] = []
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\r\n")
    for r in records:
        record.seek(0)
        record.truncate()
        writer.writerow(r)
        lines.append(record.getvalue().removesuffix("\r\n"))
    return "\n".join(lines)


def render(table: ResultTable, fmt: OutputFormat) -> str:
    """`table` as text in `fmt` (table, csv or json; Parquet is bytes: `to_parquet`)."""
    if fmt in BINARY_FORMATS:
        raise ValueError(f"{fmt} is binary: write it with to_parquet")
    if fmt == "json":
        body = {"title": table.title, "columns": table.columns, "rows": table.dicts(), "notes": table.notes}
        # orjson writes a naive datetime without a zone: every datetime goes through _plain instead
        return orjson.dumps(body, default=_plain, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME).decode()
    if fmt == "csv":
        return _csv([[csv_cell(c) for c in table.columns], *([csv_cell(v) for v in r] for r in table.rows)])
    if not table.rows:
        return "\n".join(_literal(line).plain for line in [table.empty, *table.notes])
    from rich.console import Console
    from rich.table import Table

    t = Table(title=_literal(table.title) if table.title else None, title_justify="left")
    for c in table.columns:
        t.add_column(
            _literal(c), justify="left" if c in {"period", "province", "name", "metric", "reason"} else "right"
        )
    for r in table.rows:
        t.add_row(*(_literal(cell_text(c, v, other=_terminal)) for c, v in zip(table.columns, r, strict=True)))
    # Plain text everywhere, also for anything rich would otherwise read as markup or emoji.
    console = Console(width=200, record=True, file=io.StringIO(), markup=False, emoji=False, highlight=False)
    console.print(t)
    for note in table.notes:
        console.print(_literal(note))
    return console.export_text().rstrip("\n")


def _arrow_column(values: list[Any]) -> Any:
    """One column as a typed pyarrow array, its type from its values (see the module doc)."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if not present:
        return pa.array(values, type=pa.string())
    if all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if all(isinstance(v, datetime) for v in present):
        return pa.array([None if v is None else _aware(v) for v in values], type=pa.timestamp("us", tz="UTC"))
    if all(isinstance(v, date) and not isinstance(v, datetime) for v in present):
        return pa.array(values, type=pa.date32())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.uint64() if max(present) > 2**63 - 1 else pa.int64())
    if all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    if all(isinstance(v, str) for v in present):
        return pa.array(values, type=pa.string())
    try:  # arrays, maps: what pyarrow makes of them
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(_plain(v)) for v in values], type=pa.string())


def to_parquet(table: ResultTable, path: Path) -> None:
    """Write `table` to the Parquet file `path`: the rows of CSV and JSON, typed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [_arrow_column(list(col)) for col in zip(*table.rows, strict=True)] if table.rows else []
    if not arrays:
        arrays = [pa.array([], type=pa.string()) for _ in table.columns]
    meta = {b"psmon.title": table.title.encode(), b"psmon.notes": orjson.dumps(table.notes)}
    pq.write_table(pa.table(arrays, names=table.columns).replace_schema_metadata(meta), path)
