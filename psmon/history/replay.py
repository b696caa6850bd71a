"""Backfill: load event files into ClickHouse (and/or re-publish them to Kafka) at bulk speed.

Each row goes through `validate_events`, the validation of stage 1, so a replayed file ends up
exactly as if portals had sent it: valid events in `events` (and through the materialized views
in the rollups), rejected rows in `dead_letters` with the same reasons and redaction.

Writes go through `ClickHouseWriter`, the sink's writer: an `event_id` is inserted at most once
whatever is already stored, so replaying a file twice, or a file that overlaps what the live
pipeline already wrote, changes nothing. Batches are large (50,000 rows by default): the writer's
"already stored?" lookup and the INSERT both cost per batch, not per row. Each batch is written
on a thread of its own while the next one is read and validated (`_BatchWriter`: ClickHouse
runs without the GIL), one batch at a time and in file order, so the at-most-once check works
exactly as if the writes were made in turn. Python work on the writer thread would compete
with validation for the GIL, so rows are validated in chunks straight into Arrow tables
(`replay_validation`, on worker processes with `workers` > 1), the writer checks and inserts a
table from its columns (`writer.EventTable`), the batch's INSERT token is hashed in one call
that releases the GIL, and the writer thread is left mostly ClickHouse calls (measurements and
commands in docs/performance.md, "Replay and the end-to-end pipeline"). Batches are cut where
validating row by row would cut them, whatever the chunks, so their tokens never depend on how
many processes validated.

Replayed rows carry synthetic source coordinates, since they did not come from Kafka:
`src_partition` = `REPLAY_PARTITION_FLAG` | crc32(file name) (Kafka partitions never reach
2**31, so the high bit marks a replay), `src_offset` = row number, and the replay's start time.
Nothing that decides what is stored depends on them, though: a dead letter's id is derived from
the rejected content (`dead_letter.letter_id`), the same id stage 1 gives the same bytes on
Kafka, so replaying a file twice, two copies of a file in different folders, or a file that
overlaps what Kafka already delivered all keep one row per dead letter; and each INSERT's
deduplication token is a digest of the rows of its batch, not of the file's name.

A bad row is that row's dead letter, never the end of the file: rows the reader rejects itself
(over-long, not UTF-8, a Parquet value with no contract type: `sources`) are dead letters like
those validation rejects, and everything before and after them is loaded.

A row that passes validation but that ClickHouse still refuses as a data error (possible only if
the store is narrower than the contract, e.g. an older table) does not abort the replay: the
writer isolates it (`writer.write_isolating`), every other row of its batch is written, and the
row goes to `dead_letters` as `unstorable`, its id from the event's content (counted in
`ReplayStats.unstorable`). A transient failure still aborts the replay; running it again is safe.

With a TTL on raw events, events older than the retention are skipped: their raw rows would be
gone, so the at-most-once check could not see them and the rollups would count them twice.

`--publish` sends the rows (as contract JSON, keyed by province code as sent) to `psmon.events`
instead, so the running pipeline validates and stores them; both targets can be combined. Rows
the reader rejected have no message to send: they are counted as invalid (and stored as dead
letters when ClickHouse is a target).
`replay_into` opens the targets that `Settings` name, runs `replay_files` and closes them.
"""

import hashlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

import orjson
import pyarrow as pa

from psmon.history.publish import KafkaPublisher
from psmon.history.replay_validation import (
    BEYOND,
    EVENT,
    LETTER,
    POOL_AFTER_BYTES,
    TASK_ROWS,
    RowValidation,
    Verdicts,
)
from psmon.history.sources import SourceError, read_message_blocks
from psmon.kafka import KafkaAuth
from psmon.schemas.dead_letter import DeadLetter
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import Invalid
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import connect
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter, EventTable, unstorable_letters, write_isolating
from psmon.streams.topics import ensure_topics

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "REPLAY_PARTITION_FLAG",
    "REPLAY_TARGETS",
    "Publisher",
    "ReplayStats",
    "ReplayTarget",
    "replay_files",
    "replay_into",
    "replay_partition",
]

DEFAULT_BATCH_ROWS: Final = 50_000
REPLAY_PARTITION_FLAG: Final = 0x8000_0000

log = logging.getLogger(__name__)

ReplayTarget = Literal["clickhouse", "kafka", "both"]
REPLAY_TARGETS: Final[tuple[ReplayTarget, ...]] = ("clickhouse", "kafka", "both")


class Publisher(Protocol):
    """Where re-published rows go (a Kafka producer on `psmon.events`)."""

    def send(self, key: bytes | None, value: bytes) -> None: ...
    def flush(self) -> None: ...


@dataclass
class ReplayStats:
    rows: int = 0
    valid: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    inserted: int = 0
    already_stored: int = 0  # valid events whose event_id was stored before (or earlier in the file)
    unstorable: int = 0  # valid events that ClickHouse refused: stored as `unstorable` dead letters
    beyond_retention: int = 0
    published: int = 0
    elapsed_s: float = 0.0

    @property
    def invalid(self) -> int:
        return sum(self.invalid_by_reason.values())

    @property
    def rate_eps(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
            "inserted": self.inserted,
            "already_stored": self.already_stored,
            "unstorable": self.unstorable,
            "beyond_retention": self.beyond_retention,
            "published": self.published,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_eps": round(self.rate_eps, 1),
        }


def replay_partition(path: Path) -> int:
    """The synthetic `src_partition` of the rows replayed from `path` (see the module docstring)."""
    return REPLAY_PARTITION_FLAG | (zlib.crc32(path.name.encode()) & 0x7FFF_FFFF)


def _key_of(message: bytes) -> bytes | None:
    try:
        code = orjson.loads(message).get("province_code")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return code.encode() if isinstance(code, str) else None


class _Batch:
    """The rows of one write: valid events (in parts, as validated), dead letters, and every
    row's content (the raw line, or the payload fingerprint of a row the reader rejected) for
    the INSERT token; `size` counts the events and letters (rows beyond retention are not written)."""

    def __init__(self) -> None:
        self.parts: list[Sequence[ValidRecord]] = []
        self.letters: list[DeadLetter] = []
        self.content: list[bytes] = []
        self.size = 0

    @property
    def token(self) -> str:
        """`replay/` + BLAKE2b of every row's content followed by a newline. Hashed once, on the
        writer thread: one `update` of the whole batch runs without the GIL, where an `update`
        per row on the reading thread held it (about a second of a 200,000-row replay)."""
        data = b"\n".join([*self.content, b""])
        return f"replay/{hashlib.blake2b(data, digest_size=16).hexdigest()}"

    def events(self) -> Sequence[ValidRecord]:
        """The batch's events as one sequence: one `EventTable` when every part is one (the
        usual case), else the records."""
        parts = [p for p in self.parts if len(p)]
        tables = [p.table for p in parts if isinstance(p, EventTable)]
        if len(tables) == len(parts) and tables:
            return EventTable(pa.concat_tables(tables))
        return [r for p in parts for r in p]

    def __len__(self) -> int:
        return self.size


def replay_files(
    paths: Iterable[Path],
    *,
    writer: ClickHouseWriter | None,
    publisher: Publisher | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    retention_days: int = 0,
    progress: Callable[[Path, int], None] | None = None,
    clock: Callable[[], float] = time.time,
    workers: int = 1,
) -> ReplayStats:
    """Validate and load every row of `paths`; see the module docstring for the guarantees.

    `workers` > 1: processes that validate the rows of a long input (`replay_validation`);
    1 validates in this process."""
    if writer is None and publisher is None:
        raise ValueError("replay needs a ClickHouse writer, a publisher, or both")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    stats = ReplayStats()
    t0 = time.monotonic()
    started_s = clock()
    src_ts_ms = int(started_s * 1000)
    horizon_s = started_s - retention_days * 86400 if retention_days else None

    def write(b: _Batch) -> None:  # on the writer thread; it alone updates the write counters
        if writer is None or not len(b):
            return
        token = b.token
        batch_events = b.events()
        events = write_isolating(lambda rows, tok: writer.write_events(rows, token=tok), batch_events, token)
        unstorable = unstorable_letters(events.refused)
        stats.inserted += events.written
        stats.already_stored += len(batch_events) - events.written - len(events.refused)
        stats.unstorable += len(events.refused)
        letters = write_isolating(
            lambda rows, tok: writer.write_dead_letters(rows, token=tok), [*b.letters, *unstorable], token
        )
        for r in letters.refused:  # clamped to fit, so not expected: say so rather than stop
            log.error("dead letter %s cannot be stored (%s); dropped", r.item.dead_letter_id, r.error)

    paths = list(paths)
    with _BatchWriter(write) as writes, RowValidation[list[bytes]](workers) as validation:
        if workers > 1 and writer is not None and sum(p.stat().st_size for p in paths) >= POOL_AFTER_BYTES:
            validation.start()  # long input: the workers start while the first rows are read
        for path in paths:
            source = _Source(path, replay_partition(path), src_ts_ms, horizon_s)
            _replay_file(source, writes, validation, stats, publisher, writer is not None, batch_rows, progress)
        writes.drain()
    if publisher is not None:
        publisher.flush()
    stats.elapsed_s = time.monotonic() - t0
    return stats


class _BatchWriter:
    """Writes batches on one thread of its own, one at a time and in order, while the caller
    reads and validates the next batch.

    chDB (and the HTTP client, waiting on the server) releases the GIL while ClickHouse runs an
    INSERT or the writer's "already stored?" query, which is about half of a replay's time: done
    in turn, reading and writing add up; overlapped, a replay takes about the longer of the two.
    Nothing about what is written changes: batches are written in file order, each after the
    previous one has finished, so the writer's at-most-once check sees every earlier batch (ids
    repeated across batches are still found stored). At most one batch is in flight, so memory
    stays two batches. A failed write is raised to the caller at its next `submit` or at `drain`;
    leaving the `with` block waits for the write in flight, so the client is never closed under it.
    """

    def __init__(self, write: Callable[[_Batch], None]):
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-write")
        self._pending: Future[None] | None = None

    def submit(self, batch: _Batch) -> None:
        self.drain()
        if len(batch):
            self._pending = self._pool.submit(self._write, batch)

    def drain(self) -> None:
        """Wait for the batch in flight; raises its write's error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> "_BatchWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True)


@dataclass(frozen=True, slots=True)
class _Source:
    """A file being replayed, and what every one of its rows is stamped with."""

    path: Path
    partition: int  # `replay_partition(path)`
    src_ts_ms: int
    horizon_s: float | None  # events before it are beyond retention (None: no retention)


def _replay_file(
    source: _Source,
    writes: _BatchWriter,
    validation: RowValidation[list[bytes]],
    stats: ReplayStats,
    publisher: Publisher | None,
    store: bool,
    batch_rows: int,
    progress: Callable[[Path, int], None] | None,
) -> None:
    """Read every row of `source`, validate it (`validation`, in chunks of at least `TASK_ROWS`
    rows) and hand the verdicts to `writes` in batches of `batch_rows` events and letters (see
    `replay_files`).

    The reading loop runs on the thread that holds the GIL most of a replay, so it takes the
    reader's blocks of rows (`read_message_blocks`) rather than a row at a time, and only counts
    and collects; a chunk's verdicts come back in file order and are cut into batches exactly
    where validating row by row would cut them (`_Batches.add`). Counts are added to `stats` as
    the verdicts come back, and the rows read at the end, whatever happens."""
    path = source.path
    batches = _Batches(writes, stats, batch_rows)
    rows = published = 0
    chunk_rows: list[int] = []
    chunk: list[bytes | Invalid] = []
    content: list[bytes] = []

    def advance(n: int) -> None:
        if progress:
            progress(path, n)

    def submit() -> None:
        nonlocal chunk_rows, chunk, content
        if chunk:
            validation.submit(
                content,
                chunk_rows,
                chunk,
                src_partition=source.partition,
                src_ts_ms=source.src_ts_ms,
                horizon_s=source.horizon_s,
            )
            chunk_rows, chunk, content = [], [], []

    try:
        for block_rows, messages in read_message_blocks(path, progress=advance):
            rows += len(block_rows)
            if publisher is not None:
                for message in messages:
                    if isinstance(message, bytes):
                        publisher.send(_key_of(message), message)
                        published += 1
            if not store:
                for message in messages:
                    if isinstance(message, Invalid):  # nothing to publish: counted, not lost silently
                        stats.invalid_by_reason[message.reason] += 1
                continue
            chunk_rows.extend(block_rows)
            chunk.extend(messages)
            content.extend([m if isinstance(m, bytes) else m.payload_sha256.encode() for m in messages])
            if len(chunk) >= TASK_ROWS:
                submit()
                for row_content, verdicts in validation.ready():
                    batches.add(row_content, verdicts)
        submit()
        for row_content, verdicts in validation.drain():
            batches.add(row_content, verdicts)
    except SourceError:
        submit()  # the good rows before an unreadable part of the file are kept
        for row_content, verdicts in validation.drain():
            batches.add(row_content, verdicts)
        writes.submit(batches.current)
        writes.drain()
        raise
    finally:
        stats.rows += rows
        stats.published += published
    writes.submit(batches.current)


class _Batches:
    """Verdicts cut into write batches: a batch is handed to the writer as soon as it holds
    `batch_rows` events and letters, right after the row that fills it, as a row-by-row replay
    cuts it, so batches and their tokens do not depend on how rows were chunked for validation."""

    def __init__(self, writes: _BatchWriter, stats: ReplayStats, batch_rows: int):
        self._writes = writes
        self._stats = stats
        self._batch_rows = batch_rows
        self.current = _Batch()

    def add(self, content: list[bytes], verdicts: Verdicts) -> None:
        kinds = verdicts.kinds
        beyond = kinds.count(BEYOND)
        self._stats.valid += kinds.count(EVENT) + beyond
        self._stats.beyond_retention += beyond
        self._stats.invalid_by_reason.update(letter.reason for letter in verdicts.letters)
        start = first_event = first_letter = 0
        while start < len(kinds):
            batch = self.current
            end = _end_of_batch(kinds, start, self._batch_rows - batch.size)
            events = kinds.count(EVENT, start, end)
            letters = kinds.count(LETTER, start, end)
            batch.parts.append(verdicts.events[first_event : first_event + events])
            batch.letters.extend(verdicts.letters[first_letter : first_letter + letters])
            batch.content.extend(content[start:end])
            batch.size += events + letters
            first_event, first_letter, start = first_event + events, first_letter + letters, end
            if batch.size >= self._batch_rows:
                self._writes.submit(batch)
                self.current = _Batch()


def _end_of_batch(kinds: bytes, start: int, room: int) -> int:
    """The end of the rows from `start` that go into a batch with `room` rows left: just after
    the row that fills it, or the end of `kinds`."""
    if len(kinds) - start - kinds.count(BEYOND, start) < room:
        return len(kinds)
    filled = 0
    for i in range(start, len(kinds)):
        if kinds[i] != BEYOND:
            filled += 1
            if filled == room:
                return i + 1
    return len(kinds)


def replay_into(
    settings: Settings,
    paths: Iterable[Path],
    *,
    target: ReplayTarget,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    workers: int = 1,
    progress: Callable[[Path, int], None] | None = None,
) -> ReplayStats:
    """`replay_files` into the ClickHouse (migrated first) and/or the Kafka topic of `settings`.

    Opens the targets, replays, and closes them whatever happens; raw events older than
    `settings.clickhouse_events_ttl_days` are skipped (see the module docstring).
    """
    writer = publisher = client = None
    try:
        if target in ("clickhouse", "both"):
            client = connect(settings.resolved_clickhouse_dsn)
            migrate(client, settings.clickhouse_database)
            writer = ClickHouseWriter(client, database=settings.clickhouse_database)
        if target in ("kafka", "both"):
            ensure_topics(settings)
            publisher = KafkaPublisher(
                settings.kafka_bootstrap, settings.topic_events, auth=KafkaAuth.from_settings(settings)
            )
        return replay_files(
            paths,
            writer=writer,
            publisher=publisher,
            batch_rows=batch_rows,
            retention_days=settings.clickhouse_events_ttl_days,
            progress=progress,
            workers=workers,
        )
    finally:
        if publisher is not None:
            publisher.close()
        if client is not None:
            client.close()
