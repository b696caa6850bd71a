"""Soak: run the demo at its peak rate for a long time and sample every process's RSS.

    python -m benchmarks.soak --minutes 30 --out soak.csv              # psmon up, one process
    python -m benchmarks.soak --minutes 30 --out soak.csv --split      # broker/worker/sink/simulate

`psmon up` runs stages 1-3, the simulator and the query endpoint in one Python process, with the
local broker (and Prometheus/Alertmanager when installed) as its children, so its RSS is the
sum of those components. `--split` runs the same pipeline as separate processes (`psmon broker`,
`worker`, `sink`, `simulate`), which is what tells which component holds the memory.

The simulator's clock is pinned to a working morning (`--start`, office hours until 11:30 local)
so the whole run is at the peak rate (`activity_weight` 1.0). RSS is read from
`/proc/<pid>/status` (VmRSS) of the started processes and of their descendants, every
`--interval-s`; psutil is not a dependency of psmon and one field of one file is all this needs.
The load average is sampled too: the machine is shared, and a slow sample is only explained by
it. Events processed come from the `/metrics` of the process running stage 1.

The summary gives, per process, RSS at the end of the warm-up and at the end, and the slope
after the warm-up (least squares, MiB/min). A process is flat when that slope times the run is
small against its RSS; the numbers are printed, never judged here.
"""

import argparse
import contextlib
import csv
import os
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from psmon.embedded.broker import free_port
from testkit import psmon_env, psmon_process, stop_process

#: A Tuesday morning (Asia/Ho_Chi_Minh) with office hours from 09:00 to 11:30: the peak rate.
DEFAULT_START = "2026-11-24T09:00:00+07:00"


@dataclass
class Sample:
    t_s: float
    name: str
    pid: int
    rss_mib: float


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _label(pid: int, top: str) -> str:
    """`top` for a started process; a child is named by its executable (tansu -> broker)."""
    try:
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return f"{top}/?"
    name = Path(exe).name
    if name.startswith("tansu"):
        return "broker"
    return f"{top}/{name}"


def _processed(port: int) -> float | None:
    """Events stage 1 has processed, from its /metrics (None while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("psmon_events_processed_total") and 'stage="validate"' in line
    )


def _slope_mib_per_min(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / den if den else 0.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warmup-minutes", type=float, default=5.0)
    ap.add_argument("--interval-s", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0, help="events/s at peak (psmon up's default)")
    ap.add_argument("--start", default=DEFAULT_START, help="simulated clock start (a working morning)")
    ap.add_argument("--split", action="store_true", help="broker, worker, sink, simulate as separate processes")
    ap.add_argument("--out", type=Path, required=True, help="CSV of the samples")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)

    work = args.dir or Path(tempfile.mkdtemp(prefix="psmon-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    metrics_port = free_port()
    env = psmon_env(
        data_dir=work,
        clickhouse=f"chdb://{work / 'clickhouse'}",
        prometheus_port=0,  # not psmon's memory, and the machine's 9090/9093 may be taken
        alertmanager_port=0,
        alerts_port=free_port(),
        log_level="warning",
    )
    env.pop("PSMON_SESSION_TIMEOUT_S")  # psmon's own: the tests' 6 s evicts a starved worker on a busy machine
    sim_args = ["--rate", f"{args.rate:g}", "--start", args.start]
    procs: dict[str, Popen[bytes]] = {}
    try:
        if args.split:
            broker_port = free_port()
            env["PSMON_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{broker_port}"
            procs["psmon broker"] = psmon_process(
                ["broker", "--port", str(broker_port)], env=env, log_path=work / "broker.log"
            )
            time.sleep(2)  # the broker binds its port before the others connect; they retry anyway
            procs["worker"] = psmon_process(
                ["worker", "--metrics-port", str(metrics_port)], env=env, log_path=work / "worker.log"
            )
            procs["sink"] = psmon_process(["sink", "--metrics-port", "0"], env=env, log_path=work / "sink.log")
            procs["simulator"] = psmon_process(["simulate", *sim_args], env=env, log_path=work / "simulate.log")
        else:
            env.pop("PSMON_KAFKA_BOOTSTRAP", None)
            os.environ.pop("PSMON_KAFKA_BOOTSTRAP", None)  # psmon up starts its own broker
            procs["up"] = psmon_process(
                ["up", "--no-view", "--metrics-port", str(metrics_port), *sim_args],
                env=env,
                log_path=work / "up.log",
            )
        samples: list[Sample] = []
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        with args.out.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t_s", "process", "pid", "rss_mib", "load1", "events_processed"])
            while time.monotonic() < end:
                t = time.monotonic() - t0
                load1 = os.getloadavg()[0]
                done = _processed(metrics_port)
                for top, proc in procs.items():
                    if proc.poll() is not None:
                        raise SystemExit(f"{top} exited with {proc.returncode}: see {work}")
                    todo = [(proc.pid, top)]
                    while todo:
                        pid, name = todo.pop()
                        rss = _rss_mib(pid)
                        if rss is not None:
                            samples.append(Sample(t, name, pid, rss))
                            w.writerow([f"{t:.0f}", name, pid, f"{rss:.1f}", f"{load1:.2f}", done or ""])
                        todo += [(c, _label(c, top)) for c in _children(pid)]
                fh.flush()
                time.sleep(max(0.0, args.interval_s - (time.monotonic() - t0 - t)))
    finally:
        for proc in reversed(procs.values()):
            stop_process(proc)
    _summary(samples, args.warmup_minutes * 60)
    print(f"samples in {args.out}; logs in {work}")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


def _summary(samples: list[Sample], warmup_s: float) -> None:
    names = sorted({s.name for s in samples})
    print(f"{'process':<28} {'RSS warm-up end':>16} {'RSS end':>9} {'slope MiB/min':>14}")
    for name in names:
        mine = [s for s in samples if s.name == name]
        after = [s for s in mine if s.t_s >= warmup_s] or mine
        slope = _slope_mib_per_min([(s.t_s, s.rss_mib) for s in after])
        print(f"{name:<28} {after[0].rss_mib:>16.1f} {after[-1].rss_mib:>9.1f} {slope:>14.2f}")


if __name__ == "__main__":
    main()
