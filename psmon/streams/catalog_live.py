"""Stage 2's catalog metrics: the current procedure catalog and this month's procedure activity.

Three pieces of pure state (no Kafka; `catalog_service.CatalogService` feeds them):

- `CatalogView`: the catalog as read from the compacted topic `psmon.catalog` (key
  `province/procedure`, value `schemas.catalog.encode_entry`, a null value deletes the key). Every
  worker reads the whole topic (no consumer group), so every worker holds the whole catalog, a
  few tens of thousands of entries. A key's versions are kept as they arrive: a later
  `valid_from` is a new version that ends the previous one where it starts (as `psmon catalog
  load` publishes them), the same `valid_from` replaces a version. After a compaction only the
  newest version of a key is left, so a worker restarted after one knows only that version;
  that is all the month to date ever needs unless a version changed during this very month.
- `CatalogActivity`: per province, per local calendar month, the procedure codes with at least
  one online `application.submitted` and those with at least one online `payment.completed`.
  It is fed by `LiveRates.observe` for new events only (duplicates and redeliveries never
  reach it), and is **partitioned like the rest of stage 2's state**: a province lives on the
  partition of `psmon.valid` it was seen on, `drop(partitions)` forgets revoked ones, and
  `to_checkpoint(partition)` / `restore(partition, data)` save and load one partition's part as
  plain JSON (lists of strings), so stage 2's checkpoints must include it beside the windows.
  Only the newest two months of a province are kept (the current month, and the previous one for
  events arriving late across the month boundary): memory is bounded by provinces × procedures.
- `CatalogGauges`: the four shares of `schemas.catalog_metrics`, month to date at the watermark,
  exported as `psmon_ratio{province, metric, window="month"}` (and its denominator) for the
  provinces this worker owns, the same ownership rule as every other stage-2 series.

The catalog part of a share (which procedures are in force, online, fee-bearing, integrated) only
changes with the catalog or the day; it is cached per province and recomputed when either
changes, so a refresh every second costs a set intersection per province, not a catalog scan.
"""

import contextlib
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from psmon.metrics import PipelineMetrics
from psmon.schemas.catalog import CatalogEntry, decode_entry
from psmon.schemas.catalog_metrics import (
    CATALOG_METRICS,
    CATALOG_WINDOW,
    CatalogMetric,
    denominator_member,
    numerator_member,
)
from psmon.schemas.validation import ValidEvent
from psmon.streams.windows import Ratio
from psmon.timeutil import local_date

__all__ = ["CatalogActivity", "CatalogGauges", "CatalogView", "month_number"]

#: Months of activity kept per province: the current one and the one before it.
_KEPT_MONTHS: Final = 2


def month_number(day: date) -> int:
    """A local calendar month as one increasing integer (year * 12 + month - 1)."""
    return day.year * 12 + day.month - 1


def _month_first(month: int) -> date:
    return date(month // 12, month % 12 + 1, 1)


class CatalogView:
    """The catalog read from `psmon.catalog`: every key's versions (see module docstring)."""

    def __init__(self) -> None:
        # province -> procedure code -> versions ordered by valid_from
        self._versions: dict[str, dict[str, list[CatalogEntry]]] = {}
        #: bumped on every change, so cached catalog figures know they are stale
        self.generation = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic: an entry, or a tombstone (null value) deleting its key.
        Raises ValueError for a record that is neither (the caller logs and skips it)."""
        if value is None:
            province, _, procedure = (key or b"").decode().partition("/")
            if not procedure:
                raise ValueError(f"tombstone with a key that is not province/procedure: {key!r}")
            self.delete(province, procedure)
            return
        self.put(decode_entry(value))

    def put(self, entry: CatalogEntry) -> None:
        versions = self._versions.setdefault(entry.province_code, {}).setdefault(entry.procedure_code, [])
        kept = [v for v in versions if v.valid_from != entry.valid_from]
        kept.append(entry)
        kept.sort(key=lambda v: v.valid_from)
        versions[:] = kept
        self.generation += 1

    def delete(self, province: str, procedure: str) -> None:
        procs = self._versions.get(province)
        if procs is not None and procs.pop(procedure, None) is not None:
            self.generation += 1

    @property
    def provinces(self) -> list[str]:
        return sorted(p for p, procs in self._versions.items() if procs)

    def __len__(self) -> int:
        return sum(len(procs) for procs in self._versions.values())

    def in_force(self, province: str, first: date, end: date) -> list[CatalogEntry]:
        """Per procedure of `province` in force on some day of [first, end), the version in force
        on the latest such day (a version ends where the next one starts)."""
        out = []
        for versions in self._versions.get(province, {}).values():
            chosen = None
            for i, v in enumerate(versions):
                v_end = versions[i + 1].valid_from if i + 1 < len(versions) else None
                if v.valid_to is not None and (v_end is None or v.valid_to < v_end):
                    v_end = v.valid_to
                if v.valid_from < end and (v_end is None or first < v_end):
                    chosen = v
            if chosen is not None:
                out.append(chosen)
        return out


@dataclass(slots=True)
class _Month:
    dossiers: set[str]
    payments: set[str]


class CatalogActivity:
    """Procedures with an online dossier / online payment, per province and month (see module
    docstring); partitioned like stage 2's other state, and checkpointable per partition."""

    def __init__(self) -> None:
        self._months: dict[str, dict[int, _Month]] = {}
        self._partition_of: dict[str, int] = {}
        #: called with the provinces `drop` forgot (the gauges remove their series at once)
        self.on_drop: list[Callable[[list[str]], None]] = []

    def observe(self, event: ValidEvent, *, partition: int) -> None:
        """Record a new (never a duplicate or redelivered) valid event."""
        province = event.province_code
        self._partition_of[province] = partition
        if event.event_type == "application.submitted":
            if event.channel != "online":
                return
        elif event.event_type != "payment.completed" or event.method != "online":
            return
        month = month_number(local_date(event.occurred_at_s))
        months = self._months.setdefault(province, {})
        if months and month <= max(months) - _KEPT_MONTHS:
            return  # older than every kept month: it changes nothing that is exported
        m = months.get(month)
        if m is None:
            m = months[month] = _Month(set(), set())
            for old in [k for k in months if k <= month - _KEPT_MONTHS]:
                del months[old]
        (m.dossiers if event.event_type == "application.submitted" else m.payments).add(event.procedure_code)

    def procedures(self, province: str, month: int) -> tuple[AbstractSet[str], AbstractSet[str]]:
        """(procedures with an online dossier, with an online payment) of `province` in `month`:
        the live sets, not copies (read them, never keep them across events)."""
        m = self._months.get(province, {}).get(month)
        return (m.dossiers, m.payments) if m else (frozenset(), frozenset())

    def drop(self, partitions: Iterable[int]) -> list[str]:
        """Forget the provinces of `partitions` (revoked, or about to be re-read); returns them."""
        parts = set(partitions)
        gone = [p for p, part in self._partition_of.items() if part in parts]
        for province in gone:
            del self._partition_of[province]
            self._months.pop(province, None)
        for listener in self.on_drop:
            listener(gone)
        return gone

    def to_checkpoint(self, partition: int) -> dict[str, Any]:
        """The state of `partition`'s provinces as plain JSON (sorted, so equal states give equal
        documents)."""
        provinces = sorted(p for p, part in self._partition_of.items() if part == partition)
        return {
            "provinces": {
                p: {
                    str(month): {"dossiers": sorted(m.dossiers), "payments": sorted(m.payments)}
                    for month, m in sorted(self._months.get(p, {}).items())
                }
                for p in provinces
            }
        }

    def restore(self, partition: int, data: dict[str, Any]) -> None:
        """Replace `partition`'s state with a `to_checkpoint` document."""
        self.drop([partition])
        for province, months in data["provinces"].items():
            self._partition_of[province] = partition
            self._months[province] = {
                int(month): _Month(set(m["dossiers"]), set(m["payments"])) for month, m in months.items()
            }


@dataclass(frozen=True, slots=True)
class _CatalogFigures:
    """The catalog side of a province's shares for one month so far (see `CatalogGauges`)."""

    totals: dict[CatalogMetric, tuple[int, int]]  # metrics without activity: (numerator, denominator)
    online: frozenset[str]  # 3.2's denominator
    integrated: frozenset[str]  # 3.5b's denominator


class CatalogGauges:
    """The four shares per owned province, month to date, as `psmon_ratio` gauges."""

    def __init__(self, metrics: PipelineMetrics, view: CatalogView, activity: CatalogActivity):
        self.metrics = metrics
        self.view = view
        self.activity = activity
        self._cache: dict[str, tuple[tuple[int, date, date], _CatalogFigures]] = {}
        self._exported: set[tuple[str, str, str]] = set()
        activity.on_drop.append(self.forget)

    def ratios(self, province: str, watermark_s: float) -> dict[CatalogMetric, Ratio]:
        """The four shares of `province` for the local month of the watermark, up to its day."""
        today = local_date(watermark_s)
        month = month_number(today)
        first, end = _month_first(month), today + timedelta(days=1)
        figures = self._figures(province, first, end)
        dossiers, payments = self.activity.procedures(province, month)
        out: dict[CatalogMetric, Ratio] = {m: Ratio(*figures.totals[m]) for m in figures.totals}
        out["procedures_with_dossiers"] = Ratio(len(figures.online & dossiers), len(figures.online))
        out["procedures_paid_online"] = Ratio(len(figures.integrated & payments), len(figures.integrated))
        return {m: out[m] for m in CATALOG_METRICS}

    def _figures(self, province: str, first: date, end: date) -> _CatalogFigures:
        stamp = (self.view.generation, first, end)
        cached = self._cache.get(province)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        entries = self.view.in_force(province, first, end)
        totals: dict[CatalogMetric, tuple[int, int]] = {}
        for metric in ("procedures_online", "procedures_payment_integrated"):
            members = [e for e in entries if denominator_member(metric, e)]
            num = sum(numerator_member(metric, e, had_dossier=False, had_payment=False) for e in members)
            totals[metric] = (num, len(members))
        figures = _CatalogFigures(
            totals=totals,
            online=frozenset(e.procedure_code for e in entries if denominator_member("procedures_with_dossiers", e)),
            integrated=frozenset(e.procedure_code for e in entries if denominator_member("procedures_paid_online", e)),
        )
        self._cache[province] = (stamp, figures)
        return figures

    def refresh(self, provinces: Iterable[str], watermark_s: float | None) -> None:
        """Set the gauges of `provinces` (the live ones this worker owns) and remove every other
        catalog gauge this object set before; a share without a denominator is not exported."""
        m = self.metrics
        fresh: set[tuple[str, str, str]] = set()
        if watermark_s is not None:
            for province in provinces:
                for metric, ratio in self.ratios(province, watermark_s).items():
                    if ratio.value is None:
                        continue
                    key: tuple[str, str, str] = (province, metric, CATALOG_WINDOW)
                    m.ratio.labels(*key).set(ratio.value)
                    m.ratio_denominator.labels(*key).set(ratio.denominator)
                    fresh.add(key)
        for key in self._exported - fresh:
            with contextlib.suppress(KeyError):
                m.ratio.remove(*key)
                m.ratio_denominator.remove(*key)
        self._exported = fresh

    def forget(self, provinces: Iterable[str]) -> None:
        """Remove the gauges of `provinces` at once (their partition was revoked)."""
        gone = set(provinces)
        for key in [k for k in self._exported if k[0] in gone]:
            with contextlib.suppress(KeyError):
                self.metrics.ratio.remove(*key)
                self.metrics.ratio_denominator.remove(*key)
            self._exported.discard(key)
        for province in gone:
            self._cache.pop(province, None)
