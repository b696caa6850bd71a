"""`python -m benchmarks` (or `make bench`): every performance measurement of psmon in one run.

On the local broker (Tansu) and embedded ClickHouse (chDB), in this order, each measurement on
its own fresh topics:

1. corpus      the simulator's JSONL corpus (cached), produced to a topic;
2. raw         a plain aiokafka consumer reading + orjson-decoding that topic (the ceiling);
3. worker      `psmon worker` (stages 1+2) alone on it; the same-job baseline (plain aiokafka
               doing stage 1 + stage 2's job with psmon's code, `same_job.py`); stage 2 alone
               (`RatesService`); stage 3 alone (`psmon sink`); and worker + sink end to end until
               all is committed;
4. latency     produce → /metrics under a steady load;
5. sink/raw    the sink's rows/s against plain clickhouse-connect inserts of the same rows;
6. replay      JSONL file → validate → `ClickHouseWriter` (events/s), against a raw
               clickhouse-connect insert of the same rows in replay's batch size;
7. memory      peak RSS of the worker for the corpus and for a quarter of it; scale-out with
               two worker processes;
8. recovery    a SIGKILLed worker's successor, from checkpoints and by a full re-read, on
               `--recovery-records` records already on `psmon.valid` (its own fill, no corpus),
               with where its time went (start-up, group join, state, export);
               `--recovery-skip-reread` leaves out the full re-read (10 M records: a month).

Prints a table with absolute numbers and the ratios the targets are stated in, and writes all
of it as JSON (`--out`). These machines are shared and noisy: compare ratios measured in the
same run, not absolute numbers across runs. `--smoke` is a small size for CI (no targets there).
"""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Bench
from benchmarks.corpus import build_corpus_file, produce_corpus
from benchmarks.cpu import cpu_ceilings
from benchmarks.latency import run_latency
from benchmarks.pipeline import run_pipeline
from benchmarks.recovery import run_recovery
from benchmarks.replay import raw_insert_file, replay_file
from benchmarks.report import evaluate, render
from benchmarks.sink import raw_insert, read_valid, run_sink
from benchmarks.stage2 import run_stage2
from benchmarks.worker import run_workers
from psmon.embedded.broker import LocalBroker
from psmon.settings import Settings
from psmon.sinks.clickhouse.client import connect
from psmon.streams.topics import ensure_topics

STEPS = (
    "raw",
    "cpu",
    "worker",
    "same_job",
    "stage2",
    "sink",
    "raw_insert",
    "replay",
    "pipeline",
    "latency",
    "rss",
    "scaleout",
    "recovery",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=500_000, help="corpus size (events); default 500,000")
    ap.add_argument("--smoke", action="store_true", help="small and quick (CI): 4,000 events, short latency run")
    ap.add_argument("--partitions", type=int, default=8, help="partitions per topic")
    ap.add_argument("--latency-rate", type=float, default=2000.0, help="steady load of the latency run, events/s")
    ap.add_argument("--latency-seconds", type=float, default=60.0, help="duration of the latency run")
    ap.add_argument(
        "--latency-peak-rate",
        type=float,
        default=200.0,
        help="a second latency run at the national live peak (hundreds of events/s); 0 = skip",
    )
    ap.add_argument(
        "--recovery-records",
        type=int,
        default=1_000_000,
        help="records retained on psmon.valid for the recovery measurement; default 1,000,000",
    )
    ap.add_argument(
        "--recovery-skip-reread",
        action="store_true",
        help="recovery: time only the checkpointed successor, not the full re-read baseline (O(history))",
    )
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/psmon-bench"), help="corpus cache, logs, chDB")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default WORK_DIR/results.json)")
    ap.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    args = ap.parse_args(argv)
    if args.smoke:
        args.count = min(args.count, 4_000)
        args.latency_seconds = min(args.latency_seconds, 6.0)
        args.latency_rate = min(args.latency_rate, 500.0)
        args.latency_peak_rate = 0.0
        args.recovery_records = min(args.recovery_records, 5_000)
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
        "count": n,
        "partitions": args.partitions,
        "smoke": args.smoke,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    results: dict[str, Any] = {"meta": meta}
    corpus = args.work_dir / "no-corpus"
    if steps - {"recovery"}:  # recovery fills its own topic
        corpus, gen_s = build_corpus_file(args.work_dir, n)
        results["corpus"] = {"events": n, "file": str(corpus), "generate_s": round(gen_s, 1)}
    with LocalBroker(log_path=args.work_dir / "broker.log") as broker:
        bench = Bench(broker.bootstrap, args.work_dir, corpus, n, args.partitions, args.smoke)
        try:
            if "recovery" in steps:
                records = args.recovery_records
                _step(
                    results,
                    "recovery",
                    f"recovery after SIGKILL with {records:,} records on psmon.valid",
                    lambda: run_recovery(
                        bench, records, tail=min(10_000, max(1, records // 4)), reread=not args.recovery_skip_reread
                    ),
                )
            if steps - {"recovery"}:
                _steps(bench, steps, results, args)
        finally:
            bench.stop_all()
    meta["loadavg_end"] = os.getloadavg()
    results["evaluation"] = evaluate(results, smoke=args.smoke)
    return results


def _say(what: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {what}\n")
    sys.stderr.flush()


def _step(results: dict[str, Any], key: str, what: str, fn: Callable[[], dict[str, Any]]) -> bool:
    """Run one measurement; a failure is recorded in the results (and the run goes on)."""
    _say(what)
    try:
        results[key] = fn()
    except Exception as exc:
        _say(f"{key} failed: {exc!r}")
        results[key] = {"error": repr(exc)}
        return False
    return True


def _raw(bench: Bench, topic: str) -> dict[str, Any]:
    cmd = ["benchmarks.raw_consume", bench.bootstrap, topic, str(bench.partitions), str(bench.count)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True, check=True, env=env)
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def _same_job(bench: Bench, events: str) -> dict[str, Any]:
    cmd = ["benchmarks.same_job", bench.bootstrap, events, bench.prefix("samejob"), str(bench.partitions)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", *cmd, str(bench.count)], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def _on_fresh_topic(bench: Bench, name: str, count: int, fn: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    prefix = bench.prefix(name)
    _produce(bench, prefix, count)
    return fn(prefix)


def _produce(bench: Bench, prefix: str, count: int) -> float:
    """The corpus on `prefix`'s events topic, created first with the run's partitions.

    A topic the producer auto-creates gets the broker's default partition count, not
    `--partitions`: every measurement would read fewer partitions than it says, and a consumer
    assigned the missing ones waits a whole request timeout (40 s) for their leaders."""
    ensure_topics(Settings(kafka_bootstrap=bench.bootstrap, topic_prefix=prefix, topic_partitions=bench.partitions))
    return produce_corpus(bench.bootstrap, f"{prefix}.events", bench.corpus, count)


def _steps(bench: Bench, steps: set[str], results: dict[str, Any], args: argparse.Namespace) -> None:
    n = bench.count
    main = bench.prefix("main")
    _say(f"producing {n:,} events to {main}.events")
    results["corpus"]["produce_events_per_s"] = round(_produce(bench, main, n), 1)
    if "raw" in steps:
        _step(
            results,
            "raw_consume",
            "raw baseline: aiokafka consume + orjson decode",
            lambda: _raw(bench, f"{main}.events"),
        )
    if "cpu" in steps:
        _step(
            results,
            "cpu",
            "pure-Python ceilings of stages 1 and 2",
            lambda: cpu_ceilings(bench.corpus, min(n, 100_000)),
        )
    valid = None
    if "worker" in steps and _step(results, "worker", "worker alone (stages 1+2)", lambda: run_workers(bench, main, n)):
        valid = n - results["worker"]["invalid"]
    if "same_job" in steps:
        _step(
            results,
            "same_job",
            "same-job baseline: plain aiokafka doing stages 1+2 with psmon's code",
            lambda: _same_job(bench, f"{main}.events"),
        )
    if valid is not None:
        v = valid
        if "stage2" in steps:
            _step(
                results,
                "stage2",
                "stage 2 alone (RatesService in-process)",
                lambda: run_stage2(bench.bootstrap, main, bench.partitions, v, bench.timeout_s(n)),
            )
        if "sink" in steps:
            _step(results, "sink", "sink alone (stage 3)", lambda: run_sink(bench, main, v))
    client = None
    if {"raw_insert", "replay"} & steps:
        client = connect(f"chdb://{(bench.work_dir / f'harness-{main}' / 'clickhouse').resolve()}")
        ch = client
        if "raw_insert" in steps and valid is not None:
            v = valid

            def insert() -> dict[str, Any]:
                records = read_valid(bench.bootstrap, Settings(topic_prefix=main).topic_valid, bench.partitions, v)
                return raw_insert(ch, "raw_insert", records, Settings().sink_batch_max_rows)

            _step(results, "raw_insert", "raw clickhouse-connect insert of the same rows", insert)
        if "replay" in steps:
            _step(
                results,
                "replay_raw_insert",
                "raw clickhouse-connect insert of the replay's rows, in its batch size",
                lambda: raw_insert_file(ch, "replay_raw_insert", bench.corpus),
            )
            _step(
                results,
                "replay",
                "replay from the JSONL file into ClickHouse",
                lambda: replay_file(ch, "replay", bench.corpus),
            )
        client.close()
    if "pipeline" in steps:
        _step(
            results,
            "pipeline",
            "end to end: worker + sink",
            lambda: _on_fresh_topic(bench, "e2e", n, lambda p: run_pipeline(bench, p, n)),
        )
    if "latency" in steps:
        _step(
            results,
            "latency",
            f"latency at {args.latency_rate:,.0f} events/s for {args.latency_seconds:.0f} s",
            lambda: run_latency(
                bench, bench.prefix("lat"), rate_eps=args.latency_rate, duration_s=args.latency_seconds
            ),
        )
        if args.latency_peak_rate:
            _step(
                results,
                "latency_peak",
                f"latency at the live peak, {args.latency_peak_rate:,.0f} events/s",
                lambda: run_latency(
                    bench, bench.prefix("latpeak"), rate_eps=args.latency_peak_rate, duration_s=args.latency_seconds / 2
                ),
            )
    if "rss" in steps:
        quarter = max(n // 4, 1)
        _step(
            results,
            "worker_quarter",
            f"worker on a quarter of the corpus ({quarter:,} events) for RSS",
            lambda: _on_fresh_topic(bench, "quarter", quarter, lambda p: run_workers(bench, p, quarter)),
        )
    if "scaleout" in steps:
        _step(
            results,
            "scaleout",
            "scale-out: two worker processes",
            lambda: _on_fresh_topic(bench, "scale", n, lambda p: run_workers(bench, p, n, workers=2)),
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    sys.stdout.write(render(results) + f"\nJSON: {args.out}\n")


if __name__ == "__main__":
    main()
