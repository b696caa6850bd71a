"""The Alertmanager config generated with the rules.

- Grouped by `alertname` and `province`: one notification per kind of alert and province (all
  of a province's metrics below floor travel together); pipeline alerts, which have no
  province, each form a group of their own instead of one notification mixing a dead sink with
  a dead-letter spike.
- Routed by `severity`: `critical` (a worker, sink or ClickHouse down, the whole country silent)
  goes to the on-call receiver and repeats sooner; `warning`/`info` to the province operations
  receiver. Both post to psmon's webhook receiver (`psmon alerts listen`), which logs and stores
  every notification in ClickHouse; real channels are added beside it (see `RECEIVER_EXAMPLES`,
  written as comments at the top of the file, and docs/alerting.md).
- Inhibitions: only no worker up at all (`PsmonWorkerDown{workers_up="0"}`) silences the alerts
  it makes meaningless (no events, ratios, lag): one unreachable replica among several must not
  mute ratio alerts nationwide. The nationwide "no events" silences the 34 per-province ones.
  Both are scoped with `equal: [monitor]` (the Prometheus external label), so one site's outage
  never mutes another site's alerts in a shared Alertmanager.
- `send_resolved: true`, so the history table gets the end of each episode.
- With a token file, the webhook sends `Authorization: Bearer` read from it (`credentials_file`:
  the secret never enters this file), which the receiver requires.
"""

from typing import Any, Final

from psmon.alerting.rules import dump_yaml
from psmon.alerting.thresholds import Thresholds, duration_s

__all__ = ["RECEIVER_EXAMPLES", "build_alertmanager_config", "render_alertmanager_config"]

#: Copy-paste examples for real channels (Alertmanager 0.25 syntax), kept as comments in the file.
RECEIVER_EXAMPLES: Final = """\
# Receivers beyond psmon's webhook: add them to `receivers:` and reference them from a route.
# Secrets belong in files (…_file) mounted into the container, never in this file.
#
# - name: province-ops-email
#   email_configs:
#     - to: vanhanh@example.gov.vn
#       from: psmon@example.gov.vn
#       smarthost: smtp.example.gov.vn:587
#       auth_username: psmon@example.gov.vn
#       auth_password_file: /etc/alertmanager/secrets/smtp_password
#       send_resolved: true
#
# - name: oncall-telegram
#   telegram_configs:
#     - bot_token_file: /etc/alertmanager/secrets/telegram_bot_token   # Alertmanager >= 0.26; 0.25: bot_token
#       chat_id: -1001234567890
#       parse_mode: HTML
#       message: '{{ range .Alerts }}{{ .Annotations.summary_vi }}{{ "\\n" }}{{ end }}'
#       send_resolved: true
#
# - name: oncall-slack
#   slack_configs:
#     - api_url_file: /etc/alertmanager/secrets/slack_webhook_url
#       channel: '#psmon-alerts'
#       title: '{{ .CommonLabels.alertname }} {{ .CommonLabels.province_name }}'
#       text: '{{ range .Alerts }}{{ .Annotations.summary_en }}{{ "\\n" }}{{ end }}'
#       send_resolved: true
"""

_PROVINCE_RECEIVER: Final = "psmon-province-ops"
#: Alerts that a down worker makes meaningless (they would all fire at once).
_BLINDED_BY_WORKER_DOWN: Final = (
    "PsmonNoEvents",
    "PsmonNoEventsNationwide",
    "PsmonRatioBelowFloor",
    "PsmonEventTimeLag",
)
_ONCALL_RECEIVER: Final = "psmon-oncall"


def build_alertmanager_config(
    th: Thresholds, *, webhook_url: str, webhook_token_file: str | None = None
) -> dict[str, Any]:
    am = th.alertmanager
    oncall_repeat = am.repeat_interval if duration_s(am.repeat_interval) <= 3600 else "1h"
    webhook_config: dict[str, Any] = {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
    if webhook_token_file:  # the receiver requires `Authorization: Bearer <token>`
        webhook_config["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": webhook_token_file}}

    def webhook(name: str) -> dict[str, Any]:
        return {"name": name, "webhook_configs": [dict(webhook_config)]}

    return {
        "global": {"resolve_timeout": am.resolve_timeout},
        "route": {
            "receiver": _PROVINCE_RECEIVER,
            "group_by": ["alertname", "province"],
            "group_wait": am.group_wait,
            "group_interval": am.group_interval,
            "repeat_interval": am.repeat_interval,
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": _ONCALL_RECEIVER, "repeat_interval": oncall_repeat},
                {"matchers": ['severity=~"warning|info"'], "receiver": _PROVINCE_RECEIVER},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="PsmonWorkerDown"', 'workers_up="0"'],
                "target_matchers": [f'alertname=~"{"|".join(_BLINDED_BY_WORKER_DOWN)}"'],
                "equal": ["monitor"],
            },
            {
                "source_matchers": ['alertname="PsmonNoEventsNationwide"'],
                "target_matchers": ['alertname="PsmonNoEvents"'],
                "equal": ["monitor"],
            },
        ],
        "receivers": [webhook(_PROVINCE_RECEIVER), webhook(_ONCALL_RECEIVER)],
    }


def render_alertmanager_config(th: Thresholds, *, webhook_url: str, webhook_token_file: str | None = None) -> str:
    header = (
        "# Generated by `psmon rules` from thresholds.yaml (Alertmanager config); edit the thresholds, not this file.\n"
        + RECEIVER_EXAMPLES
        + "\n"
    )
    config = build_alertmanager_config(th, webhook_url=webhook_url, webhook_token_file=webhook_token_file)
    return dump_yaml(config, header=header)
