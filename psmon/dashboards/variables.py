"""Template variables shared by the dashboards."""

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

__all__ = ["WINDOWS", "window_variable"]

#: The live windows of stage 2 (docs/operations.md, live rates), as in `psmon_ratio{window=...}`.
WINDOWS: tuple[str, ...] = ("5m", "1h", "24h", "today", "month", "ytd")


def window_variable(default: str = "1h") -> db.CustomVariable:
    return (
        db.CustomVariable("window")
        .label("Window")
        .values(",".join(WINDOWS))
        .current(dm.VariableOption(selected=True, text=default, value=default))
    )
