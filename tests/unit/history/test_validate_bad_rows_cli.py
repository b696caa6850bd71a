"""`psmon validate` reports bad rows as rows: a huge CSV field or a decimal Parquet column is one
invalid row with its reason, never a traceback, and the rows after it are still checked."""

import decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from psmon.cli.main import app
from tests.helpers import RESOLVED_EVENT

GOOD = {**RESOLVED_EVENT, "event_id": "v-1"}


def _row(event: dict[str, object]) -> str:
    return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in event.values())


def test_validate_counts_a_huge_csv_field_and_a_decimal_column_as_rows(tmp_path: Path) -> None:
    csv_file = tmp_path / "e.csv"
    csv_file.write_text(f"{','.join(GOOD)}\n{_row(GOOD)}\n{'w' * 200_000}\n{_row(GOOD)},extra\n{_row(GOOD)}\n")
    parquet = tmp_path / "e.parquet"
    pq.write_table(
        pa.table(
            {
                **{k: pa.array([v, v]) for k, v in GOOD.items()},
                "amount_vnd": pa.array([None, decimal.Decimal("1")], pa.decimal128(5, 0)),
            }
        ),
        parquet,
    )

    out = CliRunner().invoke(app, ["validate", str(csv_file), "--lang", "en"])
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert out.exit_code == 1
    assert f"{csv_file}:2: too_large: 200000 bytes > limit 8192" in out.stdout
    assert f"{csv_file}:3: unknown_field" in out.stdout
    assert "4 events, 2 valid, 2 invalid" in out.stdout

    out = CliRunner().invoke(app, ["validate", str(parquet), "--lang", "en"])
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert out.exit_code == 1
    assert f"{parquet}:2: invalid_value: values with no contract type: amount_vnd (Decimal)" in out.stdout
    assert "2 events, 1 valid, 1 invalid" in out.stdout


def test_validate_of_a_jsonl_with_an_over_long_line(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(orjson.dumps(GOOD) + b"\n" + b"[" + b"1," * 300_000 + b"1]\n" + orjson.dumps(GOOD) + b"\n")
    out = CliRunner().invoke(app, ["validate", str(f), "--lang", "en"])
    assert out.exit_code == 1
    assert f"{f}:2: too_large: 600003 bytes > limit 8192" in out.stdout
    assert "3 events, 2 valid, 1 invalid" in out.stdout
