"""The 766 points against the worked values of docs/index766.md (portal-checked where noted)."""

import re

import pytest

from psmon.schemas.index766 import (
    ALL_ITEMS,
    CATALOG_ITEMS,
    COMPUTABLE_MAX_POINTS,
    EVENT_MAX_POINTS,
    ITEMS,
    MISSING_ITEMS,
    Rule,
    item_points,
    parse_rule,
    score,
    with_rule,
)
from psmon.schemas.metrics import COUNTERS

BY_ITEM = {i.item: i for i in ITEMS}


def counters(**overrides: int) -> dict[str, int]:
    base = dict.fromkeys(COUNTERS, 0)
    return {**base, **overrides}


def test_computable_maximum_is_42_points_from_events_and_52_with_a_catalog() -> None:
    assert EVENT_MAX_POINTS == 42
    assert COMPUTABLE_MAX_POINTS == 52
    assert sum(i.points for i in CATALOG_ITEMS) == 10
    # what is still missing adds up to the rest of the 100 points
    assert sum(pts for _, pts, _ in MISSING_ITEMS) == 100 - 52


@pytest.mark.parametrize(
    ("item", "numerator", "denominator", "points"),
    [
        ("3.1", 79, 100, 1.98),  # full at 80%: 2 x 0.79 / 0.8 = 1.975
        ("3.1", 80, 100, 2.00),
        ("3.2", 3, 4, 3.00),  # linear
        ("3.5a", 2, 5, 1.00),  # full at 80%: 2 x 0.4 / 0.8
        ("3.5b", 0, 0, 0.0),  # no integrated procedure: no points
    ],
)
def test_catalog_items(item: str, numerator: int, denominator: int, points: float) -> None:
    by_item = {i.item: i for i in ALL_ITEMS}
    assert round(item_points(by_item[item], numerator, denominator), 2) == points


def test_catalog_item_rules_are_configurable() -> None:
    items = parse_rule("3.5a=linear", ALL_ITEMS)
    assert {i.item: i.rule for i in items}["3.5a"] == "linear"
    assert round(item_points({i.item: i for i in items}["3.5a"], 2, 5), 2) == 0.8
    with pytest.raises(ValueError, match="unknown index item"):
        parse_rule("3.5a=linear")  # only the event items by default


@pytest.mark.parametrize(
    ("item", "numerator", "denominator", "points"),
    [
        ("2.1", 8842, 10000, 17.68),  # docs/index766.md: 88.42% -> 17.68 (checked against the portal)
        ("4.1", 7248, 10000, 4.35),  # 72.48% -> 4.35 (checked)
        ("4.2", 2427, 10000, 0.97),  # 24.27% -> 0.97 (the portal applies linear)
        ("3.3", 4000, 10000, 4.80),  # full at 50%: 40% -> 6 x 0.4 / 0.5
        ("3.3", 6000, 10000, 6.00),  # above 50%: full points
        ("3.6", 8421, 10000, 5.05),  # linear: 84.21% of fee-bearing dossiers paid online
        ("3.6", 12000, 10000, 6.00),  # a ratio above 1 (payments of earlier dossiers) is capped
        ("2.1", 0, 0, 0.0),  # no denominator: no points
    ],
)
def test_item_points_match_the_worked_examples(item: str, numerator: int, denominator: int, points: float) -> None:
    assert round(item_points(BY_ITEM[item], numerator, denominator), 2) == points


def test_score_of_a_province_month() -> None:
    # One province month built from the worked examples above.
    c = counters(
        submitted=10000,
        submitted_online=4000,
        submitted_fee_bearing=10000,
        payments_online=8421,
        resolved=10000,
        resolved_on_time=8842,
        digitized_result=7248,
        digitized_dossier=2427,
    )
    s = score(c)
    assert s == {
        "i2_1_on_time": 17.68,
        "i3_3_online_submission": 4.80,
        "i3_6_paid_online": 5.05,
        "i4_1_result_digitized": 4.35,
        "i4_2_dossier_digitized": 0.97,
        "total": 32.86,  # summed before rounding: 17.684 + 4.8 + 5.0526 + 4.3488 + 0.9708
    }


def test_rule_override_full_at_80_percent() -> None:
    items = with_rule(ITEMS, "4.2", "full_at", 0.8)
    item = next(i for i in items if i.item == "4.2")
    assert round(item_points(item, 2427, 10000), 2) == 1.21  # 4 x 0.2427 / 0.8
    assert item_points(item, 9000, 10000) == 4.0


def test_rule_override_rejects_unknown_items_and_thresholds() -> None:
    with pytest.raises(ValueError, match="unknown index item"):
        with_rule(ITEMS, "9.9", "linear")
    with pytest.raises(ValueError, match="full_at"):
        with_rule(ITEMS, "4.2", "full_at", 0)


@pytest.mark.parametrize(
    ("text", "rule", "full_at"),
    [("4.2=full:0.8", "full_at", 0.8), ("4.2=full", "full_at", 1.0), ("3.3=linear", "linear", 1.0)],
)
def test_parse_rule_is_with_rule(text: str, rule: Rule, full_at: float) -> None:
    item = text.partition("=")[0]
    assert parse_rule(text) == with_rule(ITEMS, item, rule, full_at)
    base = with_rule(ITEMS, "2.1", "full_at", 0.9)
    assert parse_rule(text, base) == with_rule(base, item, rule, full_at)  # applies to the items it is given


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4.2=half", "rule must be linear or full:X, got 'half'"),
        ("4.2", "rule must be linear or full:X, got ''"),
        ("9.9=linear", "unknown index item '9.9'"),
        ("4.2=full:1.5", "full_at must be within (0, 1], got 1.5"),
        ("4.2=full:x", "could not convert string to float: 'x'"),
    ],
)
def test_parse_rule_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rule(text)
