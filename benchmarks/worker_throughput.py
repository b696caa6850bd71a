"""Events/s of one `psmon worker` on the simulator's output (stages 1 and 2, real broker).

Produces N simulated events to a fresh topic prefix, then starts a worker process and times it
from its first processed event until it has validated all N and counted all valid ones, read from
its /metrics. Run: python -m benchmarks.worker_throughput --count 50000
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from psmon.embedded.broker import LocalBroker, free_port
from tests.helpers import psmon_process, sample, scrape, stop_process


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()
    prefix = "bench" + uuid.uuid4().hex[:6]
    with LocalBroker() as broker:
        env = {"PSMON_KAFKA_BOOTSTRAP": broker.bootstrap, "PSMON_TOPIC_PREFIX": prefix, "PSMON_APP_ID": prefix,
               "PSMON_TOPIC_PARTITIONS": str(args.partitions), "PSMON_SESSION_TIMEOUT_S": "6"}  # fmt: skip
        t = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "psmon.cli.main", "simulate", "--unpaced", "--count", str(args.count),
             "--rate", "50", "--start", "2026-11-24T08:00:00+07:00", "--seed", "1", "--bad-fraction", "0.01"],
            env={**os.environ, **env}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        produce_s = time.monotonic() - t
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        port = free_port()
        log = Path(f"/tmp/{prefix}-worker.log")
        worker = psmon_process(["worker", "--metrics-port", str(port)], env=env, log_path=log)
        try:
            first = None
            while True:
                s = scrape(port)
                done = sample(s, "psmon_events_processed_total", stage="validate")
                if first is None and done > 0:
                    first = (time.monotonic(), done)
                if done >= args.count and sample(s, "psmon_events_processed_total", stage="rates") >= args.count - summary["bad"]:
                    end = time.monotonic()
                    break
                time.sleep(0.1)
        finally:
            stop_process(worker)
        assert first is not None
        events = args.count - first[1]
        result = {"events": args.count, "produce_s": round(produce_s, 2), "worker_s": round(end - first[0], 2),
                  "worker_events_per_s": round(events / (end - first[0]), 1), "bad": summary["bad"]}  # fmt: skip
        print(json.dumps(result))


if __name__ == "__main__":
    main()
