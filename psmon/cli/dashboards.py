"""`psmon dashboards build|push`: Grafana dashboards as code (see psmon/dashboards/).

Thin commands: options become a `BuildOptions` and the work is done by `psmon.dashboards`, which
is imported only when a dashboards command runs (it pulls in the Grafana SDK and client).
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from psmon.cli.help import PsmonTyper, examples
from psmon.cli.options import ThresholdsOpt, fail, settings

if TYPE_CHECKING:
    from psmon.dashboards.build import BuildOptions

__all__ = ["dashboards_app"]

dashboards_app = PsmonTyper(no_args_is_help=True, help="Grafana dashboards as code: build JSON, push to Grafana.")

PrometheusUrlOpt = Annotated[str, typer.Option(help="Prometheus URL as Grafana reaches it")]
AlertmanagerUrlOpt = Annotated[str, typer.Option(help="Alertmanager URL as Grafana reaches it")]
ClickHouseUrlOpt = Annotated[str, typer.Option(help="ClickHouse HTTP URL as Grafana reaches it")]
ClickHouseUserOpt = Annotated[str, typer.Option(help="ClickHouse user for Grafana")]
DatabaseOpt = Annotated[str, typer.Option(envvar="PSMON_CLICKHOUSE_DATABASE", help="psmon's ClickHouse database")]

# defaults = the docker-compose service names (psmon.dashboards.datasources.DatasourceConfig)
_PROM, _AM, _CH, _CH_USER, _DB = (
    "http://prometheus:9090",
    "http://alertmanager:9093",
    "http://clickhouse:8123",
    "psmon",
    "psmon",
)


def _options(
    ctx: typer.Context,
    thresholds: Path | None,
    prometheus_url: str,
    alertmanager_url: str,
    clickhouse_url: str,
    clickhouse_user: str,
    database: str,
) -> "BuildOptions":
    from psmon.dashboards.build import BuildOptions
    from psmon.dashboards.datasources import DatasourceConfig

    path = settings(ctx, thresholds_file=thresholds).thresholds_file  # --thresholds, else PSMON_THRESHOLDS_FILE
    if path is not None and not path.exists():
        fail(f"thresholds file {path} does not exist")
    ds = DatasourceConfig(prometheus_url, alertmanager_url, clickhouse_url, clickhouse_user, database)
    return BuildOptions(thresholds_path=path, datasources=ds)


@dashboards_app.command(
    "build", epilog=examples("psmon dashboards build", "psmon dashboards build --out grafana --thresholds t.yaml")
)
def build(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("deploy/grafana"),
    thresholds: ThresholdsOpt = None,
    prometheus_url: PrometheusUrlOpt = _PROM,
    alertmanager_url: AlertmanagerUrlOpt = _AM,
    clickhouse_url: ClickHouseUrlOpt = _CH,
    clickhouse_user: ClickHouseUserOpt = _CH_USER,
    database: DatabaseOpt = _DB,
) -> None:
    """Write dashboard JSON and Grafana provisioning files (checked before writing)."""
    from psmon.dashboards.build import write_all

    opts = _options(ctx, thresholds, prometheus_url, alertmanager_url, clickhouse_url, clickhouse_user, database)
    for path in write_all(out, opts):
        typer.echo(str(path))


@dashboards_app.command("push")
def push(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="PSMON_GRAFANA_URL", help="Grafana base URL, e.g. http://grafana:3000")],
    token: Annotated[
        str | None, typer.Option(envvar="PSMON_GRAFANA_TOKEN", help="service-account token (Bearer)")
    ] = None,
    with_datasources: Annotated[
        bool, typer.Option(help="also create/update the Prometheus, Alertmanager and ClickHouse datasources")
    ] = False,
    thresholds: ThresholdsOpt = None,
    prometheus_url: PrometheusUrlOpt = _PROM,
    alertmanager_url: AlertmanagerUrlOpt = _AM,
    clickhouse_url: ClickHouseUrlOpt = _CH,
    clickhouse_user: ClickHouseUserOpt = _CH_USER,
    database: DatabaseOpt = _DB,
) -> None:
    """Upload the dashboards (same UID = update) into the `psmon` folder with grafana-client."""
    from psmon.dashboards.push import push as run_push

    opts = _options(ctx, thresholds, prometheus_url, alertmanager_url, clickhouse_url, clickhouse_user, database)
    result = run_push(url, token, options=opts, with_datasources=with_datasources)
    if result.folder_created:
        typer.echo("created folder psmon")
    for uid, what in result.datasources.items():
        typer.echo(f"datasource {uid}: {what}")
    for uid, version in result.dashboards.items():
        typer.echo(f"dashboard {uid}: version {version}")
