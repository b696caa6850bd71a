"""The history tests' dataset as they share it, and the numbers expected from it.

`Dataset` is the generated file of `tests/history_dataset.py` with its lines and valid events
(fixture `dataset`); `Loaded` is a database holding it, replayed through the sink's writer in
batches of `BATCH_ROWS` (fixture `loaded`). `expected_metrics` is the hand computation of the
metric views: the contract's definitions (docs/contract.md) written out again here, independently of
`schemas.metrics.METRICS`, over `hand_counters`, never from psmon's SQL.
"""

from dataclasses import dataclass
from pathlib import Path

from psmon.history.replay import ReplayStats
from psmon.schemas.validation import ValidEvent
from psmon.sinks.clickhouse.client import Client
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from tests.history_dataset import hand_counters, local_day, period_labels

#: Small batches so the dataset spans many INSERTs (the production default is 50,000 rows).
BATCH_ROWS = 1000

#: docs/contract.md: metric -> (numerator, denominator), written out independently of schemas.metrics.METRICS.
DEFINITIONS = {
    "online_submission": ("submitted_online", "submitted"),
    "full_online": ("submitted_full_online", "submitted"),
    "online_payment": ("payments_online", "payments"),
    "dossier_digitization": ("digitized_dossier", "submitted"),
    "result_digitization": ("digitized_result", "resolved"),
    "on_time": ("resolved_on_time", "resolved"),
}
#: Every rollup counter column: the terms of the definitions, plus `submitted_fee_bearing`.
COUNTERS = sorted({c for pair in DEFINITIONS.values() for c in pair} | {"submitted_fee_bearing"})


@dataclass(frozen=True)
class Dataset:
    path: Path
    lines: list[bytes]
    events: list[ValidEvent]


@dataclass
class Loaded:
    client: Client
    database: str
    dsn: str
    writer: ClickHouseWriter
    stats: ReplayStats


def expected_metrics(events: list[ValidEvent], grain: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(period, province, metric) -> (numerator, denominator), as the `metrics_<grain>` view must hold."""
    counts = hand_counters(events, lambda e: (period_labels(local_day(e))[grain], e.province_code))
    out = {}
    for (period, province), c in counts.items():
        for metric, (num, den) in DEFINITIONS.items():
            out[(period, province, metric)] = (c[num], c[den])
    return out
