"""Child processes that cannot outlive their parent.

psmon starts helper servers (the local broker, Prometheus, Alertmanager) and the tests start psmon
processes in their own sessions, so a Ctrl-C or a `timeout` aimed at the parent's process group
does not hit them before the parent has stopped them in order. The price of a separate session is
that nothing would stop them if the parent died abruptly (SIGKILL, a crashed test run); Linux's
parent-death signal closes that gap.
"""

import ctypes
import signal
import subprocess

__all__ = ["die_with_parent", "stop_child"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for `subprocess.Popen`: the child gets SIGTERM when its parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_child(proc: "subprocess.Popen[bytes] | None", *, timeout_s: float = 10.0) -> None:
    """SIGTERM a child by PID, wait up to `timeout_s`, then SIGKILL; a no-op if it is gone."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
