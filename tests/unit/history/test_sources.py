"""File readers: every format yields the message bytes a portal would have sent."""

import decimal
import hashlib
import io
import random
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from psmon.history.sources import (
    HOLD_LINE_BYTES,
    SKIP_CHUNK_BYTES,
    SourceError,
    _jsonl_blocks,
    _Lines,
    read_message_blocks,
    read_messages,
    size_hint,
    streamed_digest,
)
from psmon.schemas.dead_letter import letter_id
from psmon.schemas.digest import payload_digest
from psmon.schemas.validation import MAX_EVENT_BYTES, Invalid, ValidEvent, validate_event
from tests.helpers import parquet_unreadable_after

EVENT = {
    "event_id": "e-1",
    "event_type": "application.submitted",
    "schema_version": 1,
    "occurred_at": "2025-06-30T09:00:00+07:00",
    "province_code": "80",
    "level": "district",
    "procedure_code": "1.004227",
    "dossier_id": "D-1",
    "channel": "online",
    "service_mode": "full_online",
    "fee_bearing": False,
}


def test_jsonl_passes_lines_through_and_skips_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(orjson.dumps(EVENT) + b"\n\n{bad\n")
    seen: list[int] = []
    rows = list(read_messages(f, progress=seen.append))
    assert rows == [(1, orjson.dumps(EVENT)), (3, b"{bad")]
    assert sum(seen) == size_hint(f)


def test_csv_cells_are_typed_as_the_contract_wants(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    header = ",".join(EVENT)
    values = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in EVENT.values())
    f.write_text(f"{header},amount_vnd\n{values},\n", encoding="utf-8")
    ((row, message),) = list(read_messages(f))
    assert row == 1
    assert orjson.loads(message) == EVENT  # schema_version int, fee_bearing bool, empty cell left out
    v = validate_event(message)
    assert isinstance(v, ValidEvent) and v.province_code == "80" and v.raw_province_code == "80"


def test_csv_keeps_untypable_cells_as_text_so_validation_rejects_them(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text("schema_version,fee_bearing\n1.0,yes\n", encoding="utf-8")
    ((_, message),) = list(read_messages(f))
    assert orjson.loads(message) == {"schema_version": "1.0", "fee_bearing": "yes"}


def test_parquet_rows_with_timestamps_and_nulls(tmp_path: Path) -> None:
    f = tmp_path / "e.parquet"
    rows = [
        {**EVENT, "occurred_at": datetime(2025, 6, 30, 2, 0, tzinfo=UTC), "amount_vnd": None},
        {**EVENT, "event_id": "e-2", "occurred_at": datetime(2025, 7, 1, 2, 0, tzinfo=UTC), "amount_vnd": None},
    ]
    pq.write_table(pa.Table.from_pylist(rows), f)
    assert size_hint(f) == 2
    out = [orjson.loads(m) for _, m in read_messages(f)]
    assert out[0]["occurred_at"] == "2025-06-30T02:00:00Z"
    assert "amount_vnd" not in out[0]
    assert [o["event_id"] for o in out] == ["e-1", "e-2"]


def test_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"\.jsonl, \.csv or \.parquet"):
        list(read_messages(tmp_path / "events.xlsx"))


# -- bad rows are that row's verdict, never the end of the file ----------------------------------
def _csv_line(event: dict[str, object]) -> str:
    return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in event.values())


def _write_long_line(f: Path, head: bytes, size: int, tail: bytes) -> str:
    """Write `head`, a JSON line of `size` bytes (without its newline), then `tail`, without
    building the line in memory; returns the line's fingerprint (`streamed_digest`)."""
    h = hashlib.sha256()
    chunk = b"x" * (1 << 20)
    with f.open("wb") as fh:
        fh.write(head)
        start, end = b'{"pad":"', b'"}'
        body = size - len(start) - len(end)
        fh.write(start)
        h.update(start)
        while body > 0:
            part = chunk[: min(body, len(chunk))]
            fh.write(part)
            h.update(part)
            body -= len(part)
        fh.write(end + b"\r\n")
        h.update(end)
        fh.write(tail)
    return streamed_digest(h)


def test_a_100_mb_line_is_one_too_large_row_and_memory_stays_bounded(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    size = 100 * 1024 * 1024
    good = orjson.dumps(EVENT)
    sha = _write_long_line(f, good + b"\n", size, good + b"\n")
    tracemalloc.start()
    try:
        rows = list(read_messages(f))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The held part and a skip chunk or two, never the line (100 MB would be 12x this).
    assert peak_bytes < HOLD_LINE_BYTES + 4 * SKIP_CHUNK_BYTES, peak_bytes
    assert [r for r, _ in rows] == [1, 2, 3]
    assert rows[0][1] == good and rows[2][1] == good
    verdict = rows[1][1]
    assert isinstance(verdict, Invalid)
    assert (verdict.reason, verdict.payload_bytes, verdict.payload_sha256) == ("too_large", size, sha)
    assert verdict.redacted is None


def test_each_line_too_long_to_hold_gets_its_own_fingerprint(tmp_path: Path) -> None:
    """The reader reuses one hash between long lines: the second long line's fingerprint must
    be its own, not one of both lines' bytes."""
    good = orjson.dumps(EVENT)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sha_a = _write_long_line(first, b"", HOLD_LINE_BYTES + 10, good + b"\n")
    sha_b = _write_long_line(second, b"", HOLD_LINE_BYTES + 20, b"")
    both = tmp_path / "both.jsonl"
    both.write_bytes(first.read_bytes() + second.read_bytes())
    rows = [m for _, m in read_messages(both)]
    assert len(rows) == 3 and rows[1] == good
    assert isinstance(rows[0], Invalid) and isinstance(rows[2], Invalid)
    assert (rows[0].payload_sha256, rows[2].payload_sha256) == (sha_a, sha_b)


@pytest.mark.parametrize("extra", [0, 1, 2, 3, 5000, HOLD_LINE_BYTES - MAX_EVENT_BYTES])
def test_lines_around_the_cap_get_the_verdict_kafka_gives_the_same_bytes(tmp_path: Path, extra: int) -> None:
    line = b'{"pad":"' + b"y" * (MAX_EVENT_BYTES + extra - 10) + b'"}'
    assert len(line) == MAX_EVENT_BYTES + extra
    f = tmp_path / "e.jsonl"
    f.write_bytes(line + b"\r\n" + orjson.dumps(EVENT) + b"\n")
    (_, first), (_, second) = list(read_messages(f))
    on_kafka = validate_event(line)
    from_file = first if isinstance(first, Invalid) else validate_event(first)
    assert isinstance(on_kafka, Invalid) and isinstance(from_file, Invalid)
    assert (from_file.reason, from_file.payload_sha256, from_file.payload_bytes) == (
        on_kafka.reason,
        on_kafka.payload_sha256,
        on_kafka.payload_bytes,
    )
    assert letter_id(from_file.payload_sha256) == letter_id(on_kafka.payload_sha256)
    assert second == orjson.dumps(EVENT)


def _rows_line_by_line(fh: io.BytesIO, cap: int) -> list[tuple[int, object]]:
    """The JSONL rows as `_Lines` reads them one line at a time: the reference of the block reader."""
    lines, n, out = _Lines(fh, cap), 0, []
    h = hashlib.sha256()
    while (line := lines.read(h.update)) is not None:
        n += 1
        if line.data is None:
            out.append((n, ("too_large", line.size, streamed_digest(h))))
            h = hashlib.sha256()
        elif line.data.strip():
            out.append((n, line.data))
    return out


def test_jsonl_read_by_blocks_gives_the_rows_of_a_line_by_line_reader() -> None:
    """Random files of lines around a small cap (with carriage returns, blank lines, no final
    line feed) and blocks smaller and larger than the cap: rows, row numbers, fingerprints of
    the lines too long to hold, and the bytes reported as progress are the line-by-line reader's."""
    rng = random.Random(7)
    alphabet = [b"a", b"b", b" ", b"\r", b"\n", b"\n", b"\r\n"]
    for case in range(3000):
        cap = rng.randint(1, 12)
        block = rng.randint(1, 3 * cap + 3)
        content = b"".join(
            rng.choice(alphabet) * rng.choice([1, 1, 1, 2, cap, cap + 1]) for _ in range(rng.randint(0, 30))
        )
        seen: list[int] = []
        got = [
            (n, ("too_large", m.payload_bytes, m.payload_sha256) if isinstance(m, Invalid) else m)
            for rows, messages in _jsonl_blocks(io.BytesIO(content), cap, block, seen.append)
            for n, m in zip(rows, messages, strict=True)
        ]
        assert got == _rows_line_by_line(io.BytesIO(content), cap), (case, cap, block, content)
        assert sum(seen) == len(content), (case, cap, block, content)


def test_rows_before_an_unreadable_part_of_a_parquet_file_are_read_then_the_error(tmp_path: Path) -> None:
    """Blocks end where the file turns unreadable: every row before it is handed on (not only
    whole blocks of them), then `SourceError` is raised."""
    path = parquet_unreadable_after(tmp_path / "cut.parquet", readable_rows=50_000)
    blocks: list[tuple[list[int], list[object]]] = []
    with pytest.raises(SourceError, match="after row 50000"):
        blocks.extend(read_message_blocks(path))  # keeps what came before the error
    rows = [row for numbers, _ in blocks for row in numbers]
    assert rows == list(range(1, 50_001))  # 50,000 is not a multiple of a block's 1,024 rows
    assert orjson.loads(blocks[-1][1][-1])["event_id"] == "v-49999"


def test_csv_field_over_the_size_limit_is_too_large_and_the_file_goes_on(tmp_path: Path) -> None:
    """A 200 KiB field (the csv module's own limit is 128 KiB) on one line, then one spread over
    many lines inside quotes: each is one `too_large` row; the rows around them are read."""
    f = tmp_path / "e.csv"
    good = _csv_line(EVENT)
    long_quoted = '"' + "\n".join(["z" * 1023] * 200) + '"'
    f.write_text(f"{','.join(EVENT)}\n{good}\n{'w' * 200_000}\n{good}\n{long_quoted}\n{good}\n", encoding="utf-8")
    rows = list(read_messages(f))
    assert [r for r, _ in rows] == [1, 2, 3, 4, 5]
    for _, m in rows[0::2]:
        assert isinstance(validate_event(m), ValidEvent)  # type: ignore[arg-type]
    one_line, many_lines = rows[1][1], rows[3][1]
    assert isinstance(one_line, Invalid) and isinstance(many_lines, Invalid)
    assert (one_line.reason, one_line.payload_bytes) == ("too_large", 200_000)
    assert one_line.payload_sha256 == payload_digest(b"w" * 200_000)
    assert (many_lines.reason, many_lines.payload_bytes) == ("too_large", len(long_quoted))
    assert many_lines.payload_sha256 == payload_digest(long_quoted.encode())


def test_csv_records_too_long_to_hold_are_streamed_and_the_file_goes_on(tmp_path: Path) -> None:
    """Over `HOLD_LINE_BYTES`: a quoted field of many lines, and one with a 3 MiB line inside."""
    many = '"' + "\n".join(["m" * 99_999] * 20) + '"'
    one = '"a\n' + "o" * (3 << 20) + '\nb"'
    good = _csv_line(EVENT)
    f = tmp_path / "e.csv"
    f.write_text(f"{','.join(EVENT)}\n{many}\n{good}\n{one},x\n{good}\n", encoding="utf-8")
    tracemalloc.start()
    try:
        rows = list(read_messages(f))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < HOLD_LINE_BYTES + 4 * SKIP_CHUNK_BYTES, peak_bytes
    assert [r for r, _ in rows] == [1, 2, 3, 4]
    for (_, bad), text in ((rows[0], many), (rows[2], one + ",x")):
        assert isinstance(bad, Invalid) and (bad.reason, bad.payload_bytes) == ("too_large", len(text))
        assert bad.payload_sha256 == streamed_digest(hashlib.sha256(text.encode()))
    assert rows[1][1] == rows[3][1] == orjson.dumps(EVENT)


def test_csv_row_the_csv_module_cannot_parse_is_malformed_and_the_file_goes_on(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_bytes(f"{','.join(EVENT)}\n".encode() + b"e-1,a\rb\n" + f"{_csv_line(EVENT)}\n".encode())
    (_, bad), (row, good) = list(read_messages(f))
    assert isinstance(bad, Invalid) and bad.reason == "malformed_json" and "CSV" in bad.detail
    assert row == 2 and isinstance(good, bytes) and orjson.loads(good) == EVENT


def test_csv_is_decoded_strictly_like_jsonl(tmp_path: Path) -> None:
    """Invalid UTF-8 is the row's `malformed_json`, as the same bytes as JSON get, never U+FFFD."""
    bad_cell = b"D-\xff\xfe"
    f = tmp_path / "e.csv"
    row = _csv_line({**EVENT, "dossier_id": "@"}).encode().replace(b"@", bad_cell)
    f.write_bytes(f"{','.join(EVENT)}\n".encode() + row + b"\n" + f"{_csv_line(EVENT)}\n".encode())
    (_, bad), (_, good) = list(read_messages(f))
    as_json = validate_event(orjson.dumps({**EVENT, "dossier_id": "@"}).replace(b"@", bad_cell))
    assert isinstance(bad, Invalid) and isinstance(as_json, Invalid)
    assert bad.reason == as_json.reason == "malformed_json"
    assert bad.payload_sha256 == payload_digest(row)
    assert isinstance(validate_event(good), ValidEvent)  # type: ignore[arg-type]


def test_csv_cells_beyond_the_header_are_unknown_fields(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text(f"{','.join(EVENT)}\n{_csv_line(EVENT)},surplus\n{_csv_line(EVENT)},\n", encoding="utf-8")
    (_, extra), (_, trailing_comma) = list(read_messages(f))
    verdict = validate_event(extra)  # type: ignore[arg-type]
    assert isinstance(verdict, Invalid) and verdict.reason == "unknown_field"
    assert "surplus" not in orjson.dumps(verdict.redacted).decode()  # its value is never kept
    assert isinstance(validate_event(trailing_comma), ValidEvent)  # type: ignore[arg-type]  # an empty cell is no value


def test_csv_quoted_fields_may_span_lines_and_stray_quotes_do_not(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text('a,b\n"x\ny","say ""hi"""\nq"r,s\n1,2\n', encoding="utf-8")
    assert [orjson.loads(m) for _, m in read_messages(f)] == [  # type: ignore[arg-type]
        {"a": "x\ny", "b": 'say "hi"'},
        {"a": 'q"r', "b": "s"},
        {"a": "1", "b": "2"},
    ]


def test_parquet_values_with_no_contract_type_are_that_rows_invalid_value(tmp_path: Path) -> None:
    f = tmp_path / "e.parquet"
    table = pa.table(
        {
            **{k: pa.array([v] * 4) for k, v in EVENT.items()},
            "amount_vnd": pa.array(
                [None, decimal.Decimal("1500.00"), None, decimal.Decimal("1")], pa.decimal128(10, 2)
            ),
            "note": pa.array([None, None, b"\x00\x01", None], pa.binary()),
            "citizen_name": pa.array([None, None, None, "Nguyen Van A"]),
        }
    )
    pq.write_table(table, f)
    first, second, third, fourth = (m for _, m in read_messages(f))
    assert isinstance(validate_event(first), ValidEvent)  # type: ignore[arg-type]
    # A made-up column's name is only counted in the detail: it may itself be personal.
    for bad, column in ((second, "amount_vnd (Decimal)"), (third, "1 other column (not shown)")):
        assert isinstance(bad, Invalid) and bad.reason == "invalid_value" and column in bad.detail
        assert bad.redacted is not None and bad.redacted["event_id"] == "e-1"
    # Personal data in the rest of the row comes first, as in the contract's precedence.
    assert isinstance(fourth, Invalid) and fourth.reason == "personal_data"
    assert "Nguyen" not in orjson.dumps(fourth).decode()


def test_parquet_timestamp_python_cannot_hold_is_that_rows_invalid_value(tmp_path: Path) -> None:
    f = tmp_path / "e.parquet"
    year_10000_ms = 253_402_300_800_000
    at = pa.array([datetime(2025, 6, 30, 2, 0), year_10000_ms], pa.timestamp("ms"))
    pq.write_table(pa.table({**{k: pa.array([v, v]) for k, v in EVENT.items()}, "occurred_at": at}), f)
    (_, good), (_, bad) = list(read_messages(f))
    assert isinstance(good, bytes) and orjson.loads(good)["occurred_at"] == "2025-06-30T02:00:00Z"
    assert isinstance(bad, Invalid) and bad.reason == "invalid_value" and "occurred_at" in bad.detail
