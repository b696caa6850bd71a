"""Checkpoints of a partition's live state: a restored worker behaves as the one that wrote it.

Round trips go through a real file (`CheckpointStore`), and one through another process, since
a checkpoint is restored by whichever worker owns the partition next.
"""

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from psmon.metrics import PipelineMetrics
from psmon.schemas.metrics import WINDOWS
from psmon.streams.checkpoint import FORMAT_VERSION, Checkpoint, CheckpointStore, LetterState, ValidState
from psmon.streams.dedup import PreparedStream, RecentIds, Seen
from psmon.streams.live import LiveRates
from psmon.streams.windows import RollingRates
from tests.unit.streams.test_live import SUBMITTED_25, invalid, letter, record

VALID, LETTERS = "psmon.valid", "psmon.dead-letter"
LAST = (1_700_000_000_000, "00ff00ff00ff00ff")


def make() -> tuple[LiveRates, CollectorRegistry]:
    reg = CollectorRegistry()
    return LiveRates(metrics=PipelineMetrics(reg), dedup_max_ids=1000, worker="w", rates=RollingRates()), reg


def feed(live: LiveRates) -> None:
    """Partition 3 holds provinces 25 and 01, a duplicate and a redelivery; 4 holds province 79."""
    live.observe(record("a", src=(0, 1)), partition=3)
    live.observe(record("a", src=(0, 1)), partition=3)  # redelivery
    live.observe(record("a", src=(1, 7)), partition=3)  # duplicate
    live.observe(record("b", channel="counter", src=(0, 2)), partition=3)
    live.observe(record("c", province="01", src=(0, 3)), partition=3)
    live.observe(record("d", province="79", src=(0, 4)), partition=4)


def samples(reg: CollectorRegistry, names: tuple[str, ...]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in reg.collect():
        for s in metric.samples:
            if s.name in names:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


OWNED = ("psmon_dossiers_submitted_total", "psmon_events_duplicate_total")


def round_trip(
    tmp_path: Path, live: LiveRates, partition: int = 3, app_id: str = "psmon", *, prepare: bool = False
) -> Checkpoint | None:
    store = CheckpointStore(tmp_path, app_id=app_id)
    store.write(
        VALID, partition, 8, Checkpoint(next_offset=42, state=live.partition_state(partition), last_record=LAST)
    )
    return CheckpointStore(tmp_path, app_id="psmon").read(VALID, partition, 8, prepare=prepare)


def test_a_restored_partition_exports_what_its_writer_did(tmp_path: Path) -> None:
    writer, writer_reg = make()
    feed(writer)
    found = round_trip(tmp_path, writer)
    assert found is not None and found.next_offset == 42 and isinstance(found.state, ValidState)
    assert found.last_record == LAST

    reader, reg = make()
    reader.catch_up({3})
    assert reader.restore_partition(3, found.state) == ["01", "25"]
    assert samples(reg, OWNED) == {}  # still catching up: nothing exported
    assert reader.caught_up(3) == ["01", "25"]
    # Only partition 3's series: province 79 lives on partition 4, not in this checkpoint.
    expected = {k: v for k, v in samples(writer_reg, OWNED).items() if ("province", "79") not in k[1]}
    assert samples(reg, OWNED) == expected
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) == 1
    for province in ("25", "01"):
        for window in WINDOWS:
            assert reader.rates.sums(province, window) == writer.rates.sums(province, window)
    assert reader.rates.provinces == ["01", "25"]


@pytest.mark.parametrize("prepare", [False, True], ids=["arrays", "prepared"])
def test_the_duplicate_memory_behaves_the_same_after_a_restore(tmp_path: Path, prepare: bool) -> None:
    writer, _ = make()
    feed(writer)
    found = round_trip(tmp_path, writer, prepare=prepare)
    assert found is not None and isinstance(found.state, ValidState)
    assert isinstance(found.state.recent, PreparedStream) is prepare
    reader, reg = make()
    reader.catch_up({3})
    reader.restore_partition(3, found.state)
    reader.caught_up(3)
    for live in (writer, reader):
        assert live.observe(record("a", src=(0, 1)), partition=3) is Seen.REDELIVERY
        assert live.observe(record("a", src=(1, 7)), partition=3) is Seen.REDELIVERY  # the duplicate's copy
        assert live.observe(record("a", src=(2, 9)), partition=3) is Seen.DUPLICATE
        assert live.observe(record("c", province="01", src=(0, 3)), partition=3) is Seen.REDELIVERY
        assert live.observe(record("e", src=(0, 5)), partition=3) is Seen.NEW
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) == 2
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) == 2


def test_a_checkpoint_written_by_another_process_keeps_its_ids(tmp_path: Path) -> None:
    # An id's key must not depend on the process (str hash() does: a per-process random key).
    script = textwrap.dedent(
        f"""
        from prometheus_client import CollectorRegistry
        from psmon.metrics import PipelineMetrics
        from psmon.streams.checkpoint import Checkpoint, CheckpointStore
        from psmon.streams.live import LiveRates
        from tests.unit.streams.test_live import record
        live = LiveRates(metrics=PipelineMetrics(CollectorRegistry()), dedup_max_ids=1000, worker="w")
        live.observe(record("event-1", src=(0, 1)), partition=3)
        CheckpointStore(__import__("pathlib").Path({str(tmp_path)!r}), app_id="psmon").write(
            "psmon.valid", 3, 8, Checkpoint(next_offset=1, state=live.partition_state(3), last_record=(1, "x")))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env={"PYTHONHASHSEED": "random"}, cwd=Path.cwd())
    found = CheckpointStore(tmp_path, app_id="psmon").read(VALID, 3, 8)
    assert found is not None and isinstance(found.state, ValidState)
    reader, _ = make()
    reader.catch_up({3})
    reader.restore_partition(3, found.state)
    assert reader.observe(record("event-1", src=(0, 1)), partition=3) is Seen.REDELIVERY
    assert reader.observe(record("event-1", src=(4, 4)), partition=3) is Seen.DUPLICATE


def test_dead_letter_counts_and_sources_survive_a_restore(tmp_path: Path) -> None:
    writer, _ = make()
    writer.observe_letter(letter("invalid_json", (0, 5)), partition=1)
    writer.observe_letter(letter("invalid_json", (2, 5)), partition=1)
    writer.observe_letter(letter("missing_field", (0, 6)), partition=1)
    store = CheckpointStore(tmp_path, app_id="psmon")
    store.write(LETTERS, 1, 8, Checkpoint(next_offset=3, state=writer.letter_state(1), last_record=LAST))
    found = store.read(LETTERS, 1, 8)
    assert found is not None and isinstance(found.state, LetterState)
    reader, reg = make()
    reader.catch_up_letters({1})
    reader.restore_letters(1, found.state)
    assert invalid(reg, "invalid_json") is None
    assert reader.letters_caught_up(1) == ["invalid_json", "missing_field"]
    assert invalid(reg, "invalid_json") == 2 and invalid(reg, "missing_field") == 1
    assert not reader.observe_letter(letter("invalid_json", (2, 5)), partition=1)  # a redelivery
    assert invalid(reg, "invalid_json") == 2


def test_restoring_into_a_live_partition_is_refused() -> None:
    writer, _ = make()
    feed(writer)
    reader, _ = make()
    with pytest.raises(ValueError, match="catching up"):
        reader.restore_partition(3, writer.partition_state(3))


@pytest.mark.parametrize(
    "spoil",
    ["garbage", "truncated", "other app", "other partition count", "other format"],
)
def test_an_unusable_file_is_ignored(tmp_path: Path, spoil: str, caplog: pytest.LogCaptureFixture) -> None:
    writer, _ = make()
    feed(writer)
    store = CheckpointStore(tmp_path, app_id="psmon")
    state = writer.partition_state(3)
    store.write(VALID, 3, 8, Checkpoint(next_offset=5, state=state, last_record=LAST))
    path = store.path(VALID, 3)
    if spoil == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif spoil == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif spoil == "other app":
        CheckpointStore(tmp_path, app_id="another").write(
            VALID, 3, 8, Checkpoint(next_offset=5, state=state, last_record=LAST)
        )
        CheckpointStore(tmp_path, app_id="another").path(VALID, 3).replace(path)
    elif spoil == "other partition count":
        store.write(VALID, 3, 12, Checkpoint(next_offset=5, state=state, last_record=LAST))
    else:
        with np.load(path) as npz:
            arrays = dict(npz)
        header = bytes(arrays["header"]).replace(f'"format":{FORMAT_VERSION}'.encode(), b'"format":0')
        arrays["header"] = np.frombuffer(header, dtype=np.uint8)
        with path.open("wb") as f:
            np.savez(f, **arrays)
    assert store.read(VALID, 3, 8) is None
    assert "ignoring" in caplog.text
    assert store.read(VALID, 5, 8) is None  # absent: no file, no complaint needed


def test_a_restored_stream_counts_toward_the_worker_bound() -> None:
    ids = RecentIds(max_ids=1000)
    for i in range(800):
        ids.check(0, f"e{i}", (0, i), 60.0 * (i // 100))
    copy = ids.copy_stream(0).arrays()
    other = RecentIds(max_ids=1000)
    for i in range(800):
        other.check(1, f"f{i}", (1, i), 60.0 * (i // 100))
    other.restore(0, copy)
    assert len(other) <= 1000  # the oldest minutes went, as if the keys had been inserted here
    # the newest ids of the restored stream are still remembered
    assert other.check(0, "e799", (0, 799), 500.0) is Seen.REDELIVERY


def test_a_checkpoint_read_ahead_is_used_while_its_file_is_unchanged(tmp_path: Path) -> None:
    writer, _ = make()
    feed(writer)
    store = CheckpointStore(tmp_path, app_id="psmon")
    store.write(VALID, 3, 8, Checkpoint(next_offset=42, state=writer.partition_state(3), last_record=LAST))
    with ThreadPoolExecutor(max_workers=1) as pool:  # as the worker does, while it joins its group
        ahead = pool.submit(store.prefetch, [(VALID, 3), (VALID, 5)]).result()
    assert set(ahead) == {(VALID, 3)}  # partition 5 has no file
    early = ahead[(VALID, 3)]
    assert isinstance(early.state, ValidState) and isinstance(early.state.recent, PreparedStream)
    assert store.read_many([(VALID, 3, 8), (VALID, 5, 8)], prepare=True, ahead=ahead) == [early, None]
    assert store.read_many([(VALID, 3, 8)], prepare=True, ahead=ahead)[0] is early

    reader, reg = make()
    reader.catch_up({3})
    reader.restore_partition(3, early.state)
    reader.caught_up(3)
    assert reader.observe(record("a", src=(1, 7)), partition=3) is Seen.REDELIVERY
    assert reader.observe(record("a", src=(2, 9)), partition=3) is Seen.DUPLICATE
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) == 2


def test_a_checkpoint_read_ahead_is_read_again_when_its_file_changed_or_does_not_fit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer, _ = make()
    feed(writer)
    store = CheckpointStore(tmp_path, app_id="psmon")
    store.write(VALID, 3, 8, Checkpoint(next_offset=42, state=writer.partition_state(3), last_record=LAST))
    ahead = store.prefetch([(VALID, 3)])
    assert store.read_many([(VALID, 3, 12)], ahead=ahead) == [None]  # another partition count: re-read, refused
    assert "ignoring" in caplog.text
    # The partition's previous owner checkpointed it again (e.g. when it was revoked): the newer file wins.
    writer.observe(record("e", src=(0, 5)), partition=3)
    store.write(VALID, 3, 8, Checkpoint(next_offset=43, state=writer.partition_state(3), last_record=LAST))
    (found,) = store.read_many([(VALID, 3, 8)], ahead=ahead)
    assert found is not None and found is not ahead[(VALID, 3)] and found.next_offset == 43
