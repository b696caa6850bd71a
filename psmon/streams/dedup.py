"""A bounded memory of recent messages, telling new events, redeliveries and duplicates apart.

Stage 2 must count each `event_id` once, and each repeated *message* once. Every message on
`psmon.valid` and `psmon.dead-letter` carries its source coordinates (partition and offset on
`psmon.events`); a Kafka redelivery (stage 1 re-validating after a crash) repeats a message with
the same source, a portal re-sending an event is a new message with another source. So:
- same id, source already seen for it: a redelivery, absorbed silently; this covers the first
  copy and every later copy (a redelivered *duplicate* is still one duplicate);
- same id, a source not seen yet: the portal sent the event again, a duplicate;
- for dead letters (no trusted id), only the source matters: seen already or not.

Storage, per *stream* (a partition of `psmon.valid` or of `psmon.dead-letter`, so a revoked
partition's memory is dropped in O(1)), is one plain dict of ints in insertion order:
- `id_key(event_id) -> packed source of its first copy`, for every remembered id;
- `_SOURCE_TAG | packed source -> 0`, for the later copies (duplicates) and for dead letters.
`id_key` is a 64-bit BLAKE2b digest of the id. It used to be `hash()` (SipHash under a
per-process random key, ~0.05 µs, cached on the string), but the memory now outlives the process:
a partition's stream is checkpointed with its offset (`checkpoint.py`) and restored by whichever
worker owns the partition next, so the key of an id must be the same in every process.
`blake2b(digest_size=8)` is in the standard library, ~0.7 µs per id on this machine (2% of
stage 2's ~34 µs per record). It is unkeyed, so a sender could craft two ids of its own that
collide (~2**32 tries) and lose the second of its own events; hitting somebody else's id is a
second preimage, ~2**64 tries. Tagged source keys are ≥ 2**64, out of the digest's range, so the
two kinds never collide; a checkpoint stores their low 64 bits and a tag flag.

Collisions: two ids colliding make the later one a "duplicate" (not counted). With `n` ids
remembered, a new id collides with probability n / 2**64: 5.4e-14 at the default bound of
1,000,000 ids per worker, i.e. about one miscounted event in 18 trillion; the chance of any
collision at all among the 1,000,000 is n² / 2**65 ≈ 2.7e-8. Negligible next to everything else.

Memory, measured with `tracemalloc` over 1,000,000 uuid-like ids: 109 bytes per remembered id (a
dict slot and two int objects), against 236 when the memory kept the id string and a 3-tuple; and
the bound `max_ids` is **one per worker** across all its partitions, not one per partition (so a
worker holding 12 partitions needs ~110 MB at the default bound, not ~2.8 GB).

Eviction, oldest first, in whole minutes of watermark time: each stream keeps a small queue of
`[minute, keys inserted in it]`. A stream forgets the minutes older than the retention (24 h) on
insert; when the worker's total exceeds `max_ids`, the oldest minute across streams goes first,
in slices of 1/256 of the bound so the scan over streams is paid once per many inserts. Keys are
removed from the front of a dict (its insertion order), never from the middle.
"""

import hashlib
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["PreparedStream", "RecentIds", "Seen", "StreamCopy", "StreamState", "id_key"]

#: Set on source keys: above the range of id_key(), so an id's key never equals a source key.
_SOURCE_TAG: Final = 1 << 64
#: Room for offsets below 2**44 (17 trillion messages per partition) and partitions above it.
_OFFSET_BITS: Final = 44


class Seen(Enum):
    NEW = "new"
    REDELIVERY = "redelivery"
    DUPLICATE = "duplicate"


_LOW_64: Final = (1 << 64) - 1
_blake2b = hashlib.blake2b


def id_key(event_id: str) -> int:
    """The 64-bit key of an event_id, the same in every process (see the module docstring)."""
    return int.from_bytes(_blake2b(event_id.encode(), digest_size=8).digest(), "little")


def _pack(src: tuple[int, int]) -> int:
    return (src[0] << _OFFSET_BITS) | src[1]


@dataclass(frozen=True, slots=True)
class StreamState:
    """A copy of one stream, as arrays: what a checkpoint stores and a restore rebuilds.

    `keys` holds the low 64 bits of every key in insertion order, `tagged` whether it is a
    source key (`_SOURCE_TAG` set), `values` the packed source of an id's first copy (0 for
    source keys), `minutes` the `[minute, keys inserted in it]` queue, oldest first.
    """

    keys: npt.NDArray[np.uint64]
    tagged: npt.NDArray[np.bool_]
    values: npt.NDArray[np.uint64]
    minutes: npt.NDArray[np.int64]

    def arrays(self) -> "StreamState":
        return self

    def prepare(self) -> "PreparedStream":
        """The stream's dict and minute queue rebuilt from the arrays: the costly part of a
        restore (~1 µs per key on the loaded 2-core machine: 2.8 s for 1 M keys), so it runs
        on a thread, off the event loop (see `PreparedStream`).

        Only this state's arrays and new objects are touched, so any thread may call it.
        Raises ValueError when the minute queue does not count the keys (a damaged file)."""
        keys: list[int] = self.keys.tolist()
        for i in np.flatnonzero(self.tagged).tolist():
            keys[i] |= _SOURCE_TAG
        ids = dict(zip(keys, self.values.tolist(), strict=True))
        minutes = [[int(m), int(n)] for m, n in self.minutes.tolist()]
        if sum(n for _, n in minutes) != len(ids):
            raise ValueError("inconsistent stream state: minute queue does not count its keys")
        return PreparedStream(ids, minutes)


@dataclass(frozen=True, slots=True)
class PreparedStream:
    """A checkpointed stream as the dict and queue `RecentIds` keeps, built off the event loop.

    Why: building the dict of 1 M keys from a checkpoint's arrays holds the GIL for ~1-3 s (one
    Python int and one dict slot per key; there is no bulk constructor). A successor does it on
    a thread while its consumer-group join is in flight (`rates_service.py`), so on the loop a
    restore is a copy of a ready dict (`dict(d)` of a compact dict clones its table: ~5 ms per
    125,000 keys). The copy keeps `RecentIds` the only owner of its dicts, whatever the caller
    does with this object afterwards.
    """

    keys: dict[int, int]
    minutes: list[list[int]]

    def arrays(self) -> StreamState:
        return StreamCopy(list(self.keys), list(self.keys.values()), [list(m) for m in self.minutes]).arrays()


@dataclass(frozen=True, slots=True)
class StreamCopy:
    """Plain copies of a stream's dict and queue: cheap to take on the event loop (list copies in
    C, so a checkpoint is a consistent cut); `arrays()` (a Python loop) may then run in a thread."""

    keys: list[int]
    values: list[int]
    minutes: list[list[int]]

    def arrays(self) -> StreamState:
        keys = self.keys
        return StreamState(
            keys=np.fromiter((k & _LOW_64 for k in keys), dtype=np.uint64, count=len(keys)),
            tagged=np.fromiter((k > _LOW_64 for k in keys), dtype=np.bool_, count=len(keys)),
            values=np.array(self.values, dtype=np.uint64),
            minutes=np.array(self.minutes, dtype=np.int64).reshape(-1, 2),
        )


class _Stream:
    """The remembered keys of one partition, oldest first, and how many arrived per minute."""

    __slots__ = ("keys", "minutes")

    def __init__(self) -> None:
        self.keys: dict[int, int] = {}
        self.minutes: deque[list[int]] = deque()  # [minute, number of keys inserted in it]

    def forget_oldest(self, n: int) -> int:
        """Remove up to `n` keys of the oldest minute; returns how many went."""
        bucket = self.minutes[0]
        n = min(n, bucket[1])
        keys = self.keys
        for key in list(itertools.islice(keys, n)):
            del keys[key]
        bucket[1] -= n
        if bucket[1] == 0:
            self.minutes.popleft()
        return n


class RecentIds:
    """Recent ids and sources of every stream of one worker, `max_ids` keys in all."""

    def __init__(self, *, max_ids: int, retention_s: float = 86400.0):
        self._max_ids = max_ids
        self._slack = max(1, max_ids // 256)
        self._retention_min = retention_s / 60.0
        self._streams: dict[Hashable, _Stream] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def check(self, stream: Hashable, event_id: str, src: tuple[int, int], now_s: float) -> Seen:
        """Classify a message of `event_id` from source `src` met on `stream`; remember it."""
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _Stream()
        packed = _pack(src)
        h = id_key(event_id)
        first = st.keys.get(h)
        if first is None:
            self._remember(st, h, packed, now_s)
            return Seen.NEW
        if first == packed:
            return Seen.REDELIVERY
        key = _SOURCE_TAG | packed
        if key in st.keys:
            return Seen.REDELIVERY  # a redelivered copy of a duplicate
        self._remember(st, key, 0, now_s)
        return Seen.DUPLICATE

    def check_source(self, stream: Hashable, src: tuple[int, int], now_s: float) -> bool:
        """Whether the message from source `src` is new on `stream` (False: a redelivery)."""
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _Stream()
        key = _SOURCE_TAG | _pack(src)
        if key in st.keys:
            return False
        self._remember(st, key, 0, now_s)
        return True

    def drop(self, stream: Hashable) -> None:
        """Forget everything remembered for `stream` (its partition was revoked or is re-read)."""
        st = self._streams.pop(stream, None)
        if st is not None:
            self._size -= len(st.keys)

    def copy_stream(self, stream: Hashable) -> StreamCopy:
        """A copy of `stream`'s keys, values and minute queue, for a checkpoint."""
        st = self._streams.get(stream)
        if st is None:
            return StreamCopy([], [], [])
        return StreamCopy(list(st.keys), list(st.keys.values()), [list(m) for m in st.minutes])

    def restore(self, stream: Hashable, state: "PreparedStream | StreamState | StreamCopy") -> None:
        """Replace `stream` by a checkpointed copy; the worker's bound applies at once.

        A `PreparedStream` (built on a thread) costs a dict copy here; arrays are prepared here,
        on the caller's thread. Raises ValueError (nothing changed) for an inconsistent state."""
        prepared = state if isinstance(state, PreparedStream) else state.arrays().prepare()
        if sum(n for _, n in prepared.minutes) != len(prepared.keys):
            raise ValueError("inconsistent stream state: minute queue does not count its keys")
        self.drop(stream)
        st = self._streams[stream] = _Stream()
        st.keys = dict(prepared.keys)
        st.minutes = deque([m, n] for m, n in prepared.minutes)
        self._size += len(st.keys)
        if self._size > self._max_ids:
            self._shrink()

    def _remember(self, st: _Stream, key: int, value: int, now_s: float) -> None:
        st.keys[key] = value
        self._size += 1
        minute = int(now_s // 60)
        minutes = st.minutes
        if minutes and minutes[-1][0] >= minute:
            minutes[-1][1] += 1  # time never runs back inside a stream: keeps the queue ordered
        else:
            minutes.append([minute, 1])
        horizon = minute - self._retention_min
        while minutes[0][0] < horizon:
            self._size -= st.forget_oldest(minutes[0][1])
        if self._size > self._max_ids:
            self._shrink()

    def _shrink(self) -> None:
        """Forget the oldest keys across streams until `slack` below the bound."""
        target = self._max_ids - self._slack
        while self._size > target:
            oldest = min((s for s in self._streams.values() if s.minutes), key=lambda s: s.minutes[0][0])
            self._size -= oldest.forget_oldest(self._size - target)
