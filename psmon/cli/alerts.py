"""`psmon rules` and `psmon alerts ...`: generate the monitoring config, receive and list alerts.

Kept out of `main.py` so the alerting commands stay in one place; `main.py` only registers them.
Heavy imports happen inside the commands, so `psmon --help` stays fast. The `alerts` group takes
its commands' `--clickhouse` and `--data-dir` too (`psmon alerts --data-dir D history`).
"""

import errno
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Annotated

import orjson
import typer

from psmon.cli.help import PsmonTyper, examples
from psmon.cli.options import (
    ClickHouseOpt,
    DataDirOpt,
    FormatOpt,
    OutputOpt,
    ThresholdsOpt,
    check_output,
    emit,
    env_help,
    fail,
    settings,
)
from psmon.history.tables import ResultTable
from psmon.logs import configure_logging, mode_logging_config

__all__ = ["alerts_app", "rules"]

alerts_app = PsmonTyper(no_args_is_help=True, help="Alert notifications: the webhook receiver and the history.")


@alerts_app.callback()
def alerts(clickhouse: ClickHouseOpt = None, data_dir: DataDirOpt = None) -> None:
    """Alert notifications: the webhook receiver and the history."""


def rules(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (default: <data_dir>)")] = None,
    thresholds: ThresholdsOpt = None,
    profile: Annotated[
        str, typer.Option(help="local: loopback targets; compose: the Docker Compose services (deploy/)")
    ] = "local",
    worker: Annotated[
        list[str] | None, typer.Option(help="worker /metrics host:port or dns+name:port (repeat)")
    ] = None,
    sink: Annotated[list[str] | None, typer.Option(help="sink /metrics host:port or dns+name:port (repeat)")] = None,
    alertmanager: Annotated[str | None, typer.Option(help="Alertmanager host:port")] = None,
    webhook: Annotated[str | None, typer.Option(help="URL of the alert webhook receiver")] = None,
    webhook_token_file: Annotated[
        str | None,
        typer.Option(
            help="the receiver's bearer token file as Alertmanager sees it (local default: "
            "PSMON_ALERTS_TOKEN_FILE, else <data_dir>/alerts-token, the one psmon up makes)"
        ),
    ] = None,
    tests: Annotated[bool, typer.Option(help="also write the promtool rule tests beside the rules")] = False,
    check: Annotated[bool, typer.Option(help="run promtool/amtool (and the rule tests) on the result")] = False,
) -> None:
    """Generate Prometheus rules, prometheus.yml and alertmanager.yml from thresholds.yaml."""
    from psmon.alerting.generate import COMPOSE_TARGETS, Targets, write_config
    from psmon.alerting.ruletests import render_rule_tests
    from psmon.alerting.thresholds import load_thresholds

    if profile not in ("local", "compose"):
        raise typer.BadParameter("use local or compose", param_hint="--profile")
    s = settings(ctx, thresholds_file=thresholds)
    th = load_thresholds(s.thresholds_file)
    base = (
        COMPOSE_TARGETS
        if profile == "compose"
        else Targets(
            workers=(f"127.0.0.1:{s.metrics_port}",),
            alertmanagers=(f"127.0.0.1:{s.alertmanager_port}",),
            webhook_url=f"http://{s.alerts_host}:{s.alerts_port}/alerts",
            webhook_token_file=str((s.alerts_token_file or Path(s.data_dir) / "alerts-token").resolve()),
        )
    )
    targets = Targets(
        workers=tuple(worker) if worker else base.workers,
        sinks=tuple(sink) if sink else base.sinks,
        alertmanagers=(alertmanager,) if alertmanager else base.alertmanagers,
        webhook_url=webhook or base.webhook_url,
        webhook_token_file=webhook_token_file or base.webhook_token_file,
    )
    out_dir = out if out is not None else Path(s.data_dir)
    files = write_config(out_dir, th, targets)
    written = list(files.all)
    if tests or check:
        for name, text in render_rule_tests(th).items():
            path = files.rules.parent / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    for p in written:
        typer.echo(str(p))
    if check:
        _check(files.prometheus_config, files.alertmanager_config, [p for p in written if p.name.endswith(".test.yml")])


def _check(prometheus_yml: Path, alertmanager_yml: Path, rule_tests: list[Path]) -> None:
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    if not promtool or not amtool:
        raise typer.BadParameter(
            "--check needs promtool and amtool (apt-get install prometheus prometheus-alertmanager)"
        )
    commands = [[promtool, "check", "config", str(prometheus_yml)], [amtool, "check-config", str(alertmanager_yml)]]
    commands += [[promtool, "test", "rules", p.name] for p in rule_tests]
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=prometheus_yml.parent)
        if proc.returncode != 0:
            typer.echo(proc.stdout + proc.stderr, err=True)
            raise typer.Exit(1)
        typer.echo(f"ok: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}")


@alerts_app.command("listen")
def listen(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help=env_help("interface", "alerts_host"))] = None,
    port: Annotated[int | None, typer.Option(help=env_help("port", "alerts_port"))] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help=env_help("file with the bearer token senders must give", "alerts_token_file")
        ),
    ] = None,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Receive Alertmanager webhooks: log each alert and store it in the ClickHouse `alerts` table."""
    from mode import Worker

    from psmon.alerting.receiver import AlertReceiverService, ReceiverLimits, read_token_file
    from psmon.errors import ConfigError
    from psmon.sinks.clickhouse.client import ensure_embedded_free

    s = settings(
        ctx,
        alerts_host=host,
        alerts_port=port,
        alerts_token_file=token_file,
        clickhouse_dsn=clickhouse,
        data_dir=data_dir,
    )
    if s.alerts_token_file is None:  # an open receiver would store whatever anyone posts
        fail(
            "no alerts token: set --token-file or PSMON_ALERTS_TOKEN_FILE to a file holding the bearer token "
            "Alertmanager sends (http_config.authorization.credentials_file)"
        )
    try:
        token = read_token_file(s.alerts_token_file)
    except ConfigError as exc:
        fail(str(exc))
    ensure_embedded_free(s.resolved_clickhouse_dsn)  # else the service fails opening it, in a traceback
    sock = _listen_socket(s.alerts_host, s.alerts_port)  # a port in use: one line, before anything starts
    configure_logging(s.log_level, fmt=s.log_format)
    service = AlertReceiverService(
        dsn=s.resolved_clickhouse_dsn,
        database=s.clickhouse_database,
        host=s.alerts_host,
        port=s.alerts_port,
        token=token,
        limits=ReceiverLimits(max_body_bytes=s.alerts_max_body_bytes, max_alerts=s.alerts_max_per_request),
        list_enabled=s.alerts_list_enabled,
        sock=sock,
    )
    Worker(
        service,
        loglevel=s.log_level,
        logging_config=mode_logging_config(s.log_level, s.log_format),
        quiet=True,
        redirect_stdouts=False,
    ).execute_from_commandline()


def _listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or a one-line failure naming the port and its setting."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        fail(f"alerts host {host!r} cannot be resolved ({exc.strerror or exc}; set --host or PSMON_ALERTS_HOST)")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        problem = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror or exc})"
        fail(f"alerts port {host}:{port} {problem} (set --port or PSMON_ALERTS_PORT, --host or PSMON_ALERTS_HOST)")
    sock.setblocking(False)
    return sock


#: The columns `alerts history` reads, and writes with --format csv, json or parquet.
HISTORY_COLUMNS = (
    "status",
    "alertname",
    "severity",
    "province_code",
    "province_name",
    "metric",
    "starts_at",
    "ends_at",
    "value",
    "threshold",
    "volume",
    "summary_vi",
    "summary_en",
    "fingerprint",
)


@alerts_app.command(
    "history",
    epilog=examples(
        "psmon alerts history",
        "psmon alerts history --province 25 --status firing --limit 10",
        "psmon alerts history -f csv -o alerts.csv",
    ),
)
def history(
    ctx: typer.Context,
    province: Annotated[str | None, typer.Option(help="only this 34-province code")] = None,
    status: Annotated[str, typer.Option(help="all | firing | resolved")] = "all",
    limit: Annotated[int, typer.Option(help="most recent N")] = 50,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", hidden=True, help="deprecated: one JSON object per line; use --format json")
    ] = False,
    clickhouse: ClickHouseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List stored alert notifications, newest first (one row per alert episode and status)."""
    from psmon.alerting.receiver import printable
    from psmon.history.tables import local_time
    from psmon.sinks.clickhouse.client import connect, is_served
    from psmon.sinks.clickhouse.schema import migrate

    if status not in ("all", "firing", "resolved"):
        raise typer.BadParameter("use all, firing or resolved", param_hint="--status")
    check_output(fmt, output)
    if as_json:  # kept for scripts written against it, in its old shape
        typer.secho("psmon: warning: --json is deprecated; use --format json", err=True, fg="yellow")
    s = settings(ctx, clickhouse_dsn=clickhouse, data_dir=data_dir)
    client = connect(s.resolved_clickhouse_dsn, read_only=True)  # through psmon up while it runs
    if not is_served(client):  # psmon up has migrated what it serves, and the endpoint only reads
        migrate(client, s.clickhouse_database)
    where, params = [], {}
    if province:
        where.append("province_code = {province:String}")
        params["province"] = province
    if status != "all":
        where.append("status = {status:String}")
        params["status"] = status
    sql = (
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM {s.clickhouse_database}.alerts FINAL "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY starts_at DESC, status LIMIT {limit:UInt32}"
    )
    result = client.query(sql, parameters={**params, "limit": limit})
    if as_json or fmt != "table":
        if as_json:
            for row in result.named_results():
                typer.echo(orjson.dumps(row, default=str).decode())
            return
        rows = [tuple(r) for r in result.result_rows]
        emit(
            ResultTable("alert notifications", list(HISTORY_COLUMNS), rows, empty="no alert notifications"), fmt, output
        )
        return
    if not result.result_rows:  # one line: an empty history is no failure
        filters = f" for province {province}" if province else ""
        filters += f" with status {status}" if status != "all" else ""
        typer.echo(f"no alert notifications stored{filters}")
    lines = []
    for row in result.named_results():
        value = "-" if row["value"] is None else f"{row['value']:.4g}"
        line = (
            f"{local_time(row['starts_at'])} {row['status']:<8} {row['alertname']:<26} "
            f"{row['province_code'] or '--'} {row['metric'] or '-':<20} value={value} {row['summary_en']}"
        )
        lines.append(printable(line))  # rows stored before the receiver cleaned text: no terminal control
    if output is None:
        for line in lines:
            typer.echo(line)
    else:
        output.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
