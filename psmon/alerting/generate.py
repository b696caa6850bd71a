"""Writes the generated monitoring config into one directory (`psmon rules --out DIR`).

Layout, the same for `psmon up` (`<data_dir>`), the tests (a temp dir) and Docker Compose
(`deploy/`, committed, mounted at /etc/prometheus and /etc/alertmanager):

    DIR/prometheus/prometheus.yml      scrape jobs, rule file, Alertmanager targets
    DIR/prometheus/psmon-rules.yml     recording + alerting rules
    DIR/alertmanager/alertmanager.yml  routes, receivers (webhook), inhibitions

Files are written atomically (temp file + rename), so a Prometheus reloading while `psmon rules`
runs never reads half a file.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from psmon.alerting.alertmanager import render_alertmanager_config
from psmon.alerting.rules import RULES_FILE, render_prometheus_config, render_rules
from psmon.alerting.thresholds import Thresholds

__all__ = ["COMPOSE_TARGETS", "GeneratedFiles", "Targets", "write_config"]


@dataclass(frozen=True)
class Targets:
    """Where Prometheus scrapes and alerts, and where Alertmanager posts.

    Scrape targets are `host:port`, or `dns+name:port` for DNS service discovery.
    """

    workers: Sequence[str] = ("127.0.0.1:9108",)
    sinks: Sequence[str] = ()
    alertmanagers: Sequence[str] = ("127.0.0.1:9093",)
    webhook_url: str = "http://127.0.0.1:9095/alerts"
    #: file with the receiver's bearer token, as Alertmanager sees it (None: no Authorization header)
    webhook_token_file: str | None = None


#: The Docker Compose deployment (`deploy/`): workers and sinks found by DNS (scaled services),
#: Alertmanager and the webhook receiver (`psmon alerts listen`) by service name.
COMPOSE_TARGETS: Final = Targets(
    workers=("dns+worker:9108",),
    sinks=("dns+sink:9108",),
    alertmanagers=("alertmanager:9093",),
    webhook_url="http://alerts:9095/alerts",
    webhook_token_file="/run/secrets/alerts_token",  # the compose secret `alerts_token`
)


@dataclass(frozen=True)
class GeneratedFiles:
    prometheus_config: Path
    rules: Path
    alertmanager_config: Path
    all: tuple[Path, ...] = field(default=())


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_config(out_dir: Path, th: Thresholds, targets: Targets = Targets()) -> GeneratedFiles:
    prom = _write(
        out_dir / "prometheus" / "prometheus.yml",
        render_prometheus_config(
            th,
            worker_targets=targets.workers,
            sink_targets=targets.sinks,
            alertmanager_targets=targets.alertmanagers,
        ),
    )
    rules = _write(out_dir / "prometheus" / RULES_FILE, render_rules(th))
    am = _write(
        out_dir / "alertmanager" / "alertmanager.yml",
        render_alertmanager_config(th, webhook_url=targets.webhook_url, webhook_token_file=targets.webhook_token_file),
    )
    return GeneratedFiles(prom, rules, am, (prom, rules, am))
