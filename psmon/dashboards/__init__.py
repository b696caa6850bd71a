"""Grafana dashboards as code: placeholder until the dashboards issue builds them."""
