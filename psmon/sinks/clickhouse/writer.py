"""Batched, idempotent writes of stream records into the ClickHouse tables of `schema.py`.

A batch is the records of one topic taken from one poll, written with one INSERT. Its
`insert_deduplication_token` names the exact source range (`topic/partition:first-last,...`), so
a retry of the same batch is dropped whole by ClickHouse; a redelivery that starts or ends at
another offset gets another token, and is then made harmless by the tables' ReplacingMergeTree
keys (reads that must be exact use FINAL). The writer is synchronous; the sink calls it through
`ClickHouseExecutor`.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from psmon.schemas.dead_letter import DeadLetter
from psmon.schemas.normalized import ValidRecord
from psmon.sinks.clickhouse.client import Client

__all__ = ["EVENT_COLUMNS", "ClickHouseWriter", "RateRow"]

EVENT_COLUMNS = (
    "event_id", "event_type", "occurred_at", "province_code", "raw_province_code", "level",
    "procedure_code", "dossier_id", "agency_code", "commune_code", "source_system", "channel",
    "service_mode", "fee_bearing", "on_time", "method", "amount_vnd", "kind",
    "src_partition", "src_offset", "src_ts", "dedup_version",
)  # fmt: skip
_DEAD_LETTER_COLUMNS = (
    "dead_letter_id", "reason", "detail", "redacted", "payload_sha256", "payload_bytes",
    "src_partition", "src_offset", "received_at",
)  # fmt: skip
RATE_COLUMNS = (
    "snapshot_at", "worker", "province_code", "metric", "rate_window", "numerator", "denominator",
    "ratio", "watermark",
)  # fmt: skip
RateRow = dict[str, Any]

# Larger version wins in ReplacingMergeTree; subtracting the produce time keeps the first copy.
_VERSION_BASE = 10**13


def _utc(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, UTC)


class ClickHouseWriter:
    def __init__(self, client: Client, *, database: str):
        self._client = client
        self._db = database

    def write_events(self, records: Sequence[ValidRecord], *, token: str) -> int:
        rows = []
        for r in records:
            e = r.event
            rows.append([
                e.event_id, e.event_type, _utc(e.occurred_at_s), e.province_code, e.raw_province_code,
                e.level, e.procedure_code, e.dossier_id, e.agency_code, e.commune_code, e.source_system,
                e.channel, e.service_mode, e.fee_bearing, e.on_time, e.method, e.amount_vnd, e.kind,
                r.src_partition, r.src_offset, _utc(r.src_ts_ms / 1000), _VERSION_BASE - r.src_ts_ms,
            ])  # fmt: skip
        return self._insert("events", rows, EVENT_COLUMNS, token)

    def write_dead_letters(self, letters: Sequence[DeadLetter], *, token: str) -> int:
        rows = [
            [
                d.dead_letter_id,
                d.reason,
                d.detail,
                orjson.dumps(d.redacted).decode() if d.redacted is not None else "",
                d.payload_sha256,
                d.payload_bytes,
                d.src_partition,
                d.src_offset,
                _utc(d.src_ts_ms / 1000),
            ]
            for d in letters
        ]
        return self._insert("dead_letters", rows, _DEAD_LETTER_COLUMNS, token)

    def write_rates(self, rates: Sequence[RateRow], *, token: str) -> int:
        rows = [
            [
                _utc(r["snapshot_at_ms"] / 1000),
                r["worker"],
                r["province_code"],
                r["metric"],
                r["window"],
                r["numerator"],
                r["denominator"],
                r["ratio"],
                _utc(r["watermark_ms"] / 1000),
            ]
            for r in rates
        ]
        return self._insert("rate_snapshots", rows, RATE_COLUMNS, token)

    def _insert(self, table: str, rows: list[list[Any]], columns: Sequence[str], token: str) -> int:
        if not rows:
            return 0
        self._client.insert(
            f"{self._db}.{table}",
            rows,
            column_names=list(columns),
            settings={
                "insert_deduplication_token": token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )
        return len(rows)
