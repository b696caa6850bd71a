"""Targets and alert floors that colour dashboard panels.

The single source of these numbers is meant to be the alerting package's `thresholds.yaml`
(BRIEF §2 Alerting: per metric a `target` and an `alert_below` floor). Until that file exists in
this tree, `DEFAULT_THRESHOLDS` holds the official targets from BRIEF §1 and conservative floors;
`load_thresholds(path)` reads any YAML of the shape

    metrics:
      online_submission:            # or online_submission_ratio
        target: 0.8
        alert_below: 0.5

(the `metrics:` level may be left out) and falls back to the defaults for metrics or keys it does
not find, so a partial file still builds; a file in which no metric is recognised is an error, not
a silent fallback. With no path given, the packaged `psmon/alerting/thresholds.yaml` is used when
it exists, so the dashboards follow the alerting thresholds as soon as that file ships (rebuild
`deploy/grafana` then; a test flags the committed copy as stale). Per-province overrides are not
applied to panels: a table column has one set of colours.

Colours: red below `alert_below`, amber between the floor and the target, green at or above it.
"""

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from psmon.errors import PsmonError
from psmon.streams.windows import METRICS as WINDOW_METRICS

__all__ = ["DEFAULT_THRESHOLDS", "METRICS", "MetricThreshold", "load_thresholds", "packaged_thresholds_path"]

#: The six live metrics of BRIEF §2, in display order (names as in `psmon_ratio{metric=...}`).
METRICS: tuple[str, ...] = tuple(WINDOW_METRICS)


@dataclass(frozen=True, slots=True)
class MetricThreshold:
    metric: str
    title: str
    target: float
    alert_below: float
    source: str


DEFAULT_THRESHOLDS: dict[str, MetricThreshold] = {
    t.metric: t
    for t in (
        MetricThreshold("online_submission", "Online submission", 0.80, 0.50,
                        "target 80% by end-2025 (QĐ 126/QĐ-BCĐCP); floor = the 2023 target of 50%"),
        MetricThreshold("full_online", "Full-online", 0.80, 0.40, "target 80% by 2025 (QĐ 942/QĐ-TTg)"),
        MetricThreshold("online_payment", "Online payment", 0.50, 0.30,
                        "no national target; Lâm Đồng reached 43.6% in H1 2023"),
        MetricThreshold("dossier_digitization", "Dossier digitization", 0.80, 0.50,
                        "full 766 score at 80%"),
        MetricThreshold("result_digitization", "Result digitization", 1.00, 0.60,
                        "target 100%; province-level floor 60% (Lâm Đồng 2023)"),
        MetricThreshold("on_time", "On time", 0.95, 0.80, "766 timeliness (20 points, linear)"),
    )
}  # fmt: skip


def packaged_thresholds_path() -> Path | None:
    """`psmon/alerting/thresholds.yaml` if the installed package ships it."""
    candidate = Path(str(resources.files("psmon"))) / "alerting" / "thresholds.yaml"
    return candidate if candidate.is_file() else None


def load_thresholds(path: Path | None = None) -> dict[str, MetricThreshold]:
    """Thresholds from `path` (default: the packaged thresholds.yaml, if any) over the defaults."""
    path = path or packaged_thresholds_path()
    if path is None:
        return dict(DEFAULT_THRESHOLDS)
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PsmonError(f"cannot read thresholds from {path}: {exc}") from exc
    metrics = doc.get("metrics", doc) if isinstance(doc, dict) else None
    if not isinstance(metrics, dict):
        raise PsmonError(f"{path}: expected a mapping of metric name to target/alert_below")
    out = dict(DEFAULT_THRESHOLDS)
    recognised = 0
    for name, spec in metrics.items():
        metric = str(name).removesuffix("_ratio")
        if metric not in out or not isinstance(spec, dict):
            continue
        recognised += 1
        changes: dict[str, Any] = {}
        for key in ("target", "alert_below"):
            if key in spec:
                value = spec[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                    raise PsmonError(f"{path}: metrics.{name}.{key} must be a ratio in 0..1, got {value!r}")
                changes[key] = float(value)
        if "source" in spec:
            changes["source"] = str(spec["source"])
        out[metric] = replace(out[metric], **changes)
    if not recognised:
        raise PsmonError(f"{path}: none of the metrics {', '.join(METRICS)} found (with target/alert_below)")
    for t in out.values():
        if t.alert_below > t.target:
            raise PsmonError(f"{path}: {t.metric}: alert_below {t.alert_below} is above target {t.target}")
    return out
