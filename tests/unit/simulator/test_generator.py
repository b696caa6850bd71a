"""The simulator's output obeys the contract, and its bad events fail for the reason it claims."""

from collections import Counter
from datetime import UTC, datetime

from psmon.schemas.validation import Invalid, ValidEvent, validate_event
from psmon.simulator.profiles import default_profiles, with_drop
from psmon.simulator.runner import SimulationConfig, run_simulation
from psmon.workcalendar import activity_weight, demo_start, is_office_hours

START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 09:00 local


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[bytes, bytes, float]] = []

    def send(self, key: bytes, value: bytes, timestamp_s: float) -> None:
        self.events.append((key, value, timestamp_s))

    def flush(self) -> None: ...
    def close(self) -> None: ...


def simulate(n: int, **kw) -> Collect:  # type: ignore[no-untyped-def]
    out = Collect()
    # ~5 events per simulated second: enough simulated time for dossiers to be resolved
    cfg = SimulationConfig(
        kw.pop("profiles", default_profiles()),
        rate_eps=5,
        start=START,
        count=n,
        paced=False,
        seed=7,
        **kw,
    )
    run_simulation(cfg, out)
    return out


def test_good_events_are_valid_and_cover_all_provinces() -> None:
    out = simulate(20_000)
    verdicts = [validate_event(v, record_ts_s=t + 1) for _k, v, t in out.events]
    assert all(isinstance(v, ValidEvent) for v in verdicts)
    valid = [v for v in verdicts if isinstance(v, ValidEvent)]
    assert len({v.province_code for v in valid}) == 34
    assert any(v.raw_province_code != v.province_code for v in valid)  # old codes sent too
    assert Counter(v.event_type for v in valid).keys() == {
        "application.submitted",
        "application.resolved",
        "payment.completed",
        "record.digitized",
    }
    times = [t for _k, _v, t in out.events]
    assert times == sorted(times)


def test_bad_events_fail_with_the_reason_they_were_made_for() -> None:
    out = Collect()
    cfg = SimulationConfig(
        default_profiles(),
        rate_eps=2000,
        start=START,
        count=30_000,
        paced=False,
        seed=3,
        bad_fraction=0.05,
    )
    stats = run_simulation(cfg, out)
    reasons = Counter(
        v.reason for _k, raw, t in out.events if isinstance(v := validate_event(raw, record_ts_s=t + 1), Invalid)
    )
    assert sum(reasons.values()) == stats.bad > 1000
    assert reasons == Counter(stats.bad_by_reason)
    assert len(reasons) == 11


def test_drop_makes_one_province_fall() -> None:
    profiles = with_drop(default_profiles(), "25", "online_submission", 0.2)
    out = simulate(40_000, profiles=profiles, old_code_fraction=0.0)
    by_prov: dict[str, list[bool]] = {}
    for _k, raw, t in out.events:
        v = validate_event(raw, record_ts_s=t + 1)
        if isinstance(v, ValidEvent) and v.event_type == "application.submitted":
            by_prov.setdefault(v.province_code, []).append(v.channel == "online")
    share = {p: sum(x) / len(x) for p, x in by_prov.items()}
    assert 0.15 < share["25"] < 0.25
    assert share["01"] > 0.25


def test_office_hours_calendar() -> None:
    assert is_office_hours(datetime(2026, 11, 24, 2, 0, tzinfo=UTC))  # Tue 09:00 local
    assert not is_office_hours(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # Tue 12:00 lunch
    assert not is_office_hours(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))  # Sunday
    assert not is_office_hours(datetime(2026, 9, 2, 2, 0, tzinfo=UTC))  # National day
    assert activity_weight(datetime(2026, 11, 24, 20, 0, tzinfo=UTC)) < 0.1  # 03:00 local
    night = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # Tue 23:00 local
    assert demo_start(night) == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tue 08:00 local
