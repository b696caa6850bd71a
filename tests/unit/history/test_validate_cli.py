"""`psmon validate FILE` on every file type, without ClickHouse or Kafka."""

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from psmon.cli.main import app
from tests.helpers import RESOLVED_EVENT

GOOD = {**RESOLVED_EVENT, "event_id": "v-1"}


def test_validate_jsonl_csv_and_parquet(tmp_path: Path) -> None:
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_bytes(orjson.dumps(GOOD) + b"\n" + orjson.dumps({**GOOD, "citizen_name": "x"}) + b"\n")
    csv_file = tmp_path / "e.csv"
    csv_file.write_text(
        ",".join(GOOD)
        + "\n"
        + ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in GOOD.values())
        + "\n"
    )
    parquet = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD]), parquet)

    bad = CliRunner().invoke(app, ["validate", str(jsonl), "--lang", "en"])
    assert bad.exit_code == 1
    assert "2 events, 1 valid, 1 invalid" in bad.stdout and "personal_data" in bad.stdout
    for f in (csv_file, parquet):
        ok = CliRunner().invoke(app, ["validate", str(f), "--lang", "en"])
        assert ok.exit_code == 0, ok.output
        assert "1 events, 1 valid, 0 invalid" in ok.stdout
