import orjson
import pytest

from psmon.history.dead_letters import REASON_HELP, DeadLetterStore, parse_fixes, rebuild
from psmon.schemas.validation import DEAD_LETTER_REASONS


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


class _Result:
    def __init__(self, rows: list[tuple[object, ...]]):
        self.result_rows = rows


class _Client:
    """Answers the one `GROUP BY reason` query of `DeadLetterStore.explain`."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def query(self, sql: str, parameters: object = None) -> _Result:
        assert "GROUP BY reason" in sql
        return _Result(list(self.counts.items()))


def test_explain_lists_unstorable_letters_with_their_meaning_and_fix() -> None:
    assert "unstorable" in REASON_HELP and set(REASON_HELP) == set(DEAD_LETTER_REASONS)
    store = DeadLetterStore(_Client({"unstorable": 2, "invalid_value": 5}), database="db")  # type: ignore[arg-type]
    table = store.explain()
    assert [(r[0], r[1]) for r in table.rows] == [("invalid_value", 5), ("unstorable", 2)]
    assert "ClickHouse refused" in str(table.rows[1][2])
