"""Session servers for the alerting tests: real Prometheus and Alertmanager on loopback.

They run the rules and config that `psmon rules` generates from `tests/data/thresholds-fast.yaml`
(second-scale windows and `for:`), with a scrape target port and a webhook receiver port reserved
up front: the test starts `psmon worker` and `psmon alerts listen` on exactly those ports. Config
and data live in a session temp dir; both servers are stopped by PID at the end.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from psmon.alerting.generate import Targets, write_config
from psmon.alerting.servers import ALERTMANAGER_BINARIES, PROMETHEUS_BINARIES, MonitoringServer, find_binary
from psmon.alerting.thresholds import Thresholds, load_thresholds
from psmon.embedded.broker import free_port

FAST_THRESHOLDS = Path(__file__).parents[1] / "data" / "thresholds-fast.yaml"


@dataclass(frozen=True)
class Monitoring:
    thresholds: Thresholds
    prometheus: MonitoringServer
    alertmanager: MonitoringServer
    worker_metrics_port: int
    receiver_port: int
    config_dir: Path


@pytest.fixture(scope="session")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    prometheus_bin, alertmanager_bin = find_binary(PROMETHEUS_BINARIES), find_binary(ALERTMANAGER_BINARIES)
    if not prometheus_bin or not alertmanager_bin:
        pytest.fail("Prometheus/Alertmanager are not installed: run `make sysdeps`")
    root = tmp_path_factory.mktemp("monitoring")
    th = load_thresholds(FAST_THRESHOLDS)
    worker_port, receiver_port, prom_port, am_port = free_port(), free_port(), free_port(), free_port()
    files = write_config(
        root,
        th,
        Targets(
            workers=(f"127.0.0.1:{worker_port}",),
            alertmanagers=(f"127.0.0.1:{am_port}",),
            webhook_url=f"http://127.0.0.1:{receiver_port}/alerts",
        ),
    )
    am = MonitoringServer.alertmanager(
        binary=alertmanager_bin, config=files.alertmanager_config, data_dir=root / "am-data", port=am_port,
        log_path=root / "alertmanager.log",
    ).start()  # fmt: skip
    try:
        prom = MonitoringServer.prometheus(
            binary=prometheus_bin, config=files.prometheus_config, data_dir=root / "prom-data", port=prom_port,
            log_path=root / "prometheus.log",
        ).start()  # fmt: skip
        try:
            yield Monitoring(th, prom, am, worker_port, receiver_port, root)
        finally:
            prom.stop()
    finally:
        am.stop()
