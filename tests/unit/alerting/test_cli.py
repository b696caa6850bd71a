"""`psmon rules`: the files it writes, and how it reports a bad thresholds file."""

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
        "prometheus/psmon-calendar.test.yml",
    }
    prom = yaml.safe_load((tmp_path / "prometheus/prometheus.yml").read_text())
    worker = prom["scrape_configs"][0]
    assert worker["static_configs"] == [{"targets": ["10.0.0.5:9108"]}]
    assert worker["dns_sd_configs"][0]["names"] == ["worker"] and worker["dns_sd_configs"][0]["port"] == 9108
    assert prom["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["am:9093"]}]
    am = yaml.safe_load((tmp_path / "alertmanager/alertmanager.yml").read_text())
    assert {c["url"] for r in am["receivers"] for c in r["webhook_configs"]} == {"http://hooks:1/alerts"}
    assert am["route"]["group_by"] == ["province"]


def test_rules_reports_bad_thresholds(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("metrics:\n  on_time: {target: 0.5, alert_below: 0.9, source: s}\n")
    result = runner.invoke(app, ["rules", "--out", str(tmp_path / "out"), "--thresholds", str(bad)])
    assert result.exit_code != 0
    assert "alert_below (0.9) must not exceed target (0.5)" in str(result.exception or "") + result.output
    assert not (tmp_path / "out").exists()
