"""A fixed generated history spanning the 1 Jul 2025 province merger, for the history tests.

Events come from the simulator (fixed seed) for local days 28 Jun – 2 Jul 2025 (Q2 → Q3,
June → July), with a high share of old 63-province codes on both sides of the merger, some bad
events of every reason, and a few exact re-sends of valid lines (same event_id), so every path
of replay and the views is exercised. `hand_counters` is the test's own computation of the
rollup counters from the raw JSON, independent of psmon's SQL and of `counter_increments`.
"""

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from psmon.schemas.validation import ValidEvent, validate_event
from psmon.simulator.generator import EventGenerator
from psmon.simulator.profiles import default_profiles
from psmon.timeutil import LOCAL_TZ

START = datetime(2025, 6, 28, 0, 0, tzinfo=LOCAL_TZ)
END = datetime(2025, 7, 3, 0, 0, tzinfo=LOCAL_TZ)
SEED = 766


def write_dataset(path: Path, *, dossiers_per_s: float = 0.02, resend_every: int = 97) -> list[bytes]:
    """Write the JSONL file; returns its lines (without newline)."""
    gen = EventGenerator(default_profiles(), seed=SEED, old_code_fraction=0.3, bad_fraction=0.01)
    lines: list[bytes] = []
    t, end = START.timestamp(), END.timestamp()
    while t < end:
        lines.extend(e.value for e in gen.advance(t, t + 300, dossiers_per_s=dossiers_per_s))
        t += 300
    lines.extend(e.value for e in gen.drain() if e.occurred_at_s < end)
    resent = [lines[i] for i in range(0, len(lines), resend_every)]
    lines.extend(resent)
    path.write_bytes(b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines))
    return lines


def valid_events(lines: list[bytes]) -> list[ValidEvent]:
    """First copy of each event_id among the valid lines, as the writer keeps it."""
    seen: dict[str, ValidEvent] = {}
    for line in lines:
        v = validate_event(line)
        if isinstance(v, ValidEvent):
            seen.setdefault(v.event_id, v)
    return list(seen.values())


def local_day(e: ValidEvent) -> date:
    return datetime.fromtimestamp(e.occurred_at_s, UTC).astimezone(LOCAL_TZ).date()


def hand_counters(events: list[ValidEvent], key: Any) -> dict[Any, Counter[str]]:
    """key(event) -> counters, computed directly from the event fields (docs/contract.md definitions)."""
    out: dict[Any, Counter[str]] = {}
    for e in events:
        c = out.setdefault(key(e), Counter())
        if e.event_type == "application.submitted":
            c["submitted"] += 1
            c["submitted_online"] += e.channel == "online"
            c["submitted_full_online"] += e.channel == "online" and e.service_mode == "full_online"
            c["submitted_fee_bearing"] += bool(e.fee_bearing)
        elif e.event_type == "application.resolved":
            c["resolved"] += 1
            c["resolved_on_time"] += bool(e.on_time)
        elif e.event_type == "payment.completed":
            c["payments"] += 1
            c["payments_online"] += e.method == "online"
        elif e.event_type == "record.digitized":
            c["digitized_dossier"] += e.kind == "dossier"
            c["digitized_result"] += e.kind == "result"
    return out


def period_labels(d: date) -> dict[str, str]:
    return {
        "day": d.isoformat(),
        "month": f"{d:%Y-%m}",
        "quarter": f"{d.year}-Q{(d.month - 1) // 3 + 1}",
        "year": str(d.year),
    }


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
