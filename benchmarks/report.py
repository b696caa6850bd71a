"""The results table: absolute numbers, the ratios the targets are stated in, and verdicts."""

from typing import Any

__all__ = ["TARGETS", "evaluate", "render"]

#: Issue targets on a 2-core machine: (description, key in `evaluate`, comparison, bound).
TARGETS = (
    ("worker ≥ 50% of raw baseline", "worker_vs_raw", ">=", 0.5),
    ("worker ≥ 1.0x the same-job baseline", "worker_vs_same_job", ">=", 1.0),
    ("p99 latency ≤ 1 s at 2,000 ev/s", "latency_p99_ms", "<=", 1000.0),
    ("sink ≥ 80% of raw insert", "sink_vs_raw_insert", ">=", 0.8),
    ("end to end ≥ 0.8x the same-job baseline", "pipeline_vs_same_job", ">=", 0.8),
    ("replay ≥ 100,000 events/s", "replay_events_per_s", ">=", 100_000.0),
    ("replay ≥ 0.8x raw insert of its rows", "replay_vs_raw_insert", ">=", 0.8),
    ("worker RSS ≤ 1.1x when the corpus grows 4x", "rss_growth_4x", "<=", 1.1),
    ("validation ceiling ≥ 150,000 ev/s on one core", "validate_events_per_s", ">=", 150_000.0),
    ("recovery ≤ 10 s after SIGKILL (checkpoints)", "recovery_seconds", "<=", 10.0),
)


def _get(results: dict[str, Any], *path: str | int) -> Any:
    cur: Any = results
    for p in path:
        in_list = isinstance(p, int) and isinstance(cur, list) and -len(cur) <= p < len(cur)
        in_dict = isinstance(p, str) and isinstance(cur, dict) and p in cur
        if not (in_list or in_dict):
            return None
        cur = cur[p]
    return cur


def _ratio(a: float | None, b: float | None) -> float | None:
    # Unrounded: a slow run's small ratio must stay positive in the JSON (the smoke test checks
    # that every measurement produced a number); `_fmt` rounds for display only.
    return a / b if a is not None and b else None


def evaluate(results: dict[str, Any], *, smoke: bool) -> dict[str, Any]:
    raw = _get(results, "raw_consume", "events_per_s")
    worker_rss = _get(results, "worker", "peak_rss_mib")
    quarter_rss = _get(results, "worker_quarter", "peak_rss_mib")
    values: dict[str, Any] = {
        "worker_vs_raw": _ratio(_get(results, "worker", "events_per_s"), raw),
        "worker_vs_same_job": _ratio(
            _get(results, "worker", "events_per_s"), _get(results, "same_job", "events_per_s")
        ),
        "same_job_vs_raw": _ratio(_get(results, "same_job", "events_per_s"), raw),
        "stage1_vs_raw": _ratio(_get(results, "worker", "stage1_validate_events_per_s"), raw),
        "stage2_vs_raw": _ratio(_get(results, "stage2", "events_per_s"), raw),
        "pipeline_vs_raw": _ratio(_get(results, "pipeline", "events_per_s"), raw),
        "pipeline_vs_same_job": _ratio(
            _get(results, "pipeline", "events_per_s"), _get(results, "same_job", "events_per_s")
        ),
        "replay_vs_raw_insert": _ratio(
            _get(results, "replay", "stored_events_per_s"), _get(results, "replay_raw_insert", "rows_per_s")
        ),
        "replay_vs_arrow_insert": _ratio(
            _get(results, "replay", "stored_events_per_s"), _get(results, "replay_raw_insert", "arrow_rows_per_s")
        ),
        "sink_vs_raw_insert": _ratio(_get(results, "sink", "rows_per_s"), _get(results, "raw_insert", "rows_per_s")),
        "latency_p99_ms": _get(results, "latency", "p99_ms"),
        "replay_events_per_s": _get(results, "replay", "events_per_s"),
        "rss_growth_4x": _ratio(worker_rss[0], quarter_rss[0]) if worker_rss and quarter_rss else None,
        "recovery_seconds": _get(results, "recovery", "checkpoint", "seconds"),
        "recovery_speedup": _get(results, "recovery", "speedup"),
        "scaleout_speedup": _ratio(_get(results, "scaleout", "events_per_s"), _get(results, "worker", "events_per_s")),
        "validate_events_per_s": _get(results, "cpu", "validate_events_per_s"),
        "validate_fast_vs_reference": _ratio(
            _get(results, "cpu", "validate_events_per_s"), _get(results, "cpu", "validate_reference_events_per_s")
        ),
    }
    verdicts = {}
    for text, key, op, bound in TARGETS:
        v = values[key]
        met = None if v is None else (v >= bound if op == ">=" else v <= bound)
        verdicts[text] = (
            "n/a (smoke size)" if smoke else ("not measured" if met is None else "met" if met else "NOT met")
        )
    return {"values": values, "targets": verdicts}


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}{unit}"
    if isinstance(v, float):
        return f"{v:,.3g}{unit}"
    return f"{v}{unit}"


def render(results: dict[str, Any]) -> str:
    def g(*p: str | int) -> Any:
        return _get(results, *p)

    v = results["evaluation"]["values"]
    m = results["meta"]
    rows = [
        (
            "corpus produced",
            _fmt(g("corpus", "produce_events_per_s"), " ev/s"),
            f"{m['count']:,} events, {m['partitions']} partitions",
        ),
        ("raw baseline: aiokafka + orjson", _fmt(g("raw_consume", "events_per_s"), " ev/s"), "1.00 (reference)"),
        (
            "validation (reference pydantic path), one core",
            _fmt(g("cpu", "validate_reference_events_per_s"), " ev/s"),
            "1.00 (reference)",
        ),
        (
            "validation (fast path), one core",
            _fmt(g("cpu", "validate_events_per_s"), " ev/s"),
            f"{_fmt(v['validate_fast_vs_reference'])}x reference",
        ),
        (
            "stage 1 CPU ceiling (validate+encode, no Kafka)",
            _fmt(g("cpu", "stage1_validate_encode_events_per_s"), " ev/s"),
            f"reference path: {_fmt(g('cpu', 'stage1_reference_validate_encode_events_per_s'))} ev/s",
        ),
        (
            "stage 2 CPU ceiling (decode+observe, no Kafka)",
            _fmt(g("cpu", "stage2_decode_observe_events_per_s"), " ev/s"),
            "",
        ),
        (
            "worker (stages 1+2), 1 process",
            _fmt(g("worker", "events_per_s"), " ev/s"),
            f"{_fmt(v['worker_vs_raw'])} of raw",
        ),
        (
            "  stage 1 (validate) within it",
            _fmt(g("worker", "stage1_validate_events_per_s"), " ev/s"),
            f"{_fmt(v['stage1_vs_raw'])} of raw",
        ),
        (
            "same-job baseline: plain aiokafka, stages 1+2",
            _fmt(g("same_job", "events_per_s"), " ev/s"),
            f"{_fmt(v['same_job_vs_raw'])} of raw; worker / same-job {_fmt(v['worker_vs_same_job'])}",
        ),
        (
            "stage 2 alone (RatesService)",
            _fmt(g("stage2", "events_per_s"), " ev/s"),
            f"{_fmt(v['stage2_vs_raw'])} of raw",
        ),
        (
            "stage 3 alone (psmon sink)",
            _fmt(g("sink", "rows_per_s"), " rows/s"),
            f"{_fmt(v['sink_vs_raw_insert'])} of raw insert",
        ),
        ("raw clickhouse-connect insert", _fmt(g("raw_insert", "rows_per_s"), " rows/s"), "1.00 (reference)"),
        (
            "end to end: worker + sink, all committed",
            _fmt(g("pipeline", "events_per_s"), " ev/s"),
            f"{_fmt(v['pipeline_vs_raw'])} of raw; {_fmt(v['pipeline_vs_same_job'])}x same-job",
        ),
        (
            "latency p50 / p99 / max",
            f"{_fmt(g('latency', 'p50_ms'))} / {_fmt(g('latency', 'p99_ms'))} / {_fmt(g('latency', 'max_ms'))} ms",
            f"at {_fmt(g('latency', 'rate_eps_sent'))} ev/s, {g('latency', 'markers')} markers",
        ),
        (
            "latency at live peak p50 / p99 / max",
            f"{_fmt(g('latency_peak', 'p50_ms'))} / {_fmt(g('latency_peak', 'p99_ms'))} / {_fmt(g('latency_peak', 'max_ms'))} ms",
            f"at {_fmt(g('latency_peak', 'rate_eps_sent'))} ev/s, {g('latency_peak', 'markers')} markers",
        ),
        (
            "replay file → ClickHouse",
            _fmt(g("replay", "events_per_s"), " ev/s"),
            f"write part alone {_fmt(g('replay', 'write_events_per_s'))} ev/s",
        ),
        (
            "  its valid events stored",
            _fmt(g("replay", "stored_events_per_s"), " ev/s"),
            f"{_fmt(v['replay_vs_raw_insert'])}x raw insert of the same rows",
        ),
        (
            "  raw insert of the same rows, same batch size",
            _fmt(g("replay_raw_insert", "rows_per_s"), " rows/s"),
            "1.00 (reference)",
        ),
        (
            "  raw Arrow insert of the same rows (fastest found)",
            _fmt(g("replay_raw_insert", "arrow_rows_per_s"), " rows/s"),
            f"replay {_fmt(v['replay_vs_arrow_insert'])}x it",
        ),
        (
            "worker peak RSS: corpus / quarter",
            f"{_fmt(g('worker', 'peak_rss_mib', 0))} / {_fmt(g('worker_quarter', 'peak_rss_mib', 0))} MiB",
            f"growth {_fmt(v['rss_growth_4x'])}x for 4x events",
        ),
        (
            "scale-out: 2 worker processes",
            _fmt(g("scaleout", "events_per_s"), " ev/s"),
            f"{_fmt(v['scaleout_speedup'])}x one worker",
        ),
        (
            "recovery after SIGKILL: checkpoint / full re-read",
            f"{_fmt(g('recovery', 'checkpoint', 'seconds'))} / {_fmt(g('recovery', 'full_reread', 'seconds'))} s",
            f"{_fmt(v['recovery_speedup'])}x faster; {_fmt(g('recovery', 'records'))} records retained, "
            f"replayed {_fmt(g('recovery', 'checkpoint', 'rebuild_records'))} / "
            f"{_fmt(g('recovery', 'full_reread', 'rebuild_records'))}",
        ),
        (
            "  checkpoint: start-up / group join / state / export",
            " / ".join(
                _fmt(g("recovery", "checkpoint", "phases_s", p)) for p in ("startup", "group_join", "state", "export")
            )
            + " s",
            "from the worker's log lines (benchmarks/recovery.py)",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{'measurement':<{w0}}  {'result':>{w1}}  ratio / note", "-" * (w0 + w1 + 30)]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    lines.append("")
    lines += [f"target: {t:<42} {verdict}" for t, verdict in results["evaluation"]["targets"].items()]
    lines.append(
        f"machine: {m['cpus']} CPUs, load average {m['loadavg_start'][0]:.1f} at start, "
        f"{m.get('loadavg_end', (0,))[0]:.1f} at end"
    )
    return "\n".join(lines)
