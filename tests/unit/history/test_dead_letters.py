import orjson
import pytest

from psmon.history.dead_letters import parse_fixes, rebuild


def test_fixes_read_json_values_and_fall_back_to_strings() -> None:
    assert parse_fixes(["level=commune", "fee_bearing=true", "schema_version=1", "province_code=79"]) == {
        "level": "commune",
        "fee_bearing": True,
        "schema_version": 1,
        "province_code": 79,  # JSON number: validation will reject it; quote it as '"79"'
    }
    assert parse_fixes(['province_code="79"']) == {"province_code": "79"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_fixes(["level"])


def test_rebuild_applies_fixes_over_the_redacted_payload() -> None:
    assert orjson.loads(rebuild({"event_id": "e", "level": "x"}, {"level": "commune"}) or b"") == {
        "event_id": "e",
        "level": "commune",
    }
    assert rebuild(None, {"level": "commune"}) is None  # nothing was kept: cannot be re-driven
