from psmon.streams.dedup import RecentIds, Seen


def test_redelivery_versus_duplicate() -> None:
    ids = RecentIds(max_ids=1000)
    assert ids.check("e1", (0, 10), 0.0) is Seen.NEW
    assert ids.check("e1", (0, 10), 1.0) is Seen.REDELIVERY
    assert ids.check("e1", (3, 99), 2.0) is Seen.DUPLICATE


def test_bounded_by_count_and_age() -> None:
    ids = RecentIds(max_ids=1000, retention_s=100.0)
    for i in range(1500):
        ids.check(f"e{i}", (0, i), 0.0)
    assert len(ids) == 1000
    assert ids.check("e0", (0, 0), 0.0) is Seen.NEW  # evicted, so new again
    ids.check("late", (0, 5000), 150.0)  # watermark moves 150 s: everything from t=0 expires
    assert len(ids) == 1
