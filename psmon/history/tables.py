"""A query result as a small table, and its three renderings: terminal table, CSV, JSON.

Every named question returns a `ResultTable` (columns, rows, notes), so the CLI, the report and
the tests read one shape. Ratios stay floats in CSV and JSON (0–1, as BRIEF §4 says `_ratio`
means) and are shown as percentages only in the terminal table. A missing ratio (denominator 0)
is empty in CSV, `null` in JSON and `–` in the table.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, get_args

import orjson

__all__ = ["OUTPUT_FORMATS", "OutputFormat", "ResultTable", "render"]

OutputFormat = Literal["table", "csv", "json"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


@dataclass
class ResultTable:
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def _plain(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def _cell(column: str, v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and (column == "ratio" or column.endswith("_ratio")):
        return f"{v * 100:.2f}%"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(_plain(v))


def render(table: ResultTable, fmt: OutputFormat) -> str:
    if fmt == "json":
        body = {"title": table.title, "columns": table.columns, "rows": table.dicts(), "notes": table.notes}
        return orjson.dumps(body, default=_plain, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(table.columns)
        for r in table.rows:
            w.writerow(["" if v is None else _plain(v) for v in r])
        return out.getvalue().rstrip("\n")
    from rich.console import Console
    from rich.table import Table

    t = Table(title=table.title, title_justify="left")
    for c in table.columns:
        t.add_column(c, justify="left" if c in {"period", "province", "name", "metric", "reason"} else "right")
    for r in table.rows:
        t.add_row(*(_cell(c, v) for c, v in zip(table.columns, r, strict=True)))
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(t)
    for note in table.notes:
        console.print(note, markup=False, highlight=False)
    return console.export_text().rstrip("\n")
