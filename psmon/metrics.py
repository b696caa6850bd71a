"""Prometheus exporter: the counters, live-window gauges and pipeline-health metrics of psmon.

Every stage exports through this one module (stage 1 and 2 in the worker, stage 3 in the sink,
all three in `psmon up`), so it sits at the bottom of the package beside `settings`, below the
stages that fill it; only `prometheus_client` is imported.

Contract counters (`psmon_dossiers_submitted_total`, ...) count each valid, de-duplicated event
once, labelled by 34-province code; ratios over any range are computed from them by recording
rules, so they sum across workers and survive restarts. The `psmon_ratio` gauges mirror the
worker's own rolling windows for the terminal view and dashboards; a gauge with no denominator is
removed rather than set to 0 or 1.

All metrics live on one injected `CollectorRegistry` (a fresh one per test), never on the global
default registry, so several stages can share a process (as in `psmon up`) without clashes.
"""

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["SINK_JOB", "WORKER_JOB", "PipelineMetrics", "serve_metrics"]

#: Prometheus job names under which workers and sinks are scraped: the generated scrape config and
#: pipeline alerts (`alerting.rules`) and the dashboards' queries (`dashboards.promql`) use these.
WORKER_JOB: Final = "psmon-worker"
SINK_JOB: Final = "psmon-sink"


class PipelineMetrics:
    """Every metric psmon exports, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # contract counters (stage 2)
        self.submitted = Counter(
            "psmon_dossiers_submitted",
            "Dossiers received",
            ["province", "channel", "service_mode"],
            registry=r,
        )
        self.fee_bearing = Counter(
            "psmon_dossiers_fee_bearing", "Fee-bearing dossiers received", ["province"], registry=r
        )
        self.resolved = Counter("psmon_dossiers_resolved", "Dossiers resolved", ["province", "on_time"], registry=r)
        self.payments = Counter("psmon_payments", "Fees paid", ["province", "method"], registry=r)
        self.digitized = Counter(
            "psmon_records_digitized",
            "Dossiers or results digitized",
            ["province", "kind"],
            registry=r,
        )
        # live windows (stage 2)
        self.ratio = Gauge(
            "psmon_ratio",
            "Live ratio over a window ending at the watermark",
            ["province", "metric", "window"],
            registry=r,
        )
        self.ratio_denominator = Gauge(
            "psmon_ratio_denominator",
            "Denominator of psmon_ratio (volume)",
            ["province", "metric", "window"],
            registry=r,
        )
        self.watermark = Gauge(
            "psmon_watermark_timestamp_seconds",
            "Latest event time seen (capped at wall clock)",
            registry=r,
        )
        self.event_time_lag = Gauge("psmon_event_time_lag_seconds", "Wall clock minus watermark", registry=r)
        self.provinces_owned = Gauge("psmon_provinces_owned", "Provinces with live state in this worker", registry=r)
        self.partitions_catching_up = Gauge(
            "psmon_partitions_catching_up",
            "Partitions of psmon.valid and psmon.dead-letter being re-read after assignment",
            registry=r,
        )
        self.checkpoint_restored = Counter(
            "psmon_checkpoint_restored",
            "Partitions assigned to this worker whose state came from a checkpoint, not a full re-read",
            ["topic"],
            registry=r,
        )
        # pipeline health
        self.processed = Counter("psmon_events_processed", "Messages processed per stage", ["stage"], registry=r)
        # invalid and duplicate are owned by stage 2 like the contract counters (streams/live.py);
        # the sink adds invalid{reason="unstorable"} for rows ClickHouse refused.
        self.invalid = Counter("psmon_events_invalid", "Events sent to the dead-letter topic", ["reason"], registry=r)
        self.duplicate = Counter(
            "psmon_events_duplicate", "Repeated event_ids (new messages) ignored", ["province"], registry=r
        )
        self.redelivered = Counter(
            "psmon_events_redelivered",
            "Kafka redeliveries absorbed (same source message)",
            registry=r,
        )
        self.late = Counter("psmon_events_late", "Events older than every live bucket", registry=r)
        self.sink_rows = Counter("psmon_sink_rows", "Rows written to ClickHouse", ["table"], registry=r)
        self.sink_skipped = Counter(
            "psmon_sink_rows_skipped",
            "Records not written because their event_id is already stored",
            ["table"],
            registry=r,
        )
        self.sink_batch_rows = Histogram(
            "psmon_sink_batch_rows",
            "Rows per ClickHouse insert",
            buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000),
            registry=r,
        )
        self.sink_batch_seconds = Histogram(
            "psmon_sink_batch_seconds", "Time to write one batch to ClickHouse", registry=r
        )
        self.clickhouse_errors = Counter("psmon_clickhouse_errors", "Failed ClickHouse writes (retried)", registry=r)
        self.sink_unstorable = Counter(
            "psmon_sink_rows_unstorable",
            "Rows ClickHouse refused as data errors: set aside, not retried",
            ["table"],
            registry=r,
        )
        self.clickhouse_up = Gauge("psmon_clickhouse_up", "1 if the last ClickHouse write succeeded", registry=r)
        self.sink_committed_offset = Gauge(
            "psmon_sink_committed_offset",
            "Next offset to read, committed after the write",
            ["topic", "partition"],
            registry=r,
        )


def serve_metrics(registry: CollectorRegistry, *, host: str, port: int) -> int:
    """Serve `/metrics` in a daemon thread; returns the bound port (useful with port 0)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_address[1])
