"""Validation of replay rows in chunks, on worker processes when asked (`psmon replay --workers`).

A replay is a loop on one thread: read a row, validate it, build its row of the insert. The
INSERT runs in ClickHouse without the GIL on a thread of its own (`replay._BatchWriter`), but
reading and validating are Python: on one core, however many the machine has. Processes can
share that work. What crosses between them decides whether it pays: the replaying process sends
the raw rows (pickling 200,000 lines: 0.13 s) and gets back, per chunk, one byte per row (its
kind), the dead letters (about 1% of rows) and the events to store as an Arrow table
(`writer.EventTable`: 0.14 s to unpickle for 200,000 rows), never the validated structs:
unpickling 200,000 `ValidRecord`s took 2.4 s, more than validating them.

Whether it pays depends on free cores, and the machine psmon is measured on has two. There the
replaying process (reading, the writer's Python) and ClickHouse's INSERTs already use about 1.3
cores (6.0-6.8 CPU-seconds in a 4.7-5.4 s replay of 200,000 rows), so two workers only moved
work around: 0.80-0.85x of one process over 200,000 rows, 0.93-1.12x over 500,000
(docs/performance.md, "Validation on worker processes"). So the default is one process; the chunked path is the same
either way (`validate_rows`), and what it buys in one process is measured there too: the events
go straight from validated structs into their table (`writer.events_table`), without a record
per event, and the writer checks and inserts the table from its columns.

Chunks are `TASK_ROWS` rows or a little more (a block of the reader is not split), handed out
in order and taken back in the same order, so what a replay stores, the batches it writes and
their tokens are exactly those of validating in turn
(`tests/integration/history/test_replay_workers.py`); about two chunks per worker are in
flight (one more just after a submit), which bounds memory. A short input never starts a
process (about a second each): rows are validated where they are read until `POOL_AFTER_ROWS`
have been, unless the input is known to be long (`POOL_AFTER_BYTES`), when the workers start
before the first row is read. Workers are started with `forkserver`, not `fork`: the replaying
process runs chDB's and the writer's threads, and a fork copies their locks in whatever state
they are; the fork server imports this module once, so each worker starts with it loaded (the
fork server then lives as long as the replaying process). Each worker digests rejected
payloads under the replaying process's key (`digest.current_key`), so a dead letter's id is the
same whichever process validated it, and ignores SIGINT: Ctrl-C stops the replay in the
replaying process, which then stops the workers.
"""

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from psmon.schemas import digest
from psmon.schemas.dead_letter import DeadLetter, dead_letter_of
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import STREAM_BATCH, Invalid, ValidEvent, validate_events
from psmon.sinks.clickhouse.writer import EventTable

__all__ = [
    "BEYOND",
    "EVENT",
    "LETTER",
    "POOL_AFTER_BYTES",
    "POOL_AFTER_ROWS",
    "TASK_ROWS",
    "RowValidation",
    "Verdicts",
    "validate_rows",
]

#: Rows per chunk sent to a worker: large enough that a chunk's round trip is a small part of it.
TASK_ROWS: Final = 8192
#: Rows read before worker processes start: a smaller input is validated where it is read.
POOL_AFTER_ROWS: Final = 4 * TASK_ROWS
#: Input bytes from which a replay starts its workers before reading (about `POOL_AFTER_ROWS`
#: contract events of 250 bytes): they start while the first rows are read.
POOL_AFTER_BYTES: Final = 250 * POOL_AFTER_ROWS

#: Kinds of row, one byte each in `Verdicts.kinds`.
EVENT: Final = 0  # a valid event, to be stored
LETTER: Final = 1  # a dead letter (rejected by validation or by the reader)
BEYOND: Final = 2  # a valid event older than the raw events' retention: skipped

C = TypeVar("C")


@dataclass(slots=True)
class Verdicts:
    """What validation made of consecutive rows of one file: `kinds[i]` is row i's kind; the
    rows of kind `EVENT` are `events`, the rows of kind `LETTER` are `letters`, both in row
    order. `events` is an `EventTable`, or the records themselves when their table could not be
    built (a value that does not fit its column: the writer isolates it)."""

    kinds: bytes
    events: Sequence[ValidRecord]
    letters: list[DeadLetter]


def validate_rows(
    rows: Sequence[int],
    messages: Sequence[bytes | Invalid],
    *,
    src_partition: int,
    src_ts_ms: int,
    horizon_s: float | None,
) -> Verdicts:
    """The verdicts of `messages` (a reader's rows, numbered `rows`): raw messages through
    `validate_events` `STREAM_BATCH` at a time (as stage 1 validates a poll), the reader's own
    rejections as they are."""
    raw = [m for m in messages if isinstance(m, bytes)]
    checked: list[ValidEvent | Invalid] = []
    for start in range(0, len(raw), STREAM_BATCH):
        checked.extend(validate_events(raw[start : start + STREAM_BATCH]))
    if len(raw) < len(messages):  # the reader's own rejections, in their places
        verdicts = iter(checked)
        checked = [next(verdicts) if isinstance(m, bytes) else m for m in messages]
    kinds = bytearray(len(messages))  # EVENT = 0 unless set
    events: list[ValidEvent] = []
    offsets: list[int] = []
    letters: list[DeadLetter] = []
    for i, verdict in enumerate(checked):
        if isinstance(verdict, ValidEvent):
            if horizon_s is not None and verdict.occurred_at_s < horizon_s:
                kinds[i] = BEYOND
            else:
                events.append(verdict)
                offsets.append(rows[i])
        else:
            kinds[i] = LETTER
            letter = dead_letter_of(verdict, src_partition=src_partition, src_offset=rows[i], src_ts_ms=src_ts_ms)
            letters.append(letter)
    return Verdicts(bytes(kinds), _stored(events, offsets, src_partition, src_ts_ms), letters)


def _stored(events: list[ValidEvent], offsets: list[int], src_partition: int, src_ts_ms: int) -> Sequence[ValidRecord]:
    """The events to store, stamped with the chunk's source (`EventTable.of_events`)."""
    return EventTable.of_events(
        events, src_partitions=[src_partition] * len(events), src_offsets=offsets, src_ts_ms=[src_ts_ms] * len(events)
    )


class RowValidation(Generic[C]):
    """Chunks of rows validated in order: in this process, then, once `POOL_AFTER_ROWS` rows
    have been submitted, on `workers` processes (none when `workers` < 2). Each chunk carries a
    context of the caller's (`C`), handed back with its verdicts."""

    def __init__(self, workers: int):
        self._workers = workers
        self._submitted_rows = 0
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[C, Future[Verdicts] | Verdicts]] = deque()

    def submit(
        self,
        context: C,
        rows: Sequence[int],
        messages: Sequence[bytes | Invalid],
        *,
        src_partition: int,
        src_ts_ms: int,
        horizon_s: float | None,
    ) -> None:
        pool = self._pool_for_next()
        if pool is None:
            verdicts = validate_rows(
                rows, messages, src_partition=src_partition, src_ts_ms=src_ts_ms, horizon_s=horizon_s
            )
            self._pending.append((context, verdicts))
        else:
            future = pool.submit(
                validate_rows, rows, messages, src_partition=src_partition, src_ts_ms=src_ts_ms, horizon_s=horizon_s
            )
            self._pending.append((context, future))
        self._submitted_rows += len(rows)

    @property
    def processes(self) -> int:
        """Worker processes started (0 until `POOL_AFTER_ROWS` rows have been submitted)."""
        return 0 if self._pool is None else self._workers

    def ready(self) -> Iterator[tuple[C, Verdicts]]:
        """Verdicts of the oldest chunks, in order, while more than two chunks per worker are in
        flight (waiting for them): what keeps the workers busy and the memory bounded."""
        while len(self._pending) > 2 * max(self._workers, 1) or (
            self._pending and not isinstance(self._pending[0][1], Future)
        ):
            yield self._take()

    def drain(self) -> Iterator[tuple[C, Verdicts]]:
        """Verdicts of every chunk submitted, in order."""
        while self._pending:
            yield self._take()

    def close(self) -> None:
        """Stop the workers; chunks not taken are dropped."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _take(self) -> tuple[C, Verdicts]:
        context, verdicts = self._pending.popleft()
        return context, verdicts.result() if isinstance(verdicts, Future) else verdicts

    def _pool_for_next(self) -> ProcessPoolExecutor | None:
        if self._pool is None and self._workers > 1 and self._submitted_rows >= POOL_AFTER_ROWS:
            self.start()
        return self._pool

    def start(self) -> None:
        """Start the worker processes now (when the input is known to be long), not after
        `POOL_AFTER_ROWS` rows; they import the validation while this process reads."""
        if self._pool is not None or self._workers < 2:
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = ProcessPoolExecutor(
            self._workers, mp_context=context, initializer=_start_worker, initargs=(digest.current_key(),)
        )
        for _ in range(self._workers):  # processes start as work arrives: start them all now
            self._pool.submit(int)

    def __enter__(self) -> "RowValidation[C]":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _start_worker(key: bytes) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    digest.set_key(key)
