"""A bounded memory of recent event_ids, telling new events, redeliveries and duplicates apart.

Stage 2 must count each `event_id` once. It remembers, per id, the source coordinates of the
first copy (partition and offset on `psmon.events`, carried on every valid record):
- same id, same source: a Kafka redelivery after a crash or rebalance, absorbed silently;
- same id, other source: the portal sent the event again, counted as a duplicate.

Memory is bounded two ways: ids older than the retention (24 h of watermark time) are evicted,
and the oldest ids go first when `max_ids` is reached. Eviction is in insertion order, which a
plain dict keeps, so each step is O(1).
"""

from enum import Enum

__all__ = ["RecentIds", "Seen"]


class Seen(Enum):
    NEW = "new"
    REDELIVERY = "redelivery"
    DUPLICATE = "duplicate"


class RecentIds:
    def __init__(self, *, max_ids: int, retention_s: float = 86400.0):
        self._max_ids = max_ids
        self._retention_s = retention_s
        # event_id -> (source partition, source offset, watermark when first seen)
        self._ids: dict[str, tuple[int, int, float]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def check(self, event_id: str, src: tuple[int, int], now_s: float) -> Seen:
        """Classify `event_id` and remember it if new."""
        known = self._ids.get(event_id)
        if known is not None:
            return Seen.REDELIVERY if (known[0], known[1]) == src else Seen.DUPLICATE
        self._ids[event_id] = (src[0], src[1], now_s)
        self._evict(now_s)
        return Seen.NEW

    def _evict(self, now_s: float) -> None:
        ids = self._ids
        while len(ids) > self._max_ids:
            del ids[next(iter(ids))]
        horizon = now_s - self._retention_s
        while ids:
            oldest = next(iter(ids))
            if ids[oldest][2] >= horizon:
                break
            del ids[oldest]
