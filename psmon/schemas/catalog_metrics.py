"""The live catalog metrics: names, definitions and labels of the four procedure shares.

The procedure catalog (`psmon.schemas.catalog`) unlocks four shares of Decision 766 that divide
by procedures, not by dossiers (docs/index766.md). Stage 2 exports them month to date per
province as `psmon_ratio{metric=..., window="month"}`, beside the six dossier ratios, so the
dashboards and the terminal view read them the same way; the alert rules read the gauges directly
(they are set-based shares over a calendar month, not `increase()` of counters).

Definitions (one place, so the live gauges, the alerts and the docs agree):

- `procedures_online` (item 3.1): procedures offered online (full or partial) ÷ procedures in force;
- `procedures_with_dossiers` (3.2): online procedures with ≥ 1 online dossier this month ÷ online
  procedures;
- `procedures_payment_integrated` (3.5a): fee-bearing online procedures integrated with online
  payment ÷ fee-bearing online procedures;
- `procedures_paid_online` (3.5b): integrated procedures with ≥ 1 online payment this month ÷
  integrated procedures.

"In force" means in force on any day of the month so far (local calendar, `in_force_during`).
An "online dossier" is an `application.submitted` with `channel="online"`; an "online payment"
a `payment.completed` with `method="online"` (payment events carry `procedure_code`, like every
event of the contract). The definitions of 3.5a and 3.5b are assumptions (docs/index766.md).
This module is pure vocabulary: it imports nothing but the catalog entry type.
"""

from typing import Final, Literal, get_args

from psmon.schemas.catalog import CatalogEntry

__all__ = [
    "CATALOG_METRICS",
    "CATALOG_METRIC_ITEMS",
    "CATALOG_METRIC_LABELS",
    "CATALOG_WINDOW",
    "CatalogMetric",
    "denominator_member",
    "numerator_member",
]

CatalogMetric = Literal[
    "procedures_online",
    "procedures_with_dossiers",
    "procedures_payment_integrated",
    "procedures_paid_online",
]
CATALOG_METRICS: Final[tuple[CatalogMetric, ...]] = get_args(CatalogMetric)
#: The only window of the catalog metrics: the local calendar month to date.
CATALOG_WINDOW: Final = "month"

#: metric -> Decision 766 item it mirrors.
CATALOG_METRIC_ITEMS: Final[dict[CatalogMetric, str]] = {
    "procedures_online": "3.1",
    "procedures_with_dossiers": "3.2",
    "procedures_payment_integrated": "3.5a",
    "procedures_paid_online": "3.5b",
}

#: metric -> (Vietnamese name, English name, Vietnamese unit, English unit) of the denominator.
CATALOG_METRIC_LABELS: Final[dict[CatalogMetric, tuple[str, str, str, str]]] = {
    "procedures_online": (
        "tỷ lệ thủ tục cung cấp trực tuyến",
        "share of procedures offered online",
        "thủ tục",
        "procedures",
    ),
    "procedures_with_dossiers": (
        "tỷ lệ DVC trực tuyến phát sinh hồ sơ",
        "share of online procedures that received an online dossier",
        "thủ tục trực tuyến",
        "online procedures",
    ),
    "procedures_payment_integrated": (
        "tỷ lệ thủ tục có phí tích hợp thanh toán trực tuyến",
        "share of fee-bearing online procedures integrated with online payment",
        "thủ tục trực tuyến có phí",
        "fee-bearing online procedures",
    ),
    "procedures_paid_online": (
        "tỷ lệ thủ tục tích hợp phát sinh thanh toán trực tuyến",
        "share of payment-integrated procedures with an online payment",
        "thủ tục đã tích hợp",
        "integrated procedures",
    ),
}


def denominator_member(metric: CatalogMetric, entry: CatalogEntry) -> bool:
    """Whether an in-force entry counts in `metric`'s denominator."""
    if metric == "procedures_online":
        return True
    if metric == "procedures_with_dossiers":
        return entry.is_online
    if metric == "procedures_payment_integrated":
        return entry.is_online and entry.fee_bearing
    return entry.payment_integrated


def numerator_member(metric: CatalogMetric, entry: CatalogEntry, *, had_dossier: bool, had_payment: bool) -> bool:
    """Whether a denominator member also counts in the numerator, given this month's activity of
    its procedure (an online dossier, an online payment)."""
    if metric == "procedures_online":
        return entry.is_online
    if metric == "procedures_with_dossiers":
        return had_dossier
    if metric == "procedures_payment_integrated":
        return entry.payment_integrated
    return had_payment
