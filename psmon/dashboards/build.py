"""Build every dashboard to JSON and write Grafana provisioning files next to it.

Layout written by `write_all(out)` (committed under `deploy/grafana/`, mounted by docker-compose):

    dashboards/psmon-live.json, psmon-province.json, psmon-history.json, psmon-health.json
    provisioning/datasources/psmon.yaml   Prometheus, Alertmanager, ClickHouse (official plugin)
    provisioning/dashboards/psmon.yaml    a file provider reading /etc/grafana/dashboards/psmon

Output is deterministic (sorted keys, fixed UIDs and panel ids), so a rebuild of unchanged code
gives byte-identical files and the committed copy can be checked for drift.

Every query and custom variable gets `allowCustomValue: false` (Grafana 11.2+): a viewer can pick
only the listed values, never type one. The SDK's model predates that key, so it is added here,
after the builders, and `check.py` requires it.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from psmon.dashboards.check import LISTED_VARIABLE_TYPES, check_dashboard
from psmon.dashboards.datasources import DatasourceConfig, provisioned_datasources
from psmon.dashboards.health import pipeline_health
from psmon.dashboards.history import history
from psmon.dashboards.live import live_operations
from psmon.dashboards.province import province_drilldown
from psmon.dashboards.thresholds import MetricThreshold, load_thresholds
from psmon.errors import PsmonError

__all__ = ["FOLDER_UID", "GRAFANA_DASHBOARDS_DIR", "BuildOptions", "build_all", "to_json", "write_all"]

FOLDER_UID = "psmon"
FOLDER_TITLE = "psmon"
#: Where the compose file mounts `deploy/grafana/dashboards` inside the Grafana container.
GRAFANA_DASHBOARDS_DIR = "/etc/grafana/dashboards/psmon"


@dataclass(frozen=True)
class BuildOptions:
    thresholds_path: Path | None = None
    datasources: DatasourceConfig = field(default_factory=DatasourceConfig)

    def thresholds(self) -> dict[str, MetricThreshold]:
        return load_thresholds(self.thresholds_path)


def to_json(dashboard: Dashboard) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    for v in out.get("templating", {}).get("list", []):
        if v.get("type") in LISTED_VARIABLE_TYPES:
            v["allowCustomValue"] = False
    return out


def build_all(options: BuildOptions | None = None) -> dict[str, dict[str, Any]]:
    """uid → dashboard JSON, checked; raises PsmonError listing every problem."""
    options = options or BuildOptions()
    th = options.thresholds()
    boards = [
        live_operations(th),
        province_drilldown(th),
        history(th, database=options.datasources.clickhouse_database),
        pipeline_health(),
    ]
    out = {}
    problems = []
    for b in boards:
        doc = to_json(b)
        problems += check_dashboard(doc)
        out[doc["uid"]] = doc
    if problems:
        raise PsmonError("dashboards failed their checks:\n  " + "\n  ".join(problems))
    return out


def provisioning(options: BuildOptions) -> dict[str, dict[str, Any]]:
    """relative path → YAML document of Grafana's provisioning files."""
    datasources = provisioned_datasources(options.datasources)
    for ds in datasources:
        ds["editable"] = False
        if ds["uid"].endswith("clickhouse"):
            # Grafana expands $VARS in provisioning files from its own environment
            ds["secureJsonData"] = {"password": "$PSMON_GRAFANA_CLICKHOUSE_PASSWORD"}
    return {
        "provisioning/datasources/psmon.yaml": {"apiVersion": 1, "datasources": datasources},
        "provisioning/dashboards/psmon.yaml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "psmon",
                    "orgId": 1,
                    "folder": FOLDER_TITLE,
                    "folderUid": FOLDER_UID,
                    "type": "file",
                    "disableDeletion": True,
                    "allowUiUpdates": False,
                    "updateIntervalSeconds": 30,
                    "options": {"path": GRAFANA_DASHBOARDS_DIR, "foldersFromFilesStructure": False},
                }
            ],
        },
    }


def write_all(out: Path, options: BuildOptions | None = None) -> list[Path]:
    """Write dashboards and provisioning under `out`; returns the files written."""
    options = options or BuildOptions()
    written = []
    for uid, doc in build_all(options).items():
        path = out / "dashboards" / f"{uid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    for rel, doc in provisioning(options).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# Generated by `psmon dashboards build`; edit psmon/dashboards/, not this file.\n"
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        written.append(path)
    return written
