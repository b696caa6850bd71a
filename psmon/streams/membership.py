"""A restarted worker takes its dead predecessor's place in a consumer group at once.

Why: after a SIGKILL the group still holds the dead member until its session expires, and a
successor's join waits for that. Measured on the local broker (Tansu) with plain aiokafka
consumers at a 6 s session timeout: a first join is assigned after 3.0 s, a successor started
right after a SIGKILL after 11.1 s (18.2 s at the default 10 s). In `python -m benchmarks --only
recovery` that wait was 80% of the time a worker needed to export every province again (11.8 s of
14.8 s at 1 M retained records; restoring the checkpoints and replaying the tail took 1.3 s).

How: a consumer's member id, which the coordinator hands out at its first join, is kept in a file
of the worker's data dir (`MemberIdFile`). A successor on the same data dir joins *with that
id*: a coordinator that still knows the member takes the JoinGroup as that member rejoining
(Kafka gives a follower the current assignment without a rebalance, and for a leader rebalances
with the live members, which rejoin on their next heartbeat; Tansu answered in 3.0 s, the time
of a first join, instead of 11.1 s), so nobody waits for the dead session to expire. A
coordinator that has already expired the member answers UNKNOWN_MEMBER_ID and aiokafka joins
afresh, which is what happens without the file; so does a coordinator the member left (a
graceful stop sends LeaveGroup), and the file is simply kept.

Safety: two live processes must never share a member id (both would own the same partitions and
export their provinces twice). The file is locked (`flock`, exclusive, for the life of the
process); the kernel drops a killed process's lock, so its successor gets it, and a second live
process on the same data dir does not: it neither reads nor writes the file and joins as a new
member. So the data dir must be the worker's own (not a shared volume, where `flock` is not
reliable); the checkpoint directory is the one workers share.

Why not static membership (`group.instance.id`, KIP-345), Kafka's own mechanism for this: on the
local broker a static member's join took ~6 s whatever the session timeout, and two static
members kept failing heartbeats ("member_id was not recognized") and rejoining. Reusing the
member id needs nothing but the plain join protocol, on both brokers.

The file also keeps the member's last assignment (a second line, JSON): the partitions a
successor will most likely be given back, whose checkpoints it reads and prepares on a thread
while its join is in flight (`rates_service.py`). It is only a guess: a partition not given back
is dropped unused, one not guessed is read at assignment, as without the file.

aiokafka has no setting for the member id of the first join: `start_with_member_id` starts the
consumer *before* it subscribes (its coordinator then waits for a subscription), sets the id on
the coordinator, and subscribes; the id is read back from the coordinator after each join.
"""

import fcntl
import logging
import os
import re
from pathlib import Path
from typing import Final

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

__all__ = ["MemberIdFile", "member_id", "start_with_member_id"]

log = logging.getLogger(__name__)

#: What a member id read back from a file may look like (aiokafka: "<client id>-<uuid>").
_MEMBER_ID: Final = re.compile(r"[\x21-\x7e]{1,255}")
#: The file's size bound when read: the id and a few thousand partitions.
_MAX_BYTES: Final = 256 * 1024


class MemberIdFile:
    """The member id of one consumer group, kept for a successor (see module docstring)."""

    def __init__(self, directory: Path, group: str):
        self.path = directory / f"{group}.member"
        self._fd: int | None = None
        #: The predecessor's last assignment, (topic, partition), set by `acquire` ([] if none).
        self.assignment: list[tuple[str, int]] = []

    def acquire(self) -> str | None:
        """Lock the file for this process; returns the id a dead predecessor left, if any.

        None also when another live process holds the lock: this one then never writes it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            log.warning("%s is locked by another live process: joining as a new member", self.path)
            return None
        self._fd = fd
        first, _, rest = os.pread(fd, _MAX_BYTES, 0).decode("ascii", errors="replace").partition("\n")
        self.assignment = _assignment(rest)
        text = first.strip()
        return text if _MEMBER_ID.fullmatch(text) else None

    def save(self, member: str, assignment: list[tuple[str, int]] | None = None) -> None:
        """Keep `member` and its `assignment` (in place: the lock is on this inode, a rename would
        leave it behind)."""
        if self._fd is None or not _MEMBER_ID.fullmatch(member):
            return
        data = member.encode("ascii")
        if assignment:
            data += b"\n" + orjson.dumps(sorted(assignment))
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def release(self) -> None:
        """Unlock (the id stays for the next process: see the module docstring)."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None


def _assignment(text: str) -> list[tuple[str, int]]:
    """The (topic, partition) list of a file's second line; [] when absent or malformed."""
    try:
        found = orjson.loads(text.strip() or "[]")
    except orjson.JSONDecodeError:
        return []
    if not isinstance(found, list):
        return []
    return [
        (t, p)
        for t, p in (x for x in found if isinstance(x, list) and len(x) == 2)
        if isinstance(t, str) and isinstance(p, int)
    ]


async def start_with_member_id(
    consumer: AIOKafkaConsumer, topics: list[str], listener: ConsumerRebalanceListener, member: str | None
) -> None:
    """Start `consumer` and subscribe it to `topics`, its first JoinGroup carrying `member`.

    Returns without waiting for the assignment (the consumer's fetches wait for it)."""
    await consumer.start()  # no subscription yet: the coordinator waits for one before joining
    if member:
        consumer._coordinator.member_id = member
        log.info("rejoining group %s as member %s (the previous process on this data dir)", consumer._group_id, member)
    consumer.subscribe(topics, listener=listener)


def member_id(consumer: AIOKafkaConsumer) -> str | None:
    """The member id the coordinator gave `consumer` (None before its first join)."""
    coordinator = getattr(consumer, "_coordinator", None)
    found = getattr(coordinator, "member_id", None)
    return found if isinstance(found, str) and found else None
