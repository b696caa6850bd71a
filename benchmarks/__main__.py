"""`python -m benchmarks` (or `make bench`): every performance measurement of psmon in one run.

On the local broker (Tansu) and embedded ClickHouse (chDB), in this order, each measurement on
its own fresh topics:

1. corpus      the simulator's JSONL corpus (cached), produced to a topic;
2. raw         a plain aiokafka consumer reading + orjson-decoding that topic (the ceiling);
3. worker      `psmon worker` (stages 1+2) alone on it; stage 2 alone (`RatesService`);
               stage 3 alone (`psmon sink`); and worker + sink end to end until all is committed;
4. latency     produce → /metrics under a steady load;
5. sink/raw    the sink's rows/s against plain clickhouse-connect inserts of the same rows;
6. replay      JSONL file → validate → `ClickHouseWriter` (events/s);
7. memory      peak RSS of the worker for the corpus and for a quarter of it; scale-out with
               two worker processes.

Prints a table with absolute numbers and the ratios the targets are stated in, and writes all
of it as JSON (`--out`). These machines are shared and noisy: compare ratios measured in the
same run, not absolute numbers across runs. `--smoke` is a small size for CI (no targets there).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Bench
from benchmarks.corpus import build_corpus_file, produce_corpus
from benchmarks.cpu import cpu_ceilings
from benchmarks.latency import run_latency
from benchmarks.pipeline import run_pipeline
from benchmarks.replay import replay_file
from benchmarks.report import evaluate, render
from benchmarks.sink import raw_insert, read_valid, run_sink
from benchmarks.stage2 import run_stage2
from benchmarks.worker import run_workers
from psmon.embedded.broker import LocalBroker
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import connect

STEPS = ("raw", "cpu", "worker", "stage2", "sink", "raw_insert", "replay", "pipeline", "latency", "rss", "scaleout")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=500_000, help="corpus size (events); default 500,000")
    ap.add_argument("--smoke", action="store_true", help="small and quick (CI): 4,000 events, short latency run")
    ap.add_argument("--partitions", type=int, default=8, help="partitions per topic")
    ap.add_argument("--latency-rate", type=float, default=2000.0, help="steady load of the latency run, events/s")
    ap.add_argument("--latency-seconds", type=float, default=60.0, help="duration of the latency run")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/psmon-bench"), help="corpus cache, logs, chDB")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default WORK_DIR/results.json)")
    ap.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    args = ap.parse_args(argv)
    if args.smoke:
        args.count = min(args.count, 4_000)
        args.latency_seconds = min(args.latency_seconds, 6.0)
        args.latency_rate = min(args.latency_rate, 500.0)
    args.out = args.out or args.work_dir / "results.json"
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    steps = set(args.only.split(","))
    unknown = steps - set(STEPS)
    if unknown:
        raise SystemExit(f"unknown steps: {sorted(unknown)}")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    n = args.count
    meta: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "count": n, "partitions": args.partitions, "smoke": args.smoke, "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    corpus, gen_s = build_corpus_file(args.work_dir, n)
    results: dict[str, Any] = {
        "meta": meta,
        "corpus": {"events": n, "file": str(corpus), "generate_s": round(gen_s, 1)},
    }
    with LocalBroker(log_path=args.work_dir / "broker.log") as broker:
        bench = Bench(broker.bootstrap, args.work_dir, corpus, n, args.partitions, args.smoke)
        try:
            _steps(bench, steps, results, args)
        finally:
            bench.stop_all()
    meta["loadavg_end"] = os.getloadavg()
    results["evaluation"] = evaluate(results, smoke=args.smoke)
    return results


def _say(what: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {what}\n")
    sys.stderr.flush()


def _steps(bench: Bench, steps: set[str], results: dict[str, Any], args: argparse.Namespace) -> None:
    n = bench.count
    main = bench.prefix("main")
    _say(f"producing {n:,} events to {main}.events")
    results["corpus"]["produce_events_per_s"] = round(
        produce_corpus(bench.bootstrap, f"{main}.events", bench.corpus, n), 1
    )
    if "raw" in steps:
        _say("raw baseline: aiokafka consume + orjson decode")
        cmd = ["benchmarks.raw_consume", bench.bootstrap, f"{main}.events", str(bench.partitions), str(n)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True, check=True, env=env)
        results["raw_consume"] = orjson.loads(out.stdout.strip().splitlines()[-1])
    if "cpu" in steps:
        _say("pure-Python ceilings of stages 1 and 2")
        results["cpu"] = cpu_ceilings(bench.corpus, min(n, 100_000))
    valid = None
    if "worker" in steps:
        _say("worker alone (stages 1+2)")
        results["worker"] = run_workers(bench, main, n)
        valid = n - results["worker"]["invalid"]
    if "stage2" in steps and valid is not None:
        _say("stage 2 alone (RatesService in-process)")
        results["stage2"] = run_stage2(bench.bootstrap, main, bench.partitions, valid, bench.timeout_s(n))
    if "sink" in steps and valid is not None:
        _say("sink alone (stage 3)")
        results["sink"] = run_sink(bench, main, valid)
    client = None
    if {"raw_insert", "replay"} & steps:
        client = connect(f"chdb://{(bench.work_dir / f'harness-{main}' / 'clickhouse').resolve()}")
    if "raw_insert" in steps and valid is not None and client is not None:
        _say("raw clickhouse-connect insert of the same rows")
        records = read_valid(bench.bootstrap, Settings(topic_prefix=main).topic_valid, bench.partitions, valid)
        results["raw_insert"] = raw_insert(client, "raw_insert", records, Settings().sink_batch_max_rows)
        del records
    if "replay" in steps and client is not None:
        _say("replay from the JSONL file into ClickHouse")
        results["replay"] = replay_file(client, "replay", bench.corpus)
    if client is not None:
        client.close()
    if "pipeline" in steps:
        prefix = bench.prefix("e2e")
        _say("end to end: worker + sink")
        produce_corpus(bench.bootstrap, f"{prefix}.events", bench.corpus, n)
        results["pipeline"] = run_pipeline(bench, prefix, n)
    if "latency" in steps:
        _say(f"latency at {args.latency_rate:,.0f} events/s for {args.latency_seconds:.0f} s")
        results["latency"] = run_latency(
            bench, bench.prefix("lat"), rate_eps=args.latency_rate, duration_s=args.latency_seconds
        )
    if "rss" in steps:
        quarter = max(n // 4, 1)
        prefix = bench.prefix("quarter")
        _say(f"worker on a quarter of the corpus ({quarter:,} events) for RSS")
        produce_corpus(bench.bootstrap, f"{prefix}.events", bench.corpus, quarter)
        results["worker_quarter"] = run_workers(bench, prefix, quarter)
    if "scaleout" in steps:
        prefix = bench.prefix("scale")
        _say("scale-out: two worker processes")
        produce_corpus(bench.bootstrap, f"{prefix}.events", bench.corpus, n)
        results["scaleout"] = run_workers(bench, prefix, n, workers=2)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    sys.stdout.write(render(results) + f"\nJSON: {args.out}\n")


if __name__ == "__main__":
    main()
