"""The Decision 766 service index: the items psmon can score from events, and their points.

Rules follow docs/index766.md (the portal's scoring as reconstructed by third parties):
**linear** = points × ratio; **full at X** = full points when ratio ≥ X, else points × ratio ÷ X.
Ratios can exceed 1 when numerator and denominator come from different event types (a payment in
July for a dossier submitted in June), so points are capped at the item's maximum. A period
without a denominator scores no points for that item (NULL ratio, 0 points) rather than a guess.

One definition serves both paths: `index_select_sql` builds the SQL of the `index766_month` view
(migration 2) and of `psmon query index` from the same `ITEMS`, and `score` is the pure-Python
scorer the tests check against the worked values of docs/index766.md. The rules that it marks
unverified (3.3's weight and threshold, 4.2's linear rule) are plain data here, so a different
assumption is a `with_rule` call (or a `parse_rule` of `psmon query index --rule`), not new code.

`CATALOG_ITEMS` (3.1, 3.2, 3.5a, 3.5b; 10 points) divide by counts of the procedure catalog
(`psmon.schemas.catalog`) rather than by event counters, so they are scored only for a period
that a catalog covers: with one, psmon scores 52 of the 100 points (`COMPUTABLE_MAX_POINTS`),
without, the 42 of the event items (`EVENT_MAX_POINTS`), and the answer says why the others are
missing (`catalog_missing_items`).
"""

from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = [
    "ALL_ITEMS",
    "CATALOG_ITEMS",
    "COMPUTABLE_MAX_POINTS",
    "EVENT_MAX_POINTS",
    "ITEMS",
    "MISSING_ITEMS",
    "IndexItem",
    "Rule",
    "catalog_missing_items",
    "index_select_sql",
    "item_points",
    "parse_rule",
    "score",
    "with_rule",
]

Rule = Literal["linear", "full_at"]


@dataclass(frozen=True)
class IndexItem:
    item: str  # the index's own number, e.g. "2.1"
    column: str  # SQL-safe name, e.g. "i2_1_on_time"
    title: str
    numerator: str  # counter names of psmon/schemas/metrics.py COUNTERS
    denominator: str
    points: float
    rule: Rule = "linear"
    full_at: float = 1.0
    note: str = ""


ITEMS: Final[tuple[IndexItem, ...]] = (
    IndexItem(
        "2.1",
        "i2_1_on_time",
        "on-time resolution",
        "resolved_on_time",
        "resolved",
        20,
        note="psmon's denominator is resolved dossiers; the portal also counts dossiers still within their deadline",
    ),
    IndexItem(
        "3.3",
        "i3_3_online_submission",
        "dossiers submitted online",
        "submitted_online",
        "submitted",
        6,
        rule="full_at",
        full_at=0.5,
        note="6-point weight and full-at-50% fitted to portal data (unverified)",
    ),
    IndexItem(
        "3.6",
        "i3_6_paid_online",
        "dossiers paid online",
        "payments_online",
        "submitted_fee_bearing",
        6,
        note="denominator: fee-bearing dossiers submitted",
    ),
    IndexItem("4.1", "i4_1_result_digitized", "results issued electronically", "digitized_result", "resolved", 6),
    IndexItem(
        "4.2",
        "i4_2_dossier_digitized",
        "dossiers with digitized components",
        "digitized_dossier",
        "submitted",
        4,
        note="portal applies linear although its formula document says full at 80%",
    ),
)

#: The items scored against the procedure catalog in force during the period (`psmon catalog
#: load`): their counters count catalog entries, per province (`psmon.history.catalog`), so they
#: are scored only when a catalog covers the period. 3.5a's and 3.5b's definitions are psmon's
#: reading of the index (assumptions), and their rules are configurable like the others.
CATALOG_ITEMS: Final[tuple[IndexItem, ...]] = (
    IndexItem(
        "3.1",
        "i3_1_offered_online",
        "procedures offered online",
        "catalog_online",
        "catalog_procedures",
        2,
        rule="full_at",
        full_at=0.8,
        note="catalog entries with online_level full or partial, of all entries in force",
    ),
    IndexItem(
        "3.2",
        "i3_2_online_with_dossier",
        "online procedures with an online dossier",
        "catalog_online_with_dossier",
        "catalog_online",
        4,
        note="online catalog procedures with at least one online submission in the period",
    ),
    IndexItem(
        "3.5a",
        "i3_5a_payment_integrated",
        "fee-bearing online procedures integrated with online payment",
        "catalog_fee_online_integrated",
        "catalog_fee_online",
        2,
        rule="full_at",
        full_at=0.8,
        note="definition assumed by psmon (not verified against the portal)",
    ),
    IndexItem(
        "3.5b",
        "i3_5b_integrated_paid_online",
        "payment-integrated procedures with an online payment",
        "catalog_integrated_paid_online",
        "catalog_integrated",
        2,
        rule="full_at",
        full_at=0.8,
        note="definition assumed by psmon (not verified against the portal); a payment counts for the "
        "procedure_code it carries",
    ),
)
#: Every item psmon can score: the event items, then the catalog items.
ALL_ITEMS: Final = ITEMS + CATALOG_ITEMS
#: Points computable from events alone (42), and with a catalog covering the period (52).
EVENT_MAX_POINTS: Final = sum(i.points for i in ITEMS)
COMPUTABLE_MAX_POINTS: Final = sum(i.points for i in ALL_ITEMS)

#: (group or item, points, why psmon cannot score it) — shown beside every index result.
MISSING_ITEMS: Final[tuple[tuple[str, float, str], ...]] = (
    ("1 public disclosure", 18, "not in portal events"),
    ("4.3 reuse of digitized data", 2, "contract v1 has no such field"),
    ("4.4 personal data store", 4, "contract v1 has no such field"),
    ("4.5 population-database connection", 4, "contract v1 has no such field"),
    ("4.x e-certified copies", 2, "contract v1 has no such field"),
    ("6 satisfaction", 18, "not in portal events"),
)


def with_rule(items: tuple[IndexItem, ...], item: str, rule: Rule, full_at: float = 1.0) -> tuple[IndexItem, ...]:
    """`items` with one item's rule replaced (e.g. 4.2 → full at 0.8)."""
    if item not in {i.item for i in items}:
        raise ValueError(f"unknown index item {item!r}; one of {', '.join(i.item for i in items)}")
    if not 0 < full_at <= 1:
        raise ValueError(f"full_at must be within (0, 1], got {full_at}")
    return tuple(replace(i, rule=rule, full_at=full_at) if i.item == item else i for i in items)


def parse_rule(text: str, items: tuple[IndexItem, ...] = ITEMS) -> tuple[IndexItem, ...]:
    """`items` with the rule `text` applied: `4.2=full:0.8` (full at 80%), `4.2=full` (full at
    100%) or `3.3=linear` (`3.5a=linear` too, with `items=ALL_ITEMS`). Raises ValueError, naming what is wrong."""
    item, _, spec = text.partition("=")
    kind, _, at = spec.partition(":")
    if kind not in ("linear", "full"):
        raise ValueError(f"rule must be linear or full:X, got {spec!r}")
    return with_rule(items, item, "linear" if kind == "linear" else "full_at", float(at) if at else 1.0)


def item_points(item: IndexItem, numerator: int, denominator: int) -> float:
    """Points of one item, unrounded; 0 without a denominator."""
    if denominator == 0:
        return 0.0
    ratio = numerator / denominator
    share = ratio if item.rule == "linear" else ratio / item.full_at
    return min(item.points, item.points * share)


def score(counters: dict[str, int], items: tuple[IndexItem, ...] = ITEMS) -> dict[str, float]:
    """Points per item column plus `total`, rounded to 2 decimals as the portal shows them."""
    out = {i.column: round(item_points(i, counters[i.numerator], counters[i.denominator]), 2) for i in items}
    out["total"] = round(sum(item_points(i, counters[i.numerator], counters[i.denominator]) for i in items), 2)
    return out


def _points_sql(item: IndexItem) -> str:
    num, den = f"toFloat64({item.numerator})", item.denominator
    share = f"{num} / {den}" if item.rule == "linear" else f"{num} / {den} / {item.full_at!r}"
    return f"if({den} = 0, 0, least({item.points!r}, {item.points!r} * {share}))"


def index_select_sql(source: str, items: tuple[IndexItem, ...] = ITEMS) -> str:
    """SELECT over a counters view (`counters_month`, ...): ratios, points, total, rank per period.

    Columns: period, period_start, province_code, then per item `<column>_ratio` and
    `<column>` (points, rounded to 2 decimals), `total`, `max_points`, `rank` (by total within the
    period, descending; ties share the lower code's order since the portal publishes none).
    """
    cols = []
    for i in items:
        cols.append(f"if({i.denominator} = 0, NULL, {i.numerator} / {i.denominator}) AS {i.column}_ratio")
        cols.append(f"round({_points_sql(i)}, 2) AS {i.column}")
    total = " + ".join(_points_sql(i) for i in items)
    max_points = sum(i.points for i in items)
    return (
        "SELECT period, period_start, province_code, "
        + ", ".join(cols)
        + f", round({total}, 2) AS total, toFloat64({max_points!r}) AS max_points, "
        f"row_number() OVER (PARTITION BY period ORDER BY {total} DESC, province_code) AS rank "
        f"FROM {source}"
    )


def catalog_missing_items(why: str, items: tuple[IndexItem, ...] = CATALOG_ITEMS) -> tuple[tuple[str, float, str], ...]:
    """One (item, points, reason) per catalog item, all with the reason `why`."""
    return tuple((f"{i.item} {i.title}", i.points, why) for i in items)
