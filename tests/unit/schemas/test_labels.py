"""The message catalogue names every metric and window in both languages, with the same fields."""

import string

from psmon.alerting.rules import METRIC_LABELS
from psmon.schemas.labels import (
    METRIC_NAMES,
    METRIC_SHORT,
    PHRASES,
    WINDOW_NAMES,
    column_name,
    metric_name,
    text,
    window_name,
)
from psmon.schemas.metrics import METRICS, WINDOWS
from psmon.settings import Settings


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_metric_and_window_has_both_names() -> None:
    assert set(METRIC_NAMES) == set(METRIC_SHORT) == set(METRICS)
    assert set(WINDOW_NAMES) == set(WINDOWS)
    for pair in (*METRIC_NAMES.values(), *METRIC_SHORT.values(), *WINDOW_NAMES.values()):
        assert all(pair) and pair[0] != "" and pair[1] != ""
    assert metric_name("online_payment", "vi") == "tỷ lệ thanh toán trực tuyến"
    assert metric_name("online_payment", "en", short=True) == "paid online"
    assert window_name("today", "vi") == "hôm nay"


def test_the_report_and_the_alerts_name_metrics_alike() -> None:
    """The alert texts (psmon rules) and the report/live table use the same human names."""
    assert {m: (vi, en) for m, (vi, en, _u, _v) in METRIC_LABELS.items()} == METRIC_NAMES


def test_every_phrase_has_both_languages_with_the_same_fields() -> None:
    for key, (vi, en) in PHRASES.items():
        assert vi and en, key
        assert fields(vi) == fields(en), key
    assert text("report.no_events", "en", period="2019") == "no events in 2019"


def test_vietnamese_is_the_default_language() -> None:
    assert Settings().lang == "vi"
    assert Settings(lang="en").lang == "en"


def test_table_headings_are_words_not_code_names() -> None:
    # every column a named question returns has a heading in both languages
    for column in ("rank", "period", "province_code", "province", "numerator", "denominator", "ratio", "total"):
        vi, en = column_name(column, "vi"), column_name(column, "en")
        assert vi and en and vi != column, column
    assert column_name("denominator", "vi") == "mẫu số (n)"
    assert column_name("1.1", "vi") == "1.1"  # a 766 item is named by its number in both
