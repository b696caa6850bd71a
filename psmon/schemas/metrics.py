"""The contract's metric vocabulary: counters, the six ratios, and the live windows.

Every layer speaks these names: stage 2 counts `COUNTERS` per province, the Prometheus exporter
labels its series with them, ClickHouse rollups have one column per counter, the alert rules,
dashboards, reports and the 766 index compute `METRICS` from them. They are part of the event
contract (docs/contract.md), so they live beside it at the bottom of the package and import
nothing but the validated event type; no stage owns them.
"""

from typing import Final, Literal, get_args

from psmon.schemas.validation import ValidEvent

__all__ = ["COUNTERS", "COUNTER_INDEX", "METRICS", "WINDOWS", "Metric", "Window", "counter_increments"]

COUNTERS: Final = (
    "submitted",
    "submitted_online",
    "submitted_full_online",
    "submitted_fee_bearing",
    "resolved",
    "resolved_on_time",
    "payments",
    "payments_online",
    "digitized_dossier",
    "digitized_result",
)
COUNTER_INDEX: Final = {name: i for i, name in enumerate(COUNTERS)}

Metric = Literal[
    "online_submission",
    "full_online",
    "online_payment",
    "dossier_digitization",
    "result_digitization",
    "on_time",
]
#: metric -> (numerator counter, denominator counter), as in the event contract (docs/contract.md).
METRICS: Final[dict[Metric, tuple[str, str]]] = {
    "online_submission": ("submitted_online", "submitted"),
    "full_online": ("submitted_full_online", "submitted"),
    "online_payment": ("payments_online", "payments"),
    "dossier_digitization": ("digitized_dossier", "submitted"),
    "result_digitization": ("digitized_result", "resolved"),
    "on_time": ("resolved_on_time", "resolved"),
}

Window = Literal["5m", "1h", "24h", "today", "month", "ytd"]
WINDOWS: Final[tuple[Window, ...]] = get_args(Window)


def counter_increments(event: ValidEvent) -> tuple[int, ...]:
    """Indices of the counters one event increments."""
    idx = COUNTER_INDEX
    t = event.event_type
    if t == "application.submitted":
        out = [idx["submitted"]]
        if event.channel == "online":
            out.append(idx["submitted_online"])
            if event.service_mode == "full_online":
                out.append(idx["submitted_full_online"])
        if event.fee_bearing:
            out.append(idx["submitted_fee_bearing"])
        return tuple(out)
    if t == "application.resolved":
        return (idx["resolved"], idx["resolved_on_time"]) if event.on_time else (idx["resolved"],)
    if t == "payment.completed":
        return (idx["payments"], idx["payments_online"]) if event.method == "online" else (idx["payments"],)
    if t == "record.digitized":
        return (idx["digitized_dossier"],) if event.kind == "dossier" else (idx["digitized_result"],)
    raise ValueError(f"unknown event type {t!r}")
