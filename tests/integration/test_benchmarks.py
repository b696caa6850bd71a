"""The benchmark harness runs end to end at its smoke size and reports every measurement.

No timing is asserted (these machines are shared and noisy): only that each measurement ran,
produced positive numbers, and that the table and the JSON agree on what was measured.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

POSITIVE = [
    ("corpus", "produce_events_per_s"),
    ("raw_consume", "events_per_s"),
    ("cpu", "stage1_validate_encode_events_per_s"),
    ("cpu", "stage1_reference_validate_encode_events_per_s"),
    ("cpu", "validate_events_per_s"),
    ("cpu", "validate_reference_events_per_s"),
    ("cpu", "stage2_decode_observe_events_per_s"),
    ("worker", "events_per_s"),
    ("worker", "stage1_validate_events_per_s"),
    ("same_job", "events_per_s"),
    ("stage2", "events_per_s"),
    ("sink", "rows_per_s"),
    ("raw_insert", "rows_per_s"),
    ("replay", "events_per_s"),
    ("replay", "write_events_per_s"),
    ("pipeline", "events_per_s"),
    ("latency", "p50_ms"),
    ("latency", "p99_ms"),
    ("latency", "markers"),
    ("worker_quarter", "events_per_s"),
    ("scaleout", "events_per_s"),
]


@pytest.mark.timeout(1200)
def test_smoke_run_reports_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--work-dir", str(tmp_path), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for section, key in POSITIVE:
        assert results[section][key] > 0, (section, key, results.get(section))
    assert results["worker"]["events"] == results["meta"]["count"] == 4000
    assert results["worker"]["peak_rss_mib"][0] > 0 and results["worker_quarter"]["peak_rss_mib"][0] > 0
    assert len(results["scaleout"]["peak_rss_mib"]) == 2
    assert results["replay"]["written"] == results["replay"]["events"] > 0
    # the replay's baseline inserts exactly the rows the replay stored
    assert results["replay_raw_insert"]["rows"] == results["replay"]["written"]
    assert results["replay_raw_insert"]["batch_rows"] == results["replay"]["batch_rows"]
    values = results["evaluation"]["values"]
    assert results["same_job"]["events"] == 4000 and results["same_job"]["invalid"] == results["worker"]["invalid"]
    recovery = results["recovery"]
    assert recovery["checkpoint"]["restored_partitions"] > 0 and recovery["full_reread"]["restored_partitions"] == 0
    assert recovery["checkpoint"]["rebuild_records"] < recovery["full_reread"]["rebuild_records"]
    assert recovery["speedup"] is not None and recovery["speedup"] > 0
    for ratio in (
        "worker_vs_raw",
        "worker_vs_same_job",
        "sink_vs_raw_insert",
        "pipeline_vs_raw",
        "pipeline_vs_same_job",
        "replay_vs_raw_insert",
        "rss_growth_4x",
        "scaleout_speedup",
        "validate_fast_vs_reference",
    ):
        assert values[ratio] is not None and values[ratio] > 0, ratio
    assert set(results["evaluation"]["targets"].values()) == {"n/a (smoke size)"}
    assert "raw baseline" in proc.stdout and "target:" in proc.stdout
