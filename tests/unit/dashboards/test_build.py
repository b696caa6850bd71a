"""Every dashboard builds to JSON the SDK's model accepts unchanged, with stable UIDs, defined
variables and queries on the provisioned datasources; the committed copy under deploy/grafana
is what the code builds today. Panels do not mislead: every colour of a stat can show (colours
are computed here as Grafana computes them), pickers and legends show province names, pickers
take only listed values, and the ClickHouse health stat reads only the processes that write."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from psmon.alerting.thresholds import default_thresholds_text
from psmon.cli.main import app
from psmon.dashboards import promql
from psmon.dashboards.build import BuildOptions, build_all, write_all
from psmon.dashboards.check import check_dashboard, used_variables
from psmon.dashboards.thresholds import METRICS, load_thresholds
from psmon.errors import PsmonError
from psmon.metrics import SINK_JOB
from psmon.schemas.provinces import registry

ROOT = Path(__file__).resolve().parents[3]
UIDS = {
    "psmon-live": "psmon · Live operations",
    "psmon-province": "psmon · Province drill-down",
    "psmon-history": "psmon · History",
    "psmon-health": "psmon · Pipeline health",
}


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return build_all()


def test_four_dashboards_with_stable_uids(boards: dict[str, dict[str, Any]]) -> None:
    assert {uid: d["title"] for uid, d in boards.items()} == UIDS
    assert build_all() == boards  # deterministic


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_dashboard_passes_the_strict_check(boards: dict[str, dict[str, Any]], uid: str) -> None:
    doc = boards[uid]
    assert check_dashboard(doc) == []
    assert doc["panels"] and all(p.get("targets") or p["type"] == "alertGroups" for p in doc["panels"])


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_every_variable_used_is_defined(boards: dict[str, dict[str, Any]], uid: str) -> None:
    doc = boards[uid]
    defined = {v["name"] for v in doc["templating"].get("list", [])}
    used = {v for v in used_variables(doc["panels"]) if not v.startswith("__")}
    assert used <= defined
    # and every defined variable is used somewhere (no dead dropdowns)
    assert defined <= used


def test_the_check_rejects_what_grafana_would_not_show(boards: dict[str, dict[str, Any]]) -> None:
    doc = copy.deepcopy(boards["psmon-province"])
    doc["panels"][0]["targets"][0]["expr"] += " + on() vector($missing)"
    doc["panels"][1]["gridPos"] = dict(doc["panels"][0]["gridPos"])  # overlap
    doc["panels"][2]["fieldConfig"]["defaults"]["thresholdz"] = {}  # unknown key, dropped by the model
    doc["panels"][3]["datasource"] = {"type": "prometheus", "uid": "somebody-elses"}
    doc["uid"] = "has spaces"
    problems = "\n".join(check_dashboard(doc))
    assert "missing" in problems
    assert "overlaps" in problems
    assert "thresholdz" in problems
    assert "somebody-elses" in problems
    assert "has spaces" in problems


def test_live_table_colours_every_metric_by_its_thresholds(boards: dict[str, dict[str, Any]]) -> None:
    table = next(p for p in boards["psmon-live"]["panels"] if p["type"] == "table")
    overrides = {o["matcher"]["options"]: o["properties"] for o in table["fieldConfig"]["overrides"]}
    for metric in METRICS:
        props = {p["id"]: p["value"] for p in overrides[metric]}
        steps = props["thresholds"]["steps"]
        t = load_thresholds()[metric]  # the packaged thresholds.yaml
        assert [s["value"] for s in steps] == [None, t.alert_below, t.target]
        assert [s["color"] for s in steps] == ["red", "orange", "green"]
    # rows are provinces, shown with their names
    mappings = {p["id"]: p["value"] for p in overrides["Province"]}["mappings"][0]["options"]
    assert len(mappings) == 34 and mappings["25"]["text"] == "25 Phú Thọ"


def test_thresholds_file_changes_the_colours(tmp_path: Path) -> None:
    doc = yaml.safe_load(default_thresholds_text())
    doc["metrics"]["online_submission"].update(target=0.9, alert_below=0.6)
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    th = load_thresholds(path)
    assert (th["online_submission"].target, th["online_submission"].alert_below) == (0.9, 0.6)
    assert th["on_time"] == load_thresholds()["on_time"]
    table = next(
        p for p in build_all(BuildOptions(thresholds_path=path))["psmon-live"]["panels"] if p["type"] == "table"
    )
    steps = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "online_submission")
    assert [s["value"] for s in steps["properties"][0]["value"]["steps"]] == [None, 0.6, 0.9]
    # the alerting loader's validation applies: a floor above the target is refused
    doc["metrics"]["on_time"].update(target=0.5, alert_below=0.7)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(PsmonError, match="alert_below"):
        load_thresholds(path)


def test_committed_copy_is_up_to_date(tmp_path: Path) -> None:
    write_all(tmp_path)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = ROOT / "deploy" / "grafana"
    for rel in built:
        assert (committed / rel).read_text() == (tmp_path / rel).read_text(), (
            f"deploy/grafana/{rel} is stale: run `psmon dashboards build --out deploy/grafana`"
        )


def test_build_command_writes_json_and_provisioning(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dashboards", "build", "--out", str(tmp_path), "--prometheus-url", "http://prom.example:9090"]
    )
    assert result.exit_code == 0, result.output
    assert len(result.output.split()) == 6
    for uid in UIDS:
        assert json.loads((tmp_path / "dashboards" / f"{uid}.json").read_text())["uid"] == uid
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/psmon.yaml").read_text())["datasources"]
    assert {d["type"] for d in ds} == {"prometheus", "alertmanager", "grafana-clickhouse-datasource"}
    assert next(d for d in ds if d["type"] == "prometheus")["url"] == "http://prom.example:9090"
    ch = next(d for d in ds if d["type"] == "grafana-clickhouse-datasource")
    assert ch["jsonData"]["host"] == "clickhouse" and ch["jsonData"]["protocol"] == "http"
    assert ch["secureJsonData"]["password"].startswith("$")  # never a literal secret
    provider = yaml.safe_load((tmp_path / "provisioning/dashboards/psmon.yaml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["folderUid"] == "psmon"


def test_build_refuses_a_missing_thresholds_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dashboards", "build", "--out", str(tmp_path), "--thresholds", str(tmp_path / "nope.yaml")]
    )
    assert result.exit_code == 1


def test_docs_list_exactly_the_built_dashboards_and_panels(boards: dict[str, dict[str, Any]]) -> None:
    readme = (ROOT / "docs" / "dashboards.md").read_text()
    section = readme.split("## Dashboards", 1)[1].split("\n## ", 1)[0]
    listed: dict[str, list[str]] = {}
    current = ""
    for line in section.splitlines():
        if line.startswith("#### "):
            current = line.split("`")[1]
            listed[current] = []
        elif line.startswith("- ") and current:
            listed[current].append(line[2:].split(" · ")[0])
    built = {
        uid: [p["title"] for p in sorted(d["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))]
        for uid, d in boards.items()
    }
    assert listed == built


def _panel(boards: dict[str, dict[str, Any]], uid: str, title: str) -> dict[str, Any]:
    panel: dict[str, Any] = next(p for p in boards[uid]["panels"] if p["title"] == title)
    return panel


def grafana_colour(value: float, field: dict[str, Any]) -> str:
    """The colour Grafana gives `value`: a value mapping's colour if one matches, else that of the
    highest threshold step at or below the value (the base step, value null, below them all)."""
    for m in field.get("mappings") or []:
        if m["type"] == "value" and (hit := m["options"].get(f"{value:g}")) and "color" in hit:
            return str(hit["color"])
    colour = ""
    for step in field["thresholds"]["steps"]:
        if step["value"] is None or value >= step["value"]:
            colour = step["color"]
    return colour


def test_late_share_is_green_within_the_target_with_exact_steps(boards: dict[str, dict[str, Any]]) -> None:
    field = _panel(boards, "psmon-province", "Late share of resolutions ($window)")["fieldConfig"]["defaults"]
    on_time = load_thresholds()["on_time"]  # target 100%, floor 70%
    assert (on_time.target, on_time.alert_below) == (1.0, 0.7)
    # exact decimals of the thresholds file: 1 - 0.70 is 0.3, not 0.30000000000000004
    assert [s["value"] for s in field["thresholds"]["steps"]] == [None, 0.0, 0.3]
    assert grafana_colour(0.0, field) == "green"  # no late resolution: on time 100%, the target
    assert grafana_colour(0.05, field) == "orange"
    assert grafana_colour(0.29, field) == "orange"
    assert grafana_colour(0.3, field) == "red"  # on time 70%: the alert floor
    assert grafana_colour(0.8, field) == "red"


def test_late_share_colours_follow_a_target_below_100(tmp_path: Path) -> None:
    doc = yaml.safe_load(default_thresholds_text())
    doc["metrics"]["on_time"].update(target=0.95, alert_below=0.8)
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    boards = build_all(BuildOptions(thresholds_path=path))
    field = _panel(boards, "psmon-province", "Late share of resolutions ($window)")["fieldConfig"]["defaults"]
    assert [s["value"] for s in field["thresholds"]["steps"]] == [None, 0.05, 0.2]
    assert [grafana_colour(v, field) for v in (0.0, 0.04, 0.05, 0.19, 0.2)] == [
        "green",
        "green",
        "orange",
        "orange",
        "red",
    ]


def test_firing_alerts_shows_three_colours(boards: dict[str, dict[str, Any]]) -> None:
    field = _panel(boards, "psmon-live", "Firing alerts")["fieldConfig"]["defaults"]
    colours = [grafana_colour(n, field) for n in range(12)]
    assert colours[0] == "green" and colours[1] == "orange" and colours[-1] == "red"


def test_the_check_rejects_a_colour_that_can_never_show(boards: dict[str, dict[str, Any]]) -> None:
    doc = copy.deepcopy(boards["psmon-live"])
    field = next(p for p in doc["panels"] if p["title"] == "Firing alerts")["fieldConfig"]["defaults"]
    # the old steps: amber and red both from 1, so red could never show
    old = [(None, "green"), (1, "orange"), (1, "red")]
    field["thresholds"]["steps"] = [{"value": v, "color": c} for v, c in old]
    assert any("must rise strictly" in p for p in check_dashboard(doc))


@pytest.mark.parametrize(("uid", "kind"), [("psmon-history", "query"), ("psmon-province", "custom")])
def test_province_pickers_show_names_and_take_only_listed_values(
    boards: dict[str, dict[str, Any]], uid: str, kind: str
) -> None:
    var = next(v for v in boards[uid]["templating"]["list"] if v["name"] == "province")
    assert var["type"] == kind and var["allowCustomValue"] is False
    if kind == "custom":
        # Grafana's `text : value` syntax: the name is shown, the code goes into the queries
        options = [o.split(" : ") for o in var["query"].split(",")]
        assert options == [[p.name, p.code] for p in registry().current]
        assert (var["current"]["text"], var["current"]["value"]) == (registry().current[0].name, "01")
    else:
        assert "events" not in var["query"]  # the picker does not scan the events table
        assert "__text" in var["query"] and "__value" in var["query"]  # run on chDB by the integration test


def test_every_listed_variable_must_refuse_custom_values(boards: dict[str, dict[str, Any]]) -> None:
    for uid, doc in boards.items():
        for v in doc["templating"].get("list", []):
            bad = copy.deepcopy(doc)
            next(x for x in bad["templating"]["list"] if x["name"] == v["name"]).pop("allowCustomValue")
            assert any("allowCustomValue" in p for p in check_dashboard(bad)), (uid, v["name"])


def test_the_province_legend_shows_names(boards: dict[str, dict[str, Any]]) -> None:
    panel = _panel(boards, "psmon-live", "Dossiers/min by province")
    assert panel["targets"][0]["legendFormat"] == "{{province}}"
    names = {
        o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}["displayName"]
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byName"
    }
    assert names == {p.code: p.name for p in registry().current}


def test_clickhouse_writes_ok_reads_only_the_sinks(boards: dict[str, dict[str, Any]]) -> None:
    panel = _panel(boards, "psmon-health", "ClickHouse writes OK")
    assert panel["targets"][0]["expr"] == promql.CLICKHOUSE_UP == f'min(psmon_clickhouse_up{{job="{SINK_JOB}"}})'
