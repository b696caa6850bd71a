"""Event files for replay and validation: JSONL, CSV and Parquet, read as contract messages.

Every reader yields `(row_number, message_bytes)`, the bytes a portal would have put on
`psmon.events`, so replayed rows go through exactly the validation of stage 1
(`validate_event`). JSONL lines are passed through untouched. CSV and Parquet rows become JSON
objects: empty cells and nulls are left out (the contract has no nulls), and CSV cells, which
are all text, are typed the way the contract wants them (`schema_version` and `amount_vnd` as
integers when they are integers, `fee_bearing`/`on_time` as booleans when they read
true/false); anything else stays a string and fails validation as it would from a portal.
Parquet timestamps become RFC 3339 strings (a timestamp without a time zone is read as UTC).

Files are read in a streaming way (Parquet by record batch), so memory does not grow with the
file; `progress` is called with the bytes or rows consumed so far.
"""

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from psmon.errors import PsmonError

__all__ = ["FileFormat", "SourceError", "detect_format", "read_messages", "size_hint"]

FileFormat = Literal["jsonl", "csv", "parquet"]

_SUFFIXES: Final[dict[str, FileFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_INT_FIELDS: Final = frozenset({"schema_version", "amount_vnd"})
_BOOL_FIELDS: Final = frozenset({"fee_bearing", "on_time"})


class SourceError(PsmonError):
    """A file that cannot be read as events (unknown format, unreadable Parquet)."""


def detect_format(path: Path) -> FileFormat:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"{path}: unknown file type; use .jsonl, .csv or .parquet")
    return fmt


def size_hint(path: Path) -> int:
    """Units of `progress` for the whole file: rows for Parquet, bytes otherwise."""
    if detect_format(path) == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return path.stat().st_size


def read_messages(path: Path, *, progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(row number from 1, message bytes) for every non-empty row of `path`."""
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from _jsonl(path, progress)
    elif fmt == "csv":
        yield from _csv(path, progress)
    else:
        yield from _parquet(path, progress)


def _jsonl(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if progress:
                progress(len(line))
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield n, line


def _typed_csv_value(name: str, value: str) -> Any:
    if name in _INT_FIELDS and value.lstrip("-").isdigit():
        return int(value)
    if name in _BOOL_FIELDS and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value


def _csv(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:

        def lines() -> Iterator[str]:
            for raw in fh:
                if progress:
                    progress(len(raw))
                yield raw.decode("utf-8", errors="replace")

        reader = csv.DictReader(lines())
        for n, row in enumerate(reader, 1):
            obj = {k: _typed_csv_value(k, v) for k, v in row.items() if k is not None and v not in (None, "")}
            if obj:
                yield n, orjson.dumps(obj)


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        ts = v if v.tzinfo else v.replace(tzinfo=UTC)
        return ts.isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    return v


def _parquet(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, bytes]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
    n = 0
    for batch in pf.iter_batches(batch_size=50_000):
        for row in batch.to_pylist():
            n += 1
            yield n, orjson.dumps({k: _json_value(v) for k, v in row.items() if v is not None})
        if progress:
            progress(batch.num_rows)
