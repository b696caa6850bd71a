"""`psmon replay` validates on worker processes once a file is long enough; what it stores, the
batches it writes and their INSERT tokens must be exactly those of validating in the replaying
process. Real chDB, real worker processes (`forkserver`)."""

import hashlib
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from psmon.history.replay import replay_files
from psmon.history.replay_validation import LETTER, POOL_AFTER_ROWS, TASK_ROWS, RowValidation, validate_rows
from psmon.history.sources import SourceError, read_messages
from psmon.schemas.dead_letter import DeadLetter
from psmon.schemas.digest import set_key
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.validation import Invalid, validate_event
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter, EventTable
from tests.helpers import parquet_unreadable_after
from tests.integration.corpus import build_corpus

#: A row the reader rejects itself (too long to hold): a dead letter that never reaches validation.
TOO_LONG = b'{"event_id": "' + b"x" * (1 << 20) + b'"}'
#: A row validation rejects before parsing it.
NOT_UTF8 = b'{"event_id": "\xff\xfe"}'
#: Columns that differ between two replays by design: the replay's start time, the time of the INSERT.
STAMPED = ("src_ts", "dedup_version", "received_at", "ingested_at")


class _RecordingWriter(ClickHouseWriter):
    """The sink's writer, noting every INSERT token it is given, in order."""

    def __init__(self, client: Client, *, database: str):
        super().__init__(client, database=database)
        self.tokens: list[str] = []

    def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
        self.tokens.append(f"events {token} {len(records)}")
        return super().write_events(records, token=token)

    def write_dead_letters(self, letters: Sequence[DeadLetter], *, token: str) -> int:
        self.tokens.append(f"letters {token} {len(letters)}")
        return super().write_dead_letters(letters, token=token)


def _rows(client: Client, db: str, table: str) -> list[tuple[object, ...]]:
    columns = [
        name
        for (name,) in client.query(
            f"SELECT name FROM system.columns WHERE database = '{db}' AND table = '{table}' ORDER BY position"
        ).result_rows
        if name not in STAMPED
    ]
    return list(client.query(f"SELECT {', '.join(columns)} FROM {db}.{table} ORDER BY ALL").result_rows)


def _row_by_row_tokens(path: Path, batch_rows: int, retention_days: int) -> list[str]:
    """The INSERT tokens of a replay that validates and cuts batches one row at a time: a batch
    closes right after the event or letter that fills it; rows beyond retention are in the
    batch's content but not in its count."""
    horizon_s = time.time() - retention_days * 86400
    tokens, content, size = [], [], 0
    for _row, message in read_messages(path):
        verdict = validate_event(message) if isinstance(message, bytes) else message
        content.append(message if isinstance(message, bytes) else message.payload_sha256.encode())
        size += isinstance(verdict, Invalid) or verdict.occurred_at_s >= horizon_s
        if size == batch_rows:
            tokens.append("replay/" + hashlib.blake2b(b"\n".join([*content, b""]), digest_size=16).hexdigest())
            content, size = [], 0
    if content:
        tokens.append("replay/" + hashlib.blake2b(b"\n".join([*content, b""]), digest_size=16).hexdigest())
    return tokens


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rows enough for two chunks on the workers, with repeats, dead letters of every reason,
    events beyond a year's retention, and rows the reader itself rejects."""
    corpus = build_corpus(POOL_AFTER_ROWS + 2 * TASK_ROWS, seed=23, now_s=time.time(), late_fraction=0.05)
    lines = [value for _key, value in corpus.messages]
    for i in range(0, len(lines), 9_000):
        lines[i:i] = [TOO_LONG, NOT_UTF8]
    path = tmp_path_factory.mktemp("workers") / "long.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_replay_on_worker_processes_stores_and_batches_exactly_as_one_process(
    module_client: Client, long_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []  # worker processes each replay started
    real_start = RowValidation.start

    def start(self: RowValidation[object]) -> None:
        real_start(self)
        started.append(self.processes)

    monkeypatch.setattr(RowValidation, "start", start)
    runs = []
    for workers in (1, 2):
        db = f"w{workers}_{time.time_ns()}"
        migrate(module_client, db)
        writer = _RecordingWriter(module_client, database=db)
        stats = replay_files([long_file], writer=writer, batch_rows=4_999, retention_days=365, workers=workers)
        summary = {k: v for k, v in stats.summary().items() if k not in ("elapsed_s", "rate_eps")}
        runs.append(
            (summary, writer.tokens, _rows(module_client, db, "events"), _rows(module_client, db, "dead_letters"))
        )

    (one, one_tokens, one_events, one_letters), (two, two_tokens, two_events, two_letters) = runs
    assert list(dict.fromkeys(t.split()[1] for t in one_tokens)) == _row_by_row_tokens(long_file, 4_999, 365)
    assert started == [2]  # the second run's workers, started before its first row (a long file)
    assert one["rows"] > POOL_AFTER_ROWS + TASK_ROWS
    reasons = one["invalid_by_reason"]
    assert isinstance(reasons, dict) and reasons["too_large"] >= 5 and reasons["malformed_json"] >= 5
    assert one["beyond_retention"] > 0
    assert len(one_tokens) > 10  # several batches, each cut at its own place
    assert two == one
    assert two_tokens == one_tokens
    assert len(two_events) == one["inserted"] and two_events == one_events
    assert two_letters == one_letters


def test_worker_processes_give_the_verdicts_of_this_process_under_its_digest_key() -> None:
    corpus = build_corpus(3 * TASK_ROWS, seed=5, now_s=time.time(), bad_fraction=0.05)
    messages: list[bytes | Invalid] = [value for _key, value in corpus.messages]
    chunks = [messages[i : i + TASK_ROWS] for i in range(0, len(messages), TASK_ROWS)]
    set_key(b"an installation's own key")  # dead letter ids depend on it: the workers must use it
    try:
        here = [
            validate_rows(range(len(c)), c, src_partition=7, src_ts_ms=1_780_000_000_000, horizon_s=None)
            for c in chunks
        ]
        with RowValidation[int](workers=2) as validation:
            # The first POOL_AFTER_ROWS rows are validated here; the last copy of the chunks away.
            for i, chunk in enumerate(chunks * 3):
                validation.submit(
                    i, range(len(chunk)), chunk, src_partition=7, src_ts_ms=1_780_000_000_000, horizon_s=None
                )
            away = [verdicts for i, verdicts in validation.drain() if i >= 2 * len(chunks)]
            assert validation.processes == 2
    finally:
        set_key(b"")
    assert sum(v.kinds.count(LETTER) for v in here) > 100  # dead letters: their ids carry the key
    for mine, theirs in zip(here, away, strict=True):
        assert (theirs.kinds, theirs.letters) == (mine.kinds, mine.letters)
        assert isinstance(theirs.events, EventTable) and isinstance(mine.events, EventTable)
        assert theirs.events.table.equals(mine.events.table)
        assert isinstance(theirs.events.table, pa.Table)


def test_a_failed_write_stops_the_replay_and_its_workers(module_client: Client, long_file: Path) -> None:
    """A write that fails mid-replay (here the second batch's) is raised to the caller, and no
    worker process outlives the replay."""
    db = f"fail_{time.time_ns()}"
    migrate(module_client, db)

    class FailingWriter(_RecordingWriter):
        def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
            if len(self.tokens) >= 2:
                raise RuntimeError("the store went away")
            return super().write_events(records, token=token)

    writer = FailingWriter(module_client, database=db)
    with pytest.raises(RuntimeError, match="the store went away"):
        replay_files([long_file], writer=writer, batch_rows=4_999, workers=2)
    assert multiprocessing.active_children() == []
    stored = module_client.query(f"SELECT count() FROM {db}.events").result_rows[0][0]
    assert 0 < stored <= 4_999  # the first batch, and nothing after the failure


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_before_an_unreadable_part_of_a_file_are_stored(
    module_client: Client, tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that turns unreadable after 50,000 rows: the reader's error reaches the caller, and
    every row before it is stored, also when chunks of them were still on worker processes
    (with 2 workers the pool starts after `POOL_AFTER_ROWS` rows); no worker outlives the replay."""
    path = parquet_unreadable_after(tmp_path / "cut.parquet", readable_rows=50_000)
    db = f"cut{workers}_{time.time_ns()}"
    migrate(module_client, db)
    started: list[int] = []
    real_start = RowValidation.start

    def start(self: RowValidation[object]) -> None:
        real_start(self)
        started.append(self.processes)

    monkeypatch.setattr(RowValidation, "start", start)
    with pytest.raises(SourceError, match="after row 50000"):
        replay_files([path], writer=ClickHouseWriter(module_client, database=db), batch_rows=4_999, workers=workers)
    assert started == ([2] if workers == 2 else [])
    assert multiprocessing.active_children() == []
    stored = module_client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.events").result_rows
    assert stored == [(50_000, 50_000)]
