"""Alerting: `thresholds.yaml` → Prometheus recording/alerting rules and an Alertmanager config.

- `thresholds`: the typed, validated thresholds file (targets, alert floors, volumes, office hours).
- `rules`: Prometheus recording and alerting rules, and `prometheus.yml`, generated from it.
- `alertmanager`: the Alertmanager config (group by province, route by severity, webhook).
- `ruletests`: `promtool test rules` files generated from the same thresholds.
- `generate`: writes all of them into one directory (`psmon rules --out DIR`).
- `receiver`: the webhook receiver (`psmon alerts listen`) that logs alerts and stores them in
  ClickHouse.
- `servers`: start/stop Prometheus and Alertmanager binaries on loopback (`psmon up`, tests).
"""
