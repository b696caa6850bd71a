"""Every Prometheus query of every dashboard, run against a real Prometheus; and the History
dashboard's SQL against crafted `$province` values, on chDB.

A real `psmon worker` and `psmon sink` (chDB) process events from the simulator (pinned to a past
weekday morning, sped up, with some bad events) on the scrape ports of the session's Debian
`prometheus` (fixture `monitoring`: the config `psmon rules` generates, which scrapes them every
second under the job names the dashboards use); a test alert is posted to its real
`prometheus-alertmanager` for the alert panels to show. Each panel query is then expanded as
Grafana would (every `$window` value, a couple of `$province` values, `$__rate_interval`) and run
as the panel runs it (instant or range); each must return data, and per-province queries must
cover every province the worker has counted. The Alertmanager panel's query (alert groups, with
the panel's label filter) must list the firing alert. All processes are stopped by PID.
"""

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from psmon.dashboards.build import build_all
from psmon.dashboards.datasources import ALERTMANAGER, CLICKHOUSE, PROMETHEUS
from psmon.dashboards.history_sql import PROVINCE_FILTER
from psmon.dashboards.variables import WINDOWS
from psmon.history.catalog import CatalogStore, publish_entries
from psmon.history.publish import KafkaPublisher
from psmon.metrics import WORKER_JOB
from psmon.schemas.normalized import ValidRecord
from psmon.schemas.provinces import registry
from psmon.schemas.validation import ValidEvent, validate_event
from psmon.settings import Settings
from psmon.simulator.catalog import entries, simulated_catalog
from psmon.simulator.generator import EventGenerator
from psmon.simulator.profiles import default_profiles
from psmon.sinks.clickhouse.client import connect
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from psmon.streams.topics import ensure_topics
from psmon.timeutil import LOCAL_TZ
from tests.helpers import psmon_process, scrape, stop_process, wait_until
from tests.integration.grafana_expand import expand
from tests.integration.monitoring import Monitoring

RATE_INTERVAL = "30s"  # at least 4 scrape intervals, as Grafana's $__rate_interval guarantees
PROVINCES = ("01", "25")
TEST_ALERT = "PsmonDashboardTest"


def _get(url: str, **params: str) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}?{query}" if query else url, timeout=10) as resp:
        return json.loads(resp.read())


def _post_test_alert(alertmanager_url: str, *, ends_at: datetime) -> None:
    """The test alert, posted as Prometheus posts its alerts; an `ends_at` in the past resolves it."""
    alert = {"labels": {"alertname": TEST_ALERT, "severity": "info"}, "endsAt": ends_at.isoformat()}
    body = json.dumps([alert]).encode()
    req = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


def _past_weekday_morning() -> datetime:
    """09:00 local on a recent Tuesday–Thursday, so the office-hours simulator is busy."""
    day = datetime.now(LOCAL_TZ).date() - timedelta(days=7)
    while day.weekday() not in (1, 2, 3):
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, tzinfo=LOCAL_TZ)


@pytest.fixture(scope="module")
def stack(
    monitoring: Monitoring, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dash")
    prefix = "d" + os.urandom(5).hex()
    worker_port, sink_port = monitoring.worker_metrics_port, monitoring.sink_metrics_port
    prom_url, am_url = monitoring.prometheus.url, monitoring.alertmanager.url
    env = {
        "PSMON_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PSMON_TOPIC_PREFIX": prefix,
        "PSMON_APP_ID": prefix,
        "PSMON_TOPIC_PARTITIONS": "4",
        "PSMON_CLICKHOUSE_DSN": f"chdb://{tmp / 'clickhouse'}",
        "PSMON_CLICKHOUSE_DATABASE": prefix,
        "PSMON_SESSION_TIMEOUT_S": "6",
        "PSMON_SINK_FLUSH_INTERVAL_MS": "200",
        "PSMON_DATA_DIR": str(tmp / "data"),
    }
    # a firing alert for the alert panels to show, during this module only (resolved at its end)
    _post_test_alert(am_url, ends_at=datetime.now(UTC) + timedelta(hours=1))
    procs: list[subprocess.Popen[bytes]] = []
    # the simulator's procedure catalog on the catalog topic, for the catalog panels (as `psmon up` does)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, topic_partitions=4)
    ensure_topics(settings)
    publisher = KafkaPublisher(kafka_bootstrap, settings.topic_catalog)
    publish_entries(entries(simulated_catalog()), publisher.send)
    publisher.flush()
    publisher.close()
    try:
        procs.append(
            psmon_process(["worker", "--metrics-port", str(worker_port)], env=env, log_path=tmp / "worker.log")
        )
        procs.append(psmon_process(["sink", "--metrics-port", str(sink_port)], env=env, log_path=tmp / "sink.log"))
        procs.append(
            psmon_process(
                [
                    "simulate",
                    "--start",
                    _past_weekday_morning().isoformat(),
                    "--speedup",
                    "30",
                    "--rate",
                    "400",
                    "--bad-fraction",
                    "0.02",
                    "--seed",
                    "7",
                    "--duration-s",
                    "600",
                ],
                env=env,
                log_path=tmp / "simulator.log",
            )
        )

        def provinces_counted() -> set[str]:
            return {dict(k[1])["province"] for k in scrape(worker_port) if k[0] == "psmon_dossiers_submitted_total"}

        wait_until(lambda: len(provinces_counted()) >= 34, timeout_s=180, what="the worker to count all 34 provinces")
        wait_until(
            lambda: scrape(sink_port).get(("psmon_clickhouse_up", ())) == 1.0,
            timeout_s=120,
            what="the sink to write to ClickHouse",
        )

        def prom_ready() -> bool:
            try:
                r = _get(f"{prom_url}/api/v1/query", query='count(count by (province) (psmon_ratio{window="1h"}))')
            except OSError:
                return False
            return bool(r["data"]["result"]) and float(r["data"]["result"][0]["value"][1]) >= 34

        wait_until(prom_ready, timeout_s=120, what="Prometheus to scrape live ratios of all provinces")

        def scraped_enough() -> bool:
            """Every target and every province's counter scraped 15 times in a rate window: rate()
            and increase() have samples to work on (a data condition, not a sleep, so a slow
            machine waits longer instead of failing)."""
            for series in ("up", "psmon_dossiers_submitted_total"):
                r = _get(f"{prom_url}/api/v1/query", query=f"min(count_over_time({series}[{RATE_INTERVAL}]))")
                if not r["data"]["result"] or float(r["data"]["result"][0]["value"][1]) < 15:
                    return False
            return True

        wait_until(scraped_enough, timeout_s=120, what="Prometheus to hold enough samples for rate windows")
        yield {"prom": prom_url, "am": am_url, "provinces": provinces_counted(), "tmp": tmp}
    finally:
        for p in reversed(procs):
            stop_process(p)
        _post_test_alert(am_url, ends_at=datetime.now(UTC))


def prometheus_targets() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for uid, doc in build_all().items():
        for p in doc["panels"]:
            for t in p.get("targets", []):
                if t.get("datasource", p["datasource"])["uid"] == PROMETHEUS.uid:
                    out.append((uid, p["title"], t))
    return out


def _variable_values(uid: str) -> list[dict[str, str]]:
    """Every combination of the dashboard's variables that the test runs its queries with."""
    names = {v["name"] for v in build_all()[uid]["templating"].get("list", [])}
    combos: list[dict[str, str]] = [{"__rate_interval": RATE_INTERVAL}]
    if "window" in names:
        combos = [{**c, "window": w} for c in combos for w in WINDOWS]
    if "province" in names:
        combos = [{**c, "province": p} for c in combos for p in PROVINCES]
    return combos


def _targets_up(prom: str) -> bool:
    r = _get(f"{prom}/api/v1/query", query='min(up{job=~"psmon-worker|psmon-sink"})')
    return bool(r["data"]["result"]) and float(r["data"]["result"][0]["value"][1]) == 1


def _run(prom: str, target: dict[str, Any], variables: dict[str, str]) -> list[dict[str, Any]]:
    expr = expand(target["expr"], variables)
    if target.get("instant"):
        # A scrape that fails (a 1 s scrape timeout, a starved worker on a loaded machine) marks
        # every series of the target stale until the next one: an instant query then finds
        # nothing, which says nothing about the panel. Query when the last scrapes succeeded.
        wait_until(lambda: _targets_up(prom), timeout_s=60, what="the last scrape of worker and sink to succeed")
    now = time.time()
    if target.get("instant"):
        r = _get(f"{prom}/api/v1/query", query=expr, time=f"{now:.3f}")
    else:
        r = _get(f"{prom}/api/v1/query_range", query=expr, start=f"{now - 60:.3f}", end=f"{now:.3f}", step="5")
    assert r["status"] == "success", (expr, r)
    result: list[dict[str, Any]] = r["data"]["result"]
    return result


def _has_values(series: dict[str, Any]) -> bool:
    values = series.get("values") or [series["value"]]
    return any(v[1] not in ("NaN", "+Inf", "-Inf") for v in values)


def test_every_prometheus_panel_query_returns_data(stack: dict[str, Any]) -> None:
    targets = prometheus_targets()
    assert len(targets) >= 40
    empty = []
    checked = 0
    for uid, title, target in targets:
        for variables in _variable_values(uid):
            # live data: an empty answer is retried briefly before it counts as "no data"
            for _attempt in range(3):
                result = _run(stack["prom"], target, variables)
                if any(_has_values(s) for s in result):
                    break
                time.sleep(2)
            checked += 1
            if not any(_has_values(s) for s in result):
                empty.append(f"{uid} / {title} with {variables}: {expand(target['expr'], variables)} -> {result}")
                continue
            # a query that returns per-province series must cover every province counted
            provinces = {s["metric"]["province"] for s in result if "province" in s["metric"]}
            if provinces and variables.get("window") != "5m":
                assert provinces >= stack["provinces"], f"{title}: missing {stack['provinces'] - provinces}"
    assert empty == [], "\n".join(empty)
    assert checked > 100


def test_live_table_lists_all_provinces_with_every_metric(stack: dict[str, Any]) -> None:
    table = next(t for uid, title, t in prometheus_targets() if title == "Province rates ($window)")
    result = _run(stack["prom"], table, {"window": "24h"})
    by_metric: dict[str, set[str]] = {}
    for s in result:
        by_metric.setdefault(s["metric"]["metric"], set()).add(s["metric"]["province"])
        assert 0 <= float(s["value"][1]) <= 1.5  # ratios (cross-type ones may exceed 1 briefly)
    assert set(by_metric) == {
        "online_submission",
        "full_online",
        "online_payment",
        "dossier_digitization",
        "result_digitization",
        "on_time",
    }
    # every province has submissions, so its online-submission ratio; the others need their own
    # denominators (payments, resolutions) within the window, which small provinces may lack
    assert by_metric["online_submission"] == stack["provinces"]
    for metric, provinces in by_metric.items():
        assert provinces <= stack["provinces"] and len(provinces) >= 30, metric


def test_province_variable_lists_the_provinces_prometheus_has(stack: dict[str, Any]) -> None:
    """The drill-down picker is a fixed `name : code` list: its codes are exactly the province
    labels Prometheus holds for the worker's counters."""
    var = next(v for v in build_all()["psmon-province"]["templating"]["list"] if v["name"] == "province")
    codes = [option.split(" : ")[1] for option in var["query"].split(",")]
    r = _get(f"{stack['prom']}/api/v1/label/province/values", **{"match[]": "psmon_dossiers_submitted_total"})
    assert set(r["data"]) == set(codes) == stack["provinces"]


def test_firing_alerts_panels_show_the_alert(stack: dict[str, Any]) -> None:
    panel = next(p for p in build_all()["psmon-live"]["panels"] if p["type"] == "alertGroups")
    assert panel["datasource"]["uid"] == ALERTMANAGER.uid == panel["options"]["alertmanager"]
    params = {"active": "true", "silenced": "false", "inhibited": "false"}
    if panel["options"]["labels"]:
        params["filter"] = panel["options"]["labels"]

    def groups() -> list[Any]:
        found: list[Any] = _get(f"{stack['am']}/api/v2/alerts/groups", **params)
        return [g for g in found if any(a["labels"]["alertname"] == TEST_ALERT for a in g["alerts"])]

    assert wait_until(groups, timeout_s=60, what="the test alert in Alertmanager's groups")


def test_clickhouse_writes_ok_ignores_processes_that_do_not_write(stack: dict[str, Any]) -> None:
    """Workers export `psmon_clickhouse_up` too (at 0: they never write); the panel reads the sinks'."""
    target = next(t for uid, title, t in prometheus_targets() if title == "ClickHouse writes OK")
    # what misled the old panel (`min` over every job): the worker's series, at 0 all along
    worker = {"expr": f'max_over_time(psmon_clickhouse_up{{job="{WORKER_JOB}"}}[10m])', "instant": True}
    assert [float(s["value"][1]) for s in _run(stack["prom"], worker, {})] == [0.0]
    result = _run(stack["prom"], target, {})
    assert [float(s["value"][1]) for s in result] == [1.0]


# -- History SQL against crafted province values ------------------------------------------------

DAY = datetime(2026, 3, 10, tzinfo=LOCAL_TZ)
#: values a viewer can put in `var-province=`: quote and backslash break-outs (the backslash one
#: escapes the closing quote of both `singlequote` and `sqlstring`), a boolean and an error-based
#: probe, a pre-encoded value and a double quote
INJECTIONS = (
    "x\\') OR (SELECT count() FROM system.tables) > 0 --",
    "x\\') OR throwIf((SELECT count() FROM system.tables) > 0, 'leak') --",
    "25' OR '1'='1",
    "25') OR 1 = 1 OR ('",
    '25" OR 1 --',
    "%27) OR 1 --",
    "25\\",
)


@pytest.fixture(scope="module")
def history_ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """chDB with the `psmon` schema and one working day of simulated events, as the sink writes them."""
    gen = EventGenerator(default_profiles(), seed=11)
    events: list[ValidEvent] = []
    t = DAY.replace(hour=8).timestamp()
    for _ in range(10):
        for ev in gen.advance(t, t + 3600, dossiers_per_s=0.05):
            v = validate_event(ev.value, record_ts_s=ev.occurred_at_s)
            assert isinstance(v, ValidEvent), v
            events.append(v)
        t += 3600
    client = connect(f"chdb://{tmp_path_factory.mktemp('inject') / 'ch'}")
    migrate(client, "psmon")
    records = [ValidRecord(e, 0, i, int(e.occurred_at_s * 1000)) for i, e in enumerate(events)]
    ClickHouseWriter(client, database="psmon").write_events(records, token="inject/0:0")
    store = CatalogStore(client, database="psmon")  # the catalog the simulator filed against
    store.write(store.plan(list(entries(simulated_catalog()))))
    yield client
    client.close()


def _history_sql() -> list[tuple[str, str]]:
    return [
        (p["title"], t["rawSql"])
        for p in build_all()["psmon-history"]["panels"]
        for t in p["targets"]
        if t["datasource"]["uid"] == CLICKHOUSE.uid
    ]


def _rows(client: Any, sql: str, province: str | list[str]) -> list[tuple[Any, ...]]:
    window = {"from_s": int(DAY.timestamp()), "to_s": int(DAY.timestamp()) + 86_400}
    return [tuple(r) for r in client.query(expand(sql, {"province": province}, **window)).result_rows]


def test_history_province_picker_lists_names_and_only_real_provinces(history_ch: Any) -> None:
    (var,) = build_all()["psmon-history"]["templating"]["list"]
    assert var["allowCustomValue"] is False and var["includeAll"] is True
    assert "events" not in var["query"]  # no scan of the events table on every dashboard load
    rows = [tuple(r) for r in history_ch.query(var["query"]).result_rows]
    # the ClickHouse plugin takes the first column as the value, the second as the text
    assert rows == [(p.code, p.name) for p in registry().current]


@pytest.mark.parametrize("crafted", INJECTIONS)
def test_history_sql_treats_a_crafted_province_as_data(history_ch: Any, crafted: str) -> None:
    queries = _history_sql()
    assert len(queries) == 7
    for title, sql in queries:
        reference = _rows(history_ch, sql, ["25"])
        assert reference, f"{title}: the day has rows for Phú Thọ"
        # alone (as a single value or a one-item selection): no row, no error, whatever it says
        assert _rows(history_ch, sql, crafted) == [], title
        assert _rows(history_ch, sql, [crafted]) == [], title
        # beside a real province: exactly that province's rows
        assert _rows(history_ch, sql, [crafted, "25"]) == reference, title


def test_grafana_quoting_formats_do_not_protect_clickhouse(history_ch: Any) -> None:
    """Why the filter uses `percentencode`: with `singlequote` or `sqlstring` the first crafted
    value runs its subquery (every row comes back) and the second raises the probe's error."""
    total = history_ch.query("SELECT count() FROM psmon.events").result_rows[0][0]
    for fmt in ("singlequote", "sqlstring"):
        sql = f"SELECT count() FROM psmon.events WHERE province_code IN (${{province:{fmt}}})"
        assert history_ch.query(expand(sql, {"province": [INJECTIONS[0]]})).result_rows[0][0] == total > 0
        with pytest.raises(Exception, match="leak"):
            history_ch.query(expand(sql, {"province": [INJECTIONS[1]]}))
    safe = f"SELECT count() FROM psmon.events WHERE {PROVINCE_FILTER}"
    assert history_ch.query(expand(safe, {"province": [INJECTIONS[0]]})).result_rows[0][0] == 0


def test_history_catalog_items_equal_a_plain_computation(history_ch: Any) -> None:
    """The catalog panel's ratios for the day, from the stored events and the simulator's catalog."""
    sql = next(s for title, s in _history_sql() if title.startswith("766 index, catalog items"))
    got = {r[1][:2]: r for r in _rows(history_ch, sql, [p.code for p in registry().current])}
    events = history_ch.query(
        "SELECT province_code, procedure_code, event_type, channel, method FROM psmon.events FINAL"
    ).result_rows
    dossiers = {(p, c) for p, c, t, ch, _m in events if t == "application.submitted" and ch == "online"}
    paid = {(p, c) for p, c, t, _ch, m in events if t == "payment.completed" and m == "online"}
    catalog = simulated_catalog()
    assert len(got) == 34
    for province, row in got.items():
        cat = catalog[province]
        procs = [
            (cat.code(i), cat.online_level(i) != "none", cat.fee_bearing(i), cat.payment_integrated(i))
            for i in range(len(cat))
        ]
        online = [c for c, on, _f, _i in procs if on]
        fee_online = [(c, i) for c, on, f, i in procs if on and f]
        integrated = [c for c, _on, _f, i in procs if i]
        want = (
            len(online) / len(procs),
            sum((province, c) in dossiers for c in online) / len(online),
            sum(i for _c, i in fee_online) / len(fee_online),
            sum((province, c) in paid for c in integrated) / len(integrated),
        )
        # columns: rank, province, points, then (ratio, points) per item
        assert tuple(row[3:11:2]) == pytest.approx(want), province
    assert any(r[5] < 1 for r in got.values())  # some online procedures got no online dossier that day
