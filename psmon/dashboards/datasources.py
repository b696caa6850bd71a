"""The three datasources the dashboards query, with fixed UIDs, and their provisioning entries.

Panels reference datasources by UID, so the UIDs here are part of the dashboards' contract:
Grafana provisioning (`deploy/grafana/provisioning/datasources/psmon.yaml`) creates them with
these UIDs, and `psmon dashboards push --with-datasources` creates or updates them by UID.
The defaults point at the docker-compose service names.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = [
    "ALERTMANAGER",
    "CLICKHOUSE",
    "CLICKHOUSE_PLUGIN",
    "PROMETHEUS",
    "DatasourceConfig",
    "provisioned_datasources",
]

#: The official Grafana ClickHouse plugin (not the community Altinity one).
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="psmon-prometheus")
ALERTMANAGER = DataSourceRef(type_val="alertmanager", uid="psmon-alertmanager")
CLICKHOUSE = DataSourceRef(type_val=CLICKHOUSE_PLUGIN, uid="psmon-clickhouse")


@dataclass(frozen=True, slots=True)
class DatasourceConfig:
    """Where Grafana reaches the servers (URLs as seen from Grafana, not from the host)."""

    prometheus_url: str = "http://prometheus:9090"
    alertmanager_url: str = "http://alertmanager:9093"
    clickhouse_url: str = "http://clickhouse:8123"
    clickhouse_user: str = "psmon"
    clickhouse_database: str = "psmon"


def provisioned_datasources(cfg: DatasourceConfig) -> list[dict[str, Any]]:
    """Datasource definitions in Grafana's provisioning/API shape (the password stays out:
    provisioning reads it from `$PSMON_GRAFANA_CLICKHOUSE_PASSWORD` in Grafana's environment)."""
    ch = urlparse(cfg.clickhouse_url)
    if ch.scheme not in ("http", "https") or not ch.hostname:
        raise ValueError(f"ClickHouse URL for Grafana must be http(s)://host:port, got {cfg.clickhouse_url!r}")
    secure = ch.scheme == "https"
    return [
        {
            "name": "psmon Prometheus",
            "type": PROMETHEUS.type_val,
            "uid": PROMETHEUS.uid,
            "access": "proxy",
            "url": cfg.prometheus_url,
            "isDefault": True,
            "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
        },
        {
            "name": "psmon Alertmanager",
            "type": ALERTMANAGER.type_val,
            "uid": ALERTMANAGER.uid,
            "access": "proxy",
            "url": cfg.alertmanager_url,
            "jsonData": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False},
        },
        {
            "name": "psmon ClickHouse",
            "type": CLICKHOUSE_PLUGIN,
            "uid": CLICKHOUSE.uid,
            "jsonData": {
                "host": ch.hostname,
                "port": ch.port or (8443 if secure else 8123),
                "protocol": "http",
                "secure": secure,
                "username": cfg.clickhouse_user,
                "defaultDatabase": cfg.clickhouse_database,
            },
        },
    ]
