"""Realistic portal events: dossiers arrive per province on a simulated clock, each with a life.

A dossier is submitted; if fee-bearing it is paid (online or at the counter); its components may
be digitized; it is resolved (on time or late) and its result may be digitized. Each step is an
event at its own time a few minutes after the previous one, kept in a heap and released when
the simulated clock reaches it, so event time never runs ahead of the clock.

The heap holds about an hour of future events (a resolution comes up to 70 minutes after its
submission), so what it holds per event is what bounds the simulator's memory. It holds a small
tuple (time, sequence, the dossier's shared fields, the event type, the event's own fields as a
flat tuple, the bad reason drawn for it) and the JSON is rendered when the event is released:
about 0.3 KB per pending event instead of 4.4 KB as rendered `SimEvent`s (orjson's output
buffers are at least 1 KB each, and a dataclass carries its own dict). Every random draw still
happens when the dossier starts, in the same order, so a seed gives byte-identical output
(`tests/unit/simulator/test_pending.py` pins a digest).

Each dossier's procedure comes from its province's simulated catalog (`catalog.py`): online
filings use online procedures, payments online use payment-integrated ones, by a skewed
popularity, so the catalog metrics come out as a real month would show them.

Arrival intensity follows `workcalendar.activity_weight` (office hours, weekdays, holidays) and
the provinces' volume weights. Some events carry the old 63-province code of their area, as
portals still do; on request a fraction is replaced by bad events of every dead-letter reason.
Everything derives from one seeded `random.Random`, so a run is reproducible.
"""

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from psmon.schemas.provinces import registry
from psmon.schemas.validation import REASONS
from psmon.simulator.catalog import simulated_catalog
from psmon.simulator.profiles import ProvinceProfile
from psmon.workcalendar import activity_weight

__all__ = ["EVENTS_PER_DOSSIER", "EventGenerator", "SimEvent"]

#: Mean events per dossier with the default profiles (submitted, paid, digitized, resolved, ...).
EVENTS_PER_DOSSIER = 3.9

#: A scheduled event: (time, sequence, the dossier's shared fields, event type, the event's own
#: fields as a flat (name, value, name, value, ...) tuple, bad reason or None). The sequence is
#: unique, so the heap never compares the dicts.
_Pending = tuple[float, int, dict[str, Any], str, tuple[Any, ...], str | None]


@dataclass(order=True)
class SimEvent:
    occurred_at_s: float
    seq: int
    key: bytes = field(compare=False)
    value: bytes = field(compare=False)
    bad_reason: str | None = field(default=None, compare=False)


def _rfc3339(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventGenerator:
    def __init__(
        self,
        profiles: dict[str, ProvinceProfile],
        *,
        seed: int,
        old_code_fraction: float = 0.05,
        bad_fraction: float = 0.0,
        source_system: str = "psmon-sim",
        catalog_seed: int = 0,
    ):
        self._profiles = profiles
        self._catalog = simulated_catalog(catalog_seed)
        self._rng = random.Random(seed)
        self._codes = list(profiles)
        self._weights = [p.volume_weight for p in profiles.values()]
        self._old_codes: dict[str, list[str]] = {}
        for old, _old_name, new, _new_name in registry().merger_rows():
            if old != new:
                self._old_codes.setdefault(new, []).append(old)
        self._old_fraction = old_code_fraction
        self._bad_fraction = bad_fraction
        self._source = source_system
        self._prefix = f"sim{seed}"
        self._seq = 0
        self._heap: list[_Pending] = []
        self._pending_dossiers = 0.0

    # -- the clock drives everything ----------------------------------------------------------
    def advance(self, from_s: float, to_s: float, *, dossiers_per_s: float) -> Iterator[SimEvent]:
        """Start the dossiers arriving in (from_s, to_s] and release every event due by `to_s`."""
        if to_s > from_s:
            mid = datetime.fromtimestamp((from_s + to_s) / 2, UTC)
            self._pending_dossiers += dossiers_per_s * activity_weight(mid) * (to_s - from_s)
            while self._pending_dossiers >= 1.0:
                self._pending_dossiers -= 1.0
                self._start_dossier(self._rng.uniform(from_s, to_s))
        while self._heap and self._heap[0][0] <= to_s:
            yield self._render(heapq.heappop(self._heap))

    def drain(self) -> Iterator[SimEvent]:
        """Every scheduled event, in time order (ends a finite run)."""
        while self._heap:
            yield self._render(heapq.heappop(self._heap))

    @property
    def pending(self) -> int:
        """Events scheduled and not yet released."""
        return len(self._heap)

    # -- a dossier's life ---------------------------------------------------------------------
    def _start_dossier(self, t0: float) -> None:
        rng = self._rng
        code = rng.choices(self._codes, self._weights)[0]
        p = self._profiles[code]
        sent_code = code
        if self._old_codes.get(code) and rng.random() < self._old_fraction:
            sent_code = rng.choice(self._old_codes[code])
        self._seq += 1
        dossier = f"{sent_code}.{self._seq:09d}"
        online = rng.random() < p.online_submission
        full = False
        if online:
            channel = "online"
            full = rng.random() < (p.full_online / p.online_submission if p.online_submission else 0)
            mode = "full_online" if full else "partial_online"
        else:
            channel = "postal" if rng.random() < 0.1 else "counter"
            mode = "offline" if rng.random() < 0.5 else "partial_online"
        fee = rng.random() < p.fee_bearing
        method = ("online" if rng.random() < p.online_payment else "counter") if fee else None
        # The procedure comes from the province's catalog (simulator/catalog.py), so the catalog
        # metrics see a realistic mix: popular procedures, online ones never filed online.
        cat = self._catalog[code]
        proc = cat.pick(rng, online=online, full=full, fee=fee, paid_online=method == "online")
        base = {
            "schema_version": 1,
            "province_code": sent_code,
            "level": cat.level(proc),
            "procedure_code": cat.code(proc),
            "dossier_id": f"H{dossier}",
            "source_system": self._source,
        }
        self._emit(t0, base, "application.submitted", channel=channel, service_mode=mode, fee_bearing=fee)
        t = t0
        if fee:
            t += rng.uniform(5, 600)
            self._emit(
                t,
                base,
                "payment.completed",
                method=method,
                amount_vnd=rng.choice((0, 15000, 50000, 100000, 200000)),
            )
        if rng.random() < p.dossier_digitization:
            self._emit(t0 + rng.uniform(5, 300), base, "record.digitized", kind="dossier")
        t_res = t + rng.uniform(60, 3600)
        self._emit(t_res, base, "application.resolved", on_time=rng.random() < p.on_time)
        if rng.random() < p.result_digitization:
            self._emit(t_res + rng.uniform(5, 300), base, "record.digitized", kind="result")

    def _emit(self, t: float, base: dict[str, Any], event_type: str, **fields: Any) -> None:
        # Draw now what the rendering needs from the generator's random stream (whether the
        # event is bad, and why), so the stream's order does not depend on when it is released.
        self._seq += 1
        reason = None
        if self._bad_fraction and self._rng.random() < self._bad_fraction:
            reason = self._rng.choice(REASONS)
        flat = tuple(itertools.chain.from_iterable(fields.items()))
        heapq.heappush(self._heap, (t, self._seq, base, event_type, flat, reason))

    def _render(self, pending: _Pending) -> SimEvent:
        t, seq, base, event_type, flat, reason = pending
        body = {
            "event_id": f"{self._prefix}-{seq}",
            "event_type": event_type,
            "occurred_at": _rfc3339(t),
            **base,
            **dict(zip(flat[::2], flat[1::2], strict=True)),
        }
        key = str(base["province_code"]).encode()
        if reason is not None:
            return SimEvent(t, seq, key, self._corrupt(body, reason), reason)
        return SimEvent(t, seq, key, orjson.dumps(body))

    @staticmethod
    def _corrupt(body: dict[str, Any], reason: str) -> bytes:
        """The bytes of a bad event of `reason` (drawn at random in `_emit`)."""
        b = dict(body)
        if reason == "malformed_json":
            return orjson.dumps(b)[:-3]
        if reason == "not_an_object":
            return orjson.dumps([b["event_id"]])
        if reason == "too_large":
            b["agency_code"] = "x" * 9000
            return orjson.dumps(b)
        if reason == "missing_field":
            del b["dossier_id"]
        elif reason == "unknown_field":
            b["priority"] = "high"
        elif reason == "invalid_value":
            b["level"] = "village"
        elif reason == "unknown_event_type":
            b["event_type"] = "application.withdrawn"
        elif reason == "unsupported_schema_version":
            b["schema_version"] = 2
        elif reason == "unknown_province":
            b["province_code"] = "99"
        elif reason == "time_out_of_range":
            b["occurred_at"] = "2014-12-31T23:00:00+07:00"
        elif reason == "personal_data":
            b["citizen_phone"] = "0912345678"
        return orjson.dumps(b)
