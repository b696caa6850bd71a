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
"""

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

import orjson

from psmon.schemas.dead_letter import DeadLetter, unstorable_letter
from psmon.schemas.normalized import ValidRecord
from psmon.sinks.clickhouse.client import Client, is_permanent_error
from psmon.sinks.clickhouse.rollups import reconcile_rollups
from psmon.timeutil import local_date

__all__ = [
    "EVENT_COLUMNS",
    "RECEIVED_AT_RANGE_MS",
    "ClickHouseWriter",
    "IsolatedWrite",
    "RateRow",
    "Refused",
    "dead_letter_row",
    "event_row",
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


class ClickHouseWriter:
    def __init__(self, client: Client, *, database: str):
        self._client = client
        self._db = database

    def partition_batch(self, records: Sequence[ValidRecord]) -> tuple[list[ValidRecord], list[ValidRecord]]:
        """(new, redelivered): records whose event_id is neither earlier in the batch nor stored,
        and records stored before from this very source message (a Kafka redelivery)."""
        first: dict[str, ValidRecord] = {}
        for r in records:
            first.setdefault(r.event.event_id, r)
        if not first:
            return [], []
        # The ids go in as an array expanded by a subquery, not as an `IN (literal list)`: with a
        # literal set ClickHouse analyses the primary key against every element, which grows
        # badly with the batch (measured on chDB, ids already stored: 5,000 ids 0.06 s, 50,000
        # ids 98 s); the subquery builds a hash set once (50,000 ids: 0.3 s). Same result.
        stored = self._client.query(
            f"SELECT event_id, src_partition, src_offset FROM {self._db}.events "
            "WHERE province_code IN {provinces:Array(String)} "
            "AND event_id IN (SELECT arrayJoin({ids:Array(String)}))",
            parameters={
                "provinces": sorted({r.event.province_code for r in first.values()}),
                "ids": list(first),
            },
        ).result_rows
        src_of = {event_id: (int(part), int(offset)) for event_id, part, offset in stored}
        new = [r for event_id, r in first.items() if event_id not in src_of]
        redelivered = [r for event_id, r in first.items() if src_of.get(event_id) == r.src]
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
        new, redelivered = self.partition_batch(records)
        rows = [event_row(r) for r in new]
        inserted = self._insert("events", rows, EVENT_COLUMNS, token)
        if redelivered:
            keys = {(r.event.province_code, local_date(r.event.occurred_at_s)) for r in redelivered}
            reconcile_rollups(self._client, self._db, keys)
        return inserted

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

    def _insert(self, table: str, rows: list[list[Any]], columns: Sequence[str], token: str) -> int:
        if not rows:
            return 0
        digest = hashlib.blake2b(repr([row[0] for row in rows]).encode(), digest_size=8).hexdigest()
        self._client.insert(
            f"{self._db}.{table}",
            rows,
            column_names=list(columns),
            settings={
                "insert_deduplication_token": f"{token}#{len(rows)}:{digest}",
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )
        return len(rows)
