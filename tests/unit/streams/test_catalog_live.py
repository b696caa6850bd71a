"""Catalog gauges from a fixed catalog and events equal a pure-Python computation; month rollover,
catalog changes, versions, partition revocation and checkpoints."""

import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from psmon.metrics import PipelineMetrics
from psmon.schemas.catalog import CatalogEntry, encode_entry
from psmon.schemas.normalized import decode_valid, encode_valid
from psmon.schemas.validation import ValidEvent
from psmon.streams.catalog_live import CatalogActivity, CatalogGauges, CatalogView
from psmon.streams.checkpoint import Checkpoint, CheckpointStore, ValidState
from psmon.streams.live import LiveRates
from psmon.streams.windows import RollingRates
from psmon.timeutil import local_day_start_s

#: 2026-08-20 10:00 local: "now" of the tests (the wall clock of the windows is pinned after it).
NOW_S = local_day_start_s(date(2026, 8, 20)) + 10 * 3600
METRICS = ("procedures_online", "procedures_with_dossiers", "procedures_payment_integrated", "procedures_paid_online")


def entry(
    province: str,
    code: str,
    online: str = "full",
    fee: bool = False,
    integrated: bool = False,
    valid_from: date = date(2025, 7, 1),
    valid_to: date | None = None,
) -> CatalogEntry:
    return CatalogEntry(
        province_code=province,
        procedure_code=code,
        name=f"Thủ tục {code}",
        level="province",
        online_level=online,  # type: ignore[arg-type]
        fee_bearing=fee,
        payment_integrated=integrated,
        valid_from=valid_from,
        valid_to=valid_to,
    )


_seq = iter(range(1, 10**9))


def event(province: str, kind: str, code: str, at_s: float, *, online: bool = True):  # type: ignore[no-untyped-def]
    n = next(_seq)
    fields = (
        {"channel": "online" if online else "counter", "service_mode": "full_online" if online else "offline"}
        if kind == "application.submitted"
        else {"method": "online" if online else "counter", "amount_vnd": 1000}
    )
    ev = ValidEvent(
        event_id=f"e{n}",
        event_type=kind,
        occurred_at_s=at_s,
        province_code=province,
        raw_province_code=province,
        level="province",
        procedure_code=code,
        dossier_id=f"d{n}",
        fee_bearing=kind == "payment.completed",
        **fields,
    )
    return decode_valid(encode_valid(ev, src_partition=0, src_offset=n, src_ts_ms=int(at_s * 1000)))


class Worker:
    """LiveRates + the catalog state, as the worker wires them (clock pinned after NOW_S)."""

    def __init__(self) -> None:
        self.reg = CollectorRegistry()
        self.activity = CatalogActivity()
        self.live = LiveRates(
            metrics=PipelineMetrics(self.reg),
            dedup_max_ids=100_000,
            worker="w",
            rates=RollingRates(clock=lambda: NOW_S + 86400 * 60),
            catalog=self.activity,
        )
        self.view = CatalogView()
        self.gauges = CatalogGauges(self.live.metrics, self.view, self.activity)

    def load(self, entries: list[CatalogEntry]) -> None:
        for e in entries:
            self.view.apply(e.key.encode(), encode_entry(e))

    def refresh(self) -> None:
        self.gauges.refresh(self.live.live_provinces(), self.live.rates.watermark_s)

    def gauge(self, province: str, metric: str) -> tuple[float | None, float | None]:
        labels = {"province": province, "metric": metric, "window": "month"}
        return self.reg.get_sample_value("psmon_ratio", labels), self.reg.get_sample_value(
            "psmon_ratio_denominator", labels
        )


def expected(
    catalog: list[CatalogEntry], events: list[tuple[str, str, str, float, bool]], province: str, today: date
) -> dict[str, tuple[int, int]]:
    """The four shares by their definitions, month to date, computed the plain way."""
    first = today.replace(day=1)
    procs = [
        e
        for e in catalog
        if e.province_code == province and e.in_force_during(first, date.fromordinal(today.toordinal() + 1))
    ]

    def this_month(at_s: float) -> bool:
        d = datetime.fromtimestamp(at_s + 7 * 3600, UTC).date()
        return first <= d <= today

    dossier = {
        c for p, k, c, t, on in events if p == province and k == "application.submitted" and on and this_month(t)
    }
    paid = {c for p, k, c, t, on in events if p == province and k == "payment.completed" and on and this_month(t)}
    online = [e for e in procs if e.online_level != "none"]
    fee_online = [e for e in online if e.fee_bearing]
    integrated = [e for e in procs if e.payment_integrated]
    return {
        "procedures_online": (len(online), len(procs)),
        "procedures_with_dossiers": (sum(e.procedure_code in dossier for e in online), len(online)),
        "procedures_payment_integrated": (sum(e.payment_integrated for e in fee_online), len(fee_online)),
        "procedures_paid_online": (sum(e.procedure_code in paid for e in integrated), len(integrated)),
    }


def random_case(seed: int) -> tuple[list[CatalogEntry], list[tuple[str, str, str, float, bool]]]:
    rng = random.Random(seed)
    catalog = []
    for province in ("01", "25", "79"):
        for i in range(rng.randrange(20, 60)):
            online = rng.choice(("full", "partial", "none"))
            fee = rng.random() < 0.5
            valid_from = rng.choice((date(2025, 7, 1), date(2026, 8, 10), date(2026, 8, 25)))
            valid_to = rng.choice((None, None, date(2026, 8, 5), date(2026, 9, 1)))
            if valid_to is not None and valid_to <= valid_from:
                valid_to = None
            catalog.append(
                entry(
                    province,
                    f"1.{i:06d}",
                    online,
                    fee,
                    fee and online != "none" and rng.random() < 0.7,
                    valid_from,
                    valid_to,
                )
            )
    events = []
    month_start = local_day_start_s(date(2026, 8, 1))
    for _ in range(600):
        at = rng.uniform(month_start - 5 * 86400, NOW_S)  # some in July: not this month
        kind = rng.choice(("application.submitted", "payment.completed"))
        events.append((rng.choice(("01", "25", "79")), kind, f"1.{rng.randrange(0, 70):06d}", at, rng.random() < 0.7))
    events.sort(key=lambda e: e[3])
    return catalog, events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gauges_equal_the_plain_computation(seed: int) -> None:
    catalog, events = random_case(seed)
    w = Worker()
    w.load(catalog)
    for province, kind, code, at, online in events:
        w.live.observe(event(province, kind, code, at, online=online), partition=int(province) % 4)
    w.refresh()
    today = date(2026, 8, 20)
    assert w.live.rates.watermark_s is not None
    for province in ("01", "25", "79"):
        want = expected(
            catalog, events, province, datetime.fromtimestamp(w.live.rates.watermark_s + 7 * 3600, UTC).date()
        )
        assert datetime.fromtimestamp(w.live.rates.watermark_s + 7 * 3600, UTC).date() == today
        for metric in METRICS:
            num, den = want[metric]
            value, denominator = w.gauge(province, metric)
            if den == 0:
                assert value is None and denominator is None
            else:
                assert (value, denominator) == (num / den, den), (province, metric)


def test_redeliveries_and_duplicates_do_not_feed_the_activity() -> None:
    w = Worker()
    w.load([entry("25", "1.000001"), entry("25", "1.000002")])
    r = event("25", "application.submitted", "1.000001", NOW_S)
    w.live.observe(r, partition=1)
    w.live.observe(r, partition=1)  # redelivery
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (0.5, 2)
    assert w.activity.to_checkpoint(1)["provinces"]["25"] == {
        str(2026 * 12 + 7): {"dossiers": ["1.000001"], "payments": []}
    }


def test_a_new_month_starts_from_zero_and_late_july_events_do_not_count_in_august() -> None:
    w = Worker()
    w.load([entry("25", "1.000001"), entry("25", "1.000002")])
    july = local_day_start_s(date(2026, 7, 31)) + 3600
    w.live.observe(event("25", "application.submitted", "1.000001", july), partition=1)
    w.live.observe(event("25", "application.submitted", "1.000002", july + 60), partition=1)
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (1.0, 2)  # July to date: both
    aug = local_day_start_s(date(2026, 8, 1)) + 60  # 00:01 local on the 1st: a new month
    w.live.observe(event("25", "application.submitted", "1.000002", aug, online=False), partition=1)
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (0.0, 2)
    w.live.observe(event("25", "application.submitted", "1.000001", july + 120), partition=1)  # late, July
    w.live.observe(event("25", "application.submitted", "1.000002", aug + 60), partition=1)
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (0.5, 2)


def test_a_catalog_change_changes_the_gauges() -> None:
    w = Worker()
    w.load([entry("25", "1.000001"), entry("25", "1.000002", online="none"), entry("25", "1.000003", fee=True)])
    w.live.observe(event("25", "application.submitted", "1.000001", NOW_S), partition=1)
    w.refresh()
    assert w.gauge("25", "procedures_online") == (2 / 3, 3)
    assert w.gauge("25", "procedures_with_dossiers") == (0.5, 2)
    assert w.gauge("25", "procedures_payment_integrated") == (0.0, 1)
    assert w.gauge("25", "procedures_paid_online") == (None, None)  # no integrated procedure
    # 1.000002 goes online and 1.000003 is integrated, both from today: new versions of the keys
    w.load(
        [
            entry("25", "1.000002", valid_from=date(2026, 8, 20)),
            entry("25", "1.000003", fee=True, integrated=True, valid_from=date(2026, 8, 20)),
        ]
    )
    w.refresh()
    assert w.gauge("25", "procedures_online") == (1.0, 3)
    assert w.gauge("25", "procedures_with_dossiers") == (1 / 3, 3)
    assert w.gauge("25", "procedures_payment_integrated") == (1.0, 1)
    assert w.gauge("25", "procedures_paid_online") == (0.0, 1)
    # a tombstone removes a procedure
    w.view.apply(b"25/1.000002", None)
    w.refresh()
    assert w.gauge("25", "procedures_online") == (1.0, 2)


def test_versions_end_where_the_next_one_starts() -> None:
    view = CatalogView()
    view.put(entry("25", "1.000001", online="none"))
    view.put(entry("25", "1.000001", online="full", valid_from=date(2026, 9, 1)))
    aug = view.in_force("25", date(2026, 8, 1), date(2026, 8, 21))
    sep = view.in_force("25", date(2026, 9, 1), date(2026, 9, 2))
    assert [e.online_level for e in aug] == ["none"] and [e.online_level for e in sep] == ["full"]
    view.put(entry("25", "1.000001", online="partial"))  # same valid_from: a correction
    assert [e.online_level for e in view.in_force("25", date(2026, 8, 1), date(2026, 8, 21))] == ["partial"]
    view.put(entry("25", "1.000009", valid_to=date(2026, 8, 1)))  # ended before August
    assert [e.procedure_code for e in view.in_force("25", date(2026, 8, 1), date(2026, 8, 21))] == ["1.000001"]
    with pytest.raises(ValueError, match="missing"):
        view.apply(b"25/1.000001", b"{}")


def test_revoked_provinces_lose_their_gauges_at_once_and_checkpoints_round_trip() -> None:
    w = Worker()
    w.load([entry("25", "1.000001"), entry("01", "1.000001"), entry("01", "1.000002")])
    w.live.observe(event("25", "application.submitted", "1.000001", NOW_S), partition=1)
    w.live.observe(event("01", "application.submitted", "1.000002", NOW_S), partition=2)
    w.refresh()
    saved = w.activity.to_checkpoint(2)
    assert w.gauge("01", "procedures_with_dossiers") == (0.5, 2)
    w.live.drop_partitions({2})
    assert w.gauge("01", "procedures_with_dossiers") == (None, None)  # before any refresh
    assert w.gauge("25", "procedures_with_dossiers") == (1.0, 1)
    assert w.activity.to_checkpoint(2) == {"provinces": {}}
    w.activity.restore(2, saved)
    assert w.activity.to_checkpoint(2) == saved
    w.live.observe(event("01", "application.submitted", "1.000009", NOW_S), partition=2)  # re-owned
    w.refresh()
    assert w.gauge("01", "procedures_with_dossiers") == (0.5, 2)


def test_catching_up_provinces_are_not_exported() -> None:
    w = Worker()
    w.load([entry("25", "1.000001")])
    w.live.catch_up({1})
    w.live.observe(event("25", "application.submitted", "1.000001", NOW_S), partition=1)
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (None, None)
    w.live.caught_up(1)
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (1.0, 1)


def test_procedure_activity_survives_a_checkpoint_file(tmp_path: Path) -> None:
    """A worker restoring a partition from its checkpoint file shows the same catalog shares as
    the worker that wrote it: the month's procedures with dossiers are part of the state."""
    w = Worker()
    w.load([entry("25", "1.000001"), entry("25", "1.000002"), entry("25", "1.000003")])
    for code in ("1.000001", "1.000002"):
        w.live.observe(event("25", "application.submitted", code, NOW_S), partition=1)
    w.refresh()
    assert w.gauge("25", "procedures_with_dossiers") == (2 / 3, 3)
    store = CheckpointStore(tmp_path, app_id="psmon")
    store.write("psmon.valid", 1, 8, Checkpoint(next_offset=2, state=w.live.partition_state(1), last_record=(1, "00")))
    restored = store.read("psmon.valid", 1, 8)
    assert restored is not None and isinstance(restored.state, ValidState)

    successor = Worker()
    successor.load([entry("25", "1.000001"), entry("25", "1.000002"), entry("25", "1.000003")])
    successor.live.catch_up({1})
    successor.live.restore_partition(1, restored.state)
    successor.live.caught_up(1)
    successor.refresh()
    assert successor.gauge("25", "procedures_with_dossiers") == (2 / 3, 3)
