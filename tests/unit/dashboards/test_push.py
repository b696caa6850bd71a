"""`psmon dashboards push` against a local stand-in of the Grafana API: the calls it makes, their
payloads, and that a second push updates the same objects instead of adding new ones."""

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from psmon.cli.main import app
from psmon.dashboards.build import build_all
from psmon.dashboards.push import push
from psmon.errors import PsmonError
from tests.unit.dashboards.grafana_standin import GrafanaStandIn

TOKEN = "glsa_test_token"


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    with GrafanaStandIn(TOKEN) as g:
        yield g


def test_push_creates_then_updates_idempotently(grafana: GrafanaStandIn) -> None:
    built = build_all()
    first = push(grafana.url, TOKEN, with_datasources=True)
    st = grafana.state
    assert first.folder_created
    assert first.datasources == {
        "psmon-prometheus": "created",
        "psmon-alertmanager": "created",
        "psmon-clickhouse": "created",
    }
    assert first.dashboards == dict.fromkeys(built, 1)
    calls = [(c.method, c.path) for c in st.calls]
    assert calls[:2] == [("GET", "/api/folders/psmon"), ("POST", "/api/folders")]
    assert calls.count(("POST", "/api/dashboards/db")) == 4
    for c in st.calls:
        if c.path == "/api/dashboards/db":
            assert c.body["overwrite"] is True and c.body["folderUid"] == "psmon"
            assert c.body["dashboard"]["id"] is None
            uid = c.body["dashboard"]["uid"]
            assert {k: v for k, v in c.body["dashboard"].items() if k != "id"} == built[uid]
    assert st.datasources["psmon-clickhouse"]["type"] == "grafana-clickhouse-datasource"
    assert st.datasources["psmon-clickhouse"]["jsonData"]["defaultDatabase"] == "psmon"

    st.calls.clear()
    second = push(grafana.url, TOKEN, with_datasources=True)
    assert not second.folder_created
    assert set(second.datasources.values()) == {"updated"}
    assert second.dashboards == dict.fromkeys(built, 2)  # same UIDs, new versions
    assert ("POST", "/api/folders") not in [(c.method, c.path) for c in st.calls]
    assert ("POST", "/api/datasources") not in [(c.method, c.path) for c in st.calls]
    assert len(st.folders) == 1 and len(st.datasources) == 3 and set(st.dashboards) == set(built)


def test_push_without_datasources_touches_only_folder_and_dashboards(grafana: GrafanaStandIn) -> None:
    push(grafana.url, TOKEN)
    assert not any("datasources" in c.path for c in grafana.state.calls)
    assert len(grafana.state.dashboards) == 4


def test_push_command(grafana: GrafanaStandIn) -> None:
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana.url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert "created folder psmon" in result.output and "dashboard psmon-live: version 1" in result.output
    result = CliRunner().invoke(
        app, ["dashboards", "push"], env={"PSMON_GRAFANA_URL": grafana.url, "PSMON_GRAFANA_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert "created folder" not in result.output and "dashboard psmon-live: version 2" in result.output


def test_a_bad_token_is_a_readable_error(grafana: GrafanaStandIn) -> None:
    with pytest.raises(PsmonError, match="refused the push"):
        push(grafana.url, "wrong")
    assert grafana.state.dashboards == {}
