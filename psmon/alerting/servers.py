"""Prometheus and Alertmanager as child processes on loopback, for `psmon up` and the tests.

The binaries are the Debian packages' (`prometheus`, `prometheus-alertmanager`; upstream names
are tried too). Each server gets its config from `psmon rules` output, its own data directory,
and a loopback port; it is started in its own session with a parent-death signal (so it never
outlives psmon, even after SIGKILL), considered up when `/-/ready` answers 200 within a deadline,
and stopped by PID. Alertmanager runs without clustering (`--cluster.listen-address=`), which
would otherwise gossip on port 9094 and slow its start.
"""

import logging
import shutil
import socket
import urllib.request
from pathlib import Path
from typing import Final, Self

from psmon.alerting.generate import Targets, write_config
from psmon.alerting.thresholds import Thresholds
from psmon.embedded.process import ChildServer
from psmon.errors import PsmonError

__all__ = ["ALERTMANAGER_BINARIES", "PROMETHEUS_BINARIES", "MonitoringServer", "find_binary"]

log = logging.getLogger(__name__)

PROMETHEUS_BINARIES: Final = ("prometheus",)
ALERTMANAGER_BINARIES: Final = ("prometheus-alertmanager", "alertmanager")


class MonitoringServerError(PsmonError):
    """Prometheus or Alertmanager could not be started."""


def find_binary(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


class MonitoringServer(ChildServer):
    """One Prometheus or Alertmanager process."""

    def __init__(self, name: str, args: list[str], *, port: int, log_path: Path):
        super().__init__(log_path=log_path)
        self.name, self.args, self.port = name, args, port

    @classmethod
    def prometheus(cls, *, binary: str, config: Path, data_dir: Path, port: int, log_path: Path) -> "MonitoringServer":
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",  # POST /-/reload after `psmon rules`
            "--storage.tsdb.retention.time=15d",
        ]
        return cls("prometheus", args, port=port, log_path=log_path)

    @classmethod
    def alertmanager(
        cls, *, binary: str, config: Path, data_dir: Path, port: int, log_path: Path
    ) -> "MonitoringServer":
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no HA gossip
        ]
        return cls("alertmanager", args, port=port, log_path=log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> Self:
        def answers_ready() -> bool:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)

        self._launch(self.args, ready=answers_ready, where=self.url, timeout_s=timeout_s, error=MonitoringServerError)
        log.info("%s pid %d on %s", self.name, self.pid, self.url)
        return self


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class LocalAlerting:
    """Prometheus + Alertmanager for `psmon up`, configured by `psmon rules` into `<data_dir>`.

    Alertmanager posts to the receiver with the bearer token of `receiver_token_file` (`psmon up`
    makes one in `<data_dir>` when none is configured). `start` returns None, with a reason in
    `skipped`, when the binaries are missing, metrics are off, a port is taken (another psmon up,
    or a system Prometheus) or a server does not start; psmon up then runs without alerting
    rather than failing.
    """

    def __init__(
        self,
        th: Thresholds,
        *,
        data_dir: Path,
        metrics_port: int,
        prometheus_port: int,
        alertmanager_port: int,
        receiver_host: str,
        receiver_port: int,
        receiver_token_file: Path | None = None,
    ):
        self.th, self.data_dir = th, data_dir
        self.metrics_port, self.prometheus_port, self.alertmanager_port = (
            metrics_port,
            prometheus_port,
            alertmanager_port,
        )
        self.receiver_host, self.receiver_port = receiver_host, receiver_port
        #: what Alertmanager reads the receiver's bearer token from (absolute: it runs elsewhere)
        self.receiver_token_file = receiver_token_file.resolve() if receiver_token_file else None
        self.prometheus: MonitoringServer | None = None
        self.alertmanager: MonitoringServer | None = None
        self.skipped = ""

    def start(self) -> "LocalAlerting | None":
        prometheus_bin, alertmanager_bin = find_binary(PROMETHEUS_BINARIES), find_binary(ALERTMANAGER_BINARIES)
        if not prometheus_bin or not alertmanager_bin:
            self.skipped = (
                "Prometheus/Alertmanager are not installed (apt-get install prometheus prometheus-alertmanager)"
            )
            return None
        if not (self.metrics_port and self.prometheus_port and self.alertmanager_port):
            self.skipped = "metrics, Prometheus or Alertmanager port is 0"
            return None
        taken = [p for p in (self.prometheus_port, self.alertmanager_port, self.receiver_port) if not port_free(p)]
        if taken:
            self.skipped = f"port(s) {', '.join(map(str, taken))} already in use"
            return None
        files = write_config(
            self.data_dir,
            self.th,
            Targets(
                workers=(f"127.0.0.1:{self.metrics_port}",),
                alertmanagers=(f"127.0.0.1:{self.alertmanager_port}",),
                webhook_url=f"http://{self.receiver_host}:{self.receiver_port}/alerts",
                webhook_token_file=str(self.receiver_token_file) if self.receiver_token_file else None,
            ),
        )
        try:
            self.alertmanager = MonitoringServer.alertmanager(
                binary=alertmanager_bin,
                config=files.alertmanager_config,
                data_dir=self.data_dir / "alertmanager" / "data",
                port=self.alertmanager_port,
                log_path=self.data_dir / "alertmanager.log",
            ).start()
            self.prometheus = MonitoringServer.prometheus(
                binary=prometheus_bin,
                config=files.prometheus_config,
                data_dir=self.data_dir / "prometheus" / "data",
                port=self.prometheus_port,
                log_path=self.data_dir / "prometheus.log",
            ).start()
        except MonitoringServerError as exc:  # the pipeline still runs; alerting is an extra here
            self.stop()
            self.skipped = str(exc)
            return None
        return self

    def stop(self) -> None:
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                server.stop()
