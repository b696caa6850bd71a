"""Real Prometheus and Alertmanager on loopback, for the integration tests (the session fixture
`monitoring` of tests/integration/conftest.py starts them once).

They run the rules and config that `psmon rules` generates from `tests/data/thresholds-fast.yaml`
(second-scale windows and `for:`, 1 s scrape and evaluation), with ports reserved up front for a
worker and a sink scrape target (jobs `psmon-worker`, `psmon-sink`) and for the webhook receiver:
a test starts `psmon worker`, `psmon sink` and `psmon alerts listen` on exactly those ports (the
receiver with `alerts_token_file`, the token Alertmanager sends).
Config and data live in the given directory; both servers are stopped by PID.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from psmon.alerting.generate import Targets, write_config
from psmon.alerting.receiver import ensure_token_file
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
    sink_metrics_port: int
    receiver_port: int
    config_dir: Path
    #: the bearer token file Alertmanager sends to the receiver (give it to `psmon alerts listen`)
    alerts_token_file: Path


@contextmanager
def running_monitoring(root: Path) -> Iterator[Monitoring]:
    """Prometheus and Alertmanager with the generated config in `root`, until the block ends."""
    prometheus_bin, alertmanager_bin = find_binary(PROMETHEUS_BINARIES), find_binary(ALERTMANAGER_BINARIES)
    if not prometheus_bin or not alertmanager_bin:
        pytest.fail("Prometheus/Alertmanager are not installed: run `make sysdeps`")
    th = load_thresholds(FAST_THRESHOLDS)
    worker_port, sink_port, receiver_port = free_port(), free_port(), free_port()
    prom_port, am_port = free_port(), free_port()
    token_file = ensure_token_file(root / "alerts-token")
    files = write_config(
        root,
        th,
        Targets(
            workers=(f"127.0.0.1:{worker_port}",),
            sinks=(f"127.0.0.1:{sink_port}",),
            alertmanagers=(f"127.0.0.1:{am_port}",),
            webhook_url=f"http://127.0.0.1:{receiver_port}/alerts",
            webhook_token_file=str(token_file),
        ),
    )
    am = MonitoringServer.alertmanager(
        binary=alertmanager_bin,
        config=files.alertmanager_config,
        data_dir=root / "am-data",
        port=am_port,
        log_path=root / "alertmanager.log",
    ).start()
    try:
        prom = MonitoringServer.prometheus(
            binary=prometheus_bin,
            config=files.prometheus_config,
            data_dir=root / "prom-data",
            port=prom_port,
            log_path=root / "prometheus.log",
        ).start()
        try:
            yield Monitoring(
                thresholds=th,
                prometheus=prom,
                alertmanager=am,
                worker_metrics_port=worker_port,
                sink_metrics_port=sink_port,
                receiver_port=receiver_port,
                config_dir=root,
                alerts_token_file=token_file,
            )
        finally:
            prom.stop()
    finally:
        am.stop()
