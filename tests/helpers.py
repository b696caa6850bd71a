"""Test helpers: everything of `testkit` (the process, polling and scraping helpers shared with the
benchmarks, re-exported here so tests import from one place), and per-province totals read from
/metrics and from ClickHouse."""

from pathlib import Path
from typing import Any

import testkit
from testkit import *  # noqa: F403
from testkit import Samples

__all__ = [
    *testkit.__all__,
    "CLICKHOUSE_TOTALS_SQL",
    "RESOLVED_EVENT",
    "TOTAL_KEYS",
    "clickhouse_totals",
    "metric_totals",
    "parquet_unreadable_after",
    "rollup_totals",
]

#: one valid contract event (a resolution), for tests of files and summaries that need a good row
RESOLVED_EVENT: dict[str, object] = {
    "event_id": "v-1",
    "event_type": "application.resolved",
    "schema_version": 1,
    "occurred_at": "2025-07-01T09:00:00+07:00",
    "province_code": "79",
    "level": "commune",
    "procedure_code": "1.004227",
    "dossier_id": "D-1",
    "on_time": True,
}

TOTAL_KEYS = (
    "submitted",
    "online",
    "full_online",
    "fee_bearing",
    "payments",
    "paid_online",
    "resolved",
    "on_time",
    "dig_dossier",
    "dig_result",
)


def metric_totals(*scrapes: Samples) -> dict[str, dict[str, int]]:
    """Per-province contract counters summed over several workers' /metrics, in TOTAL_KEYS terms."""
    out: dict[str, dict[str, int]] = {}
    for samples in scrapes:
        for (name, labels), value in samples.items():
            lab = dict(labels)
            if "province" not in lab:
                continue
            t = out.setdefault(lab["province"], dict.fromkeys(TOTAL_KEYS, 0))
            v = int(value)
            if name == "psmon_dossiers_submitted_total":
                t["submitted"] += v
                t["online"] += v if lab["channel"] == "online" else 0
                t["full_online"] += v if lab["channel"] == "online" and lab["service_mode"] == "full_online" else 0
            elif name == "psmon_dossiers_fee_bearing_total":
                t["fee_bearing"] += v
            elif name == "psmon_payments_total":
                t["payments"] += v
                t["paid_online"] += v if lab["method"] == "online" else 0
            elif name == "psmon_dossiers_resolved_total":
                t["resolved"] += v
                t["on_time"] += v if lab["on_time"] == "true" else 0
            elif name == "psmon_records_digitized_total":
                t["dig_dossier" if lab["kind"] == "dossier" else "dig_result"] += v
    return {p: t for p, t in out.items() if any(t.values())}


CLICKHOUSE_TOTALS_SQL = """
SELECT province_code,
       countIf(event_type = 'application.submitted'),
       countIf(channel = 'online'),
       countIf(service_mode = 'full_online' AND channel = 'online'),
       countIf(fee_bearing),
       countIf(event_type = 'payment.completed'),
       countIf(method = 'online'),
       countIf(event_type = 'application.resolved'),
       countIf(on_time),
       countIf(kind = 'dossier'),
       countIf(kind = 'result')
FROM {db}.events GROUP BY province_code ORDER BY province_code
"""


def clickhouse_totals(client: Any, db: str) -> dict[str, dict[str, int]]:
    """Per-province totals of the raw events table, read without FINAL (no repeat may be stored)."""
    rows = client.query(CLICKHOUSE_TOTALS_SQL.format(db=db)).result_rows
    return {r[0]: dict(zip(TOTAL_KEYS, (int(x) for x in r[1:]), strict=True)) for r in rows}


#: schemas.metrics.COUNTERS (rollup columns) -> TOTAL_KEYS
_ROLLUP_KEYS = {
    "submitted": "submitted",
    "submitted_online": "online",
    "submitted_full_online": "full_online",
    "submitted_fee_bearing": "fee_bearing",
    "payments": "payments",
    "payments_online": "paid_online",
    "resolved": "resolved",
    "resolved_on_time": "on_time",
    "digitized_dossier": "dig_dossier",
    "digitized_result": "dig_result",
}


def rollup_totals(client: Any, db: str, source: str) -> dict[str, dict[str, int]]:
    """Per-province totals summed over a rollup table or counters view (`rollup_hour`,
    `counters_year`, ...), in TOTAL_KEYS terms."""
    cols = ", ".join(f"sum({c})" for c in _ROLLUP_KEYS)
    rows = client.query(f"SELECT province_code, {cols} FROM {db}.{source} GROUP BY province_code").result_rows
    out = {r[0]: dict(zip(_ROLLUP_KEYS.values(), (int(x) for x in r[1:]), strict=True)) for r in rows}
    return {p: t for p, t in out.items() if any(t.values())}


def parquet_unreadable_after(path: Path, readable_rows: int = 50_000) -> Path:
    """A Parquet file of valid events (`RESOLVED_EVENT`, ids `v-0`, `v-1`, ...) whose reader fails
    after `readable_rows` rows (a multiple of the readers' 50,000-row batches): the next row
    group's first page header is overwritten, as a disk or a copy can damage a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{**RESOLVED_EVENT, "event_id": f"v-{i}"} for i in range(readable_rows + 3_000)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=readable_rows + 1_000, compression="none")
    offset = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))
    return path
