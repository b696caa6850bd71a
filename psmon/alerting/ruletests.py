"""`promtool test rules` files generated from the same thresholds as the rules.

The tests follow the thresholds, so they stay right when a floor, a window or a holiday changes,
and every alert is tested with the numbers it will run with:
- ratio alerts, per metric: a province exactly at its floor (must not fire: the comparison is
  strict), one unit under it (fires, then resolves once its ratio recovers), under the floor with
  a denominator of `min_volume - 1` (must not fire) and of exactly `min_volume` (fires), each
  overridden province just under its own floor, and counters split over two workers;
- "no events" per province and nationwide, and the event-time lag, across a working Thursday,
  a Friday, a weekend and lunch breaks (the promtool clock starts at 1970-01-01 00:00 UTC,
  a Thursday at 07:00 in Vietnam, so extra holidays can be put on those days);
- worker and sink down: a target down, replicas vanishing from DNS discovery one by one (enough
  left, fewer than `expected`, none), no target at all, no sink job (`psmon up`), ClickHouse
  write errors,
  dead-letter spike (at, over and under the volume limit);
- the catalog shares (when the thresholds have `catalog:`): each gauge at its floor, just under
  it, under it with one procedure fewer than `min_volume`, each overridden province, evaluated
  before the month's `from_day`, just before `for:` has elapsed after it, and a day later.

Expected alerts are not copied from the rules: a small model here recomputes the windows from the
input counters (`increase` over exactly covered ranges is the difference of two samples) and
applies `for:` as Prometheus does (true at every evaluation since one at or before `t - for`).
The annotation texts are the rules' templates expanded with the model's values, so a template
that Prometheus renders differently (or a `query` that returns nothing) fails the test.
"""

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from psmon.alerting.rules import (
    COUNTER_SERIES,
    NONE_UP_LABELS,
    RULES_FILE,
    SINK_PRESENCE_JOB,
    build_rules,
    dump_yaml,
)
from psmon.alerting.thresholds import Thresholds, duration_s
from psmon.metrics import SINK_JOB, WORKER_JOB
from psmon.schemas.catalog_metrics import CatalogMetric
from psmon.schemas.metrics import METRICS, Metric
from psmon.schemas.provinces import registry
from psmon.timeutil import LOCAL_OFFSET_S

__all__ = ["RULE_TEST_FILES", "build_rule_tests", "render_rule_tests"]

#: test file name -> what it covers
RULE_TEST_FILES: Final = {
    "psmon-rules.test.yml": "ratio alerts",
    "psmon-pipeline.test.yml": "ClickHouse errors, dead-letter spike",
    "psmon-down.test.yml": "worker/sink down, replicas vanishing from DNS discovery",
    "psmon-calendar.test.yml": "no-events and lag alerts against office hours and holidays",
    "psmon-catalog.test.yml": "catalog shares (month to date) against floors, min_volume and from_day",
}

_SUB = "psmon_dossiers_submitted_total"
_PAY = "psmon_payments_total"
#: metric -> (numerator series, rest-of-denominator or denominator series, numerator is a subset)
_SCENARIO_SERIES: Final[dict[Metric, tuple[tuple[str, dict[str, str]], tuple[str, dict[str, str]], bool]]] = {
    "online_submission": (
        (_SUB, {"channel": "online", "service_mode": "partial_online"}),
        (_SUB, {"channel": "counter", "service_mode": "offline"}),
        True,
    ),
    "full_online": (
        (_SUB, {"channel": "online", "service_mode": "full_online"}),
        (_SUB, {"channel": "online", "service_mode": "partial_online"}),
        True,
    ),
    "online_payment": ((_PAY, {"method": "online"}), (_PAY, {"method": "counter"}), True),
    "on_time": (
        ("psmon_dossiers_resolved_total", {"on_time": "true"}),
        ("psmon_dossiers_resolved_total", {"on_time": "false"}),
        True,
    ),
    "dossier_digitization": (
        ("psmon_records_digitized_total", {"kind": "dossier"}),
        (_SUB, {"channel": "counter", "service_mode": "offline"}),
        False,
    ),
    "result_digitization": (
        ("psmon_records_digitized_total", {"kind": "result"}),
        ("psmon_dossiers_resolved_total", {"on_time": "false"}),
        False,
    ),
}


# -- a counter as piecewise-constant increments per scrape interval ------------------------------
@dataclass
class Series:
    metric: str
    labels: dict[str, str]
    #: (from sample index, increment per interval from there on), first one at index 0
    rates: list[tuple[int, float]] = field(default_factory=lambda: [(0, 0)])

    def value(self, i: int) -> float:
        v = 0.0
        for k, (start, rate) in enumerate(self.rates):
            end = self.rates[k + 1][0] if k + 1 < len(self.rates) else math.inf
            if i <= start:
                break
            v += (min(i, end) - start) * rate
        return v

    def notation(self, n: int) -> str:
        """promtool's expanding notation for samples 0..n-1."""
        parts = []
        for k, (start, rate) in enumerate(self.rates):
            end = min(self.rates[k + 1][0] if k + 1 < len(self.rates) else n, n)
            if end <= start:
                continue
            count = end - start - 1
            v = _num(self.value(start))
            parts.append(v if count == 0 else f"{v}+{_num(rate)}x{count}")
        return " ".join(parts)

    def promql(self) -> str:
        return self.metric + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items())) + "}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


# -- Go template rendering of the few forms psmon's annotations use ------------------------------
def go_float(v: float) -> str:
    """`{{ $value }}` as Go's fmt prints a float64: shortest digits, `%e` form when the decimal
    exponent is under -4 or at least 6 (Go uses precision 6 for that choice), else `%f` form."""
    if v == 0:
        return "0"
    sign, digits, exp = Decimal(repr(float(v))).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    x = len(ds) + exp - 1  # decimal exponent of the first digit
    neg = "-" if sign else ""
    if x < -4 or x >= 6:
        mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if x < 0:
        return f"{neg}0.{'0' * (-x - 1)}{ds}"
    if len(ds) <= x + 1:
        return f"{neg}{ds}{'0' * (x + 1 - len(ds))}"
    return f"{neg}{ds[: x + 1]}.{ds[x + 1 :]}"


def humanize_duration(v: float) -> str:
    if abs(v) >= 1:
        s = int(v)
        d, h, m, sec = s // 86400, (s // 3600) % 24, (s // 60) % 60, s % 60
        if d:
            return f"{d}d {h}h {m}m {sec}s"
        if h:
            return f"{h}h {m}m {sec}s"
        if m:
            return f"{m}m {sec}s"
    return f"{v:.4g}s"


def expand(template: str, *, labels: dict[str, str], value: float, volume: float | None = None) -> str:
    """A rule's annotation template rendered as Prometheus will (for the forms psmon uses)."""
    out = re.sub(
        r"\{\{ with printf `[^`]*` \$labels\.province \| query \}\}\{\{ \. \| first \| value \| printf \"%\.0f\" \}\}"
        r"\{\{ end \}\}",
        lambda _m: "" if volume is None else f"{volume:.0f}",
        template,
    )
    for name, v in labels.items():
        out = out.replace(f"{{{{ $labels.{name} }}}}", v)
    out = re.sub(r"\{\{ \$labels\.\w+ \}\}", "", out)  # a missing label renders empty
    out = out.replace("{{ $value | humanizePercentage }}", f"{value * 100:.4g}%")
    out = out.replace("{{ $value | humanizeDuration }}", humanize_duration(value))
    out = out.replace('{{ $value | printf "%.0f" }}', f"{value:.0f}")
    return out.replace("{{ $value }}", go_float(value))


# -- the model ------------------------------------------------------------------------------------
def _matches(s: Series, counter: str, province: str) -> bool:
    metric, matchers = COUNTER_SERIES[counter]
    return (
        s.metric == metric
        and s.labels.get("province") == province
        and all(s.labels.get(k) == v for k, v in matchers.items())
    )


def _increase(series: Iterable[Series], counter: str, province: str, t_i: int, w_i: int) -> float:
    return sum(s.value(t_i) - s.value(t_i - w_i) for s in series if _matches(s, counter, province))


def _firing(cond: Callable[[int], bool], t_s: int, for_s: float, eval_s: int) -> bool:
    """Prometheus `for:`: true at every evaluation from one at or before t - for, up to t."""
    start = math.floor((t_s - for_s) / eval_s) * eval_s
    return all(cond(u) for u in range(max(start, 0), t_s + 1, eval_s))


def _alert_rules(th: Thresholds) -> list[dict[str, Any]]:
    return [r for g in build_rules(th)["groups"] for r in g["rules"] if "alert" in r]


def _annotations(
    rule: dict[str, Any], labels: dict[str, str], value: float, volume: float | None = None
) -> dict[str, str]:
    return {k: expand(v, labels=labels, value=value, volume=volume) for k, v in rule["annotations"].items()}


def _ratio_expected(
    th: Thresholds, series: list[Series], provinces: list[str], t_s: int, *, interval_s: int, eval_s: int
) -> list[dict[str, Any]]:
    rules = [r for r in _alert_rules(th) if r["alert"] == "PsmonRatioBelowFloor"]
    names = {p.code: p.name for p in registry().current}
    out = []
    for metric, t in th.metrics.items():
        num_c, den_c = METRICS[metric]
        w_i = int(duration_s(t.window)) // interval_s
        for p in provinces:
            floor, mv = th.floor(metric, p), th.min_volume(metric, p)
            assert floor is not None
            assert mv is not None

            def nd(u: int, p: str = p, w_i: int = w_i, num_c: str = num_c, den_c: str = den_c) -> tuple[float, float]:
                u_i = u // interval_s
                return _increase(series, num_c, p, u_i, w_i), _increase(series, den_c, p, u_i, w_i)

            def cond(u: int, nd: Callable[[int], tuple[float, float]] = nd, floor: float = floor, mv: int = mv) -> bool:
                n, d = nd(u)
                return d > 0 and d >= mv and n / d < floor

            if not _firing(cond, t_s, duration_s(t.for_), eval_s):
                continue
            n, d = nd(t_s)
            labels = {
                "province": p,
                "province_name": names[p],
                "metric": metric,
                "window": t.window,
                "severity": t.severity,
            }
            own = [r for r in rules if r["labels"]["metric"] == metric and r["labels"].get("province") == p]
            rule = (
                own[0]
                if own
                else next(r for r in rules if r["labels"]["metric"] == metric and "province" not in r["labels"])
            )
            out.append({"exp_labels": labels, "exp_annotations": _annotations(rule, labels, n / d, d)})
    return sorted(out, key=lambda a: (a["exp_labels"]["province"], a["exp_labels"]["metric"]))


def _den_per_interval(floor: float) -> int:
    """Smallest power of ten (>= 100) that makes `floor * it` a whole number of events."""
    for k in range(2, 10):
        if abs(floor * 10**k - round(floor * 10**k)) < 1e-9:
            return int(10**k)
    raise ValueError(f"alert_below {floor} has too many decimals to test at the boundary")


def _ratio_group(th: Thresholds, *, interval_s: int, eval_s: int) -> dict[str, Any]:
    """All metrics in one promtool group (one evaluation run), each on its own provinces."""
    longest_w = max(int(duration_s(t.window)) for t in th.metrics.values())
    longest_f = max(duration_s(t.for_) for t in th.metrics.values())
    # t1: every window exactly covered by samples and `for:` elapsed; t2: B's recovery is a window old
    t1 = _ceil(longest_w + longest_f + 2 * eval_s, eval_s)
    recover = t1 + eval_s
    t2 = _ceil(recover + longest_w + 2 * eval_s, eval_s)
    n = t2 // interval_s + 2
    overridden_any = {c for t in th.metrics.values() for c, o in t.provinces.items()}
    free = iter(c for c in registry().codes if c not in overridden_any)
    series: list[Series] = []
    provinces: list[str] = []
    checks: list[dict[str, Any]] = []
    for metric, t in th.metrics.items():
        w, f = int(duration_s(t.window)), duration_s(t.for_)
        if w % interval_s:
            raise ValueError(f"metrics.{metric}.window must be a multiple of the scrape interval to be tested")
        (num_m, num_l), (other_m, other_l), subset = _SCENARIO_SERIES[metric]
        overridden = sorted(c for c, o in t.provinces.items() if o.alert_below is not None or o.min_volume is not None)
        try:
            a, b, c, d = (next(free) for _ in range(4))
        except (StopIteration, RuntimeError) as exc:
            raise ValueError("too many per-province overrides to leave 4 test provinces per metric") from exc
        step = (t1 - int((w + f) / 2)) // interval_s  # inside the window at t1 for longer than `for:`

        def counter(
            metric_name: str,
            labels: dict[str, str],
            province: str,
            rates: list[tuple[int, float]],
            instance: str = "w1",
        ) -> None:
            all_labels = {**labels, "province": province, "instance": instance, "job": WORKER_JOB}
            series.append(Series(metric_name, all_labels, rates))

        def ratio(
            province: str,
            num: list[tuple[int, float]],
            den: list[tuple[int, float]],
            split: bool = False,
            num_m: str = num_m,
            num_l: dict[str, str] = num_l,
            other_m: str = other_m,
            other_l: dict[str, str] = other_l,
            subset: bool = subset,
        ) -> None:
            counter(num_m, num_l, province, num)
            other = den
            if subset:  # the rest of the denominator: den - num per piece
                starts = sorted({s for s, _ in num} | {s for s, _ in den})
                other = [(s, _rate_at(den, s) - _rate_at(num, s)) for s in starts]
            if split:  # the denominator counted by two workers: the rules must sum them
                counter(other_m, other_l, province, [(s, r // 2) for s, r in other], "w1")
                counter(other_m, other_l, province, [(s, r - r // 2) for s, r in other], "w2")
            else:
                counter(other_m, other_l, province, other)

        floor = t.alert_below
        den = _den_per_interval(floor)
        at_floor = round(floor * den)
        ratio(a, [(0, at_floor)], [(0, den)], split=True)  # exactly at the floor: never fires
        if at_floor >= 1:  # one event under the floor: fires, then recovers
            ratio(b, [(0, at_floor - 1), (recover // interval_s, den)], [(0, den)])
        mv = t.min_volume
        ratio(c, [(0, 0)], [(0, 0), (step, mv - 1), (step + 1, 0)])  # under min_volume: never fires
        ratio(d, [(0, 0)], [(0, 0), (step, mv), (step + 1, 0)])  # exactly min_volume: fires
        provinces += [a, b, c, d]
        for code in overridden:
            o_floor, o_mv = th.floor(metric, code) or 0.0, th.min_volume(metric, code) or 1
            o_den = max(_den_per_interval(o_floor), _ceil(o_mv, 100))
            if round(o_floor * o_den) >= 1:
                ratio(code, [(0, round(o_floor * o_den) - 1)], [(0, o_den)])
                provinces.append(code)
        checks.append(
            {
                "expr": f'province:psmon_ratio:increase{{province="{a}",metric="{metric}",window="{t.window}"}}',
                "eval_time": f"{t1}s",
                "exp_samples": [
                    {
                        "labels": "province:psmon_ratio:increase"
                        f'{{metric="{metric}",province="{a}",window="{t.window}"}}',
                        "value": floor,
                    }
                ],
            }
        )
    return {
        "name": "ratio below floor: every metric at, under and over its floor and min_volume",
        "interval": f"{interval_s}s",
        "input_series": [{"series": s.promql(), "values": s.notation(n)} for s in series],
        "promql_expr_test": checks,
        "alert_rule_test": [
            {
                "eval_time": f"{at}s",
                "alertname": "PsmonRatioBelowFloor",
                "exp_alerts": _ratio_expected(
                    th, series, sorted(set(provinces)), at, interval_s=interval_s, eval_s=eval_s
                ),
            }
            for at in (t1, t2)
        ],
    }


def _local_day_of_month(t_s: int) -> int:
    return datetime.fromtimestamp(t_s + LOCAL_OFFSET_S, UTC).day


def _catalog_step(th: Thresholds) -> int:
    """The coarsest step (an hour down to the scrape interval) dividing every catalog `for:` and
    the 7 h between promtool's start and local midnight: the catalog tests span weeks."""
    ds = [duration_s(t.for_) for t in th.catalog.values()] + [LOCAL_OFFSET_S]
    scrape_s = int(duration_s(th.prometheus.scrape_interval))
    return next((st for st in (3600, 900, 300, 60) if st >= scrape_s and all(d % st == 0 for d in ds)), scrape_s)


def _catalog_group(th: Thresholds, *, interval_s: int) -> dict[str, Any]:
    """The catalog shares' gauges at, under and over their floors and `min_volume`, before and
    from `from_day` (promtool's clock starts on the 1st of a month, 07:00 local)."""
    overridden_any = {c for t in th.catalog.values() for c in t.provinces}
    free = [c for c in registry().codes if c not in overridden_any][:3]
    if len(free) < 3:
        raise ValueError("too many per-province overrides of catalog: to leave 3 test provinces")
    at, under, low = free
    names = {p.code: p.name for p in registry().current}
    rules = [r for r in _alert_rules(th) if r["alert"] == "PsmonRatioBelowFloor"]
    # gauge (metric, province) -> (ratio, denominator), constant over the test
    gauges: dict[tuple[CatalogMetric, str], tuple[float, int]] = {}
    times: set[int] = {5 * 3600}  # noon local on the 1st
    for metric, t in th.catalog.items():
        floor, mv = t.alert_below, t.min_volume
        gauges[(metric, at)] = (floor, mv)  # at the floor: never fires
        if floor > 0:
            gauges[(metric, under)] = (round(floor - 0.001, 6), mv)  # just under, enough procedures: fires
            gauges[(metric, low)] = (round(floor - 0.001, 6), mv - 1)  # too few procedures: never fires
        for code in sorted(t.provinces):
            o_floor, o_mv = th.floor(metric, code) or 0.0, th.min_volume(metric, code) or 1
            if o_floor > 0:
                gauges[(metric, code)] = (round(o_floor - 0.001, 6), o_mv)
        opens = (t.from_day - 1) * 86400 - LOCAL_OFFSET_S if t.from_day > 1 else 0  # local midnight
        f = int(duration_s(t.for_))
        times |= {x for x in (opens + f - interval_s, opens + f, opens + f + 86400) if x > 0}
    last = max(times)
    n = last // interval_s + 2
    values: dict[str, str] = {}
    for (metric, province), (ratio, den) in sorted(gauges.items()):
        labels = {"province": province, "metric": metric, "window": "month", "instance": "w1", "job": WORKER_JOB}
        values[Series("psmon_ratio", labels).promql()] = f"{_num(ratio)}+0x{n - 1}"
        values[Series("psmon_ratio_denominator", labels).promql()] = f"{_num(den)}+0x{n - 1}"

    def expected(t_s: int) -> list[dict[str, Any]]:
        out = []
        for (metric, province), (ratio, den) in sorted(gauges.items()):
            t = th.catalog[metric]
            floor, mv = th.floor(metric, province), th.min_volume(metric, province)
            assert floor is not None
            assert mv is not None

            def cond(
                u: int, t: Any = t, ratio: float = ratio, den: int = den, floor: float = floor, mv: int = mv
            ) -> bool:
                return _local_day_of_month(u) >= t.from_day and ratio < floor and den >= mv

            if not _firing(cond, t_s, duration_s(t.for_), interval_s):
                continue
            labels = {
                "province": province,
                "province_name": names[province],
                "metric": metric,
                "window": "month",
                "severity": t.severity,
            }
            own = [r for r in rules if r["labels"]["metric"] == metric and r["labels"].get("province") == province]
            rule = (
                own[0]
                if own
                else next(r for r in rules if r["labels"]["metric"] == metric and "province" not in r["labels"])
            )
            out.append({"exp_labels": labels, "exp_annotations": _annotations(rule, labels, ratio, den)})
        return sorted(out, key=lambda a: (a["exp_labels"]["province"], a["exp_labels"]["metric"]))

    return {
        "name": "catalog shares: at, under and over the floor and min_volume, before and from from_day",
        "interval": f"{interval_s}s",
        "input_series": [{"series": k, "values": v} for k, v in values.items()],
        "alert_rule_test": [
            {"eval_time": f"{t_s}s", "alertname": "PsmonRatioBelowFloor", "exp_alerts": expected(t_s)}
            for t_s in sorted(times)
        ],
    }


def _rate_at(rates: list[tuple[int, float]], i: int) -> float:
    r = 0.0
    for start, rate in rates:
        if start <= i:
            r = rate
    return r


def _ceil(x: float, step: int) -> int:
    return int(math.ceil(x / step) * step)


# -- pipeline alerts ------------------------------------------------------------------------------
def _down_rule(th: Thresholds, alert: str, form: str) -> dict[str, Any]:
    """One of the three rules of a down alert: `target` (up == 0), `fewer` (than expected), `none`."""
    for r in _alert_rules(th):
        if r["alert"] != alert:
            continue
        labels = r["labels"]
        kind = "none" if NONE_UP_LABELS[alert] in labels else "fewer" if "expected" in labels else "target"
        if kind == form:
            return r
    raise KeyError(f"{alert} has no {form} rule")


def _down_groups(th: Thresholds, *, interval_s: int, eval_s: int) -> list[dict[str, Any]]:
    """Worker and sink down: a scraped target down, and the scale-down Compose really does (a dead
    container's DNS record goes, so its target and `up` series vanish, marked stale)."""
    p = th.pipeline
    groups: list[dict[str, Any]] = []

    def at(seconds: float) -> str:
        return f"{_ceil(seconds, eval_s)}s"

    def alert_of(alert: str, form: str, labels: dict[str, str], value: float) -> dict[str, Any]:
        rule = _down_rule(th, alert, form)
        full = {**labels, **rule["labels"]}
        return {"exp_labels": full, "exp_annotations": _annotations(rule, full, value)}

    for alert, job, down in (("PsmonWorkerDown", WORKER_JOB, p.worker_down), ("PsmonSinkDown", SINK_JOB, p.sink_down)):
        fs = duration_s(down.for_)
        # `expected` targets, one scraped and down: its own alert, and one fewer up than expected
        n = int((10 * eval_s + fs + 4 * eval_s) // interval_s) + 2
        presence = (
            [{"series": f'up{{job="{SINK_PRESENCE_JOB}",instance="sink:9108"}}', "values": f"1x{n}"}]
            if job == SINK_JOB
            else []
        )
        up_i = 10 * eval_s // interval_s
        target = {"instance": "x1:9108", "job": job}
        healthy = [
            {"series": f'up{{job="{job}",instance="x{k}:9108"}}', "values": f"1x{n}"}
            for k in range(2, down.expected + 1)
        ]
        short = alert_of(alert, "fewer", {}, down.expected - 1) if down.expected > 1 else alert_of(alert, "none", {}, 1)
        groups.append(
            {
                "name": f"{alert}: target down",
                "interval": f"{interval_s}s",
                "input_series": [
                    {"series": f'up{{job="{job}",instance="x1:9108"}}', "values": f"1x{up_i} 0x{n - up_i - 1}"},
                    *healthy,
                    *presence,
                ],
                "alert_rule_test": [
                    {"eval_time": at(up_i * interval_s - eval_s), "alertname": alert, "exp_alerts": []},
                    {
                        "eval_time": at(up_i * interval_s + fs + eval_s),
                        "alertname": alert,
                        "exp_alerts": [alert_of(alert, "target", target, 0), short],
                    },
                ],
            }
        )
    # scale-down, both jobs in one group (one promtool run): expected + 1 replicas each; one
    # vanishes (still enough), a second (too few), then all
    jobs = (("PsmonWorkerDown", WORKER_JOB, p.worker_down), ("PsmonSinkDown", SINK_JOB, p.sink_down))
    fs = max(duration_s(down.for_) for _, _, down in jobs)
    span_i = _ceil(fs + 2 * eval_s, interval_s) // interval_s
    vanish = [span_i, span_i * 2, span_i * 3]  # sample index: enough left / fewer / none
    series: list[dict[str, str]] = [
        {"series": f'up{{job="{SINK_PRESENCE_JOB}",instance="sink:9108"}}', "values": f"1x{span_i * 4 + 2}"}
    ]
    checks: list[dict[str, Any]] = []
    steps = []
    for alert, job, down in jobs:
        replicas = down.expected + 1
        ends = [vanish[0], vanish[1]] + [vanish[2]] * (replicas - 2)
        series += [
            {"series": f'up{{job="{job}",instance="x{k + 1}:9108"}}', "values": f"1x{end - 1} stale"}
            for k, end in enumerate(ends)
        ]
        fewer = alert_of(alert, "fewer", {}, down.expected - 1) if down.expected > 1 else alert_of(alert, "none", {}, 1)
        checks += [
            {"eval_time": at(vanish[1] * interval_s - eval_s), "alertname": alert, "exp_alerts": []},
            {"eval_time": at(vanish[1] * interval_s + fs + eval_s), "alertname": alert, "exp_alerts": [fewer]},
            {
                "eval_time": at(vanish[2] * interval_s + fs + eval_s),
                "alertname": alert,
                "exp_alerts": [alert_of(alert, "none", {}, 1)],
            },
        ]
        counts = sorted({replicas, down.expected, down.expected - 1, 0}, reverse=True)
        steps.append(f"{job} {' -> '.join(map(str, counts))} with {down.expected} expected")
    groups.append(
        {
            "name": f"replicas vanish from DNS discovery: {'; '.join(steps)}",
            "interval": f"{interval_s}s",
            "input_series": series,
            "alert_rule_test": checks,
        }
    )
    # no target at all: no worker is a worker down; no sink job configured (`psmon up`, no
    # presence series) expects no sink, so no sink alert
    check_s = _ceil(fs + 2 * eval_s, eval_s)
    groups.append(
        {
            "name": "no target at all: PsmonWorkerDown fires, PsmonSinkDown does not (no sink job, as in psmon up)",
            "interval": f"{interval_s}s",
            "input_series": [],
            "alert_rule_test": [
                {
                    "eval_time": f"{check_s}s",
                    "alertname": "PsmonWorkerDown",
                    "exp_alerts": [alert_of("PsmonWorkerDown", "none", {}, 1)],
                },
                {"eval_time": f"{check_s}s", "alertname": "PsmonSinkDown", "exp_alerts": []},
            ],
        }
    )
    return groups


def _pipeline_groups(th: Thresholds, *, interval_s: int, eval_s: int) -> list[dict[str, Any]]:
    p = th.pipeline
    rules = {r["alert"]: r for r in _alert_rules(th)}
    groups = []

    def at(seconds: float) -> str:
        return f"{_ceil(seconds, eval_s)}s"

    # ClickHouse write errors: 3 failures per interval for a while, then none
    ce = p.clickhouse_errors
    w, fs = duration_s(ce.window), duration_s(ce.for_)
    start_i = _ceil(w, interval_s) // interval_s + 1
    stop_i = start_i + _ceil(w + fs + 4 * eval_s, interval_s) // interval_s
    n = stop_i + _ceil(2 * w + 4 * eval_s, interval_s) // interval_s
    errs = Series(
        "psmon_clickhouse_errors_total", {"instance": "s1:9108", "job": SINK_JOB}, [(0, 0), (start_i, 3), (stop_i, 0)]
    )
    t_fire = stop_i * interval_s
    w_i = int(w) // interval_s
    value = errs.value(t_fire // interval_s) - errs.value(t_fire // interval_s - w_i)
    labels = {"instance": "s1:9108", "severity": ce.severity}
    groups.append(
        {
            "name": "PsmonClickHouseWriteErrors",
            "interval": f"{interval_s}s",
            "input_series": [{"series": errs.promql(), "values": errs.notation(n)}],
            "alert_rule_test": [
                {
                    "eval_time": f"{(start_i - 1) * interval_s}s",
                    "alertname": "PsmonClickHouseWriteErrors",
                    "exp_alerts": [],
                },
                {
                    "eval_time": f"{t_fire}s",
                    "alertname": "PsmonClickHouseWriteErrors",
                    "exp_alerts": [
                        {
                            "exp_labels": labels,
                            "exp_annotations": _annotations(rules["PsmonClickHouseWriteErrors"], labels, value),
                        }
                    ],
                },
                {"eval_time": f"{(n - 1) * interval_s}s", "alertname": "PsmonClickHouseWriteErrors", "exp_alerts": []},
            ],
        }
    )

    # dead-letter spike: exactly at the limit (no), over it (yes), over it with too little volume (no)
    dl = p.dead_letter_spike
    w, fs = duration_s(dl.window), duration_s(dl.for_)
    w_i = int(w) // interval_s
    per = _den_per_interval(dl.max_ratio)
    at_limit = round(dl.max_ratio * per)
    t_check = _ceil(2 * w + fs + 4 * eval_s, eval_s)
    n = t_check // interval_s + 2
    cases: list[tuple[str, float, float, bool]] = [
        ("at the limit", per, at_limit, False),
        ("over the limit", per, at_limit + 1, True),
    ]
    low = (dl.min_volume - 1) / w_i  # a volume just under min_volume in the window
    cases.append(("over the limit, low volume", low, low, False))
    for name, processed_rate, invalid_rate, fires in cases:
        dl_rule = rules["PsmonDeadLetterSpike"]
        value = invalid_rate / processed_rate
        exp = [{"exp_labels": {"severity": dl.severity}, "exp_annotations": _annotations(dl_rule, {}, value)}]
        groups.append(
            {
                "name": f"PsmonDeadLetterSpike: {name}",
                "interval": f"{interval_s}s",
                "input_series": [
                    {
                        "series": f'psmon_events_processed_total{{stage="validate",instance="w1",job="{WORKER_JOB}"}}',
                        "values": f"0+{_num(processed_rate)}x{n - 1}",
                    },
                    {
                        "series": "psmon_events_invalid_total"
                        f'{{reason="unknown_field",instance="w1",job="{WORKER_JOB}"}}',
                        "values": f"0+{_num(invalid_rate)}x{n - 1}",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{t_check}s",
                        "alertname": "PsmonDeadLetterSpike",
                        "exp_alerts": exp if fires else [],
                    }
                ],
            }
        )
    return groups


# -- calendar: no events and lag ------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _open(th: Thresholds, t_s: int) -> bool:
    local = _EPOCH + timedelta(seconds=t_s + LOCAL_OFFSET_S)
    oh = th.office_hours
    if local.weekday() not in oh.weekday_numbers or local.date() in oh.all_holidays:
        return False
    now = local.time()
    return any(a <= now < b for a, b in oh.spans)


def _calendar_groups(th: Thresholds, *, interval_s: int, eval_s: int) -> list[dict[str, Any]]:
    ne, lag = th.no_events, th.pipeline.event_time_lag
    rules = {r["alert"]: r for r in _alert_rules(th)}
    codes = list(registry().codes)
    silent = codes[-1]
    names = {p.code: p.name for p in registry().current}
    end_s = 2 * 86400 + 5 * 3600  # Thu 07:00 .. Sat 12:00 local
    n = end_s // interval_s + 1
    w, fs = int(duration_s(ne.window)), duration_s(ne.for_)

    def no_events_cond(u: int) -> bool:  # the silent province has no series at all
        return all(_open(th, v) for v in range(max(u - w, 0) // eval_s * eval_s, u + 1, eval_s) if v >= u - w)

    # checkpoints: around every opening period of the three days, plus nights and the weekend
    checks: set[int] = set()
    for day in range(3):
        for a, b in th.office_hours.spans:
            base = day * 86400 - LOCAL_OFFSET_S
            open_s, close_s = base + a.hour * 3600 + a.minute * 60, base + b.hour * 3600 + b.minute * 60
            for x in (open_s + w + fs - eval_s, open_s + w + fs + eval_s, close_s - eval_s, close_s + eval_s):
                if 0 < x < end_s:
                    checks.add(_ceil(x, eval_s))
        checks.add(_ceil(day * 86400 + 15 * 3600, eval_s))  # 22:00 local
    lag_v = lag.max_s * 2  # the worker's event time lags constantly; alerts only in office hours
    lag_fs = duration_s(lag.for_)
    tests = []
    for t in sorted(checks):
        labels = {"province": silent, "province_name": names[silent], "severity": ne.severity}
        exp = [{"exp_labels": labels, "exp_annotations": _annotations(rules["PsmonNoEvents"], labels, 0)}]
        tests.append(
            {
                "eval_time": f"{t}s",
                "alertname": "PsmonNoEvents",
                "exp_alerts": exp if _firing(no_events_cond, t, fs, eval_s) else [],
            }
        )
        labels = {"severity": lag.severity}
        exp = [{"exp_labels": labels, "exp_annotations": _annotations(rules["PsmonEventTimeLag"], labels, lag_v)}]
        lag_open = _firing(lambda u: _open(th, u), t, lag_fs, eval_s)
        tests.append({"eval_time": f"{t}s", "alertname": "PsmonEventTimeLag", "exp_alerts": exp if lag_open else []})
    busy = [
        {
            "series": f'{_SUB}{{province="{c}",channel="online",service_mode="full_online",'
            f'instance="w1",job="{WORKER_JOB}"}}',
            "values": f"0+1x{n - 1}",
        }
        for c in codes
        if c != silent
    ]
    busy.append(
        {
            "series": f'psmon_event_time_lag_seconds{{instance="w1",job="{WORKER_JOB}"}}',
            "values": f"{_num(lag_v)}x{n - 1}",
        }
    )
    groups = [
        {
            "name": "PsmonNoEvents and PsmonEventTimeLag across office hours, lunch, nights and the weekend",
            "interval": f"{interval_s}s",
            "input_series": busy,
            "alert_rule_test": tests,
        }
    ]
    # nationwide: nothing at all from anyone, over the first working day
    nat = [
        {
            "eval_time": f"{t}s",
            "alertname": "PsmonNoEventsNationwide",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "critical"},
                    "exp_annotations": _annotations(rules["PsmonNoEventsNationwide"], {}, 0),
                }
            ]
            if _firing(no_events_cond, t, fs, eval_s)
            else [],
        }
        for t in sorted(checks)
        if t < 86400
    ]
    groups.append(
        {"name": "PsmonNoEventsNationwide", "interval": f"{interval_s}s", "input_series": [], "alert_rule_test": nat}
    )
    return groups


def _test_interval(durations: Iterable[float], finest_s: int) -> int:
    """The coarsest sample/evaluation step (1 min, else `finest_s`) that divides every duration:
    fewer evaluations keep promtool quick, exact multiples keep the windows exact."""
    ds = list(durations)
    return 60 if finest_s <= 60 and all(d % 60 == 0 for d in ds) else finest_s


def build_rule_tests(th: Thresholds) -> dict[str, dict[str, Any]]:
    """Test file name -> promtool test document (see `RULE_TEST_FILES`)."""
    # Samples and evaluations are spaced by the scrape interval or a multiple of it: the rules
    # do not depend on the evaluation interval, and a coarser step keeps promtool quick.
    scrape_s = int(duration_s(th.prometheus.scrape_interval))
    p = th.pipeline
    ratio_d = [duration_s(x) for t in th.metrics.values() for x in (t.window, t.for_)]
    step = _test_interval(ratio_d, scrape_s)
    pipe_d = [duration_s(x.for_) for x in (p.clickhouse_errors, p.dead_letter_spike)]
    pipe_d += [duration_s(p.clickhouse_errors.window), duration_s(p.dead_letter_spike.window)]
    pipe_step = _test_interval(pipe_d, scrape_s)
    down_step = _test_interval([duration_s(x.for_) for x in (p.worker_down, p.sink_down)], scrape_s)
    oh = th.office_hours
    cal_d = [duration_s(th.no_events.window), duration_s(th.no_events.for_), duration_s(p.event_time_lag.for_)]
    cal_d += [x.hour * 3600 + x.minute * 60 for span in oh.spans for x in span]
    coarse = [st for st in (600, 300) if all(d % st == 0 for d in cal_d)]
    cal_step = coarse[0] if coarse else _test_interval(cal_d, scrape_s)
    tests: dict[str, dict[str, Any]] = {
        "psmon-rules.test.yml": {
            "rule_files": [RULES_FILE],
            "evaluation_interval": f"{step}s",
            "tests": [_ratio_group(th, interval_s=step, eval_s=step)],
        },
        "psmon-pipeline.test.yml": {
            "rule_files": [RULES_FILE],
            "evaluation_interval": f"{pipe_step}s",
            "tests": _pipeline_groups(th, interval_s=pipe_step, eval_s=pipe_step),
        },
        # its own file, so its step follows the down alerts' `for:` alone (minutes, not the
        # seconds of the error windows): fewer evaluations keep promtool quick
        "psmon-down.test.yml": {
            "rule_files": [RULES_FILE],
            "evaluation_interval": f"{down_step}s",
            "tests": _down_groups(th, interval_s=down_step, eval_s=down_step),
        },
        "psmon-calendar.test.yml": {
            "rule_files": [RULES_FILE],
            "evaluation_interval": f"{cal_step}s",
            "tests": _calendar_groups(th, interval_s=cal_step, eval_s=cal_step),
        },
    }
    if th.catalog:
        cat_step = _catalog_step(th)
        tests["psmon-catalog.test.yml"] = {
            "rule_files": [RULES_FILE],
            "evaluation_interval": f"{cat_step}s",
            "tests": [_catalog_group(th, interval_s=cat_step)],
        }
    return tests


def render_rule_tests(th: Thresholds) -> dict[str, str]:
    header = "# Generated by psmon.alerting.ruletests from thresholds.yaml: run with `promtool test rules`.\n"
    return {name: dump_yaml(doc, header=header) for name, doc in build_rule_tests(th).items()}
