"""The member-id file: a successor gets a dead process's id, a live process's id is never shared.

The lock is a real `flock`: two opens in this process exclude each other like two processes do,
and a SIGKILLed holder (a real child process) releases it through the kernel.
"""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from psmon.streams.membership import MemberIdFile

MEMBER = "psmon-rates-6cd08f74-75ff-4418-839a-fe952e61cbfb"


def test_a_new_file_has_no_predecessor_and_keeps_the_id_for_the_next_process(tmp_path: Path) -> None:
    first = MemberIdFile(tmp_path / "members", "psmon-rates")
    assert first.acquire() is None
    first.save(MEMBER)
    first.release()
    successor = MemberIdFile(tmp_path / "members", "psmon-rates")
    assert successor.acquire() == MEMBER
    successor.release()


def test_a_live_holder_is_never_shared_and_the_second_process_writes_nothing(tmp_path: Path) -> None:
    holder = MemberIdFile(tmp_path, "g")
    holder.acquire()
    holder.save(MEMBER)
    other = MemberIdFile(tmp_path, "g")
    assert other.acquire() is None  # locked: joins as a new member
    other.save("someone-else")  # ignored: it does not hold the lock
    holder.release()
    other.release()
    assert MemberIdFile(tmp_path, "g").acquire() == MEMBER


def test_a_killed_holder_releases_the_lock_to_its_successor(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from psmon.streams.membership import MemberIdFile
        f = MemberIdFile(Path({str(tmp_path)!r}), "g")
        f.acquire()
        f.save({MEMBER!r})
        print("saved", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "saved"
        assert MemberIdFile(tmp_path, "g").acquire() is None  # alive: its id is not ours
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert MemberIdFile(tmp_path, "g").acquire() == MEMBER


def test_an_unreadable_file_means_no_predecessor(tmp_path: Path) -> None:
    (tmp_path / "g.member").write_bytes(b"\x00\xff not an id\n")
    assert MemberIdFile(tmp_path, "g").acquire() is None


def test_the_assignment_is_kept_for_the_successor(tmp_path: Path) -> None:
    first = MemberIdFile(tmp_path, "g")
    assert first.acquire() is None and first.assignment == []
    first.save(MEMBER, [("psmon.valid", 1), ("psmon.dead-letter", 0), ("psmon.valid", 0)])
    first.save(MEMBER, [("psmon.valid", 1), ("psmon.valid", 0)])  # a later rebalance: the latest counts
    first.release()
    successor = MemberIdFile(tmp_path, "g")
    assert successor.acquire() == MEMBER
    assert successor.assignment == [("psmon.valid", 0), ("psmon.valid", 1)]


def test_a_file_without_a_readable_assignment_still_gives_the_id(tmp_path: Path) -> None:
    (tmp_path / "old.member").write_text(MEMBER)  # as written before assignments were kept
    old = MemberIdFile(tmp_path, "old")
    assert old.acquire() == MEMBER and old.assignment == []
    (tmp_path / "bad.member").write_text(MEMBER + '\n[["psmon.valid", "x"], 3, {"a": 1}, ["psmon.valid", 2]')
    bad = MemberIdFile(tmp_path, "bad")
    assert bad.acquire() == MEMBER and bad.assignment == []
    (tmp_path / "odd.member").write_text(MEMBER + '\n[["psmon.valid", "x"], 3, ["psmon.valid", 2]]')
    odd = MemberIdFile(tmp_path, "odd")
    assert odd.acquire() == MEMBER and odd.assignment == [("psmon.valid", 2)]
