"""`psmon dashboards push` against a local stand-in of the Grafana API: the calls it makes, their
payloads, that a second push updates the same objects instead of adding new ones, and that a
password in the Grafana URL is never printed or logged."""

import logging
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from psmon.cli.main import app, main
from psmon.dashboards.build import build_all
from psmon.dashboards.push import push
from psmon.embedded.broker import free_port
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


PASSWORD = "hunter2-secret"


def _run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`psmon ARGS` through `main()`, the CLI's own error printer included; returns the exit code."""
    monkeypatch.setattr(sys, "argv", ["psmon", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize("reachable", [True, False], ids=["refused", "unreachable"])
def test_push_never_prints_the_password_of_the_url(
    grafana: GrafanaStandIn,
    reachable: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Grafana URL with basic-auth credentials: the push fails (the stand-in wants the token; or
    nothing listens), and neither the error line nor any log record shows the password."""
    port = grafana.url.rsplit(":", 1)[1] if reachable else str(free_port())
    url = f"http://admin:{PASSWORD}@127.0.0.1:{port}"
    caplog.set_level(logging.DEBUG)
    assert _run_main(monkeypatch, "dashboards", "push", "--url", url, "--token", "wrong") == 1
    out, err = capsys.readouterr()
    assert ("refused the push" if reachable else "cannot reach Grafana") in err
    assert f"http://admin:***@127.0.0.1:{port}" in err  # the URL is named, without its password
    assert PASSWORD not in out + err + caplog.text


def test_a_successful_push_does_not_print_the_password_either(
    grafana: GrafanaStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = grafana.url.replace("http://", f"http://admin:{PASSWORD}@")
    assert _run_main(monkeypatch, "dashboards", "push", "--url", url, "--token", TOKEN) == 0
    out, err = capsys.readouterr()
    assert "dashboard psmon-live: version 1" in out
    assert PASSWORD not in out + err + caplog.text
