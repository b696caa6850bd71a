"""`psmon validate` and `psmon replay` print a summary for people by default and one JSON object
with `--format json`, never a Python dict; a format that holds rows is refused in one line."""

from pathlib import Path

import orjson
from typer.testing import CliRunner

from psmon.cli.history import replay_text
from psmon.cli.main import app
from tests.helpers import RESOLVED_EVENT

runner = CliRunner()

GOOD = {**RESOLVED_EVENT, "event_id": "s-1"}


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "e.jsonl"
    bad = {**GOOD, "event_id": "s-2", "citizen_name": "x"}
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in (GOOD, bad, {**bad, "event_id": "s-3"})))
    return path


def test_validate_prints_a_summary_for_people(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(_file(tmp_path)), "--lang", "en"])
    assert result.exit_code == 1
    last = result.stdout.splitlines()[-1]
    assert last == "3 events, 1 valid, 2 invalid (2 personal_data)"
    assert "{" not in result.stdout


def test_summaries_speak_the_users_language(tmp_path: Path) -> None:
    path = _file(tmp_path)
    vi = runner.invoke(app, ["validate", str(path)], env={"PSMON_LANG": "vi"})
    assert vi.stdout.splitlines()[-1] == "3 sự kiện: 1 hợp lệ, 2 không hợp lệ (2 personal_data)"
    en = runner.invoke(app, ["validate", str(path)], env={"PSMON_LANG": "vi", "LANG": "en_US.UTF-8"})
    assert en.stdout.splitlines()[-1].startswith("3 sự kiện")  # PSMON_LANG wins over the locale
    flag = runner.invoke(app, ["validate", str(path), "--lang", "en"], env={"PSMON_LANG": "vi"})
    assert flag.stdout.splitlines()[-1].startswith("3 events")  # and the flag over PSMON_LANG


def test_validate_format_json_is_one_json_object(tmp_path: Path) -> None:
    path = _file(tmp_path)
    result = runner.invoke(app, ["validate", str(path), "--format", "json"])
    assert result.exit_code == 1
    body = orjson.loads(result.stdout)
    assert {k: body[k] for k in ("file", "events", "valid", "invalid", "invalid_by_reason")} == {
        "file": str(path),
        "events": 3,
        "valid": 1,
        "invalid": 2,
        "invalid_by_reason": {"personal_data": 2},
    }
    assert [e["row"] for e in body["examples"]] == [2, 3]


def test_summaries_refuse_a_row_format_in_one_line(tmp_path: Path) -> None:
    path = _file(tmp_path)
    for command in (["validate", str(path)], ["replay", str(path), "--data-dir", str(tmp_path)]):
        result = runner.invoke(app, [*command, "-f", "csv"])
        assert result.exit_code == 1, result.output
        assert result.output.strip() == "psmon: --format must be one of table, json here; got 'csv'"


def test_replay_summary_for_people() -> None:
    summary: dict[str, object] = {
        "rows": 1200,
        "valid": 1190,
        "invalid": 10,
        "invalid_by_reason": {"invalid_value": 4, "personal_data": 6},
        "inserted": 1000,
        "already_stored": 190,
        "unstorable": 0,
        "beyond_retention": 0,
        "published": 0,
        "elapsed_s": 1.25,
        "rate_eps": 960.0,
    }
    assert replay_text(summary, "vi").splitlines() == [
        "1,200 dòng đã đọc: 1,190 hợp lệ, 10 không hợp lệ (4 invalid_value, 6 personal_data)",
        "1,000 đã ghi, 190 đã có sẵn, 0 không lưu được, 0 quá hạn lưu giữ, 0 đã gửi Kafka",
        "1.25 giây, 960.0 dòng/giây",
    ]
    assert replay_text(summary, "en").splitlines() == [
        "1,200 rows read, 1,190 valid, 10 invalid (4 invalid_value, 6 personal_data)",
        "1,000 inserted, 190 already stored, 0 unstorable, 0 beyond retention, 0 published",
        "1.25 s, 960.0 rows/s",
    ]
