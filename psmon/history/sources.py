"""Event files for replay and validation: JSONL, CSV and Parquet, read as contract messages.

Every reader yields `(row_number, message)`: `message` is either the bytes a portal would have
put on `psmon.events`, so replayed rows go through exactly the validation of stage 1
(`validate_event`), or, for a row the reader itself cannot turn into a message, the `Invalid`
verdict of that row. A bad row is that row's dead letter, never the end of the file: the rows
before it are loaded and the file goes on.

JSONL lines are passed through untouched. CSV and Parquet rows become JSON objects: empty cells
and nulls are left out (the contract has no nulls), and CSV cells, which are all text, are typed
the way the contract wants them (`schema_version` and `amount_vnd` as integers when they are
integers, `fee_bearing`/`on_time` as booleans when they read true/false); anything else stays a
string and fails validation as it would from a portal. Parquet timestamps become RFC 3339
strings (a timestamp without a time zone is read as UTC).

Rows the reader rejects, with the reason the contract gives the same fault elsewhere:
- a JSONL line or CSV record over `MAX_EVENT_BYTES` (the contract's message size): `too_large`.
  Lines are read in binary, none held beyond `HOLD_LINE_BYTES` (1 MiB, Kafka's default maximum
  message size): the rest of a longer line is skipped in `SKIP_CHUNK_BYTES` chunks, hashed on
  the way, so a 100 MB line costs a few MiB of memory, not the line. A JSONL line up to that
  size goes to `validate_event` whole, so every payload that can reach stage 1 on Kafka gets
  exactly the verdict and keyed digest (hence dead-letter id) it gets there; a longer one is
  fingerprinted by `streamed_digest`, the keyed digest of its SHA-256;
- CSV that is not UTF-8: `malformed_json`, as the same bytes on Kafka would get (CSV is decoded
  strictly, never with replacement characters); a record the csv module cannot parse:
  `malformed_json` too (not a well-formed row);
- a Parquet value with no contract JSON type (decimal, binary, durations, out-of-range
  timestamps): `invalid_value`, or `personal_data` when the rest of the row already holds
  personal data (that reason comes first in the contract's precedence). Its detail names
  contract columns only; any other column is only counted, since a made-up column name can
  itself be personal.
CSV cells beyond the header's columns are not dropped unchecked: they go into the message under
a name of their own (`(column N, beyond the header)`), so validation rejects the row as
`unknown_field`, with the contract's precedence.
The payload fingerprint of a rejected row is the keyed digest (`digest.payload_digest`) of its
bytes in the file (a CSV record's lines joined by "\n"), as validation fingerprints messages.

CSV records are found by a small scanner of the csv module's default dialect (a quoted field
may span lines), so the cap holds per record and a bad record cannot take the rows after it.
Files are read in a streaming way (Parquet by record batch), so memory does not grow with the
file; `progress` is called with the bytes or rows consumed so far.
"""

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson

from psmon.errors import PsmonError
from psmon.schemas.digest import payload_digest
from psmon.schemas.events import EVENT_MODELS, PortalEvent
from psmon.schemas.validation import MAX_EVENT_BYTES, Invalid, Reason, redact, validate_event

__all__ = [
    "HOLD_LINE_BYTES",
    "READ_BLOCK_BYTES",
    "SKIP_CHUNK_BYTES",
    "FileFormat",
    "Message",
    "SourceError",
    "detect_format",
    "read_message_blocks",
    "read_messages",
    "size_hint",
    "streamed_digest",
]

FileFormat = Literal["jsonl", "csv", "parquet"]
#: What a reader yields per row: the message bytes, or the reader's own verdict on the row.
Message = bytes | Invalid

#: The longest line (or CSV record) held whole: Kafka's default maximum message size.
HOLD_LINE_BYTES: Final = 1 << 20
#: Read size while skipping the rest of a longer line.
SKIP_CHUNK_BYTES: Final = 1 << 20
#: Read size of JSONL files (split at line feeds; a line too long to hold is skipped as above).
READ_BLOCK_BYTES: Final = 1 << 18

_SUFFIXES: Final[dict[str, FileFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_CONTRACT_FIELDS: Final = frozenset(PortalEvent.model_fields).union(*(m.model_fields for m in EVENT_MODELS.values()))
_INT_FIELDS: Final = frozenset({"schema_version", "amount_vnd"})
_BOOL_FIELDS: Final = frozenset({"fee_bearing", "on_time"})


class SourceError(PsmonError):
    """A file that cannot be read as events (unknown format, unreadable Parquet, bad CSV header)."""


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


def read_messages(path: Path, *, progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, Message]]:
    """(row number from 1, message or the row's verdict) for every non-empty row of `path`."""
    for rows, messages in read_message_blocks(path, progress=progress):
        yield from zip(rows, messages, strict=True)


def read_message_blocks(
    path: Path, *, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[list[int], list[Message]]]:
    """`read_messages` in blocks of consecutive rows, (row numbers, messages): what a bulk
    reader such as `psmon replay` takes, so that a row costs it no generator step of its own."""
    fmt = detect_format(path)
    if fmt == "jsonl":
        with path.open("rb") as fh:
            yield from _jsonl_blocks(fh, HOLD_LINE_BYTES, READ_BLOCK_BYTES, progress)
        return
    yield from _blocks(_csv(path, progress) if fmt == "csv" else _parquet(path, progress))


def _blocks(rows: Iterator[tuple[int, Message]]) -> Iterator[tuple[list[int], list[Message]]]:
    """`rows` in blocks of `_ROWS_PER_BLOCK`. When the file turns unreadable (`SourceError`),
    the rows read before are yielded first, then the error is raised: they are kept, as when
    rows are taken one at a time."""
    numbers: list[int] = []
    messages: list[Message] = []
    try:
        for number, message in rows:
            numbers.append(number)
            messages.append(message)
            if len(numbers) == _ROWS_PER_BLOCK:
                yield numbers, messages
                numbers, messages = [], []
    except SourceError:
        if numbers:
            yield numbers, messages
        raise
    if numbers:
        yield numbers, messages


#: Rows per block of the CSV and Parquet readers (`read_message_blocks`).
_ROWS_PER_BLOCK: Final = 1024


def streamed_digest(sha256: "hashlib._Hash") -> str:
    """The payload fingerprint of a line too long to hold: the keyed digest of its SHA-256."""
    return payload_digest(b"sha256:" + sha256.digest())


def _opaque(data: bytes, reason: Reason, detail: str) -> Invalid:
    return Invalid(reason, detail, None, payload_digest(data), len(data))


def _too_large(size: int, fingerprint: str) -> Invalid:
    return Invalid("too_large", f"{size} bytes > limit {MAX_EVENT_BYTES}", None, fingerprint, size)


# -- bounded lines --------------------------------------------------------------------------------
@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs a line more
class _Line:
    """One physical line: `data` is its content without the line ending, or None when it was too
    long to hold (its content then went to the reader's `sink`); `size` is the content length,
    `ended` False for a last line with no newline, `consumed` the bytes read (ending included)."""

    data: bytes | None
    size: int
    ended: bool
    consumed: int


def _strip_ending(raw: bytes) -> tuple[bytes, bool]:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        return (raw[:-1] if raw.endswith(b"\r") else raw), True
    return raw, False


class _Lines:
    """Physical lines of a binary file, none held beyond `cap` + 2 bytes.

    A longer line is not returned: its content is handed to `sink` in chunks of at most
    `SKIP_CHUNK_BYTES` (to hash and scan it) and `data` is None."""

    def __init__(self, fh: IO[bytes], cap: int):
        self._fh = fh
        self._limit = cap + 2  # room for "\r\n" after a line of exactly `cap` bytes

    def read(self, sink: Callable[[bytes], None]) -> _Line | None:
        raw = self._fh.readline(self._limit)
        if not raw:
            return None
        if raw.endswith(b"\n") or len(raw) < self._limit:
            data, ended = _strip_ending(raw)
            return _Line(data, len(data), ended, len(raw))
        # The last two bytes are held back until the next chunk shows whether they are the
        # line ending ("\r\n") rather than content.
        consumed, size, held = len(raw), 0, raw
        while True:
            chunk = self._fh.readline(SKIP_CHUNK_BYTES)
            consumed += len(chunk)
            if len(chunk) >= 2 or not chunk.endswith(b"\n"):
                # `held` is content for sure now: the line ending, if any, is inside `chunk`
                sink(held)
                size += len(held)
                held = b""
            if not chunk or chunk.endswith(b"\n"):
                tail, ended = _strip_ending(held + chunk)
                sink(tail)
                return _Line(None, size + len(tail), ended, consumed)
            sink(chunk[:-2])
            size += len(chunk) - 2
            held = chunk[-2:]


# -- JSONL ----------------------------------------------------------------------------------------
def _jsonl_blocks(
    fh: IO[bytes], cap: int, block: int, progress: Callable[[int], None] | None
) -> Iterator[tuple[list[int], list[Message]]]:
    """The rows of a JSONL file, `block` bytes read at a time and split at line feeds; a line
    too long to hold whole (over `cap` + 1 bytes with its carriage return) is read again from
    its start by `_Lines`, which streams it, so rows and fingerprints are exactly those of
    `_Lines` read line by line (tests/unit/history/test_sources.py).

    Why not `_Lines` for every line: a `readline`, a `_Line` and a generator step per row were
    a fifth of a one-process replay's reading thread (docs/performance.md, "Less work per row,
    and a writer that holds the GIL less"). A block of held, non-blank lines without carriage returns, the usual one, is
    handed on as split. Memory stays bounded: at most `cap` + 1 bytes of an unfinished line are
    carried into the next block."""
    lines = _Lines(fh, cap)
    n = 0
    # Only a line too long to hold feeds the hash, so one hash serves every line up to the
    # next long one (a new hash per line was a tenth of a replay's reading time).
    h = hashlib.sha256()
    pending = b""  # the start of a line whose end is not read yet
    while True:
        chunk = fh.read(block)
        if not chunk:
            break
        data = pending + chunk if pending else chunk
        parts = data.split(b"\n")
        pending = parts.pop()
        long_at = -1  # where in `data` a line too long to hold starts
        if parts and b"\r" not in data and max(map(len, parts)) <= cap + 1 and all(map(bytes.strip, parts)):
            consumed = len(data) - len(pending)
            yield list(range(n + 1, n + 1 + len(parts))), list(parts)
            n += len(parts)
        else:
            consumed = 0
            rows: list[int] = []
            messages: list[Message] = []
            for part in parts:
                if len(part) > cap + 1:
                    long_at = consumed
                    break
                consumed += len(part) + 1
                n += 1
                if part.endswith(b"\r"):
                    part = part[:-1]
                if part.strip():
                    rows.append(n)
                    messages.append(part)  # over MAX_EVENT_BYTES too: validate_event says too_large
            if rows:
                yield rows, messages
        if long_at < 0 and len(pending) > cap + 1:
            long_at = consumed
        if progress and consumed:
            progress(consumed)
        if long_at >= 0:
            # Back to the line's start, for `_Lines` to skip through it.
            fh.seek(long_at - len(data), 1)
            pending = data = chunk = b""  # not held while `_Lines` reads the line
            parts = []
            line = lines.read(h.update)
            if line is None:  # not reached: the line has at least cap + 2 bytes to read
                break
            n += 1
            if progress:
                progress(line.consumed)
            if line.data is None:
                yield [n], [_too_large(line.size, streamed_digest(h))]
                h = hashlib.sha256()
            elif line.data.strip():
                yield [n], [line.data]
    if pending:  # a last line without a line feed
        n += 1
        if progress:
            progress(len(pending))
        if pending.strip():
            yield [n], [pending]


# -- CSV ------------------------------------------------------------------------------------------
# Quoting states of the csv module's default dialect (excel: ',' and '"', doubled quotes, not strict).
_START, _FIELD, _QUOTED, _AFTER_QUOTE = range(4)
_QUOTE, _COMMA = ord('"'), ord(",")


def _csv_scan(state: int, data: bytes) -> int:
    """The quoting state after `data` (a line's content, or part of it) from `state`."""
    i, n = 0, len(data)
    while i < n:
        if state == _QUOTED:  # only a quote matters
            j = data.find(b'"', i)
            if j < 0:
                return state
            state, i = _AFTER_QUOTE, j + 1
        elif state == _FIELD:  # only a comma matters (a quote here is a literal)
            j = data.find(b",", i)
            if j < 0:
                return state
            state, i = _START, j + 1
        else:  # start of a field, or just after a quote inside a quoted one
            c = data[i]
            state = _QUOTED if c == _QUOTE else _START if c == _COMMA else _FIELD
            i += 1
    return state


class _Record:
    """The CSV record being read: its lines (joined by "\n"), or once it is over
    `HOLD_LINE_BYTES` only its running SHA-256 and size."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.lines = 0
        self.size = 0
        self.state = _START
        self.over: Any = None  # a hashlib object once over HOLD_LINE_BYTES
        self._streaming = False

    def add(self, data: bytes) -> None:
        sep = b"\n" if self.lines else b""
        self.lines += 1
        self.size += len(sep) + len(data)
        self.state = _csv_scan(self.state, data)
        if self.over is not None:
            self.over.update(sep + data)
        elif self.size > HOLD_LINE_BYTES:
            self.over = hashlib.sha256(b"\n".join([*self.parts, data]))
            self.parts = []
        else:
            self.parts.append(data)

    def stream(self, chunk: bytes) -> None:
        """`_Lines` sink: a chunk of an over-long line of this record."""
        if not self._streaming:
            self._streaming = True
            sep = b"\n" if self.lines else b""
            self.lines += 1
            self.size += len(sep)
            if self.over is None:
                self.over = hashlib.sha256(b"\n".join(self.parts))
                self.parts = []
            self.over.update(sep)
        self.over.update(chunk)
        self.size += len(chunk)
        self.state = _csv_scan(self.state, chunk)

    def line_done(self) -> None:
        self._streaming = False

    def too_large(self) -> Invalid | None:
        """The record's `too_large` verdict, when it is over `MAX_EVENT_BYTES`."""
        if self.over is not None:
            return _too_large(self.size, streamed_digest(self.over))
        if self.size > MAX_EVENT_BYTES:
            return _too_large(self.size, payload_digest(b"\n".join(self.parts)))
        return None


def _csv_records(fh: IO[bytes], progress: Callable[[int], None] | None) -> Iterator[_Record]:
    """Whole CSV records (a quoted field may span lines), each held only up to `HOLD_LINE_BYTES`."""
    lines = _Lines(fh, HOLD_LINE_BYTES)
    rec = _Record()
    while True:
        line = lines.read(rec.stream)
        if line is None:
            if rec.lines:  # the file ended inside a quoted field
                yield rec
            return
        if progress:
            progress(line.consumed)
        if line.data is not None:
            rec.add(line.data)
        rec.line_done()
        if rec.state == _QUOTED and line.ended:
            continue  # a newline inside a quoted field: the record goes on
        yield rec
        rec = _Record()


def _typed_csv_value(name: str, value: str) -> Any:
    if name in _INT_FIELDS and value.lstrip("-").isdigit():
        return int(value)
    if name in _BOOL_FIELDS and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value


def _csv_cells(data: bytes) -> list[str] | Invalid:
    """The cells of one record, or why it is not a row: not UTF-8, or not parseable as CSV."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The reason JSONL (and Kafka) gives the same bytes: validate_event's malformed_json.
        return _opaque(data, "malformed_json", f"not valid UTF-8: {exc.reason} at byte {exc.start}")
    try:
        rows = list(csv.reader([text]))
    except csv.Error as exc:
        return _opaque(data, "malformed_json", f"not a well-formed CSV row: {exc}")
    if len(rows) != 1:
        return _opaque(data, "malformed_json", "not a well-formed CSV row: more than one record")
    return rows[0]


def _csv(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, Message]]:
    with path.open("rb") as fh:
        records = _csv_records(fh, progress)
        header: list[str] | None = None
        n = 0
        for rec in records:
            if rec.over is None and not rec.size:
                continue  # a blank line
            too_large = rec.too_large()
            if header is None:
                cells = _csv_cells(b"\n".join(rec.parts)) if too_large is None else too_large
                if not isinstance(cells, list):
                    raise SourceError(f"{path}: the CSV header line cannot be read: {cells.detail}")
                header = cells
                continue
            n += 1
            if too_large is not None:
                yield n, too_large
                continue
            row = _csv_cells(b"\n".join(rec.parts))
            if isinstance(row, Invalid):
                yield n, row
                continue
            obj = {k: _typed_csv_value(k, v) for k, v in zip(header, row, strict=False) if v != ""}
            # Cells beyond the header have no field name: they go in under a name of their own,
            # so validation rejects the row as `unknown_field` (with the contract's precedence)
            # instead of the values being dropped unchecked.
            for i, v in enumerate(row[len(header) :], len(header) + 1):
                if v != "":
                    obj[f"(column {i}, beyond the header)"] = v
            if obj:
                yield n, orjson.dumps(obj)


# -- Parquet --------------------------------------------------------------------------------------
def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        ts = v if v.tzinfo else v.replace(tzinfo=UTC)
        return ts.isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    return v


def _unrepresentable(obj: dict[str, Any], unreadable: set[str]) -> Invalid:
    """The verdict of a row holding values with no contract JSON type (decimal, binary...) or
    columns that cannot be read at all (`unreadable`)."""
    bad: dict[str, str] = {k: "unreadable" for k in unreadable}
    for k, v in obj.items():
        try:
            orjson.dumps(v)
        except TypeError:
            bad[k] = type(v).__name__
    kept = {k: v for k, v in obj.items() if k not in bad}
    payload = orjson.dumps({**obj, **bad}, default=repr, option=orjson.OPT_SORT_KEYS)
    rest = validate_event(orjson.dumps(kept))
    if isinstance(rest, Invalid) and rest.reason == "personal_data":
        return Invalid("personal_data", rest.detail, rest.redacted, payload_digest(payload), len(payload))
    shown = [f"{k} ({t})" for k, t in sorted(bad.items()) if k in _CONTRACT_FIELDS]
    hidden = len(bad) - len(shown)
    if hidden:
        shown.append(f"{hidden} other column{'s' if hidden != 1 else ''} (not shown)")
    detail = "values with no contract type: " + ", ".join(shown)
    detail = detail if len(detail) <= 300 else detail[:297] + "..."
    return Invalid("invalid_value", detail, redact(kept), payload_digest(payload), len(payload))


def _parquet_message(row: dict[str, Any], unreadable: set[str] | None = None) -> Message:
    obj = {k: _json_value(v) for k, v in row.items() if v is not None}
    if unreadable:
        return _unrepresentable(obj, unreadable)
    try:
        return orjson.dumps(obj)
    except TypeError:
        return _unrepresentable(obj, set())


def _parquet(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, Message]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    unreadable = (pa.ArrowException, ValueError, OverflowError, TypeError)
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
    n = 0
    batches = pf.iter_batches(batch_size=50_000)
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a corrupt page: the rows before it were read and yielded
            raise SourceError(f"{path}: not a readable Parquet file after row {n}: {exc}") from exc
        if batch is None:
            return
        try:
            rows: list[dict[str, Any]] | None = batch.to_pylist()
        except unreadable:  # a value Python cannot hold (a timestamp past year 9999): row by row
            rows = None
        for i in range(batch.num_rows):
            n += 1
            if rows is not None:
                yield n, _parquet_message(rows[i])
                continue
            row: dict[str, Any] = {}
            bad: set[str] = set()
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                try:
                    row[name] = column.slice(i, 1).to_pylist()[0]
                except unreadable:
                    bad.add(name)
            yield n, _parquet_message(row, bad)
        if progress:
            progress(batch.num_rows)
