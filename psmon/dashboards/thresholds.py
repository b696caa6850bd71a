"""Targets and alert floors that colour dashboard panels, read from the alerting thresholds.

`thresholds.yaml` (`psmon/alerting/thresholds.py` loads and validates it) is the one source of
targets and floors: alerts page on the same `alert_below` that paints a cell red, and dashboards
show the same `target` that reports do. This module only adapts it to what a panel needs per
metric (a title, the national target and floor, the source note). Per-province overrides are not
applied to panels: a table column has one set of colours.

Colours: red below `alert_below`, amber between the floor and the target, green at or above it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from psmon.alerting.thresholds import load_thresholds as load_alerting_thresholds
from psmon.schemas.catalog_metrics import CATALOG_METRIC_ITEMS, CATALOG_METRICS
from psmon.schemas.metrics import METRICS as WINDOW_METRICS

__all__ = ["CATALOG_METRICS", "METRICS", "TITLES", "MetricThreshold", "load_thresholds"]

#: The six live metrics of the contract (docs/contract.md), in display order (names as in `psmon_ratio{metric=...}`).
METRICS: tuple[str, ...] = tuple(WINDOW_METRICS)

TITLES: Final[dict[str, str]] = {
    "online_submission": "Online submission",
    "full_online": "Full-online",
    "online_payment": "Online payment",
    "dossier_digitization": "Dossier digitization",
    "result_digitization": "Result digitization",
    "on_time": "On time",
    # the catalog shares, month to date (titles name their 766 item)
    "procedures_online": f"Offered online ({CATALOG_METRIC_ITEMS['procedures_online']})",
    "procedures_with_dossiers": f"Online with dossiers ({CATALOG_METRIC_ITEMS['procedures_with_dossiers']})",
    "procedures_payment_integrated": f"Payment integrated ({CATALOG_METRIC_ITEMS['procedures_payment_integrated']})",
    "procedures_paid_online": f"Paid online ({CATALOG_METRIC_ITEMS['procedures_paid_online']})",
}


@dataclass(frozen=True, slots=True)
class MetricThreshold:
    metric: str
    title: str
    target: float
    alert_below: float
    source: str


def load_thresholds(path: Path | None = None) -> dict[str, MetricThreshold]:
    """Panel thresholds of `path` (default: the packaged thresholds.yaml); errors as the loader's.
    The catalog shares are there when the file has them (`catalog:`)."""
    th = load_alerting_thresholds(path)
    out = {
        m: MetricThreshold(m, TITLES[m], spec.target, spec.alert_below, spec.source)
        for m in METRICS
        if (spec := th.metrics.get(m)) is not None  # type: ignore[call-overload]
    }
    for c, cspec in th.catalog.items():
        out[c] = MetricThreshold(c, TITLES[c], cspec.target, cspec.alert_below, cspec.source)
    return out
