"""The procedure catalog in the history: files in, a versioned dimension in ClickHouse, diffs out.

`psmon catalog load FILE` reads a CSV, JSONL or Parquet file (`read_catalog_file`), validates every
row with the catalog contract (`psmon.schemas.catalog.parse_catalog_rows`) and stores nothing
unless every row is good: a catalog is the denominator of four index items, and half of one
would score a province against procedures it does not have. The file is small (a province has at
most a few thousand procedures), so it is read whole; the event readers of
`psmon.history.sources` are not reused because they turn rows into contract messages.

Storage (`procedure_catalog`, schema version 5) is a versioned dimension: one row per version of
a province's procedure, `valid_to` exclusive. A load is a set of new versions, merged with the
stored ones by `plan_load`, a pure function: per key, the versions ordered by `valid_from`, a
loaded row replacing a stored version with the same `valid_from` (a correction), and each
version ending at the latest where the next one starts (so a new version closes the previous
one at its own `valid_from`, and versions never overlap). Only versions that differ from what is
stored are written, with a higher `version`, so ReplacingMergeTree's FINAL reads the newest copy
and loading the same file twice writes nothing the second time. History then asks "what was in
force on day D" (`in_force_on`) or "during a period" (`in_force_during`: per key, the newest
version in force on any day of the period, which is what the index scores a period against).

After the store, the newest version of every key in the file is published to the compacted
topic `settings.topic_catalog` (key `province/procedure`), so a worker learns the catalog
without reading ClickHouse; re-running a load re-publishes, which compaction makes harmless.
"""

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from psmon.history.queries import READ_ONLY, QueryError
from psmon.history.sources import SourceError, detect_format
from psmon.history.tables import ResultTable
from psmon.schemas.catalog import (
    CATALOG_FIELDS,
    CatalogEntry,
    CatalogRowError,
    encode_entry,
    parse_catalog_rows,
)
from psmon.schemas.provinces import registry
from psmon.sinks.clickhouse.client import Client

__all__ = [
    "ATTRIBUTES",
    "CatalogStore",
    "LoadPlan",
    "catalog_table",
    "diff_dates",
    "diff_load",
    "entry_row_values",
    "plan_load",
    "publish_entries",
    "read_catalog_file",
]

#: What a version says about its procedure (everything but the key and the dates).
ATTRIBUTES: Final = ("name", "level", "online_level", "fee_bearing", "payment_integrated")
_COLUMNS: Final = ", ".join(CATALOG_FIELDS)
_DIFF_COLUMNS: Final = ["change", "province_code", "procedure_code", "valid_from", "valid_to", "fields"]


# -- reading files ----------------------------------------------------------------------------
def read_catalog_file(path: Path) -> tuple[list[CatalogEntry], list[CatalogRowError]]:
    """The entries of `path` and one error per bad row; `SourceError` if it cannot be read at all.

    Lines: CSV counts the header as line 1 (one record per line; a quoted line break in a record
    shifts the numbers after it, and is itself refused in a name), JSONL counts lines, Parquet
    counts rows from 1."""
    fmt = detect_format(path)
    source = str(path)
    if fmt == "csv":
        return parse_catalog_rows(_csv_rows(path), source=source, first_line=2, text=True)
    if fmt == "jsonl":
        return parse_catalog_rows(_jsonl_rows(path), source=source)
    return parse_catalog_rows(_parquet_rows(path), source=source)


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    reader = csv.DictReader(_text(path).removeprefix("\ufeff").splitlines(), restkey="(cells beyond the header)")
    if not reader.fieldnames:
        raise SourceError(f"{path}: empty CSV file; the header names the fields {_COLUMNS}")
    return [dict(row) for row in reader]


def _jsonl_rows(path: Path) -> list[Any]:
    rows: list[Any] = []
    for line in _text(path).splitlines():
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            rows.append(None)  # refused as "not an object" at its line number
    return rows


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from None
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


# -- versions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadPlan:
    """What a load changes: the versions to write (new or changed), and per key of the file its
    newest version afterwards (what is published)."""

    writes: list[CatalogEntry]
    newest: list[CatalogEntry]
    #: The stored versions the plan was made against, by (key, valid_from).
    stored: dict[tuple[str, date], CatalogEntry]


def plan_load(stored: Iterable[CatalogEntry], loaded: Iterable[CatalogEntry]) -> LoadPlan:
    """Merge `loaded` into the `stored` versions (see the module docstring); pure."""
    before = {(e.key, e.valid_from): e for e in stored}
    merged = dict(before)
    keys: dict[str, None] = {}  # the file's keys, in file order
    for e in loaded:
        keys[e.key] = None
        merged[(e.key, e.valid_from)] = e
    timelines: dict[str, list[CatalogEntry]] = {}
    for (key, _), e in sorted(merged.items()):
        timelines.setdefault(key, []).append(e)
    writes: list[CatalogEntry] = []
    newest: dict[str, CatalogEntry] = {}
    for key, versions in timelines.items():
        for i, v in enumerate(versions):
            end = v.valid_to
            if i + 1 < len(versions):
                following = versions[i + 1].valid_from
                end = following if end is None or end > following else end
            final = replace(v, valid_to=end)
            if before.get((key, v.valid_from)) != final:
                writes.append(final)
            newest[key] = final
    return LoadPlan(writes, [newest[k] for k in keys], before)


def _changed_fields(old: CatalogEntry, new: CatalogEntry, fields: Iterable[str]) -> str:
    parts = []
    for f in fields:
        a, b = getattr(old, f), getattr(new, f)
        if a != b:
            # A name may be long: name it; other values are short codes, dates and booleans.
            parts.append(f if f == "name" else f"{f}: {_show(a)} → {_show(b)}")
    return "; ".join(parts)


def _show(v: Any) -> str:
    if v is None:
        return "open"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v.isoformat() if isinstance(v, date) else v)


def diff_load(plan: LoadPlan) -> ResultTable:
    """What the load of `plan` changes: `added` (a key not stored), `changed` (a new version, or a
    corrected one, with the fields that differ), `ended` (only the end date is set or moved)."""
    by_key: dict[str, list[CatalogEntry]] = {}
    for (key, _), e in sorted(plan.stored.items()):
        by_key.setdefault(key, []).append(e)
    rows: list[tuple[Any, ...]] = []
    new_starts = {(e.key, e.valid_from) for e in plan.writes if (e.key, e.valid_from) not in plan.stored}
    for e in plan.writes:
        old = plan.stored.get((e.key, e.valid_from))
        if old is None:
            previous = [v for v in by_key.get(e.key, []) if v.valid_from < e.valid_from]
            if not previous:
                rows.append(("added", e.province_code, e.procedure_code, e.valid_from, e.valid_to, ""))
            else:
                fields = _changed_fields(previous[-1], e, ATTRIBUTES) or "no field (a new version)"
                rows.append(("changed", e.province_code, e.procedure_code, e.valid_from, e.valid_to, fields))
            continue
        if _changed_fields(old, e, ATTRIBUTES):
            fields = _changed_fields(old, e, (*ATTRIBUTES, "valid_to"))
            rows.append(("changed", e.province_code, e.procedure_code, e.valid_from, e.valid_to, fields))
        elif e.valid_to is not None and (e.key, e.valid_to) in new_starts:
            continue  # closed by a new version of this load, listed as that version's change
        else:
            fields = _changed_fields(old, e, ("valid_to",))
            rows.append(("ended", e.province_code, e.procedure_code, e.valid_from, e.valid_to, fields))
    rows.sort(key=lambda r: (r[1], r[2], r[3]))
    return ResultTable(
        title=f"what the load would change: {_counts(rows)}",
        columns=_DIFF_COLUMNS,
        rows=rows,
        notes=["valid_to is exclusive; empty = open-ended"],
        empty="nothing to change: the stored catalog already holds every row",
    )


def diff_dates(before: list[CatalogEntry], after: list[CatalogEntry], first: date, second: date) -> ResultTable:
    """The catalog in force on `second` against the one on `first`: added, changed, ended keys."""
    old = {e.key: e for e in before}
    new = {e.key: e for e in after}
    rows: list[tuple[Any, ...]] = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None and b is not None:
            rows.append(("added", b.province_code, b.procedure_code, b.valid_from, b.valid_to, ""))
        elif b is None and a is not None:
            rows.append(("ended", a.province_code, a.procedure_code, a.valid_from, a.valid_to, ""))
        elif a is not None and b is not None and _changed_fields(a, b, ATTRIBUTES):
            rows.append(
                (
                    "changed",
                    b.province_code,
                    b.procedure_code,
                    b.valid_from,
                    b.valid_to,
                    _changed_fields(a, b, ATTRIBUTES),
                )
            )
    return ResultTable(
        title=f"catalog on {second.isoformat()} against {first.isoformat()}: {_counts(rows)}",
        columns=_DIFF_COLUMNS,
        rows=rows,
        notes=["valid_from/valid_to: the version in force on the later date (ended: on the earlier one)"],
        empty=f"no difference between {first.isoformat()} and {second.isoformat()}",
    )


def _counts(rows: list[tuple[Any, ...]]) -> str:
    return ", ".join(f"{sum(r[0] == c for r in rows)} {c}" for c in ("added", "changed", "ended"))


# -- storage ----------------------------------------------------------------------------------
class CatalogStore:
    """The `procedure_catalog` table of one database: reads never write (they run on read-only
    clients and through the query endpoint of `psmon up`); `write` is for `psmon catalog load`."""

    def __init__(self, client: Client, *, database: str):
        self._client = client
        self._db = database

    def exists(self) -> bool:
        """True if the database has the catalog table (schema version 5)."""
        res = self._client.query(f"EXISTS TABLE {self._db}.procedure_catalog", settings=READ_ONLY)
        return bool(res.result_rows and int(res.result_rows[0][0]))

    def check(self) -> None:
        """`QueryError` unless the catalog table exists."""
        if not self.exists():
            raise QueryError(f"database {self._db} has no procedure catalog table; run `psmon migrate` (version 5)")

    def _select(self, where: str, params: dict[str, Any]) -> list[CatalogEntry]:
        rows = self._client.query(
            f"SELECT {_COLUMNS} FROM {self._db}.procedure_catalog FINAL WHERE {where} "
            "ORDER BY province_code, procedure_code, valid_from",
            parameters=params,
            settings=READ_ONLY,
        ).result_rows
        return [_entry(r) for r in rows]

    def versions(self, *, keys: Iterable[str] | None = None, provinces: list[str] | None = None) -> list[CatalogEntry]:
        """Every stored version (of these keys / provinces), ordered by key and valid_from."""
        if keys is None:
            where, params = _provinces_where(provinces)
            return self._select(where, params)
        # Read the keys' provinces and filter here: a whole catalog is ~70,000 keys, which as an
        # IN-list parameter costs ClickHouse minutes; at most 34 provinces cost one scan.
        wanted = set(keys)
        where, params = _provinces_where(sorted({k.partition("/")[0] for k in wanted}) or ["-"])
        return [e for e in self._select(where, params) if e.key in wanted]

    def in_force_on(self, day: date, *, provinces: list[str] | None = None) -> list[CatalogEntry]:
        """The catalog of `day`: every version with valid_from <= day < valid_to."""
        where, params = _provinces_where(provinces)
        where += " AND valid_from <= {day:Date} AND (valid_to IS NULL OR {day:Date} < valid_to)"
        return self._select(where, {**params, "day": day})

    def in_force_during(self, first: date, end: date, *, provinces: list[str] | None = None) -> list[CatalogEntry]:
        """Per key, the newest version in force on any day of [first, end)."""
        where, params = _provinces_where(provinces)
        where += " AND valid_from < {end:Date} AND (valid_to IS NULL OR {first:Date} < valid_to)"
        newest: dict[str, CatalogEntry] = {}
        for e in self._select(where, {**params, "first": first, "end": end}):
            newest[e.key] = e  # ordered by valid_from: the last one wins
        return list(newest.values())

    def plan(self, entries: list[CatalogEntry]) -> LoadPlan:
        """What loading `entries` would change, against the stored versions of their keys."""
        return plan_load(self.versions(keys={e.key for e in entries}), entries)

    def write(self, plan: LoadPlan, *, now: datetime | None = None) -> int:
        """Store the versions of `plan` (one insert); returns how many rows were written."""
        if not plan.writes:
            return 0
        at = now or datetime.now(UTC)
        version = int(at.timestamp() * 1_000_000)
        self._client.insert(
            f"{self._db}.procedure_catalog",
            [[*entry_row_values(e), at, version] for e in plan.writes],
            column_names=[*CATALOG_FIELDS, "loaded_at", "version"],
        )
        return len(plan.writes)


def _entry(r: Any) -> CatalogEntry:
    """A stored row (columns in `CATALOG_FIELDS` order) as an entry; the table holds only rows that
    passed the contract, so no check is repeated."""
    province, procedure, name, level, online_level, fee, integrated, valid_from, valid_to = r
    return CatalogEntry(
        province, procedure, name, level, online_level, bool(fee), bool(integrated), valid_from, valid_to
    )


def entry_row_values(e: CatalogEntry) -> list[Any]:
    return [
        e.province_code,
        e.procedure_code,
        e.name,
        e.level,
        e.online_level,
        e.fee_bearing,
        e.payment_integrated,
        e.valid_from,
        e.valid_to,
    ]


def _provinces_where(provinces: list[str] | None) -> tuple[str, dict[str, Any]]:
    if not provinces:
        return "1", {}
    reg = registry()
    return "province_code IN {provinces:Array(String)}", {"provinces": [reg.to_current(p) or p for p in provinces]}


def catalog_table(entries: list[CatalogEntry], title: str, empty: str) -> ResultTable:
    """Entries as a table with exactly the catalog's columns, so `psmon catalog show -f csv` (or
    parquet) is a file `psmon catalog load` takes back."""
    return ResultTable(
        title=title,
        columns=list(CATALOG_FIELDS),
        rows=[tuple(getattr(e, f) for f in CATALOG_FIELDS) for e in entries],
        notes=["valid_to is exclusive; empty = open-ended"],
        empty=empty,
    )


def publish_entries(entries: Iterable[CatalogEntry], send: Callable[[bytes, bytes], None]) -> int:
    """Send every entry to the catalog topic through `send(key, value)`; returns how many."""
    n = 0
    for e in entries:
        send(e.key.encode(), encode_entry(e))
        n += 1
    return n
