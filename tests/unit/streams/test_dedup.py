"""RecentIds: redelivery versus duplicate per source message, one bound per worker, retention,
and restores from a checkpoint's arrays, prepared on a thread or not."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from psmon.streams import dedup
from psmon.streams.dedup import RecentIds, Seen, StreamState


def test_redelivery_versus_duplicate() -> None:
    ids = RecentIds(max_ids=1000)
    assert ids.check(0, "e1", (0, 10), 0.0) is Seen.NEW
    assert ids.check(0, "e1", (0, 10), 1.0) is Seen.REDELIVERY
    assert ids.check(0, "e1", (3, 99), 2.0) is Seen.DUPLICATE


def test_a_redelivered_duplicate_is_not_a_second_duplicate() -> None:
    # A stage-1 crash re-sends both the original and the portal's repeat, each with its source.
    ids = RecentIds(max_ids=1000)
    assert ids.check(0, "e1", (0, 10), 0.0) is Seen.NEW
    assert ids.check(0, "e1", (1, 20), 1.0) is Seen.DUPLICATE
    assert ids.check(0, "e1", (0, 10), 2.0) is Seen.REDELIVERY
    assert ids.check(0, "e1", (1, 20), 3.0) is Seen.REDELIVERY
    assert ids.check(0, "e1", (2, 30), 4.0) is Seen.DUPLICATE  # a third message: one more duplicate


def test_sources_of_dead_letters_are_remembered_once() -> None:
    ids = RecentIds(max_ids=1000)
    assert ids.check_source("dl", (0, 5), 0.0)
    assert not ids.check_source("dl", (0, 5), 1.0)
    assert ids.check_source("dl", (1, 5), 1.0)
    # Streams are separate: the same coordinates on an event stream are an id-less key, not an id.
    assert ids.check(0, "e1", (0, 5), 0.0) is Seen.NEW


def test_one_bound_for_all_partitions_of_a_worker() -> None:
    ids = RecentIds(max_ids=1000)
    for partition in range(4):
        for i in range(500):
            ids.check(partition, f"e{partition}-{i}", (partition, i), 60.0 * partition)
    assert len(ids) <= 1000  # not 4 x 1000
    # The oldest (partition 0, first minute) went first; the newest partition is whole.
    assert ids.check(0, "e0-0", (0, 0), 240.0) is Seen.NEW
    assert ids.check(3, "e3-0", (3, 0), 240.0) is Seen.REDELIVERY


def test_dropping_a_partition_frees_its_share_of_the_bound() -> None:
    ids = RecentIds(max_ids=1000)
    for i in range(300):
        ids.check(1, f"a{i}", (0, i), 0.0)
        ids.check(2, f"b{i}", (0, i), 0.0)
    ids.drop(1)
    assert len(ids) == 300
    assert ids.check(1, "a0", (0, 0), 0.0) is Seen.NEW  # re-read from scratch after a revoke
    assert ids.check(2, "b0", (0, 0), 0.0) is Seen.REDELIVERY


def test_ids_older_than_the_retention_are_forgotten() -> None:
    ids = RecentIds(max_ids=1000, retention_s=100.0)
    for i in range(50):
        ids.check(0, f"e{i}", (0, i), 0.0)
    ids.check(0, "dup", (0, 100), 0.0)
    ids.check(0, "dup", (1, 100), 0.0)  # a duplicate's source is remembered and expires alike
    assert len(ids) == 52
    ids.check(0, "late", (0, 5000), 180.0)  # watermark moves 3 minutes: everything from t=0 expires
    assert len(ids) == 1
    assert ids.check(0, "e0", (0, 0), 180.0) is Seen.NEW


def _memory() -> RecentIds:
    """Stream 0 with ids over three minutes, a duplicate (a tagged source key) and a redelivery."""
    ids = RecentIds(max_ids=1000)
    for i in range(30):
        ids.check(0, f"e{i}", (0, i), 60.0 * (i // 10))
    ids.check(0, "e3", (1, 3), 150.0)  # a duplicate: its source is remembered too
    ids.check(0, "e4", (0, 4), 150.0)  # a redelivery: nothing new
    return ids


def _contents(ids: RecentIds, stream: int = 0) -> tuple[list[int], list[bool], list[int], list[list[int]]]:
    """What a checkpoint of `stream` stores, as plain lists."""
    state = ids.copy_stream(stream).arrays()
    return state.keys.tolist(), state.tagged.tolist(), state.values.tolist(), state.minutes.tolist()


def test_a_stream_prepared_on_a_thread_restores_what_a_restore_from_its_arrays_does() -> None:
    source = _memory()
    arrays = source.copy_stream(0).arrays()
    with ThreadPoolExecutor(max_workers=1) as pool:
        prepared = pool.submit(arrays.prepare).result()
    from_thread, from_arrays = RecentIds(max_ids=1000), RecentIds(max_ids=1000)
    from_thread.restore(0, prepared)
    from_arrays.restore(0, arrays)
    assert _contents(from_thread) == _contents(from_arrays) == _contents(source)
    assert len(from_thread) == len(from_arrays) == len(source) == 31
    messages = [("e3", (1, 3)), ("e3", (2, 3)), ("e4", (0, 4)), ("e29", (5, 5)), ("new", (0, 99))]
    for ids in (source, from_thread, from_arrays):
        seen = [ids.check(0, event_id, src, 200.0) for event_id, src in messages]
        assert seen == [Seen.REDELIVERY, Seen.DUPLICATE, Seen.REDELIVERY, Seen.DUPLICATE, Seen.NEW]


def test_each_restore_of_a_prepared_stream_gets_its_own_memory() -> None:
    prepared = _memory().copy_stream(0).arrays().prepare()
    first, second = RecentIds(max_ids=1000), RecentIds(max_ids=1000)
    first.restore(0, prepared)
    second.restore(0, prepared)
    assert first.check(0, "only-in-first", (0, 500), 200.0) is Seen.NEW
    assert second.check(0, "only-in-first", (0, 500), 200.0) is Seen.NEW  # not shared with `first`
    assert len(prepared) == 31


def test_an_inconsistent_state_is_refused_and_the_stream_kept() -> None:
    ids = _memory()
    state = ids.copy_stream(0).arrays()
    broken = StreamState(keys=state.keys, tagged=state.tagged, values=state.values, minutes=state.minutes[:1])
    with pytest.raises(ValueError, match="minute queue"):
        ids.restore(0, broken)
    assert len(ids) == 31
    assert ids.check(0, "e0", (0, 0), 200.0) is Seen.REDELIVERY


def _random_workload(ids: RecentIds, seed: int) -> list[object]:
    """Messages on three streams: new ones, portals' repeats, redeliveries of earlier messages,
    dead letters, minutes that move, drops and restores; returns every answer and the memory's
    size after each step, and every stream's checkpoint now and then."""
    rng = random.Random(seed)
    answers: list[object] = []
    sent: list[tuple[int, str, tuple[int, int]]] = []
    now_s = 0.0
    for step in range(6000):
        now_s += rng.choice((0.0,) * 8 + (1.0, 60.0))
        stream = rng.randrange(3)
        kind = rng.random()
        if kind < 0.55:
            message = (stream, f"e{rng.randrange(3000)}", (stream, step))
            sent.append(message)
            answers.append(ids.check(*message, now_s))
        elif kind < 0.75 and sent:
            answers.append(ids.check(*rng.choice(sent[-800:]), now_s))  # a redelivery, if still known
        elif kind < 0.99:
            answers.append(ids.check_source(("dl", stream), (stream, rng.randrange(1500)), now_s))
        elif kind < 0.993:
            ids.drop(stream)
        else:
            ids.restore(stream, ids.copy_stream(stream).arrays().prepare())
        answers.append(len(ids))
        if step % 500 == 0:
            answers.append([_contents(ids, s) for s in range(3)])
    return answers


@pytest.mark.parametrize("seed", range(4))
def test_the_arrays_answer_exactly_as_one_dict_would(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same messages against the memory as one dict (never merged) and with a merge every few
    # keys: every answer, size and checkpoint agrees, through evictions by the bound and by age.
    monkeypatch.setattr(dedup, "_MIN_HOT", 10**9)
    as_dict = _random_workload(RecentIds(max_ids=300, retention_s=1800.0), seed)
    monkeypatch.setattr(dedup, "_MIN_HOT", 4)
    merges = []
    freeze = dedup._Stream.freeze
    monkeypatch.setattr(dedup._Stream, "freeze", lambda st: merges.append(st.frozen.n) or freeze(st))
    assert _random_workload(RecentIds(max_ids=300, retention_s=1800.0), seed) == as_dict
    assert len(merges) > 100 and max(merges) > 50  # the arrays held a good part of the memory
    assert Seen.DUPLICATE in as_dict and Seen.REDELIVERY in as_dict and False in as_dict
    assert max(a for a in as_dict if type(a) is int) == 300  # evicted by the bound too


def test_a_state_with_a_key_twice_is_refused() -> None:
    state = _memory().copy_stream(0).arrays()
    keys = state.keys.copy()
    keys[1] = keys[0]
    broken = StreamState(keys=keys, tagged=state.tagged, values=state.values, minutes=state.minutes)
    with pytest.raises(ValueError, match="twice"):
        broken.prepare()
