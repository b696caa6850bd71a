"""RecentIds: redelivery versus duplicate per source message, one bound per worker, retention."""

from psmon.streams.dedup import RecentIds, Seen


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
