"""The simulated catalog: plausible sizes and shares, valid rows, and events that use it."""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import orjson

from psmon.schemas.catalog import parse_catalog_rows
from psmon.schemas.provinces import registry
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.simulator.catalog import entries, simulated_catalog, write_catalog_csv
from psmon.simulator.profiles import default_profiles
from psmon.simulator.runner import SimulationConfig, run_simulation
from tests.unit.simulator.test_generator import START, Collect


def test_every_province_has_hundreds_to_two_thousand_procedures_with_its_own_shares() -> None:
    cat = simulated_catalog()
    assert sorted(cat) == sorted(registry().codes)
    sizes = {p: len(c) for p, c in cat.items()}
    assert all(300 <= n <= 2000 for n in sizes.values())
    assert max(sizes.values()) >= 1800 and min(sizes.values()) < 800
    online = {p: sum(c.online_level(i) != "none" for i in range(len(c))) / len(c) for p, c in cat.items()}
    assert max(online.values()) - min(online.values()) > 0.15  # province-dependent
    for c in cat.values():
        for i in range(len(c)):
            if c.payment_integrated(i):  # only fee-bearing online procedures are integrated
                assert c.fee_bearing(i) and c.online_level(i) != "none"
    # compact: a few flat arrays, no object per procedure
    per_procedure = sum(
        sys.getsizeof(c.codes) + sys.getsizeof(c.flags) + sys.getsizeof(c.weights) for c in cat.values()
    )
    assert per_procedure / sum(sizes.values()) < 20


def test_the_catalog_is_deterministic_and_depends_on_its_seed() -> None:
    a, b = simulated_catalog(0), simulated_catalog(0)
    assert [e for e in entries(a)][:50] == [e for e in entries(b)][:50]
    other = simulated_catalog(1)
    assert list(other["25"].codes) != list(a["25"].codes)


def test_the_csv_is_accepted_by_the_catalog_parser(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    n = write_catalog_csv(path, simulated_catalog())
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    parsed, errors = parse_catalog_rows(rows, source=str(path), first_line=2, text=True)
    assert errors == []
    assert len(parsed) == n == sum(len(c) for c in simulated_catalog().values())
    assert parsed == list(entries(simulated_catalog()))


def test_events_use_the_catalog_and_leave_some_online_procedures_idle() -> None:
    out = Collect()
    run_simulation(
        SimulationConfig(default_profiles(), rate_eps=5, start=START, count=20_000, paced=False, seed=3), out
    )
    cat = simulated_catalog()
    index = {p: {c.code(i): i for i in range(len(c))} for p, c in cat.items()}
    filed_online: dict[str, set[str]] = defaultdict(set)
    for _k, value, t in out.events:
        v = validate_event(value, record_ts_s=t + 1)
        assert isinstance(v, ValidEvent)
        c, i = cat[v.province_code], index[v.province_code][v.procedure_code]  # KeyError: not in the catalog
        assert v.level == c.level(i)
        if v.event_type == "application.submitted" and v.channel == "online":
            assert c.online_level(i) != "none" and not c.dormant(i)
            if v.service_mode == "full_online":
                assert c.online_level(i) == "full"
            filed_online[v.province_code].add(v.procedure_code)
        if v.event_type == "payment.completed" and v.method == "online":
            assert c.payment_integrated(i)
    # Ho Chi Minh City (the most dossiers): popular procedures are filed, dormant ones never are
    hcm = cat["79"]
    online = {hcm.code(i) for i in range(len(hcm)) if hcm.online_level(i) != "none"}
    assert 0 < len(filed_online["79"]) < len(online)
    assert any(hcm.dormant(i) for i in range(len(hcm)))


def test_jsonl_rows_of_the_entries_validate_too() -> None:
    rows = [orjson.loads(orjson.dumps(e, default=str)) for e in list(entries(simulated_catalog()))[:5]]
    assert rows  # dataclasses serialize field by field
    parsed, errors = parse_catalog_rows(rows, source="x")
    assert errors == [] and len(parsed) == 5
