"""Stage 2's state machine: de-duplicate valid records, count them, expose live windows.

`LiveRates` owns the rolling buckets (`windows.RollingRates`), the recent-id memory
(`dedup.RecentIds`) and the Prometheus series derived from them. The Faust agent feeds it one
record at a time; timers call `refresh_gauges` (every second) and `snapshot_rows` (for the
ClickHouse rate history). Keeping this out of the agent makes it testable without Kafka.

Invariants:
- a record is counted at most once per `event_id` (redeliveries absorbed, duplicates counted);
- counters and buckets move together, so a window's value is what the counters say over it;
- when a partition is revoked, the provinces seen on it are dropped from state and from the
  live-window gauges, so two workers never both report a province's window. Counters stay: they
  count work this worker did, and sums across workers must keep it.
"""

from typing import Any

from psmon.schemas.normalized import ValidRecord
from psmon.sinks.prometheus import PipelineMetrics
from psmon.streams.dedup import RecentIds, Seen
from psmon.streams.windows import WINDOWS, AddResult, RollingRates, counter_increments
from psmon.timeutil import utc_now

__all__ = ["LiveRates"]


class LiveRates:
    def __init__(
        self,
        *,
        metrics: PipelineMetrics,
        dedup_max_ids: int,
        worker: str,
        rates: RollingRates | None = None,
    ):
        self.metrics = metrics
        self.rates = rates if rates is not None else RollingRates()
        self.recent = RecentIds(max_ids=dedup_max_ids)
        self.worker = worker
        self._partition_of: dict[str, int] = {}
        self._exported: set[tuple[str, str, str]] = set()

    def observe(self, record: ValidRecord, *, partition: int) -> Seen:
        e = record.event
        self.rates.advance(e.occurred_at_s)
        seen = self.recent.check(e.event_id, record.src, self.rates.watermark_s or e.occurred_at_s)
        m = self.metrics
        m.processed.labels("rates").inc()
        if seen is Seen.REDELIVERY:
            m.redelivered.inc()
            return seen
        if seen is Seen.DUPLICATE:
            m.duplicate.inc()
            return seen
        self._partition_of[e.province_code] = partition
        if self.rates.add(e.province_code, e.occurred_at_s, counter_increments(e)) is AddResult.LATE:
            m.late.inc()
        p = e.province_code
        if e.event_type == "application.submitted":
            m.submitted.labels(p, e.channel, e.service_mode).inc()
            if e.fee_bearing:
                m.fee_bearing.labels(p).inc()
        elif e.event_type == "application.resolved":
            m.resolved.labels(p, "true" if e.on_time else "false").inc()
        elif e.event_type == "payment.completed":
            m.payments.labels(p, e.method).inc()
        else:
            m.digitized.labels(p, e.kind).inc()
        return seen

    def refresh_gauges(self) -> None:
        """Set `psmon_ratio` for every owned province, metric and window; drop empty ones."""
        m = self.metrics
        fresh: set[tuple[str, str, str]] = set()
        for province in self.rates.provinces:
            for window in WINDOWS:
                for metric, ratio in self.rates.ratios(province, window).items():
                    key: tuple[str, str, str] = (province, metric, window)
                    if ratio.value is None:
                        continue
                    m.ratio.labels(*key).set(ratio.value)
                    m.ratio_denominator.labels(*key).set(ratio.denominator)
                    fresh.add(key)
        for key in self._exported - fresh:
            m.ratio.remove(*key)
            m.ratio_denominator.remove(*key)
        self._exported = fresh
        m.provinces_owned.set(len(self.rates.provinces))
        if self.rates.watermark_s is not None:
            m.watermark.set(self.rates.watermark_s)
            m.event_time_lag.set(max(0.0, utc_now().timestamp() - self.rates.watermark_s))

    def snapshot_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Current window values per province, as rows for the `rate_snapshots` table."""
        wm = self.rates.watermark_s
        if wm is None:
            return {}
        now_ms = int(utc_now().timestamp() * 1000)
        out: dict[str, list[dict[str, Any]]] = {}
        for province in self.rates.provinces:
            rows = out[province] = []
            for window in WINDOWS:
                for metric, ratio in self.rates.ratios(province, window).items():
                    rows.append({
                        "snapshot_at_ms": now_ms, "worker": self.worker, "province_code": province,
                        "metric": metric, "window": window, "numerator": ratio.numerator,
                        "denominator": ratio.denominator, "ratio": ratio.value, "watermark_ms": int(wm * 1000),
                    })  # fmt: skip
        return out

    def drop_partitions(self, partitions: set[int]) -> list[str]:
        """Forget provinces last seen on `partitions` (revoked); returns them."""
        dropped = [p for p, part in self._partition_of.items() if part in partitions]
        for province in dropped:
            del self._partition_of[province]
            self.rates.drop(province)
            self._remove_series(province)
        return dropped

    def _remove_series(self, province: str) -> None:
        m = self.metrics
        for key in [k for k in self._exported if k[0] == province]:
            m.ratio.remove(*key)
            m.ratio_denominator.remove(*key)
            self._exported.discard(key)
