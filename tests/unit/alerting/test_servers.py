"""Starting Prometheus/Alertmanager: clear failures, and `psmon up` skipping alerting with a reason."""

import socket
from pathlib import Path

import pytest

from psmon.alerting.servers import (
    PROMETHEUS_BINARIES,
    LocalAlerting,
    MonitoringServer,
    MonitoringServerError,
    find_binary,
)
from psmon.alerting.thresholds import load_thresholds
from psmon.embedded.broker import free_port


def local(tmp_path: Path, **ports: int) -> LocalAlerting:
    args = {
        "metrics_port": free_port(),
        "prometheus_port": free_port(),
        "alertmanager_port": free_port(),
        "receiver_port": free_port(),
        **ports,
    }
    return LocalAlerting(load_thresholds(), data_dir=tmp_path, receiver_host="127.0.0.1", **args)


def test_up_skips_alerting_when_a_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        la = local(tmp_path, prometheus_port=taken)
        assert la.start() is None
    assert f"port(s) {taken} already in use" in la.skipped
    assert not (tmp_path / "prometheus").exists()


def test_up_skips_alerting_without_metrics(tmp_path: Path) -> None:
    la = local(tmp_path, metrics_port=0)
    assert la.start() is None
    assert "port is 0" in la.skipped


def test_a_server_that_exits_fails_with_its_log(tmp_path: Path) -> None:
    binary = find_binary(PROMETHEUS_BINARIES)
    if binary is None:
        pytest.fail("prometheus is not installed: run `make sysdeps`")
    bad = tmp_path / "prometheus.yml"
    bad.write_text("scrape_configs: [{job_name: x, nonsense: 1}]\n")
    server = MonitoringServer.prometheus(
        binary=binary, config=bad, data_dir=tmp_path / "data", port=free_port(), log_path=tmp_path / "p.log"
    )
    with pytest.raises(MonitoringServerError, match="prometheus exited with code"):
        server.start(timeout_s=30)
    assert "nonsense" in (tmp_path / "p.log").read_text()
