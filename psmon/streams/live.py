"""Stage 2's state machine: de-duplicate valid records, count them, expose live windows.

`LiveRates` owns the rolling buckets (`windows.RollingRates`), the recent-id memory
(`dedup.RecentIds`, one per worker with one bound, holding a stream per partition: an event_id
always lands on its province's partition, and a partition's memory must go with it when the
partition moves) and the Prometheus series derived from them. The stage-2 consumer
(`rates_service.RatesService`) feeds it one record at a time, from `psmon.valid` and from
`psmon.dead-letter`;
timers call `refresh_gauges` (every second) and `snapshot_rows` (for the ClickHouse rate
history). Keeping this out of the consumer makes it testable without Kafka.

A province's contract counters (`psmon_dossiers_submitted_total`, ...) are **owned**: exactly one
worker exports them, the one that owns the province's partition of `psmon.valid`, and their value
is the province's de-duplicated total over everything that partition holds. A worker that gains a
partition re-reads it from the beginning while the partition is *catching up*: state and totals
grow but nothing is exported; when it reaches the end, the totals appear at once. So:
- the sum of a province's counters across workers is always the produced total, after crashes,
  restarts and rebalances alike;
- a restarted worker exports the same series with a value at least as high as before (no reset,
  no spike in `increase()`), and a province moving to another worker is a series that ends and a
  new one that starts at its total, which `increase()` takes as a baseline, not a jump.

Two health counters are owned the same way, so they too are exact after a crash (a restarted
stage 1 re-sends what it had not committed; those copies are redeliveries, never counted again):
- `psmon_events_duplicate_total{province}`: duplicate messages (an event_id met again from
  another source message) per province, owned with the province's partition of `psmon.valid`;
- `psmon_events_invalid_total{reason}`: dead letters per reason, counted from the
  `psmon.dead-letter` log by the owner of the partition holding them. Stage 1 keys every dead
  letter by its reason (`app.py`), so a reason lives on one partition and its series has one
  owner; a reason found on several partitions (letters written before that keying) is exported
  as the sum over the live ones, re-set when one of them goes.
`psmon_events_redelivered_total` stays a per-process count of the redeliveries met live.

Checkpoints (`checkpoint.py`): `partition_state` / `letter_state` copy out one partition's
state, `restore_partition` / `restore_letters` put it back into a partition that is catching up.
A restored partition is still catching up (nothing exported) while the consumer replays the tail
after the checkpoint's offset; when it reaches the end its totals appear at once, exactly as after
a full re-read, and equal to what a full re-read would give (the checkpoint is the state of the
records before its offset, the tail adds the rest, through the same de-duplication).

Invariants:
- a record is counted at most once per `event_id` (redeliveries absorbed, duplicates counted);
- counters and buckets move together, so a window's value is what the counters say over it;
- when a partition is revoked, the provinces seen on it are dropped from state and every series
  of theirs (counters and gauges) is removed, so two workers never both report a province.
"""

import contextlib
from collections import defaultdict
from typing import Any, Final

from prometheus_client import Counter

from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import DeadLetter
from psmon.schemas.metrics import WINDOWS, counter_increments
from psmon.schemas.normalized import ValidRecord
from psmon.streams.catalog_live import CatalogActivity
from psmon.streams.checkpoint import LetterState, ValidState
from psmon.streams.dedup import RecentIds, Seen
from psmon.streams.windows import AddResult, RollingRates
from psmon.timeutil import utc_now

__all__ = ["LiveRates"]

#: Streams of dead-letter partitions in the worker's RecentIds (valid partitions are plain ints).
_DEAD_LETTERS: Final = "dead-letter"
#: The owned counters of a province, by their PipelineMetrics attribute (their name in checkpoints).
_OWNED_COUNTERS: Final = ("submitted", "fee_bearing", "resolved", "payments", "digitized", "duplicate")


class LiveRates:
    def __init__(
        self,
        *,
        metrics: PipelineMetrics,
        dedup_max_ids: int,
        worker: str,
        rates: RollingRates | None = None,
        catalog: CatalogActivity | None = None,
    ):
        self.metrics = metrics
        # Procedure activity of the catalog metrics (catalog_live.py): fed new events, dropped
        # with their partition; its to_checkpoint/restore belong in stage 2's checkpoints.
        self.catalog = catalog
        self.rates = rates if rates is not None else RollingRates()
        self._recent = RecentIds(max_ids=dedup_max_ids)
        self.worker = worker
        self._partition_of: dict[str, int] = {}
        self._exported: set[tuple[str, str, str]] = set()
        # (province, metric, window) -> its two gauge children: labels() is a locked lookup
        # that would otherwise run ~2,000 times a second in refresh_gauges.
        self._gauges: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._catching_up: set[int] = set()
        # province -> (counter, label values) -> de-duplicated total
        self._totals: dict[str, dict[tuple[Counter, tuple[str, ...]], int]] = defaultdict(dict)
        # (counter, label values) -> its exported child, so a live event costs a dict lookup,
        # not a labels() call; dropped with the series.
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        # live? -> processed{stage="rates"|"rebuild"}: per event as well, so looked up once
        self._processed: dict[bool, Any] = {}
        # dead-letter partition -> reason -> letters (redeliveries absorbed), and those re-read
        self._letters: dict[int, dict[str, int]] = {}
        self._letters_catching_up: set[int] = set()
        self._counter_by_name: dict[str, Counter] = {n: getattr(metrics, n) for n in _OWNED_COUNTERS}
        self._name_of_counter: dict[int, str] = {id(c): n for n, c in self._counter_by_name.items()}

    # -- partition ownership ---------------------------------------------------------------

    def catch_up(self, partitions: set[int]) -> None:
        """`partitions` are being re-read from the beginning: count them, export nothing yet."""
        self.drop_partitions(partitions)
        self._catching_up |= partitions

    def caught_up(self, partition: int) -> list[str]:
        """`partition` reached its end: export its provinces' totals; returns those provinces."""
        self._catching_up.discard(partition)
        provinces = [p for p, part in self._partition_of.items() if part == partition]
        for province in provinces:
            for (counter, labels), n in self._totals[province].items():
                counter.labels(*labels).inc(n)
        return provinces

    def is_live(self, province: str) -> bool:
        return self._partition_of.get(province) not in self._catching_up

    @property
    def catching_up(self) -> frozenset[int]:
        return frozenset(self._catching_up)

    def observe(self, record: ValidRecord, *, partition: int) -> Seen:
        e = record.event
        live = partition not in self._catching_up
        self.rates.advance(e.occurred_at_s)
        seen = self._recent.check(partition, e.event_id, record.src, self.rates.watermark_s or e.occurred_at_s)
        m = self.metrics
        processed = self._processed.get(live)
        if processed is None:
            processed = self._processed[live] = m.processed.labels("rates" if live else "rebuild")
        processed.inc()
        self._partition_of[e.province_code] = partition
        if seen is Seen.DUPLICATE:
            self._count(m.duplicate, (e.province_code,), live)  # owned, like the contract counters
            return seen
        if seen is Seen.REDELIVERY:
            if live:  # a per-process count: those met while re-reading were absorbed before
                m.redelivered.inc()
            return seen
        if self.catalog is not None:
            self.catalog.observe(e, partition=partition)
        if self.rates.add(e.province_code, e.occurred_at_s, counter_increments(e)) is AddResult.LATE and live:
            m.late.inc()
        p = e.province_code
        if e.event_type == "application.submitted":
            self._count(m.submitted, (p, e.channel or "", e.service_mode or ""), live)
            if e.fee_bearing:
                self._count(m.fee_bearing, (p,), live)
        elif e.event_type == "application.resolved":
            self._count(m.resolved, (p, "true" if e.on_time else "false"), live)
        elif e.event_type == "payment.completed":
            self._count(m.payments, (p, e.method or ""), live)
        else:
            self._count(m.digitized, (p, e.kind or ""), live)
        return seen

    def _count(self, counter: Counter, labels: tuple[str, ...], live: bool) -> None:
        totals = self._totals[labels[0]]
        key = (counter, labels)
        totals[key] = totals.get(key, 0) + 1
        if live:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = counter.labels(*labels)
            child.inc()

    # -- checkpoints -----------------------------------------------------------------------

    def partition_state(self, partition: int) -> ValidState:
        """Copies of everything this worker holds for `partition` of `psmon.valid`."""
        provinces = sorted(p for p, part in self._partition_of.items() if part == partition)
        names = self._name_of_counter
        return ValidState(
            provinces=provinces,
            rings={p: self.rates.copy_province(p) for p in provinces},
            totals=[
                (names[id(counter)], labels, n)
                for p in provinces
                for (counter, labels), n in self._totals.get(p, {}).items()
            ],
            recent=self._recent.copy_stream(partition),
            watermark_s=self.rates.watermark_s,
            catalog=None if self.catalog is None else self.catalog.to_checkpoint(partition),
        )

    def restore_partition(self, partition: int, state: ValidState) -> list[str]:
        """Put a checkpoint's state into `partition`, which must be catching up; returns its
        provinces. On ValueError the caller drops the partition again (`catch_up`) and re-reads it."""
        if partition not in self._catching_up:
            raise ValueError(f"partition {partition} is live: restore only into a partition catching up")
        unknown = {name for name, _, _ in state.totals} - self._counter_by_name.keys()
        if unknown or not set(state.rings) <= set(state.provinces):
            raise ValueError(f"checkpoint of partition {partition}: unknown counters {unknown} or provinces")
        self.rates.restore_watermark(state.watermark_s)
        for province in state.provinces:
            self._partition_of[province] = partition
        for province, rings in state.rings.items():
            self.rates.restore_province(province, rings)
        for name, labels, n in state.totals:
            self._totals[labels[0]][(self._counter_by_name[name], labels)] = n
        self._recent.restore(partition, state.recent)
        if self.catalog is not None and state.catalog is not None:
            self.catalog.restore(partition, state.catalog)
        return list(state.provinces)

    def letter_state(self, partition: int) -> LetterState:
        """Copies of everything this worker holds for `partition` of `psmon.dead-letter`."""
        return LetterState(
            reasons=dict(self._letters.get(partition, {})),
            recent=self._recent.copy_stream((_DEAD_LETTERS, partition)),
        )

    def restore_letters(self, partition: int, state: LetterState) -> None:
        """Put a checkpoint's state into dead-letter `partition`, which must be catching up."""
        if partition not in self._letters_catching_up:
            raise ValueError(f"dead-letter partition {partition} is live: restore only into one catching up")
        self._recent.restore((_DEAD_LETTERS, partition), state.recent)
        self._letters[partition] = dict(state.reasons)

    # -- dead letters ----------------------------------------------------------------------

    def catch_up_letters(self, partitions: set[int]) -> None:
        """Dead-letter `partitions` are being re-read from the beginning: count, export nothing yet."""
        self.drop_letter_partitions(partitions)
        self._letters_catching_up |= partitions

    def letters_caught_up(self, partition: int) -> list[str]:
        """Dead-letter `partition` reached its end: export its totals; returns its reasons."""
        self._letters_catching_up.discard(partition)
        totals = self._letters.get(partition, {})
        for reason, n in totals.items():
            self.metrics.invalid.labels(reason).inc(n)
        return sorted(totals)

    @property
    def letters_catching_up(self) -> frozenset[int]:
        return frozenset(self._letters_catching_up)

    def observe_letter(self, letter: DeadLetter, *, partition: int) -> bool:
        """Count a dead letter of `psmon.dead-letter` once per source message; False: a redelivery."""
        live = partition not in self._letters_catching_up
        src = (letter.src_partition, letter.src_offset)
        if not self._recent.check_source((_DEAD_LETTERS, partition), src, letter.src_ts_ms / 1000):
            if live:
                self.metrics.redelivered.inc()
            return False
        totals = self._letters.setdefault(partition, {})
        totals[letter.reason] = totals.get(letter.reason, 0) + 1
        if live:
            self.metrics.invalid.labels(letter.reason).inc()
        return True

    def drop_letter_partitions(self, partitions: set[int]) -> None:
        """Forget dead-letter `partitions` (revoked, or about to be re-read) and their counts."""
        self._letters_catching_up -= partitions
        for partition in partitions:
            self._recent.drop((_DEAD_LETTERS, partition))
            for reason in self._letters.pop(partition, {}):
                # The series is the sum over the live partitions holding the reason: set it anew.
                with contextlib.suppress(KeyError):
                    self.metrics.invalid.remove(reason)
                rest = sum(t.get(reason, 0) for p, t in self._letters.items() if p not in self._letters_catching_up)
                if rest:
                    self.metrics.invalid.labels(reason).inc(rest)

    # -- gauges and snapshots --------------------------------------------------------------

    def refresh_gauges(self) -> None:
        """Set `psmon_ratio` for every owned province, metric and window; drop empty ones."""
        m = self.metrics
        fresh: set[tuple[str, str, str]] = set()
        for province in self.live_provinces():
            for window in WINDOWS:
                for metric, ratio in self.rates.ratios(province, window).items():
                    key: tuple[str, str, str] = (province, metric, window)
                    if ratio.value is None:
                        continue
                    gauges = self._gauges.get(key)
                    if gauges is None:
                        gauges = self._gauges[key] = (m.ratio.labels(*key), m.ratio_denominator.labels(*key))
                    gauges[0].set(ratio.value)
                    gauges[1].set(ratio.denominator)
                    fresh.add(key)
        for key in self._exported - fresh:
            self._remove_gauges(key)
        self._exported = fresh
        m.provinces_owned.set(len(self.live_provinces()))
        m.partitions_catching_up.set(len(self._catching_up) + len(self._letters_catching_up))
        if self.rates.watermark_s is not None:
            m.watermark.set(self.rates.watermark_s)
            m.event_time_lag.set(max(0.0, utc_now().timestamp() - self.rates.watermark_s))

    def snapshot_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Current window values per province, as rows for the `rate_snapshots` table.

        Stamped with the minute they are taken in (its start): the table keeps one row per
        province, metric, window and minute, the latest of that minute (see `sinks/clickhouse/schema.py`).
        """
        wm = self.rates.watermark_s
        if wm is None:
            return {}
        now_ms = int(utc_now().timestamp() // 60) * 60_000
        out: dict[str, list[dict[str, Any]]] = {}
        for province in self.live_provinces():
            rows = out[province] = []
            for window in WINDOWS:
                for metric, ratio in self.rates.ratios(province, window).items():
                    rows.append(
                        {
                            "snapshot_at_ms": now_ms,
                            "worker": self.worker,
                            "province_code": province,
                            "metric": metric,
                            "window": window,
                            "numerator": ratio.numerator,
                            "denominator": ratio.denominator,
                            "ratio": ratio.value,
                            "watermark_ms": int(wm * 1000),
                        }
                    )
        return out

    def live_provinces(self) -> list[str]:
        """Provinces with state whose partition is not catching up."""
        return [p for p in self.rates.provinces if self.is_live(p)]

    def drop_partitions(self, partitions: set[int]) -> list[str]:
        """Forget provinces last seen on `partitions` (revoked) and all their series; returns them."""
        self._catching_up -= partitions
        if self.catalog is not None:
            self.catalog.drop(partitions)
        for partition in partitions:
            self._recent.drop(partition)
        dropped = [p for p, part in self._partition_of.items() if part in partitions]
        for province in dropped:
            del self._partition_of[province]
            self.rates.drop(province)
            self._remove_series(province)
        return dropped

    def _remove_gauges(self, key: tuple[str, str, str]) -> None:
        self._gauges.pop(key, None)
        self.metrics.ratio.remove(*key)
        self.metrics.ratio_denominator.remove(*key)

    def _remove_series(self, province: str) -> None:
        for key in [k for k in self._exported if k[0] == province]:
            self._remove_gauges(key)
            self._exported.discard(key)
        for counter, labels in self._totals.pop(province, {}):
            self._children.pop((counter, labels), None)
            with contextlib.suppress(KeyError):  # never exported: the partition was catching up
                counter.remove(*labels)
