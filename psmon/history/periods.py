"""Calendar periods as analysts write them: `2025`, `2025-Q3`, `2025-07`, `2025-07-15`.

Periods are local (Asia/Ho_Chi_Minh) calendar periods, the same ones the rollups' `day` column
and the metric views use. A period is a half-open date range [start, end) plus its grain, so a
query can ask for "months of 2025" (`grain=month` within `Period.parse("2025")`).
"""

import re
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal, get_args

from psmon.errors import PsmonError

__all__ = ["GRAIN_NAMES", "Grain", "Period", "PeriodError"]

Grain = Literal["day", "month", "quarter", "year"]
GRAIN_NAMES: Final[tuple[Grain, ...]] = get_args(Grain)

_PATTERNS: Final = (
    (re.compile(r"^(\d{4})$"), "year"),
    (re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE), "quarter"),
    (re.compile(r"^(\d{4})-(\d{2})$"), "month"),
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "day"),
)


class PeriodError(PsmonError, ValueError):
    """A period string that is not YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD."""


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    grain: Grain
    start: date
    end: date  # exclusive

    @property
    def label(self) -> str:
        """The label the metric views use for this period."""
        if self.grain == "year":
            return f"{self.start.year}"
        if self.grain == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        if self.grain == "month":
            return f"{self.start:%Y-%m}"
        return self.start.isoformat()

    @classmethod
    def parse(cls, text: str) -> "Period":
        text = text.strip()
        for pattern, grain in _PATTERNS:
            m = pattern.match(text)
            if not m:
                continue
            try:
                parts = [int(g) for g in m.groups()]
                if grain == "year":
                    start = date(parts[0], 1, 1)
                    return cls("year", start, date(parts[0] + 1, 1, 1))
                if grain == "quarter":
                    start = date(parts[0], 3 * parts[1] - 2, 1)
                    return cls("quarter", start, _add_months(start, 3))
                if grain == "month":
                    start = date(parts[0], parts[1], 1)
                    return cls("month", start, _add_months(start, 1))
                start = date(parts[0], parts[1], parts[2])
                return cls("day", start, date.fromordinal(start.toordinal() + 1))
            except ValueError as exc:
                raise PeriodError(f"not a calendar period: {text!r} ({exc})") from exc
        raise PeriodError(f"period must be YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD; got {text!r}")
