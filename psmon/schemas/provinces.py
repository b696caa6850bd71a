"""Province registry: the 34 provinces in force since 2025-07-01 and the 63→34 merger map.

Loaded once from the CSV files shipped in `psmon/data/` (copies of the project's reference
data). A code is valid if it is one of the 34 current codes or one of the 63 old codes; old codes
map to the new province that absorbed them. Several current codes are also old codes of another
province (80 was Long An, now Tây Ninh), so "code as sent" and "code in 34 terms" are kept apart
everywhere, and the name a code had depends on the date (`name_at`).
"""

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from psmon.timeutil import MERGER_EFFECTIVE

__all__ = ["Province", "ProvinceRegistry", "registry"]


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name: str


class ProvinceRegistry:
    """Lookups over the 34 current provinces and the 63 old codes."""

    def __init__(self, current: list[Province], old_to_new: dict[str, str], old_names: dict[str, str]):
        self.current: tuple[Province, ...] = tuple(sorted(current, key=lambda p: p.code))
        self._by_code = {p.code: p for p in self.current}
        self._old_to_new = dict(old_to_new)
        self._old_names = dict(old_names)
        # Every code that may appear in an event, mapped to its 34-province code.
        self._to_current = {**self._old_to_new, **{c: c for c in self._by_code}}
        unknown_targets = set(self._old_to_new.values()) - set(self._by_code)
        if unknown_targets:
            raise ValueError(f"merger map points at unknown provinces: {sorted(unknown_targets)}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.current)

    @property
    def old_codes(self) -> tuple[str, ...]:
        return tuple(sorted(self._old_to_new))

    def to_current(self, code: str) -> str | None:
        """The 34-province code for a current or old code; None if the code is unknown."""
        return self._to_current.get(code)

    @property
    def to_current_fast(self) -> Callable[[str], str | None]:
        """`to_current` as the bound `get` of its dict: no Python-level call per lookup (stage 1)."""
        return self._to_current.get

    def name(self, code: str) -> str:
        """Name of a current (34) province."""
        return self._by_code[code].name

    def name_at(self, code: str, when: datetime) -> str:
        """The name `code` had at `when`: old names before the merger, new names after."""
        if when < MERGER_EFFECTIVE and code in self._old_names:
            return self._old_names[code]
        return self._by_code[code].name if code in self._by_code else self._old_names[code]

    def merger_rows(self) -> list[tuple[str, str, str, str]]:
        """(old_code, old_name, new_code, new_name) for every old code."""
        return [
            (old, self._old_names[old], new, self._by_code[new].name) for old, new in sorted(self._old_to_new.items())
        ]


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("psmon.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def registry() -> ProvinceRegistry:
    """The registry built from the shipped reference data (cached)."""
    current = [Province(r["code"], r["name"]) for r in _read_csv("provinces.csv")]
    merger = _read_csv("provinces_2025_merger.csv")
    return ProvinceRegistry(
        current,
        old_to_new={r["old_code"]: r["new_code"] for r in merger},
        old_names={r["old_code"]: r["old_name"] for r in merger},
    )
