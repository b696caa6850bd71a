"""Grafana dashboards as code, and the provisioning that makes them appear in Grafana.

Builder: grafana-foundation-sdk (Python), Grafana's own generated SDK. It is chosen over
grafanalib (community, last release 2024) because its models are generated from the same schemas
Grafana uses, it is released with Grafana, its builders are typed (mypy strict works), and its
`Dashboard.from_json` model doubles as the strict check of what we build (`check.py`). The SDK
has no ClickHouse query builder, so `panels.ClickHouseQuery` emits the official plugin's query
model itself.

Modules:
- `thresholds`: target / alert floor per metric (from `thresholds.yaml`, loaded
  by `load_thresholds`), which colour the rate panels.
- `datasources`: the three datasources with fixed UIDs and their provisioning entries.
- `promql`, `history_sql`: every query, in one place each, executed by the tests.
- `live`, `province`, `history`, `health`: one module per dashboard (UIDs are constants there).
- `check`: strict checks; `build`: JSON + provisioning files; `push`: upload with grafana-client.
"""
