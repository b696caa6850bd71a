"""A bounded memory of recent messages, telling new events, redeliveries and duplicates apart.

Stage 2 must count each `event_id` once, and each repeated *message* once. Every message on
`psmon.valid` and `psmon.dead-letter` carries its source coordinates (partition and offset on
`psmon.events`); a Kafka redelivery (stage 1 re-validating after a crash) repeats a message with
the same source, a portal re-sending an event is a new message with another source. So:
- same id, source already seen for it: a redelivery, absorbed silently; this covers the first
  copy and every later copy (a redelivered *duplicate* is still one duplicate);
- same id, a source not seen yet: the portal sent the event again, a duplicate;
- for dead letters (no trusted id), only the source matters: seen already or not.

What is remembered, per *stream* (a partition of `psmon.valid` or of `psmon.dead-letter`, so a
revoked partition's memory is dropped in O(1)), in insertion order:
- `id_key(event_id) -> packed source of its first copy`, for every remembered id;
- `_SOURCE_TAG | packed source`, for the later copies (duplicates) and for dead letters.
`id_key` is a 64-bit BLAKE2b digest of the id. It used to be `hash()` (SipHash under a
per-process random key, ~0.05 µs, cached on the string), but the memory now outlives the process:
a partition's stream is checkpointed with its offset (`checkpoint.py`) and restored by whichever
worker owns the partition next, so the key of an id must be the same in every process.
`blake2b(digest_size=8)` is in the standard library, ~0.7 µs per id on this machine (2% of
stage 2's ~34 µs per record). It is unkeyed, so a sender could craft two ids of its own that
collide (~2**32 tries) and lose the second of its own events; hitting somebody else's id is a
second preimage, ~2**64 tries. Tagged source keys are ≥ 2**64, out of the digest's range, so the
two kinds never collide; the arrays and a checkpoint store their low 64 bits apart from ids.

Collisions: two ids colliding make the later one a "duplicate" (not counted). With `n` ids
remembered, a new id collides with probability n / 2**64: 5.4e-14 at the default bound of
1,000,000 ids per worker, i.e. about one miscounted event in 18 trillion; the chance of any
collision at all among the 1,000,000 is n² / 2**65 ≈ 2.7e-8. Negligible next to everything else.

Storage, in two tiers, because the memory is most of a busy worker's RSS. The newest keys sit in
a plain dict (a dict slot and two int objects: ~140 bytes an id, measured with `tracemalloc`),
and whenever the dict holds more than a 16th of the stream (and at least `_MIN_HOT` keys) it
is merged into flat sorted arrays (`_Frozen`: `array('Q')` keys and first sources, `array('I')`
insertion positions; 20 bytes an id, 12 a source key). A lookup that misses the dict asks a bit
filter of the arrays' ids, and bisects them only when the filter cannot rule the id out. Measured
over 1 M ids in 8 streams: a new id 1.9-2.1 µs against 1.3 as one dict (BLAKE2b included; stage 2
spends ~10 µs a record), a repeated one 2.0 µs against 0.9-1.1. A merge
sorts only the dict's keys and inserts them into the arrays with numpy, O(stream); one merge per
16th of the stream keeps it ~20 element copies per insert. So an id costs ~25-35 bytes, the
bound `max_ids` is **one per worker** across all its partitions, not one per partition, and a
worker at the default bound of 1,000,000 ids holds ~30 MB of them (it held ~250 MB of RSS as
one dict: worker RSS grew 1.64x for 4x the events, docs/performance.md, "Worker RSS at 4x the
events"). A hand-written structure rather than a library: the standard library and numpy have
no sorted map of ints that is compact, ordered by insertion and evicted from its oldest end.

Eviction, oldest first, in whole minutes of watermark time: each stream keeps a small queue of
`[minute, keys inserted in it]`. A stream forgets the minutes older than the retention (24 h) on
insert; when the worker's total exceeds `max_ids`, the oldest minute across streams goes first
(from the largest stream among those as old: streams stay even, and so do their merges), in
slices of 1/256 of the bound so the scan over streams is paid once per many inserts. Keys go
from the oldest end only: the arrays' `start` position moves (O(1); the forgotten keys leave the
arrays at the next merge, or at once when they are half of them), then the dict's first keys.
"""

import hashlib
import itertools
from array import array
from bisect import bisect_left
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
#: The newest keys stay in the dict until there are this many, or a 16th of the frozen keys.
_MIN_HOT: Final = 2048


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


def _u64(values: npt.NDArray[np.uint64]) -> "array[int]":
    out = array("Q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.uint64).data.cast("B"))
    return out


def _u32(values: npt.NDArray[np.integer]) -> "array[int]":
    out = array("I")
    out.frombytes(np.ascontiguousarray(values, dtype=np.uint32).data.cast("B"))
    return out


def _merge_kind(
    start: int,
    keys: "array[int]",
    pos: "array[int]",
    new_keys: list[int],
    new_pos: list[int],
    values: "array[int] | None" = None,
    new_values: list[int] | None = None,
) -> list["array[int]"]:
    """Keys of one kind (ids or source keys) whose position is `start` or later, rebased to 0,
    and the new ones, sorted by key: [keys, positions] and, given `values`, their values.
    One column at a time, so only one column's copies are held besides the old arrays."""
    u64, u32, first = np.uint64, np.uint32, np.uint32(start)
    kept = np.frombuffer(pos, dtype=u32) >= first
    k = np.array(new_keys, dtype=u64)
    order = np.argsort(k)
    k = k[order]
    live = np.frombuffer(keys, dtype=u64)[kept]
    at = np.searchsorted(live, k)
    merged = [_u64(np.insert(live, at, k))]
    del live  # before the next column's copies
    merged.append(_u32(np.insert(np.frombuffer(pos, dtype=u32)[kept] - first, at, np.array(new_pos, dtype=u32)[order])))
    if values is not None:
        new = np.array(new_values, dtype=u64)[order]
        merged.append(_u64(np.insert(np.frombuffer(values, dtype=u64)[kept], at, new)))
    return merged


class _Frozen:
    """The older keys of a stream, sorted, in flat arrays: 20 bytes an id, 12 a source key, and
    a filter of 8-16 bits an id in front of them.

    `ids`/`id_values`/`id_pos`: an id's key, the packed source of its first copy, and its position
    in the stream's insertion order; `sources`/`source_pos`: the low 64 bits of the tagged source
    keys and their positions. Positions run 0..n-1 over both kinds; a key whose position is below
    the stream's `start` has been forgotten (it stays in the arrays until the next merge).
    `filter` has bit `key & bits` set for every id: a new id, the common case, is told missing
    there (~0.1 µs) without a bisect (~0.6 µs) at least 7 times in 8.

    Never changed once built (a merge builds a new one): a copy for a checkpoint, or a restore
    from a prepared stream, shares it instead of copying it."""

    __slots__ = ("bits", "filter", "id_pos", "id_values", "ids", "n", "source_pos", "sources")

    def __init__(
        self,
        ids: "array[int] | None" = None,
        id_values: "array[int] | None" = None,
        id_pos: "array[int] | None" = None,
        sources: "array[int] | None" = None,
        source_pos: "array[int] | None" = None,
    ) -> None:
        self.ids = array("Q") if ids is None else ids
        self.id_values = array("Q") if id_values is None else id_values
        self.id_pos = array("I") if id_pos is None else id_pos
        self.sources = array("Q") if sources is None else sources
        self.source_pos = array("I") if source_pos is None else source_pos
        self.n = len(self.ids) + len(self.sources)
        nbits = 8 << max(len(self.ids) - 1, 1).bit_length()  # a power of two, 8-16 bits an id
        self.bits = nbits - 1
        present = np.zeros(nbits, dtype=np.bool_)
        present[np.frombuffer(self.ids, dtype=np.uint64) & np.uint64(self.bits)] = True
        self.filter = np.packbits(present, bitorder="little").tobytes()

    def first_source(self, key: int, start: int) -> int | None:
        """The packed first source of id `key`, if it is remembered here."""
        bit = key & self.bits
        if not self.filter[bit >> 3] >> (bit & 7) & 1:
            return None
        ids = self.ids
        i = bisect_left(ids, key)
        if i < len(ids) and ids[i] == key and self.id_pos[i] >= start:
            return self.id_values[i]
        return None

    def has_source(self, packed: int, start: int) -> bool:
        sources = self.sources
        i = bisect_left(sources, packed)
        return i < len(sources) and sources[i] == packed and self.source_pos[i] >= start

    def ordered(
        self, start: int, extra: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_], npt.NDArray[np.uint64]]:
        """Keys (low 64 bits), tags and values of the live keys in insertion order, in arrays
        with `extra` more (zero) places at their end."""
        live = self.n - start
        keys = np.zeros(live + extra, dtype=np.uint64)
        tagged = np.zeros(live + extra, dtype=np.bool_)
        values = np.zeros(live + extra, dtype=np.uint64)
        id_pos = np.frombuffer(self.id_pos, dtype=np.uint32).astype(np.int64) - start
        kept = id_pos >= 0
        keys[id_pos[kept]] = np.frombuffer(self.ids, dtype=np.uint64)[kept]
        values[id_pos[kept]] = np.frombuffer(self.id_values, dtype=np.uint64)[kept]
        source_pos = np.frombuffer(self.source_pos, dtype=np.uint32).astype(np.int64) - start
        kept = source_pos >= 0
        keys[source_pos[kept]] = np.frombuffer(self.sources, dtype=np.uint64)[kept]
        tagged[source_pos[kept]] = True
        return keys, tagged, values

    @classmethod
    def build(
        cls, keys: npt.NDArray[np.uint64], tagged: npt.NDArray[np.bool_], values: npt.NDArray[np.uint64]
    ) -> "_Frozen":
        """Sorted arrays of keys given in insertion order. Raises ValueError for a key given twice."""
        pos = np.arange(len(keys), dtype=np.uint32)
        is_id = ~tagged
        parts = []
        for mask in (is_id, tagged):
            k = keys[mask]
            order = np.argsort(k, kind="stable")
            k = k[order]
            if len(k) > 1 and bool(np.any(k[1:] == k[:-1])):
                raise ValueError("inconsistent stream state: a key is remembered twice")
            parts.append((k, order, mask))
        (ik, iorder, imask), (sk, sorder, smask) = parts
        return cls(_u64(ik), _u64(values[imask][iorder]), _u32(pos[imask][iorder]), _u64(sk), _u32(pos[smask][sorder]))

    def merged(self, start: int, hot: dict[int, int]) -> "_Frozen":
        """The live keys of this and of `hot` (newer, none of them here), positions from 0.

        Both parts stay sorted: the hot keys are sorted alone and inserted (O(n), no full sort)."""
        new_ids: list[int] = []
        new_values: list[int] = []
        new_id_pos: list[int] = []
        new_sources: list[int] = []
        new_source_pos: list[int] = []
        for pos, (key, value) in enumerate(hot.items(), start=self.n - start):
            if key > _LOW_64:
                new_sources.append(key & _LOW_64)
                new_source_pos.append(pos)
            else:
                new_ids.append(key)
                new_values.append(value)
                new_id_pos.append(pos)
        ids, id_pos, id_values = _merge_kind(
            start, self.ids, self.id_pos, new_ids, new_id_pos, self.id_values, new_values
        )
        sources, source_pos = _merge_kind(start, self.sources, self.source_pos, new_sources, new_source_pos)
        return _Frozen(ids, id_values, id_pos, sources, source_pos)


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
        """The stream's sorted arrays and minute queue rebuilt from these: a sort, ~0.1 s per
        million keys, so it can run on a thread, off the event loop (see `PreparedStream`).

        Only this state's arrays and new objects are touched, so any thread may call it. Raises
        ValueError when the minute queue does not count the keys, or a key is given twice (a
        damaged file)."""
        minutes = [[int(m), int(n)] for m, n in self.minutes.tolist()]
        if sum(n for _, n in minutes) != len(self.keys):
            raise ValueError("inconsistent stream state: minute queue does not count its keys")
        return PreparedStream(_Frozen.build(self.keys, self.tagged, self.values), minutes)


@dataclass(frozen=True, slots=True)
class PreparedStream:
    """A checkpointed stream as the arrays `RecentIds` keeps, built off the event loop: a sort,
    then a restore on the loop is O(1). Restores may share it: nothing changes the arrays."""

    frozen: _Frozen
    minutes: list[list[int]]

    def __len__(self) -> int:
        return self.frozen.n

    def arrays(self) -> StreamState:
        return StreamCopy(self.frozen, 0, [], [], [list(m) for m in self.minutes]).arrays()


@dataclass(frozen=True, slots=True)
class StreamCopy:
    """A stream's arrays (shared: they never change), copies of its newest keys and its queue:
    cheap to take on the event loop (list copies, so a checkpoint is a consistent cut);
    `arrays()`, which puts them in insertion order, may then run in a thread."""

    frozen: _Frozen
    start: int
    keys: list[int]
    values: list[int]
    minutes: list[list[int]]

    def arrays(self) -> StreamState:
        new = self.keys
        keys, tagged, values = self.frozen.ordered(self.start, len(new))
        old = len(keys) - len(new)
        keys[old:] = np.fromiter((k & _LOW_64 for k in new), dtype=np.uint64, count=len(new))
        tagged[old:] = np.fromiter((k > _LOW_64 for k in new), dtype=np.bool_, count=len(new))
        values[old:] = np.array(self.values, dtype=np.uint64)
        return StreamState(keys, tagged, values, np.array(self.minutes, dtype=np.int64).reshape(-1, 2))


class _Stream:
    """The remembered keys of one partition, oldest first, and how many arrived per minute.

    The oldest keys are `frozen` (from position `start` on), the newest in the dict `hot`."""

    __slots__ = ("frozen", "hot", "minutes", "start")

    def __init__(self, frozen: _Frozen | None = None) -> None:
        self.frozen = _Frozen() if frozen is None else frozen
        self.start = 0
        self.hot: dict[int, int] = {}
        self.minutes: deque[list[int]] = deque()  # [minute, number of keys inserted in it]

    def __len__(self) -> int:
        return self.frozen.n - self.start + len(self.hot)

    def first_source(self, key: int) -> int | None:
        first = self.hot.get(key)
        if first is None and self.frozen.n > self.start:
            return self.frozen.first_source(key, self.start)
        return first

    def has_source(self, packed: int) -> bool:
        if (_SOURCE_TAG | packed) in self.hot:
            return True
        return self.frozen.n > self.start and self.frozen.has_source(packed, self.start)

    def add(self, key: int, value: int) -> None:
        hot = self.hot
        hot[key] = value
        if len(hot) > _MIN_HOT and len(hot) > (self.frozen.n - self.start) >> 4:
            self.freeze()

    def freeze(self) -> None:
        """Move the dict's keys into the arrays, and drop the forgotten ones from them."""
        self.frozen = self.frozen.merged(self.start, self.hot)
        self.start = 0
        self.hot = {}

    def forget_oldest(self, n: int) -> int:
        """Remove up to `n` keys of the oldest minute; returns how many went."""
        bucket = self.minutes[0]
        n = min(n, bucket[1])
        old = min(n, self.frozen.n - self.start)
        self.start += old
        if n > old:
            hot = self.hot
            for key in list(itertools.islice(hot, n - old)):
                del hot[key]
        if self.start > _MIN_HOT and self.start > self.frozen.n // 2:
            self.freeze()  # most of the arrays are forgotten: give their memory back
        bucket[1] -= n
        if bucket[1] == 0:
            self.minutes.popleft()
        return n

    def copy(self) -> StreamCopy:
        return StreamCopy(
            self.frozen, self.start, list(self.hot), list(self.hot.values()), [list(m) for m in self.minutes]
        )


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
        first = st.first_source(h)
        if first is None:
            self._remember(st, h, packed, now_s)
            return Seen.NEW
        if first == packed:
            return Seen.REDELIVERY
        if st.has_source(packed):
            return Seen.REDELIVERY  # a redelivered copy of a duplicate
        self._remember(st, _SOURCE_TAG | packed, 0, now_s)
        return Seen.DUPLICATE

    def check_source(self, stream: Hashable, src: tuple[int, int], now_s: float) -> bool:
        """Whether the message from source `src` is new on `stream` (False: a redelivery)."""
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _Stream()
        packed = _pack(src)
        if st.has_source(packed):
            return False
        self._remember(st, _SOURCE_TAG | packed, 0, now_s)
        return True

    def drop(self, stream: Hashable) -> None:
        """Forget everything remembered for `stream` (its partition was revoked or is re-read)."""
        st = self._streams.pop(stream, None)
        if st is not None:
            self._size -= len(st)

    def copy_stream(self, stream: Hashable) -> StreamCopy:
        """A copy of `stream`'s keys, values and minute queue, for a checkpoint."""
        st = self._streams.get(stream)
        return _Stream().copy() if st is None else st.copy()

    def restore(self, stream: Hashable, state: "PreparedStream | StreamState | StreamCopy") -> None:
        """Replace `stream` by a checkpointed copy; the worker's bound applies at once.

        A `PreparedStream` (built on a thread) costs a copy of its arrays here; other states are
        prepared here, on the caller's thread. Raises ValueError (nothing changed) for an
        inconsistent state."""
        prepared = state if isinstance(state, PreparedStream) else state.arrays().prepare()
        if sum(n for _, n in prepared.minutes) != len(prepared):
            raise ValueError("inconsistent stream state: minute queue does not count its keys")
        self.drop(stream)
        st = self._streams[stream] = _Stream(prepared.frozen)  # never changed: shared
        st.minutes = deque([m, n] for m, n in prepared.minutes)
        self._size += len(st)
        if self._size > self._max_ids:
            self._shrink()

    def _remember(self, st: _Stream, key: int, value: int, now_s: float) -> None:
        st.add(key, value)
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
            # the oldest minute first; among streams as old, the largest, so streams stay even
            # and no one stream's merges grow (all keys can share a minute: a backlog read at once)
            oldest = min((s for s in self._streams.values() if s.minutes), key=lambda s: (s.minutes[0][0], -len(s)))
            self._size -= oldest.forget_oldest(self._size - target)
