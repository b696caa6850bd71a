from datetime import datetime

from psmon.schemas.provinces import registry
from psmon.timeutil import LOCAL_TZ


def test_34_current_and_63_old_codes() -> None:
    r = registry()
    assert len(r.codes) == 34
    assert len(r.old_codes) == 63
    assert all(r.to_current(c) == c for c in r.codes)
    assert {r.to_current(c) for c in r.old_codes} == set(r.codes)


def test_unknown_code() -> None:
    assert registry().to_current("99") is None
    assert registry().to_current("03") is None


def test_name_depends_on_date() -> None:
    r = registry()
    assert r.name_at("80", datetime(2024, 5, 1, tzinfo=LOCAL_TZ)) == "Long An"
    assert r.name_at("80", datetime(2025, 7, 1, tzinfo=LOCAL_TZ)) == "Tây Ninh"
    assert r.name_at("72", datetime(2026, 1, 1, tzinfo=LOCAL_TZ)) == "Tây Ninh"  # old-only code keeps its old name
