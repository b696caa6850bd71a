"""Benchmark of the analysts' history over a generated year, and how it grows with the history.

Steps, for each size in `--events` (each printed with its command so the numbers can be
reproduced):
1. generate a JSONL file of one simulated year (fixed seed), about that many events, spread over
   office hours, weekdays and holidays like the live simulator (cached in `--dir`);
2. `psmon replay FILE --clickhouse chdb://DIR -f json` in a subprocess, into a chDB directory of
   its own: replay rate in events/s;
3. the main questions (`psmon query rates/rank/below/index`) in process, median of `--repeat`
   runs each after one warm-up, plus one end-to-end CLI run (includes Python start-up);
4. size on disk: the chDB directory and `system.parts` per table, and bytes per event.

With two sizes or more (`--events 1000000,4000000`) it ends with a growth table: each figure at
the largest size divided by the same figure at the smallest, beside the ratio of events, all
measured in the same run. A flat figure (ratio ~1) does not grow with the history: the named
questions read rollups whose size is provinces x hours, not events. What grows with it, and
should: the bytes on disk, the exact scan of raw events.

The live side at year scale is measured by the recovery benchmark (`python -m benchmarks --only
recovery --recovery-records 10000000 --recovery-skip-reread`: a worker's successor with ten
million records retained on `psmon.valid`); docs/performance.md has both.

Usage: python benchmarks/history_year.py --events 2000000 --dir /tmp/psmon-bench [--year 2025]
A national year is 75-150M events; pass a smaller --events where time is short.
"""

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from psmon.history.periods import Period
from psmon.history.queries import History
from psmon.simulator.generator import EVENTS_PER_DOSSIER, EventGenerator
from psmon.simulator.profiles import default_profiles
from psmon.sinks.clickhouse.client import connect
from psmon.timeutil import LOCAL_TZ
from psmon.workcalendar import activity_weight

STEP_S = 600.0


def generate(path: Path, *, events: int, year: int, seed: int) -> int:
    start = datetime(year, 1, 1, tzinfo=LOCAL_TZ)
    end = datetime(year + 1, 1, 1, tzinfo=LOCAL_TZ)
    hours = int((end - start).total_seconds() // 3600)
    mean_weight = sum(activity_weight((start + timedelta(hours=h)).astimezone(UTC)) for h in range(hours)) / hours
    dossiers_per_s = events / EVENTS_PER_DOSSIER / ((end - start).total_seconds() * mean_weight)
    gen = EventGenerator(default_profiles(), seed=seed, old_code_fraction=0.05, bad_fraction=0.001)
    n = 0
    t, stop = start.timestamp(), end.timestamp()
    with path.open("wb") as fh:
        while t < stop:
            for e in gen.advance(t, t + STEP_S, dossiers_per_s=dossiers_per_s):
                fh.write(e.value + b"\n")
                n += 1
            t += STEP_S
        for e in gen.drain():
            if e.occurred_at_s < stop:
                fh.write(e.value + b"\n")
                n += 1
    return n


def timed(fn: Any, repeat: int) -> float:
    fn()  # warm-up (first read of the parts)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1000


def measure(args: argparse.Namespace, events: int) -> dict[str, Any]:
    """Every figure of one size (see the module docstring)."""
    data = args.dir / f"year-{args.year}-{events}.jsonl"
    ch_dir = args.dir / f"clickhouse-{args.year}-{events}"
    psmon = [sys.executable, "-m", "psmon.cli.main"]
    results: dict[str, Any] = {}

    if not data.exists():
        t0 = time.perf_counter()
        n = generate(data, events=events, year=args.year, seed=args.seed)
        print(f"generated {n:,} events in {time.perf_counter() - t0:.0f} s -> {data}", flush=True)
    results["file_bytes"] = data.stat().st_size

    cmd = [*psmon, "replay", str(data), "--clickhouse", f"chdb://{ch_dir}", "--no-progress", "-f", "json"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall_s = time.perf_counter() - t0
    summary = orjson.loads(out.splitlines()[-1])
    results["replay"] = {**summary, "wall_s": round(wall_s, 1), "wall_rate_eps": round(summary["rows"] / wall_s)}
    print(orjson.dumps(results["replay"]).decode(), flush=True)

    client = connect(f"chdb://{ch_dir}")
    h = History(client, database="psmon")
    y = Period.parse(str(args.year))
    q3 = Period.parse(f"{args.year}-Q3")
    month = Period.parse(f"{args.year}-08")
    questions = {
        f"query rates --metric online_submission --by month --year {args.year}": lambda: h.rates(
            "online_submission", by="month", period=y
        ),
        f"query rates --metric online_submission --by month --year {args.year} --historical-codes": lambda: h.rates(
            "online_submission", by="month", period=y, historical_codes=True
        ),
        f"query rank --metric online_payment --period {args.year}-Q3": lambda: h.rank("online_payment", period=q3),
        f"query below --threshold 0.5 --by month --year {args.year}": lambda: h.below(
            "online_submission", threshold=0.5, by="month", period=y
        ),
        f"query index --month {args.year}-08": lambda: h.index766(period=month),
        RAW_SCAN: lambda: client.query(RAW_SCAN_SQL),
    }
    results["query_ms"] = {}
    for name, fn in questions.items():
        ms = timed(fn, args.repeat)
        results["query_ms"][name] = round(ms, 1)
        print(f"{ms:8.1f} ms  psmon {name}", flush=True)
    parts = client.query(
        "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = 'psmon' AND active "
        "GROUP BY table ORDER BY table"
    ).result_rows
    results["tables"] = {t: {"rows": int(r), "bytes_on_disk": int(b)} for t, r, b in parts}
    client.close()

    cmd = [*psmon, "query", "rates", "--metric", "online_submission", "--by", "month", "--year", str(args.year)]
    cmd += ["--clickhouse", f"chdb://{ch_dir}", "-f", "csv"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    results["cli_end_to_end_s"] = round(time.perf_counter() - t0, 2)
    du = subprocess.run(["du", "-sb", str(ch_dir)], check=True, capture_output=True, text=True).stdout.split()[0]
    results["chdb_dir_bytes"] = int(du)
    results["bytes_per_event"] = round(int(du) / max(summary["rows"], 1), 1)
    return results


RAW_SCAN_SQL = "SELECT count() FROM psmon.events FINAL WHERE province_code = '79'"
RAW_SCAN = f"raw events, exact: {RAW_SCAN_SQL}"


def growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, float]:
    """Each figure at the largest size / at the smallest (same run)."""

    def ratio(a: float, b: float) -> float:
        return round(b / a, 2) if a else float("nan")

    out = {
        "events": ratio(small["replay"]["rows"], large["replay"]["rows"]),
        "replay events/s": ratio(small["replay"]["rate_eps"], large["replay"]["rate_eps"]),
        "bytes on disk": ratio(small["chdb_dir_bytes"], large["chdb_dir_bytes"]),
        "bytes per event": ratio(small["bytes_per_event"], large["bytes_per_event"]),
        "CLI end to end": ratio(small["cli_end_to_end_s"], large["cli_end_to_end_s"]),
    }
    for name, ms in small["query_ms"].items():
        out[name] = ratio(ms, large["query_ms"][name])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", default="2000000", help="events of the year; a comma-separated list for growth")
    ap.add_argument("--year", type=int, default=2025)
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/psmon-bench"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sizes = sorted({int(n) for n in args.events.split(",")})
    by_size = {n: measure(args, n) for n in sizes}
    results: dict[str, Any] = {"sizes": {str(n): r for n, r in by_size.items()}}
    if len(sizes) > 1:
        results["growth_largest_over_smallest"] = growth(by_size[sizes[0]], by_size[sizes[-1]])
        print(f"growth, {sizes[-1]:,} over {sizes[0]:,} events (1.0 = flat):", flush=True)
        for name, r in results["growth_largest_over_smallest"].items():
            print(f"{r:8.2f}x  {name}", flush=True)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
