"""Child processes that cannot outlive their parent.

psmon starts helper servers (the local broker, Prometheus, Alertmanager) and the tests start psmon
processes in their own sessions, so a Ctrl-C or a `timeout` aimed at the parent's process group
does not hit them before the parent has stopped them in order. The price of a separate session is
that nothing would stop them if the parent died abruptly (SIGKILL, a crashed test run); Linux's
parent-death signal closes that gap.

`ChildServer` is the one way psmon runs such a server (the local broker, Prometheus,
Alertmanager): spawned that way with its output in a log file, considered up when its readiness
probe answers before a deadline (or failed with the log's path when it exits or never answers),
and stopped by PID.
"""

import ctypes
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

__all__ = ["ChildServer", "die_with_parent", "stop_child"]

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


class ChildServer:
    """A helper server run as a child process (see module docstring); subclasses define `start`."""

    name = "server"

    def __init__(self, *, log_path: Path | None):
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Self:
        raise NotImplementedError

    def _launch(
        self,
        args: list[str],
        *,
        ready: Callable[[], bool],
        where: str,
        timeout_s: float,
        error: Callable[[str], Exception],
    ) -> None:
        """Spawn `args` and wait until `ready()` (OSError counts as not yet); `error` builds the
        exception raised when the child exits or is not ready within `timeout_s`."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,  # a Ctrl-C for psmon must not stop it before psmon has stopped
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise error(f"{self.name} exited with code {self._proc.returncode}; see {self.log_path}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise error(f"{self.name} was not ready on {where} within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self, *, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc, timeout_s=timeout_s)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
