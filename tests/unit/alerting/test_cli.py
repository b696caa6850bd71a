"""`psmon rules`: the files it writes (the receiver's token wired into Alertmanager's webhook),
how it reports a bad thresholds file; `psmon alerts listen`: one-line refusals to start."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from psmon.cli.main import app

runner = CliRunner()


def test_rules_writes_config_rules_and_tests(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "rules",
            "--out",
            str(tmp_path),
            "--tests",
            "--worker",
            "10.0.0.5:9108",
            "--worker",
            "dns+worker:9108",
            "--alertmanager",
            "am:9093",
            "--webhook",
            "http://hooks:1/alerts",
        ],
    )
    assert result.exit_code == 0, result.output
    written = {Path(line).relative_to(tmp_path).as_posix() for line in result.output.split()}
    assert written == {
        "prometheus/prometheus.yml",
        "prometheus/psmon-rules.yml",
        "alertmanager/alertmanager.yml",
        "prometheus/psmon-rules.test.yml",
        "prometheus/psmon-pipeline.test.yml",
        "prometheus/psmon-down.test.yml",
        "prometheus/psmon-calendar.test.yml",
        "prometheus/psmon-catalog.test.yml",
    }
    prom = yaml.safe_load((tmp_path / "prometheus/prometheus.yml").read_text())
    worker = prom["scrape_configs"][0]
    assert worker["static_configs"] == [{"targets": ["10.0.0.5:9108"]}]
    assert worker["dns_sd_configs"][0]["names"] == ["worker"] and worker["dns_sd_configs"][0]["port"] == 9108
    assert prom["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["am:9093"]}]
    am = yaml.safe_load((tmp_path / "alertmanager/alertmanager.yml").read_text())
    assert {c["url"] for r in am["receivers"] for c in r["webhook_configs"]} == {"http://hooks:1/alerts"}
    assert am["route"]["group_by"] == ["alertname", "province"]


def test_rules_reports_bad_thresholds(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("metrics:\n  on_time: {target: 0.5, alert_below: 0.9, source: s}\n")
    result = runner.invoke(app, ["rules", "--out", str(tmp_path / "out"), "--thresholds", str(bad)])
    assert result.exit_code != 0
    assert "alert_below (0.9) must not exceed target (0.5)" in str(result.exception or "") + result.output
    assert not (tmp_path / "out").exists()


def test_rules_sends_the_receiver_token_from_a_file(tmp_path: Path) -> None:
    out, data = tmp_path / "out", tmp_path / "data"
    given = runner.invoke(app, ["rules", "--out", str(out), "--webhook-token-file", "/run/secrets/alerts_token"])
    assert given.exit_code == 0, given.output
    am = yaml.safe_load((out / "alertmanager/alertmanager.yml").read_text())
    configs = [c for r in am["receivers"] for c in r["webhook_configs"]]
    assert len(configs) == 2
    for c in configs:
        assert c["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/alerts_token"}
    assert "/run/secrets" not in (out / "prometheus/prometheus.yml").read_text()
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not installed: run `make sysdeps`"
    check = subprocess.run([amtool, "check-config", str(out / "alertmanager/alertmanager.yml")], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # the local default: the file psmon up makes in the data directory
    default = runner.invoke(app, ["rules", "--out", str(out)], env={"PSMON_DATA_DIR": str(data)})
    assert default.exit_code == 0, default.output
    am = yaml.safe_load((out / "alertmanager/alertmanager.yml").read_text())
    auth = am["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]
    assert auth["credentials_file"] == str((data / "alerts-token").resolve())


def listen(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`psmon alerts listen` as its own process (it would otherwise run its service in the test's)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PSMON_")}
    return subprocess.run(
        [sys.executable, "-m", "psmon.cli.main", "alerts", "listen", "--data-dir", str(tmp_path / "data"), *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_listen_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    proc = listen(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "psmon: no alerts token: set --token-file or PSMON_ALERTS_TOKEN_FILE to a file holding the bearer token "
        "Alertmanager sends (http_config.authorization.credentials_file)"
    ]
    missing = listen(tmp_path, env={"PSMON_ALERTS_TOKEN_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert f"alerts token file {tmp_path / 'nope'}: No such file or directory" in missing.stderr


def test_listen_on_a_busy_port_is_one_line_naming_the_port_and_setting(tmp_path: Path) -> None:
    """Issue 15: a traceback, not naming the setting."""
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = listen(tmp_path, "--port", str(port), "--token-file", str(token))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"psmon: alerts port 127.0.0.1:{port} is in use (set --port or PSMON_ALERTS_PORT, --host or PSMON_ALERTS_HOST)"
    ]
    assert "t0ken" not in proc.stdout + proc.stderr
