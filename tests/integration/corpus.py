"""Corpora for the delivery tests: messages whose per-province totals are counted here, by hand.

The expected totals are computed from the event dicts with plain field checks, not with psmon's
own counting code, so a counting bug in psmon cannot cancel out in the comparison. A corpus
mixes good events (some sent with old 63-province codes), repeats of good events as new
messages (same event_id: must count once), and bad messages of every dead-letter reason plus
random byte-level garbage. Personal values planted in bad messages (under personal field names,
or as values of any string field, whole or as a prefix, middle or suffix) are listed so tests
can prove they are stored nowhere.
"""

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from psmon.schemas.provinces import registry
from tests.helpers import TOTAL_KEYS

Totals = dict[str, dict[str, int]]

_NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Minh Dũng", "Hoàng Thu Hà")


@dataclass
class Corpus:
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    expected: Totals = field(default_factory=dict)
    good: int = 0
    repeats: int = 0
    late: int = 0
    bad_reasons: Counter[str] = field(default_factory=Counter)
    #: distinct bad payloads by reason: the rows of `dead_letters`, whose ids come from content
    bad_letters: Counter[str] = field(default_factory=Counter)
    pii_values: set[str] = field(default_factory=set)

    @property
    def bad(self) -> int:
        return sum(self.bad_reasons.values())


def _rfc3339(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_corpus(
    n: int,
    *,
    seed: int,
    now_s: float,
    span_s: float = 3 * 3600,
    repeat_fraction: float = 0.02,
    bad_fraction: float = 0.01,
    late_fraction: float = 0.0,
    prefix: str = "dl",
) -> Corpus:
    """`n` messages with event times in (now_s - span_s, now_s - 60]; a `late_fraction` of the
    good ones are 400-500 days old instead (older than every live bucket: late, yet stored)."""
    rng = random.Random(seed)
    reg = registry()
    current = list(reg.codes)
    old_of: dict[str, list[str]] = defaultdict(list)
    for old, _old_name, new, _new_name in reg.merger_rows():
        if old != new:
            old_of[new].append(old)
    c = Corpus(expected={code: dict.fromkeys(TOTAL_KEYS, 0) for code in current})
    sent_good: list[tuple[bytes, bytes]] = []
    bad_seen: set[bytes] = set()
    for i in range(n):
        roll = rng.random()
        if roll < bad_fraction:
            reason, raw = _bad(rng, i, now_s, c.pii_values, prefix)
            c.bad_reasons[reason] += 1
            if raw not in bad_seen:
                bad_seen.add(raw)
                c.bad_letters[reason] += 1
            c.messages.append((b"bad", raw))
            continue
        if roll < bad_fraction + repeat_fraction and sent_good:
            c.messages.append(rng.choice(sent_good))
            c.repeats += 1
            continue
        province = rng.choice(current)
        sent_code = rng.choice(old_of[province]) if old_of[province] and rng.random() < 0.1 else province
        late = rng.random() < late_fraction
        age_s = rng.uniform(400 * 86400, 500 * 86400) if late else rng.uniform(60, span_s)
        event = _good(rng, f"{prefix}-{seed}-{i}", sent_code, now_s - age_s)
        c.late += late
        _count(c.expected[province], event)
        msg = (province.encode(), orjson.dumps(event))
        c.messages.append(msg)
        sent_good.append(msg)
        c.good += 1
    c.expected = {p: t for p, t in c.expected.items() if any(t.values())}
    return c


def _good(rng: random.Random, event_id: str, province: str, ts_s: float) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "schema_version": 1,
        "occurred_at": _rfc3339(ts_s),
        "province_code": province,
        "level": rng.choice(("province", "commune")),
        "procedure_code": f"1.00{rng.randint(1000, 9999)}",
        "dossier_id": f"HS-{rng.randint(1, 10**9)}",
    }
    kind = rng.choices(("submitted", "resolved", "payment", "digitized"), (40, 25, 15, 20))[0]
    if kind == "submitted":
        channel = rng.choice(("online", "online", "counter", "postal"))
        mode = (
            rng.choice(("full_online", "partial_online"))
            if channel == "online"
            else rng.choice(("partial_online", "offline"))
        )
        return {
            **base,
            "event_type": "application.submitted",
            "channel": channel,
            "service_mode": mode,
            "fee_bearing": rng.random() < 0.5,
        }
    if kind == "resolved":
        return {**base, "event_type": "application.resolved", "on_time": rng.random() < 0.8}
    if kind == "payment":
        return {
            **base,
            "event_type": "payment.completed",
            "method": rng.choice(("online", "counter")),
            "amount_vnd": rng.choice((0, 15000, 50000)),
        }
    return {**base, "event_type": "record.digitized", "kind": rng.choice(("dossier", "result"))}


def _count(t: dict[str, int], e: dict[str, Any]) -> None:
    et = e["event_type"]
    if et == "application.submitted":
        t["submitted"] += 1
        t["online"] += e["channel"] == "online"
        t["full_online"] += e["channel"] == "online" and e["service_mode"] == "full_online"
        t["fee_bearing"] += e["fee_bearing"]
    elif et == "application.resolved":
        t["resolved"] += 1
        t["on_time"] += e["on_time"]
    elif et == "payment.completed":
        t["payments"] += 1
        t["paid_online"] += e["method"] == "online"
    else:
        t["dig_dossier" if e["kind"] == "dossier" else "dig_result"] += 1


def _bad(rng: random.Random, i: int, now_s: float, pii: set[str], prefix: str) -> tuple[str, bytes]:
    """A bad message: (expected dead-letter reason, bytes)."""
    ok = _good(rng, f"{prefix}-bad-{i}", "01", now_s - 600)
    reason = rng.choice(
        (
            "malformed_json",
            "not_an_object",
            "too_large",
            "missing_field",
            "unknown_field",
            "invalid_value",
            "unknown_event_type",
            "unsupported_schema_version",
            "unknown_province",
            "time_out_of_range",
            "personal_data",
            "personal_data",
            "garbage",
        )
    )
    b = dict(ok)
    if reason == "garbage":  # random bytes: never JSON of an object
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        return "malformed_json", b"\xff" + raw
    if reason == "malformed_json":
        text = orjson.dumps(b)
        return reason, text[: rng.randint(1, len(text) - 1)]
    if reason == "not_an_object":
        return reason, orjson.dumps(rng.choice(([1, 2], "text", 42, None, [b])))
    if reason == "too_large":
        b["agency_code"] = "x" * rng.randint(9000, 20000)
    elif reason == "missing_field":
        del b[rng.choice(("dossier_id", "province_code", "occurred_at", "level"))]
    elif reason == "unknown_field":
        b[rng.choice(("priority", "note", "extra"))] = "x"
    elif reason == "invalid_value":
        b["level"] = rng.choice(("village", "district", "", "PROVINCE"))
    elif reason == "unknown_event_type":
        b["event_type"] = rng.choice(("application.withdrawn", "", "APPLICATION.SUBMITTED"))
    elif reason == "unsupported_schema_version":
        b["schema_version"] = rng.choice((0, 2, 99))
    elif reason == "unknown_province":
        b["province_code"] = rng.choice(("99", "00", "65"))
    elif reason == "time_out_of_range":
        b["occurred_at"] = rng.choice(("2014-12-31T23:00:00+07:00", _rfc3339(now_s + 7 * 86400)))
    elif rng.random() < 0.3:  # personal data: a planted citizen name, ID number or phone under a personal field name
        field_name, value = rng.choice(
            (
                ("ho_ten", rng.choice(_NAMES) + f" {i}"),
                ("citizen_name", rng.choice(_NAMES) + f" {i}"),
                ("so_cccd", f"0{rng.randint(10**10, 10**11 - 1)}"),
                ("so_dien_thoai", f"09{rng.randint(10**7, 10**8 - 1)}"),
                ("phone", f"08{rng.randint(10**7, 10**8 - 1)}"),
            )
        )
        b[field_name] = value
        pii.add(value)
    else:  # personal data in a value: any string field, any position, under an innocent name
        value = _personal_value(rng, i)
        field_name = rng.choice([*(k for k, v in b.items() if isinstance(v, str)), "agency_code", "ghi_chu"])
        base = b.get(field_name, "000.00.12.H26")
        b[field_name] = rng.choice((value, f"{value} {base}", f"{base} {value} {base}", f"{base} {value}"))
        pii.add(value)
    return reason, orjson.dumps(b)


def _personal_value(rng: random.Random, i: int) -> str:
    """A random CCCD, CMND, mobile number (0... or +84...) or e-mail address."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"0{rng.randint(1, 96):02d}{rng.randint(0, 3)}{rng.randint(0, 10**8 - 1):08d}"
    if kind == 1:
        return str(rng.randint(10**8, 10**9 - 1))
    if kind == 2:
        return f"0{rng.choice('35789')}{rng.randint(0, 10**8 - 1):08d}"
    if kind == 3:
        return f"+84{rng.choice('35789')}{rng.randint(0, 10**8 - 1):08d}"
    return f"cong.dan.{i}.{rng.randint(0, 10**6)}@gmail.com"
