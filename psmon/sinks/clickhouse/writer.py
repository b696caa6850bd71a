"""Batched, idempotent writes of stream records into the ClickHouse tables of `schema.py`.

A batch is the records of one topic taken from one poll, written with one INSERT.

Events are written **at most once per `event_id`** (check-then-insert): the writer drops ids
repeated inside the batch (the first copy wins, as in stage 2's live counts), asks ClickHouse
which of the remaining ids it already holds (a primary-key lookup on `(province_code,
event_id)`), and inserts only the new ones. That is what makes the rollups exact: materialized
views see each inserted block, not the table after merges, so a re-delivered event must never
reach an INSERT a second time, whatever the batch boundaries of the redelivery (a crash between
write and commit, a stage-1 re-send at new offsets, a replayed file). The ReplacingMergeTree key
stays as a second line of defence for concurrent writers of one province during a rebalance.

Every INSERT carries an `insert_deduplication_token` = source range + a digest of the rows it
holds, so an ambiguous failure retried with the same rows is dropped whole by ClickHouse
(materialized views included), while a retry that now holds fewer rows gets its own token
instead of colliding with a half-written earlier attempt. Dead letters and rate snapshots are
keyed (ReplacingMergeTree) and read with FINAL. The writer is synchronous; the sink calls it
through `ClickHouseExecutor`.

A row that ClickHouse cannot store (a data error, `client.is_permanent_error`) must not stop
every write after it, yet the good rows around it must still be written exactly once.
`write_isolating` bisects: it writes the batch; on a data error it writes each half with its own
deterministic token (the batch token plus the half's index range), recursing until each
offending row is alone, and returns the rows written and the rows refused. A transient error at
any depth is raised as it is, so the caller retries the whole batch later: halves written before
are then found already stored (events) or replace themselves by key (dead letters, rates).
A dead letter is always storable: its numbers are clamped into their columns' ranges and its
`received_at` into `RECEIVED_AT_RANGE_MS` (deterministically, so a redelivered dead letter lands
in the same partition and stays one row), because it is the last resort of every other row.
`unstorable_letters` turns refused events into those dead letters, for the sink and for
`psmon replay` alike (ids from the event's content, so both name the same event the same way).

Events go in as one Arrow table per INSERT (`event_table`, `client.insert_arrow`), not as a list
of rows (`client.insert`, which dead letters and rates still use: they are few). Both carry the
same values (`event_row` is the reference, `tests/unit/sinks/clickhouse/test_event_table.py`;
the stored table, its types and its rollups compare equal in
`tests/integration/sinks/test_arrow_insert.py`), but clickhouse-connect encodes a row list into
its Native format in Python, value by value, holding the GIL, while an Arrow table is built
column by column in C++ (the times vectorized with numpy) and ClickHouse parses it in C++
without the GIL. Measured on chDB, 198,000 corpus rows in 50,000-row batches on a loaded
machine: plain `client.insert` 5.0 s, Arrow 2.6 s of which 1.0 s Python (`column_oriented=True`
5.9 s; `raw_insert` of orjson `JSONCompactEachRow` 9.4 s, ClickHouse's JSON parser being the
slow part). A value that does not fit its column is still a data error, raised while building
the table, so `write_isolating` isolates it as before.

`write_events` also takes an `EventTable`, events already built into their table (`psmon
replay` validates rows straight into tables): it is checked and inserted from its columns with
the same rules, and a record is rebuilt from a row only for a row ClickHouse refuses.

The "already stored?" query carries the batch's ids as one string literal split back by
`splitByChar` (`string_array`), not as a bound parameter: clickhouse-connect escapes a bound
value in Python character by character, about 0.25 s of GIL for 50,000 ids. The writer raises
the client's `max_query_size` to fit such a query.
"""

import hashlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Final, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt
import orjson

from psmon.schemas.dead_letter import DeadLetter, unstorable_letter
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import ValidEvent
from psmon.sinks.clickhouse.client import Client, is_permanent_error
from psmon.sinks.clickhouse.rollups import reconcile_rollups
from psmon.timeutil import local_date

__all__ = [
    "EVENT_COLUMNS",
    "RECEIVED_AT_RANGE_MS",
    "ClickHouseWriter",
    "EventTable",
    "IsolatedWrite",
    "RateRow",
    "Refused",
    "dead_letter_row",
    "event_row",
    "event_table",
    "events_table",
    "string_array",
    "unstorable_letters",
    "write_isolating",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: `received_at` of a dead letter is clamped into [1970-01-01, 2100-01-01) UTC, in ms.
RECEIVED_AT_RANGE_MS: Final = (0, int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000) - 1)
_UINT32_MAX: Final = 2**32 - 1
_UINT64_MAX: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Refused(Generic[T]):
    """A row ClickHouse refused as a data error, alone in its write, and that error."""

    item: T
    error: Exception


@dataclass(slots=True)
class IsolatedWrite(Generic[T]):
    """Outcome of `write_isolating`: what `write` reported as written, and the refused rows."""

    written: int = 0
    refused: list[Refused[T]] = field(default_factory=list)


def write_isolating(
    write: Callable[[Sequence[T], str], int],
    items: Sequence[T],
    token: str,
    *,
    permanent: Callable[[BaseException], bool] = is_permanent_error,
) -> IsolatedWrite[T]:
    """Write `items` with `write(items, token)`; on a permanent error bisect until every refused
    row is alone (see the module docstring). Transient errors propagate unchanged."""
    out: IsolatedWrite[T] = IsolatedWrite()
    _bisect(write, items, 0, token, permanent, out, top=True)
    return out


def _bisect(
    write: Callable[[Sequence[T], str], int],
    items: Sequence[T],
    start: int,
    token: str,
    permanent: Callable[[BaseException], bool],
    out: IsolatedWrite[T],
    *,
    top: bool = False,
) -> None:
    if not items:
        return
    # The whole batch keeps its plain token (as before any split); a part is named by its range.
    part_token = token if top else f"{token}[{start}:{start + len(items)}]"
    try:
        out.written += write(items, part_token)
        return
    except Exception as exc:
        if not permanent(exc):
            raise
        if len(items) == 1:
            out.refused.append(Refused(items[0], exc))
            return
        log.info("data error in a write of %d rows (%s); splitting it to isolate the bad rows", len(items), exc)
    mid = len(items) // 2
    _bisect(write, items[:mid], start, token, permanent, out)
    _bisect(write, items[mid:], start + mid, token, permanent, out)


def unstorable_letters(refused: Sequence[Refused[ValidRecord]]) -> list[DeadLetter]:
    """The `unstorable` dead letters of events ClickHouse refused, each logged as an error.

    A record too odd to even describe is logged and left out: setting rows aside must never
    stop the writes around them."""
    letters: list[DeadLetter] = []
    for r in refused:
        record = r.item
        source = f"{record.src_partition}:{record.src_offset}"
        try:
            letter = unstorable_letter(record, error=r.error)
        except Exception as exc:
            log.error("cannot build the dead letter of event at %s (%s); dropped", source, exc)
            continue
        log.error(
            "event %s (%s) cannot be stored (%s): sent to dead letters as %s",
            record.event.event_id,
            source,
            r.error,
            letter.dead_letter_id,
        )
        letters.append(letter)
    return letters


EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "occurred_at",
    "province_code",
    "raw_province_code",
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
    "src_partition",
    "src_offset",
    "src_ts",
    "dedup_version",
)
_DEAD_LETTER_COLUMNS = (
    "dead_letter_id",
    "reason",
    "detail",
    "redacted",
    "payload_sha256",
    "payload_bytes",
    "src_partition",
    "src_offset",
    "received_at",
)
RATE_COLUMNS = (
    "snapshot_at",
    "worker",
    "province_code",
    "metric",
    "rate_window",
    "numerator",
    "denominator",
    "ratio",
    "watermark",
)
RateRow = dict[str, Any]

# Larger version wins in ReplacingMergeTree; subtracting the produce time keeps the first copy.
_VERSION_BASE = 10**13


def _utc(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, UTC)


def _clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(value)))


def dead_letter_row(d: DeadLetter) -> list[Any]:
    """The `dead_letters` row of a letter, clamped so that ClickHouse always accepts it."""
    lo_ms, hi_ms = RECEIVED_AT_RANGE_MS
    return [
        str(d.dead_letter_id),
        str(d.reason),
        str(d.detail),
        orjson.dumps(d.redacted).decode() if d.redacted is not None else "",
        str(d.payload_sha256),
        _clamp(d.payload_bytes, 0, _UINT32_MAX),
        _clamp(d.src_partition, 0, _UINT32_MAX),
        _clamp(d.src_offset, 0, _UINT64_MAX),
        _utc(_clamp(d.src_ts_ms, lo_ms, hi_ms) / 1000),
    ]


#: The times a `datetime` can hold (years 1-9999), in s. Rows once carried datetimes, so a time
#: beyond them was a data error (the row set aside as `unstorable`); integer ticks keep that.
_DATETIME_RANGE_S: Final = (
    datetime(1, 1, 2, tzinfo=UTC).timestamp(),
    datetime(9999, 12, 31, tzinfo=UTC).timestamp(),
)


def _utc_us(ts_s: float) -> int:
    """Microseconds since the epoch of `ts_s`, rounded exactly as `datetime.fromtimestamp` rounds
    (the fraction to the nearest microsecond, ties to even): the `DateTime64(6)` value that
    inserting `_utc(ts_s)` stores. ValueError (a data error) outside `_DATETIME_RANGE_S`."""
    if not _DATETIME_RANGE_S[0] <= ts_s < _DATETIME_RANGE_S[1]:  # NaN fails this too
        raise ValueError(f"time {ts_s} s is out of range")
    frac, whole = math.modf(ts_s)
    return int(whole) * 1_000_000 + round(frac * 1e6)


def _utc_ms(ts_ms: int) -> int:
    """`ts_ms` as the `DateTime64(3)` value that inserting `_utc(ts_ms / 1000)` stores."""
    if not _DATETIME_RANGE_S[0] * 1000 <= ts_ms < _DATETIME_RANGE_S[1] * 1000:
        raise ValueError(f"time {ts_ms} ms is out of range")
    return int(ts_ms)


def _ticks_us(times_s: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """`_utc_us` of every element, vectorized: the same range check (the first time outside it
    raises the same ValueError) and the same arithmetic (`np.modf` splits a float exactly as
    `math.modf` does, `np.rint` rounds half to even as `round` does), so the same ticks."""
    lo, hi = _DATETIME_RANGE_S
    inside = (times_s >= lo) & (times_s < hi)  # NaN fails this too
    if not inside.all():
        raise ValueError(f"time {times_s[~inside][0]} s is out of range")
    frac, whole = np.modf(times_s)
    return whole.astype(np.int64) * 1_000_000 + np.rint(frac * 1e6).astype(np.int64)


def _ticks_ms(times_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`_utc_ms` of every element, vectorized (the same range check)."""
    lo, hi = _DATETIME_RANGE_S
    inside = (times_ms >= lo * 1000) & (times_ms < hi * 1000)
    if not inside.all():
        raise ValueError(f"time {times_ms[~inside][0]} ms is out of range")
    return times_ms


#: Arrow types of the `events` columns that are not plain (nullable) strings: the DateTime64
#: columns as timestamps of their unit (their ticks, as the native insert writes them), and the
#: integer and Bool columns in their ClickHouse widths, so a value out of a column's range is
#: refused here, as the driver's native encoder refused it.
_EVENT_ARROW_TYPES: Final = {
    "occurred_at": ("timestamp", "us"),
    "src_ts": ("timestamp", "ms"),
    "fee_bearing": ("bool", ""),
    "on_time": ("bool", ""),
    "amount_vnd": ("int64", ""),
    "src_partition": ("uint32", ""),
    "src_offset": ("uint64", ""),
    "dedup_version": ("uint64", ""),
}


def _arrow_type(column: str) -> Any:
    import pyarrow as pa

    kind, unit = _EVENT_ARROW_TYPES.get(column, ("string", ""))
    if kind == "timestamp":
        return pa.timestamp(unit, tz="UTC")
    return getattr(pa, "bool_" if kind == "bool" else kind)()


def event_table(records: Sequence[ValidRecord]) -> Any:
    """The `events` rows of `records` as one Arrow table (`pyarrow.Table`), `EVENT_COLUMNS` in
    order: the values of `event_row`, column by column.

    Why Arrow: clickhouse-connect encodes a list of rows into its Native format in Python, value
    by value, holding the GIL (most of a raw insert's time); Arrow arrays are built from the
    record attributes in C++ and ClickHouse parses the Arrow stream in C++, without the GIL (see
    the module docstring). A value that does not fit its column raises ValueError, OverflowError
    or TypeError (data errors, `client.is_permanent_error`) naming the column."""
    return events_table(
        [r.event for r in records],
        src_partitions=[r.src_partition for r in records],
        src_offsets=[r.src_offset for r in records],
        src_ts_ms=[r.src_ts_ms for r in records],
    )


def events_table(
    events: Sequence[ValidEvent],
    *,
    src_partitions: Sequence[int],
    src_offsets: Sequence[int],
    src_ts_ms: Sequence[int],
) -> Any:
    """`event_table` of the records of these events and source coordinates (the i-th of each):
    what `psmon replay` builds straight from validated events, without a record per event."""
    import pyarrow as pa

    occurred = np.fromiter((e.occurred_at_s for e in events), np.float64, len(events))
    try:
        src_ts = np.fromiter(src_ts_ms, np.int64, len(src_ts_ms))
    except OverflowError as exc:
        raise ValueError(f"column src_ts: time out of range ({exc})") from exc
    values: dict[str, Any] = {
        "occurred_at": _ticks_us(occurred),
        "src_ts": _ticks_ms(src_ts),
        "src_partition": src_partitions,
        "src_offset": src_offsets,
        "dedup_version": _VERSION_BASE - src_ts,
    }
    arrays = []
    for column in EVENT_COLUMNS:
        data = values[column] if column in values else list(map(attrgetter(column), events))
        try:
            arrays.append(pa.array(data, type=_arrow_type(column)))
        except (ValueError, OverflowError, TypeError) as exc:  # ArrowInvalid is a ValueError
            raise ValueError(f"column {column}: {exc}") from exc
    return pa.Table.from_arrays(arrays, names=list(EVENT_COLUMNS))


def event_row(r: ValidRecord) -> list[Any]:
    """The `events` row of a record, in `EVENT_COLUMNS` order.

    The two times go in as integer ticks of their `DateTime64` columns (µs for `occurred_at`,
    ms for `src_ts`), which clickhouse-connect writes as they are: building a `datetime` per
    value, which the driver then turns back into ticks, was a fifth of a replay's write time.
    The stored values are the same (`_utc_us`)."""
    e = r.event
    return [
        e.event_id,
        e.event_type,
        _utc_us(e.occurred_at_s),
        e.province_code,
        e.raw_province_code,
        e.level,
        e.procedure_code,
        e.dossier_id,
        e.agency_code,
        e.commune_code,
        e.source_system,
        e.channel,
        e.service_mode,
        e.fee_bearing,
        e.on_time,
        e.method,
        e.amount_vnd,
        e.kind,
        r.src_partition,
        r.src_offset,
        _utc_ms(r.src_ts_ms),
        _VERSION_BASE - r.src_ts_ms,
    ]


#: Backslash and quote escaped: all a quoted ClickHouse string literal needs to read back as is.
_LITERAL_ESCAPES: Final = str.maketrans({"\\": "\\\\", "'": "\\'"})
#: ClickHouse's default `max_query_size` (bytes of query text it parses).
_DEFAULT_MAX_QUERY_SIZE: Final = 262_144


def string_array(values: Sequence[str]) -> str:
    """`values` (not empty) as a ClickHouse `Array(String)` expression, built in C: joined by
    newlines into one quoted literal that `splitByChar` splits back.

    Why not a bound parameter: clickhouse-connect escapes a parameter in Python one character at
    a time, about 0.25 s of GIL for 50,000 ids, as long as the check query itself. When a value
    holds a newline the join cannot be split back, so the array is written element by element
    instead. Either reads back exactly `values` (tests/unit/sinks/clickhouse/test_check_query.py)."""
    blob = "\n".join(values)
    if blob.count("\n") == len(values) - 1:
        return f"splitByChar('\\n', '{blob.translate(_LITERAL_ESCAPES)}')"
    return "[" + ", ".join(f"'{v.translate(_LITERAL_ESCAPES)}'" for v in values) + "]"


class ClickHouseWriter:
    """Writes batches of one table (see the module docstring).

    The "already stored?" query carries a whole batch's ids as query text (`string_array`), so
    the writer raises the client's `max_query_size` (a parse limit, nothing else) when a query
    would not fit it."""

    def __init__(self, client: Client, *, database: str):
        self._client = client
        self._db = database
        self._max_query_size = _DEFAULT_MAX_QUERY_SIZE

    def _query_columns(self, sql: str) -> list[list[Any]]:
        """The result's columns, as lists. Read as Arrow: the driver's row query runs several
        regular expressions over the query text in Python (about 13 ms of GIL for a batch of
        50,000 ids), and decodes the result value by value."""
        size = len(sql.encode())
        if size > self._max_query_size:
            self._max_query_size = max(2 * size, self._max_query_size)
            self._client.set_client_setting("max_query_size", self._max_query_size)
        table = self._client.query_arrow(sql, use_strings=True)
        return [column.to_pylist() for column in table.columns]

    def partition_batch(self, records: Sequence[ValidRecord]) -> tuple[list[ValidRecord], list[ValidRecord]]:
        """(new, redelivered): records whose event_id is neither earlier in the batch nor stored,
        and records stored before from this very source message (a Kafka redelivery)."""
        new, redelivered = self._new_and_redelivered(
            [r.event.event_id for r in records], [r.event.province_code for r in records], lambda i: records[i].src
        )
        return [records[i] for i in new], [records[i] for i in redelivered]

    def _new_and_redelivered(
        self, ids: Sequence[str], provinces: Sequence[str], sources: Callable[[int], tuple[int, int]]
    ) -> tuple[list[int], list[int]]:
        """`partition_batch` on the batch's columns, as row indexes (each list in row order);
        `sources(i)` is row i's (src_partition, src_offset), asked only of rows already stored."""
        first: dict[str, int] = {}
        for i, event_id in enumerate(ids):
            first.setdefault(event_id, i)
        if not first:
            return [], []
        # The ids go in as an array expanded by a subquery, not as an `IN (literal list)`: with a
        # literal set ClickHouse analyses the primary key against every element, which grows
        # badly with the batch (measured on chDB, ids already stored: 5,000 ids 0.06 s, 50,000
        # ids 98 s); the subquery builds a hash set once (50,000 ids: 0.3 s). Same result.
        in_batch = string_array(sorted({provinces[i] for i in first.values()}))
        stored = self._query_columns(
            f"SELECT event_id, src_partition, src_offset FROM {self._db}.events "
            f"WHERE province_code IN {in_batch} AND event_id IN (SELECT arrayJoin({string_array(list(first))}))"
        )
        if not stored[0]:  # nothing stored yet, as for most of a first replay
            return list(first.values()), []
        src_of = {event_id: (int(part), int(offset)) for event_id, part, offset in zip(*stored, strict=True)}
        new = [i for event_id, i in first.items() if event_id not in src_of]
        redelivered = [i for event_id, i in first.items() if src_of.get(event_id) == sources(i)]
        return new, redelivered

    def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
        """Insert the events not stored yet; returns how many were inserted.

        A redelivered event may have been stored by an INSERT that did not finish: a process
        killed between the raw part and a materialized view's part leaves that rollup short,
        and the redelivery, found already stored, would never fill it. So the rollup keys
        (province, local day) of redelivered events are reconciled with the raw table
        (`rollups.reconcile_rollups`): a no-op when they agree, the missing counts when not.
        Redeliveries only follow crashes and rebalances, so steady state never pays for it.
        """
        if isinstance(records, EventTable):
            return self._write_event_table(records, token)
        new, redelivered = self.partition_batch(records)
        inserted = self._insert_events(new, token)
        if redelivered:
            keys = {(r.event.province_code, local_date(r.event.occurred_at_s)) for r in redelivered}
            reconcile_rollups(self._client, self._db, keys)
        return inserted

    def _write_event_table(self, events: "EventTable", token: str) -> int:
        """`write_events` of an `EventTable`: the same checks, on its columns (no record is built)."""
        table = events.table
        ids = table.column("event_id").to_pylist()
        provinces = table.column("province_code").to_pylist()
        source_columns: list[list[int]] = []

        def sources(i: int) -> tuple[int, int]:
            if not source_columns:  # read once, only if some event is already stored
                source_columns.extend(table.column(c).to_pylist() for c in ("src_partition", "src_offset"))
            return source_columns[0][i], source_columns[1][i]

        new, redelivered = self._new_and_redelivered(ids, provinces, sources)
        if new:
            part = table if len(new) == len(ids) else table.take(new)
            self._client.insert_arrow(
                f"{self._db}.events", part, settings=_insert_settings(token, [ids[i] for i in new])
            )
        if redelivered:
            ticks = table.column("occurred_at").cast("int64").to_pylist()
            keys = {(provinces[i], local_date(ticks[i] / 1e6)) for i in redelivered}
            reconcile_rollups(self._client, self._db, keys)
        return len(new)

    def write_dead_letters(self, letters: Sequence[DeadLetter], *, token: str) -> int:
        rows = [dead_letter_row(d) for d in letters]
        return self._insert("dead_letters", rows, _DEAD_LETTER_COLUMNS, token)

    def write_rates(self, rates: Sequence[RateRow], *, token: str) -> int:
        rows = [
            [
                _utc(r["snapshot_at_ms"] / 1000),
                r["worker"],
                r["province_code"],
                r["metric"],
                r["window"],
                r["numerator"],
                r["denominator"],
                r["ratio"],
                _utc(r["watermark_ms"] / 1000),
            ]
            for r in rates
        ]
        return self._insert("rate_snapshots", rows, RATE_COLUMNS, token)

    def _insert_events(self, records: Sequence[ValidRecord], token: str) -> int:
        """One Arrow INSERT of `records` (their `event_table`), with the token `_insert` would
        give them."""
        if not records:
            return 0
        self._client.insert_arrow(
            f"{self._db}.events",
            event_table(records),
            settings=_insert_settings(token, [r.event.event_id for r in records]),
        )
        return len(records)

    def _insert(self, table: str, rows: list[list[Any]], columns: Sequence[str], token: str) -> int:
        if not rows:
            return 0
        self._client.insert(
            f"{self._db}.{table}",
            rows,
            column_names=list(columns),
            settings=_insert_settings(token, [row[0] for row in rows]),
        )
        return len(rows)


class EventTable(Sequence[ValidRecord]):
    """Events as their `event_table`, built ahead; a sequence of the records it holds.

    `psmon replay` validates in worker processes, and sending the records back would cost more
    than validating them (unpickling 200,000 `ValidRecord`s took 2.4 s of the reading process,
    their Arrow tables 0.14 s). So the workers send tables, and the writer checks and inserts a
    table from its columns (`ClickHouseWriter.write_events`) without building a record. A record
    is rebuilt from its row only when asked for one (`write_isolating` hands a refused row to
    `unstorable_letters`): every field the dead letter names is a column, and the time comes
    back from its microsecond ticks exactly (the letter keeps microseconds). Slices, what
    `write_isolating` makes, are slices of the table."""

    __slots__ = ("table",)

    def __init__(self, table: Any):
        self.table = table

    @staticmethod
    def of(records: Sequence[ValidRecord]) -> "Sequence[ValidRecord]":
        """`records` as an `EventTable`, or `records` themselves when their table cannot be built
        (see `of_events`)."""
        events = EventTable.of_events(
            [r.event for r in records],
            src_partitions=[r.src_partition for r in records],
            src_offsets=[r.src_offset for r in records],
            src_ts_ms=[r.src_ts_ms for r in records],
        )
        return events if isinstance(events, EventTable) else records

    @staticmethod
    def of_events(
        events: Sequence[ValidEvent],
        *,
        src_partitions: Sequence[int],
        src_offsets: Sequence[int],
        src_ts_ms: Sequence[int],
    ) -> "Sequence[ValidRecord]":
        """The records of these events and source coordinates as an `EventTable`, built without a
        record per event; the records themselves when their table cannot be built (a value that
        does not fit its column): `write_events` then builds it again and raises that data error,
        for `write_isolating` to isolate the row."""
        if not events:
            return []
        try:
            return EventTable(
                events_table(events, src_partitions=src_partitions, src_offsets=src_offsets, src_ts_ms=src_ts_ms)
            )
        except (ValueError, OverflowError, TypeError):
            coordinates = zip(events, src_partitions, src_offsets, src_ts_ms, strict=True)
            return [ValidRecord(e, partition, offset, ts) for e, partition, offset, ts in coordinates]

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @overload
    def __getitem__(self, index: int) -> ValidRecord: ...
    @overload
    def __getitem__(self, index: slice) -> "EventTable": ...
    def __getitem__(self, index: int | slice) -> "ValidRecord | EventTable":
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            rows = range(start, stop, step)
            table = self.table.slice(start, len(rows)) if step == 1 else self.table.take(list(rows))
            return EventTable(table)
        position = index if index >= 0 else len(self) + index
        if not 0 <= position < len(self):
            raise IndexError(index)
        return next(_records(self.table.slice(position, 1)))

    def __iter__(self) -> Iterator[ValidRecord]:
        """Every record, read off the table in one pass (not one row slice at a time)."""
        return _records(self.table)


#: `events` columns that are not `ValidEvent` fields (or are, under another name and unit).
_NOT_EVENT_FIELDS: Final = ("occurred_at", "src_ts", "src_partition", "src_offset", "dedup_version")


def _records(table: Any) -> Iterator[ValidRecord]:
    """The records of an `events_table`: every field a column, the times from their ticks."""
    fields = table.drop_columns(list(_NOT_EVENT_FIELDS)).to_pylist()
    occurred_us = table.column("occurred_at").cast("int64").to_pylist()
    src_ts_ms = table.column("src_ts").cast("int64").to_pylist()
    partitions, offsets = table.column("src_partition").to_pylist(), table.column("src_offset").to_pylist()
    for values, us, partition, offset, ts in zip(fields, occurred_us, partitions, offsets, src_ts_ms, strict=True):
        yield ValidRecord(ValidEvent(occurred_at_s=us / 1e6, **values), partition, offset, ts)


def _insert_settings(token: str, keys: list[Any]) -> dict[str, Any]:
    """The settings of an INSERT of rows with these first-column values: its deduplication token
    (batch token + row count + digest of the keys) and deduplication in the materialized views."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).hexdigest()
    return {
        "insert_deduplication_token": f"{token}#{len(keys)}:{digest}",
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }
