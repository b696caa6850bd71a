from datetime import date

import pytest

from psmon.history.periods import Period, PeriodError


@pytest.mark.parametrize(
    ("text", "grain", "start", "end", "label"),
    [
        ("2025", "year", date(2025, 1, 1), date(2026, 1, 1), "2025"),
        ("2026-Q3", "quarter", date(2026, 7, 1), date(2026, 10, 1), "2026-Q3"),
        ("2025-q4", "quarter", date(2025, 10, 1), date(2026, 1, 1), "2025-Q4"),
        ("2026-08", "month", date(2026, 8, 1), date(2026, 9, 1), "2026-08"),
        ("2025-12", "month", date(2025, 12, 1), date(2026, 1, 1), "2025-12"),
        ("2025-07-01", "day", date(2025, 7, 1), date(2025, 7, 2), "2025-07-01"),
    ],
)
def test_parse(text: str, grain: str, start: date, end: date, label: str) -> None:
    p = Period.parse(text)
    assert (p.grain, p.start, p.end, p.label) == (grain, start, end, label)


@pytest.mark.parametrize("text", ["2025-13", "2025-Q5", "25", "2025-02-30", "last month"])
def test_rejects_non_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        Period.parse(text)
