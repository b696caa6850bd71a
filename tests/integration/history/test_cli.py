"""`psmon replay`, `query`, `report` and `dead-letters` as a user runs them (Typer's CliRunner, real chDB).

The dataset is loaded with `psmon replay` itself, then every named question is compared with the
hand computation of `dataset.py`, the report is parsed and its charts decoded, and the Kafka
paths (`replay --publish`, `dead-letters redrive`) are read back from a real broker.
"""

import base64
import csv
import io
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from psmon.cli.main import app
from psmon.history.report import COLORS
from psmon.schemas.index766 import score
from psmon.schemas.validation import Invalid, validate_event
from tests.helpers import wait_until
from tests.history_dataset import hand_counters, local_day
from tests.integration.history.dataset import COUNTERS, Dataset, expected_metrics


@pytest.fixture(scope="module")
def cli(module_dsn: str, module_client: Any, dataset: Dataset) -> dict[str, str]:
    """Environment of a database loaded by `psmon replay` (run twice: the second adds nothing)."""
    env = {"PSMON_CLICKHOUSE_DSN": module_dsn, "PSMON_CLICKHOUSE_DATABASE": "cli"}
    first = run(env, "replay", str(dataset.path), "--no-progress", "-f", "json")
    second = run(env, "replay", str(dataset.path), "--no-progress", "-f", "json", "--workers", "2")
    first_summary, second_summary = orjson.loads(first.splitlines()[-1]), orjson.loads(second.splitlines()[-1])
    assert first_summary["inserted"] == len(dataset.events)
    assert second_summary["inserted"] == 0 and second_summary["already_stored"] == second_summary["valid"]
    return env


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_replay_refuses_no_workers_in_one_line(dataset: Dataset) -> None:
    result = CliRunner().invoke(app, ["replay", str(dataset.path), "--workers", "0"])
    assert result.exit_code != 0 and "--workers must be >= 1" in result.output
    assert "Traceback" not in result.output


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_rates_by_month_as_csv(cli: dict[str, str], dataset: Dataset) -> None:
    out = run(
        cli, "query", "rates", "--metric", "online_submission_ratio", "--by", "month", "--year", "2025", "-f", "csv"
    )
    got = {(r["period"], r["province_code"]): (int(r["numerator"]), int(r["denominator"])) for r in csv_rows(out)}
    expected = {
        (p, c): nd for (p, c, m), nd in expected_metrics(dataset.events, "month").items() if m == "online_submission"
    }
    assert got == expected


def test_rates_with_historical_codes_as_json(cli: dict[str, str]) -> None:
    out = run(cli, "query", "rates", "-m", "on_time", "--year", "2025", "-p", "80", "--historical-codes", "-f", "json")
    rows = orjson.loads(out)["rows"]
    assert {(r["period"], r["province"]) for r in rows} == {("2025-06", "Long An"), ("2025-07", "Tây Ninh")}


def test_rank_and_below(cli: dict[str, str], dataset: Dataset) -> None:
    ranked = orjson.loads(run(cli, "query", "rank", "--metric", "on_time", "--period", "2025-Q3", "-f", "json"))["rows"]
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    ratios = [r["ratio"] for r in ranked]
    assert ratios == sorted(ratios, reverse=True)
    out = run(cli, "query", "below", "--threshold", "50%", "--year", "2025", "-f", "csv")
    monthly = expected_metrics(dataset.events, "month")
    expected = {(p, c) for (p, c, m), (n, d) in monthly.items() if m == "online_submission" and d and n / d < 0.5}
    assert {(r["period"], r["province_code"]) for r in csv_rows(out)} == expected
    table = run(cli, "query", "below", "--threshold", "0.5", "--year", "2025")
    assert "online_submission below 50.00%" in table


def test_index_for_a_month(cli: dict[str, str], dataset: Dataset) -> None:
    body = orjson.loads(run(cli, "query", "index", "--month", "2025-07", "-f", "json"))
    hand = hand_counters([e for e in dataset.events if f"{local_day(e):%Y-%m}" == "2025-07"], lambda e: e.province_code)
    assert len(body["rows"]) == 34
    for row in body["rows"]:
        expected = score({c: 0 for c in COUNTERS} | dict(hand[row["province_code"]]))
        assert row["total"] == pytest.approx(expected["total"], abs=0.0051)
        assert row["max_points"] == 42
    assert any("42 of 100" in n for n in body["notes"])
    assert any("satisfaction" in n for n in body["notes"])
    # A configurable rule changes the points of that item only.
    alt = orjson.loads(run(cli, "query", "index", "--month", "2025-07", "--rule", "4.2=full:0.8", "-f", "json"))
    by_code = {r["province_code"]: r for r in body["rows"]}
    for r in alt["rows"]:
        assert r["i4_2_dossier_digitized"] >= by_code[r["province_code"]]["i4_2_dossier_digitized"]
        assert r["i2_1_on_time"] == by_code[r["province_code"]]["i2_1_on_time"]


def test_raw_sql(cli: dict[str, str], dataset: Dataset) -> None:
    out = run(cli, "query", "--sql", "SELECT count() AS n FROM cli.events FINAL", "-f", "csv")
    assert csv_rows(out) == [{"n": str(len(dataset.events))}]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,"):
            self.images[a["id"] or ""] = base64.b64decode((a["src"] or "").split(",", 1)[1])
        if tag == "section":
            self.sections.append(a.get("id") or "")


def test_report_is_self_contained_with_its_charts(cli: dict[str, str], tmp_path: Path) -> None:
    out = run(
        cli,
        "report",
        "--period",
        "2025-Q3",
        "--out",
        str(tmp_path),
        "-m",
        "online_submission",
        "-m",
        "on_time",
        "--lang",
        "en",
    )
    paths = [Path(p) for p in out.split()]
    html_path, pngs = paths[0], paths[1:]
    assert html_path.suffix == ".html" and len(pngs) == 6
    parser = _Images()
    text = html_path.read_text(encoding="utf-8")
    parser.feed(text)
    assert parser.sections == ["online_submission", "on_time", "index766"]
    for kind in ("trend", "ranking", "grid"):
        for metric in ("online_submission", "on_time"):
            name = f"{metric}-{kind}-2025-Q3"
            assert parser.images[name].startswith(b"\x89PNG\r\n\x1a\n")
            assert (tmp_path / f"{name}.png").read_bytes() == parser.images[name]
    assert "http://" not in text and "https://" not in text and "<script" not in text  # nothing external
    assert "Tây Ninh" in text and "Decision 766" in text


def test_dead_letters_list_and_explain(cli: dict[str, str], dataset: Dataset) -> None:
    distinct = dict.fromkeys(dataset.lines)  # identical bad lines are one dead letter (content ids)
    reasons = Counter(v.reason for v in (validate_event(line) for line in distinct) if isinstance(v, Invalid))
    explained = orjson.loads(run(cli, "dead-letters", "explain", "-f", "json"))["rows"]
    assert {r["reason"]: r["count"] for r in explained} == dict(reasons)
    listed = orjson.loads(
        run(cli, "dead-letters", "list", "--reason", "personal_data", "--limit", "1000", "-f", "json")
    )
    assert len(listed["rows"]) == reasons["personal_data"]
    for r in listed["rows"]:
        assert "phone" not in r["redacted"]  # the personal field's name and value were not kept


def read_topic(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(2)])
    consumer.seek_to_beginning()
    values: list[bytes] = []

    def read() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(m.value for m in records)
        return len(values) >= expected

    try:
        wait_until(read, timeout_s=60, interval_s=0, what=f"{expected} messages on {topic}")
    finally:
        consumer.close()
    return values


def test_redrive_publishes_the_letters_that_are_valid_now(
    cli: dict[str, str], kafka_bootstrap: str, unique: str
) -> None:
    env = {**cli, "PSMON_KAFKA_BOOTSTRAP": kafka_bootstrap, "PSMON_TOPIC_PREFIX": unique, "PSMON_TOPIC_PARTITIONS": "2"}
    dry = orjson.loads(run(env, "dead-letters", "redrive", "--reason", "invalid_value", "--dry-run", "-f", "json"))
    assert {r["now"] for r in dry["rows"]} != {"valid"}  # without the fix the dropped field is missing
    body = orjson.loads(
        run(env, "dead-letters", "redrive", "--reason", "invalid_value", "--set", "level=commune", "-f", "json")
    )
    valid = [r for r in body["rows"] if r["now"] == "valid"]
    assert valid
    messages = read_topic(kafka_bootstrap, f"{unique}.events", len(valid))
    assert len(messages) == len(valid)
    for m in messages:
        v = validate_event(m)
        assert not isinstance(v, Invalid) and v.level == "commune"


def test_replay_publish_sends_every_row(tmp_path: Path, dataset: Dataset, kafka_bootstrap: str, unique: str) -> None:
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"".join(line + b"\n" for line in dataset.lines[:300]))
    env = {"PSMON_KAFKA_BOOTSTRAP": kafka_bootstrap, "PSMON_TOPIC_PREFIX": unique, "PSMON_TOPIC_PARTITIONS": "2"}
    summary = orjson.loads(run(env, "replay", str(small), "--publish", "--no-progress", "-f", "json").splitlines()[-1])
    assert summary["published"] == 300 and summary["inserted"] == 0
    assert sorted(read_topic(kafka_bootstrap, f"{unique}.events", 300)) == sorted(dataset.lines[:300])


def _chromium() -> str:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    raise AssertionError("headless Chromium is missing: `make sysdeps` installs chromium-headless-shell")


def test_the_vietnamese_report_renders_in_a_browser(cli: dict[str, str], tmp_path: Path) -> None:
    """Headless Chromium renders the report as people open it: a screenshot shows the headings'
    Vietnamese text laid out and the charts drawn (the floor/target/ok colours of the bars)."""
    out = run(cli, "report", "--period", "2025-Q3", "--out", str(tmp_path), "-m", "online_submission", "--lang", "vi")
    html_path = Path(out.split()[0])
    assert "Báo cáo psmon, 2025-Q3" in html_path.read_text(encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,4000",
            f"--screenshot={shot}",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = (mpimg.imread(shot)[:, :, :3] * 255).round().astype(int)  # RGB, 0-255
    rgb = pixels.reshape(-1, 3)
    not_white = (rgb < 245).any(axis=1).mean()
    assert not_white > 0.05, f"the screenshot is almost blank ({not_white:.1%} drawn)"
    colours = {tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in COLORS.values()}
    present = {c for c in colours if (np.abs(rgb - np.array(c)).max(axis=1) <= 2).sum() > 200}
    assert len(present) >= 2, f"bar colours seen: {present}"  # the ranking is coloured, not one blue
