"""Checkpoints of stage 2's per-partition state, so recovery costs O(state), not O(history).

Without them a worker that gains a partition of `psmon.valid` or `psmon.dead-letter` re-reads it
from the beginning (~15 µs per retained record: 1 M records, 19.5 s blind; a year of national
volume, ~25 min). With them, the owner of a partition periodically writes the partition's live
state *together with the offset it is exact for*; a worker that gains the partition loads that
state, seeks to the offset and replays only the tail.

What one checkpoint holds (a consistent cut: the state as of exactly the records before
`next_offset`, taken on the event loop between batches, so no record is half applied):
- a partition of `psmon.valid`: the minute and day rings of its provinces, their owned counter
  totals (contract counters and duplicates), its stream of the duplicate memory (keys, packed
  sources, minute queue) and the worker's watermark;
- a partition of `psmon.dead-letter`: its dead letters per reason and its duplicate-memory stream.

A checkpoint at offset N is a valid state for the records below N *whoever wrote it*, so any
worker may use any checkpoint: workers sharing the directory (a shared volume in production, the
data dir locally) recover the partitions that moved between them; a worker without the file, or
with one it cannot use, re-reads the partition from the beginning, which is always correct. A
stale checkpoint is only slower (a longer tail), never wrong. A checkpoint is ignored (logged)
when its format version, app id, topic, partition, partition count or counter columns are not
this build's and this topic's; and one that does not belong to the log any more (the topic was
re-created, e.g. the local broker restarted) is detected by `rates_service` and discarded: it
keeps the timestamp and a digest of the last record it covers, and the restoring worker fetches
that record again first.

Why files and not a compacted Kafka topic: the local broker (Tansu, memory storage) neither
compacts nor applies retention, so a checkpoint topic would grow without bound in the demo. Files
are written atomically (temporary file, fsync, rename, fsync of the directory): a reader sees the
previous checkpoint or the new one, never half of one.

Reading ahead: loading a checkpoint is cheap (numpy arrays), rebuilding the duplicate memory's
sorted arrays from it less so (a sort: ~0.1 s for the 1 M-id cap; it was 0.5-1.8 s on the
loaded 2-core machine when the memory was one dict). `read(prepare=True)` does that rebuild where
it is called (`dedup.StreamState.prepare`), and `prefetch` reads a guessed set of partitions that
way on a thread before the assignment is known; `read_many(ahead=...)` then uses each one only
if its file is still the one on disk (inode, mtime, size) and was written for the topic's
partition count, else reads the file again. `rates_service.py` runs both on one thread.

Format: one `.npz` per topic-partition (numpy's zip of `.npy` arrays, uncompressed: writing is
a memory copy, loading never unpickles), a JSON header in a uint8 array, the rings as int64
arrays per province, the duplicate memory as uint64 arrays (source keys, tagged above 2**64 in
memory, are stored as their low 64 bits and a flag).
"""

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from psmon.schemas.metrics import COUNTERS
from psmon.streams.dedup import PreparedStream, StreamCopy, StreamState
from psmon.streams.windows import ProvinceRings

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointStore", "LetterState", "ValidState", "record_digest"]

log = logging.getLogger(__name__)

#: Bumped whenever what a file holds or means changes; other versions are ignored.
FORMAT_VERSION: Final = 1

_RING_ARRAYS: Final = ("minute_counts", "minute_tags", "day_counts", "day_tags")


@dataclass(frozen=True, slots=True)
class ValidState:
    """A partition of `psmon.valid`: its provinces, their rings and owned totals, its ids."""

    provinces: list[str]
    rings: dict[str, ProvinceRings]
    #: (counter attribute of PipelineMetrics, label values, de-duplicated total)
    totals: list[tuple[str, tuple[str, ...], int]]
    recent: StreamCopy | StreamState | PreparedStream
    watermark_s: float | None
    #: The catalog metrics' procedure activity of these provinces (`catalog_live.CatalogActivity`
    #: `to_checkpoint`, plain JSON); None for a worker without them.
    catalog: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class LetterState:
    """A partition of `psmon.dead-letter`: its letters per reason, its remembered sources."""

    reasons: dict[str, int]
    recent: StreamCopy | StreamState | PreparedStream


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A partition's state as of the records below `next_offset`.

    `last_record` identifies the record at `next_offset - 1` (its timestamp in ms and
    `record_digest` of its value): the restoring worker fetches that record again and compares,
    so a log re-created since (same topic name, other records) is told apart even when it has
    grown past the offset.

    `partitions` (the topic's partition count it was written for) and `file` (the inode, mtime
    and size of the file it was read from) are set by `CheckpointStore.read`: they let a
    checkpoint read ahead of the assignment be checked against the file on disk then.
    """

    next_offset: int
    state: ValidState | LetterState
    last_record: tuple[int, str]
    partitions: int | None = None
    file: tuple[int, int, int] | None = None


#: (topic, partition) -> a checkpoint read ahead (`CheckpointStore.prefetch`)
Prefetched = Mapping[tuple[str, int], Checkpoint]


def record_digest(value: bytes | None) -> str:
    """A short fingerprint of a record's value (not a secret: it only tells two logs apart)."""
    return hashlib.blake2b(value or b"", digest_size=8).hexdigest()


class CheckpointStore:
    """The checkpoint files of one app (consumer group) in one directory."""

    def __init__(self, directory: Path, *, app_id: str):
        self.directory = directory
        self.app_id = app_id

    def path(self, topic: str, partition: int) -> Path:
        return self.directory / f"{self.app_id}.{topic}.{partition}.npz"

    def write(self, topic: str, partition: int, partitions: int, checkpoint: Checkpoint) -> int:
        """Write `checkpoint` atomically (blocking: run it in an executor); returns its bytes."""
        state = checkpoint.state
        recent = state.recent.arrays()
        header: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "app_id": self.app_id,
            "topic": topic,
            "partition": partition,
            "partitions": partitions,
            "counters": list(COUNTERS),
            "next_offset": checkpoint.next_offset,
            "last_record": list(checkpoint.last_record),
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "recent_keys": recent.keys,
            "recent_tagged": recent.tagged,
            "recent_values": recent.values,
            "recent_minutes": recent.minutes,
        }
        if isinstance(state, ValidState):
            header |= {
                "kind": "valid",
                "provinces": state.provinces,
                "totals": [[name, list(labels), n] for name, labels, n in state.totals],
                "watermark_s": state.watermark_s,
                "rings": sorted(state.rings),
                "catalog": state.catalog,
            }
            for province, rings in state.rings.items():
                for name in _RING_ARRAYS:
                    array = getattr(rings, name)
                    if array is not None:
                        arrays[f"{name}.{province}"] = array
        else:
            header |= {"kind": "dead-letter", "reasons": state.reasons}
        arrays["header"] = np.frombuffer(orjson.dumps(header), dtype=np.uint8)
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(topic, partition)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as f:
                np.savez(f, allow_pickle=False, **arrays)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)
        return size

    def identity(self, topic: str, partition: int) -> tuple[int, int, int] | None:
        """Inode, mtime and size of this topic-partition's file (None: absent). A write replaces
        the file (a new inode), so an equal identity means the same checkpoint."""
        try:
            st = os.stat(self.path(topic, partition))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self, topic: str, partition: int, partitions: int | None, *, prepare: bool = False) -> Checkpoint | None:
        """The checkpoint of this topic-partition, or None (absent, or unusable: logged why).

        `partitions=None` accepts any partition count (a read ahead of the assignment, checked
        later against `Checkpoint.partitions`). `prepare` rebuilds the duplicate memory's arrays
        here (`StreamState.prepare`): call it on a thread, so the event loop only takes them."""
        path = self.path(topic, partition)
        try:
            with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
                st = os.fstat(f.fileno())
                header = orjson.loads(npz["header"].tobytes())
                expected = {
                    "format": FORMAT_VERSION,
                    "app_id": self.app_id,
                    "topic": topic,
                    "partition": partition,
                    "partitions": header.get("partitions") if partitions is None else partitions,
                    "counters": list(COUNTERS),
                }
                wrong = {k: header.get(k) for k, v in expected.items() if header.get(k) != v}
                if wrong:
                    log.warning("ignoring checkpoint %s: %s differ from %s", path, wrong, expected)
                    return None
                arrays = StreamState(
                    keys=npz["recent_keys"].astype(np.uint64, copy=False),
                    tagged=npz["recent_tagged"].astype(np.bool_, copy=False),
                    values=npz["recent_values"].astype(np.uint64, copy=False),
                    minutes=npz["recent_minutes"].astype(np.int64, copy=False).reshape(-1, 2),
                )
                recent = arrays.prepare() if prepare else arrays
                state: ValidState | LetterState
                if header.get("kind") == "valid":
                    rings = {
                        p: ProvinceRings(*(_array(npz, f"{name}.{p}") for name in _RING_ARRAYS))
                        for p in header["rings"]
                    }
                    state = ValidState(
                        provinces=[str(p) for p in header["provinces"]],
                        rings=rings,
                        totals=[(str(c), tuple(str(v) for v in labels), int(n)) for c, labels, n in header["totals"]],
                        recent=recent,
                        watermark_s=header["watermark_s"],
                        catalog=header.get("catalog"),
                    )
                else:
                    reasons = {str(r): int(n) for r, n in header["reasons"].items()}
                    state = LetterState(reasons=reasons, recent=recent)
                next_offset = int(header["next_offset"])
                last_ts, last_digest = header["last_record"]
                last_record = (int(last_ts), str(last_digest))
        except FileNotFoundError:
            return None
        except Exception as exc:  # a cache: whatever fails, the partition is re-read from the log
            log.warning("ignoring unreadable checkpoint %s: %r", path, exc)
            return None
        return Checkpoint(
            next_offset=next_offset,
            state=state,
            last_record=last_record,
            partitions=int(header["partitions"]),
            file=(st.st_ino, st.st_mtime_ns, st.st_size),
        )

    def read_many(
        self, wanted: list[tuple[str, int, int]], *, prepare: bool = False, ahead: Prefetched | None = None
    ) -> list[Checkpoint | None]:
        """`read` for each (topic, partition, partition count), in turn.

        A checkpoint in `ahead` (read before the assignment) is used when its file is still the
        one on disk and was written for this partition count; otherwise the file is read again
        (a newer checkpoint, e.g. written by the partition's previous owner when it was revoked,
        only shortens the tail; reading it again costs the time the read ahead saved)."""
        out: list[Checkpoint | None] = []
        for topic, partition, partitions in wanted:
            early = (ahead or {}).get((topic, partition))
            if early is not None and early.partitions == partitions and early.file == self.identity(topic, partition):
                out.append(early)
            else:
                out.append(self.read(topic, partition, partitions, prepare=prepare))
        return out

    def prefetch(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], Checkpoint]:
        """Read these topic-partitions' checkpoints ahead of the assignment, arrays prepared.

        Blocking: a successor runs it on a thread while its consumer-group join is in flight
        (the loop is idle then), and `read_many(ahead=...)` checks them once the assignment is
        known. Unusable files are logged and left out, as by `read`."""
        t0 = time.monotonic()
        found = {(topic, partition): self.read(topic, partition, None, prepare=True) for topic, partition in wanted}
        out = {tp: c for tp, c in found.items() if c is not None}
        log.info("%d checkpoints of %d partitions read ahead in %.3f s", len(out), len(wanted), time.monotonic() - t0)
        return out

    def discard(self, topic: str, partition: int) -> None:
        """Remove the checkpoint of this topic-partition (it was found to be beyond the log)."""
        self.path(topic, partition).unlink(missing_ok=True)


def _array(npz: Any, name: str) -> npt.NDArray[np.int64] | None:
    if name not in npz.files:
        return None
    array: npt.NDArray[np.int64] = npz[name].astype(np.int64, copy=False)
    return array
