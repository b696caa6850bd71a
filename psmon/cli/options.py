"""What every `psmon` command shares: the options that set `Settings`, the one way to build
`Settings` from them, and the one way to fail.

A shared option is declared once here, with one help text that names the `PSMON_*` variable
setting it otherwise; a command takes it under the parameter name `_FIELD_OF_PARAM` lists
(`kafka`, `clickhouse`, `data_dir`, ...). A command group (`psmon query`, `psmon dead-letters`,
`psmon alerts`) declares the same options as its commands, so an option means the same before
and after the subcommand: `settings(ctx, ...)` and `inherited(ctx, ...)` take the value given to
a parent command when the command itself was not given one (the subcommand's value wins).
"""

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, TypeVar, cast

import typer
from pydantic import ValidationError

# typer bundles its own click: contexts and parameter sources are of that click, not of `click`.
from typer._click.core import Context, ParameterSource

from psmon.history.tables import BINARY_FORMATS, OUTPUT_FORMATS, OutputFormat, ResultTable, render, to_parquet
from psmon.redact import redact_text
from psmon.schemas.digest import set_key as set_payload_hash_key
from psmon.settings import Settings

__all__ = [
    "ClickHouseOpt",
    "DataDirOpt",
    "FormatOpt",
    "KafkaOpt",
    "LogFormatOpt",
    "MetricsPortOpt",
    "OutputOpt",
    "PartitionsOpt",
    "SummaryFormatOpt",
    "ThresholdsOpt",
    "check_input_file",
    "check_output",
    "emit",
    "env_help",
    "fail",
    "inherited",
    "known_env_vars",
    "output_format",
    "parse_drop",
    "settings",
    "summary_format",
]

T = TypeVar("T")


def env_help(text: str, field: str) -> str:
    """`text` + the variable that sets `Settings.<field>`, its bracket escaped from typer's rich markup."""
    if field not in Settings.model_fields:
        raise ValueError(f"no setting {field!r}")
    return rf"{text} \[env {Settings.model_config['env_prefix']}{field.upper()}]"


KafkaOpt = Annotated[
    str | None,
    typer.Option("--kafka", metavar="HOST:PORT", help=env_help("Kafka bootstrap host:port", "kafka_bootstrap")),
]
ClickHouseOpt = Annotated[
    str | None,
    typer.Option("--clickhouse", metavar="DSN", help=env_help("chdb:///abs/dir or http://host:8123", "clickhouse_dsn")),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help=env_help("local state and logs", "data_dir")),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", metavar="PORT", help=env_help("/metrics port, 0 = off", "metrics_port")),
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option("--partitions", metavar="N", help=env_help("partitions per topic", "topic_partitions")),
]
ThresholdsOpt = Annotated[
    Path | None,
    typer.Option(
        "--thresholds",
        metavar="FILE",
        help=env_help(
            "thresholds.yaml, targets and alert floors per metric "
            "(default: the one shipped with psmon, psmon/alerting/thresholds.yaml)",
            "thresholds_file",
        ),
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", "-f", metavar="FORMAT", help=f"output: {' | '.join(OUTPUT_FORMATS)} (parquet needs --output)"
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="FILE", help="write the result to FILE instead of stdout"),
]
#: A command that prints a summary, not rows (`validate`, `replay`): people's words or one JSON object.
SUMMARY_FORMATS: Final = ("table", "json")
LangOpt = Annotated[
    str | None,
    typer.Option("--lang", help="language for people: vi or en (default: PSMON_LANG, the locale, vi)"),
]
SummaryFormatOpt = Annotated[
    str, typer.Option("--format", "-f", metavar="FORMAT", help="table (a summary for people) | json")
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format", metavar="FORMAT", help=env_help("logs: text | json (one object per line)", "log_format")
    ),
]

#: The `Settings` field each shared option sets, by the parameter name commands give it.
_FIELD_OF_PARAM: Final[dict[str, str]] = {
    "kafka": "kafka_bootstrap",
    "clickhouse": "clickhouse_dsn",
    "data_dir": "data_dir",
    "metrics_port": "metrics_port",
    "partitions": "topic_partitions",
    "thresholds": "thresholds_file",
    "log_format": "log_format",
}


_PARAM_OF_FIELD: Final[dict[str, str]] = {field: param for param, field in _FIELD_OF_PARAM.items()}

_ENV_PREFIX: Final[str] = str(Settings.model_config["env_prefix"])
#: `PSMON_*` variables read by something else than `Settings`: the test suite's servers, the image
#: tag of docker-compose.yml; and `PSMON_GRAFANA_*` (`psmon dashboards push`, Grafana's own).
_OTHER_ENV: Final[frozenset[str]] = frozenset({"PSMON_TEST_KAFKA", "PSMON_TEST_CLICKHOUSE", "PSMON_VERSION"})
_OTHER_ENV_PREFIXES: Final[tuple[str, ...]] = ("PSMON_GRAFANA_",)


def known_env_vars() -> frozenset[str]:
    """Every `PSMON_*` variable psmon or its tooling reads (but the `PSMON_GRAFANA_*` family)."""
    return frozenset(_ENV_PREFIX + field.upper() for field in Settings.model_fields) | _OTHER_ENV


def fail(message: str) -> NoReturn:
    """End the command with one readable line on stderr and exit code 1."""
    typer.secho(f"psmon: {redact_text(message)}", err=True, fg="red")  # no password of a URL
    raise typer.Exit(1)


def output_format(value: str) -> OutputFormat:
    """`value` if rows can be printed in it, else a one-line failure."""
    if value not in OUTPUT_FORMATS:
        fail(f"--format must be one of {', '.join(OUTPUT_FORMATS)}; got {value!r}")
    return value


def check_output(fmt: str, output: Path | None) -> OutputFormat:
    """The `--format`, checked with its `--output` before any work: binary needs a file."""
    f = output_format(fmt)
    if f in BINARY_FORMATS and output is None:
        fail(f"--format {f} is binary and is not written to the terminal or stdout: give --output FILE")
    return f


def emit(table: ResultTable, fmt: str, output: Path | None) -> None:
    """Print `table` in `fmt`, or write it to `output`; Parquet (binary) only ever to a file."""
    f = check_output(fmt, output)
    if f in BINARY_FORMATS:
        assert output is not None  # check_output
        try:
            to_parquet(table, output)
        except OSError as exc:
            fail(f"--output {output}: {exc.strerror or exc}")
        return
    text = render(table, f)
    if output is None:
        typer.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"--output {output}: {exc.strerror or exc}")


def summary_format(value: str) -> str:
    """`value` if a summary can be printed in it, else a one-line failure."""
    if value not in SUMMARY_FORMATS:
        fail(f"--format must be one of {', '.join(SUMMARY_FORMATS)} here; got {value!r}")
    return value


def check_input_file(path: Path) -> None:
    """Fail in one line unless `path` is a readable file."""
    if not path.exists():
        fail(f"{path}: no such file")
    if path.is_dir():
        fail(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        fail(f"{path}: permission denied")


def _given(ctx: Context, name: str) -> bool:
    """Whether `name` was set on this command's line (or by its own env var), not by default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _from_parents(ctx: typer.Context, name: str) -> tuple[bool, Any]:
    """(found, value) of `name` as given to the nearest parent command that was given it."""
    parent = ctx.parent
    while parent is not None:
        if _given(parent, name):
            return True, parent.params[name]
        parent = parent.parent
    return False, None


def inherited(ctx: typer.Context, name: str, value: T) -> T:
    """This command's `value` of parameter `name`, or a parent's when only the parent was given it."""
    if _given(ctx, name):
        return value
    found, parent_value = _from_parents(ctx, name)
    return cast(T, parent_value) if found else value


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """`Settings` from the environment with the command line on top.

    `overrides` are `Settings` fields from the command's own options (None = not given); a shared
    option given to a parent command fills a field the command left None. An unknown `PSMON_*`
    variable gets a warning (once per command); an invalid value fails in one line that names
    the flag or the variable it came from.
    """
    _warn_unknown_env(ctx)
    values: dict[str, Any] = {}
    for param, field in _FIELD_OF_PARAM.items():
        found, value = _from_parents(ctx, param)
        if found and value is not None:
            values[field] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        built = Settings(**values)
    except ValidationError as exc:
        fail("; ".join(_describe(ctx, error, values) for error in exc.errors()))
    set_payload_hash_key(_payload_hash_key(built))  # once per process, before anything is validated
    return built


def _payload_hash_key(s: Settings) -> bytes:
    """The dead-letter fingerprint key the settings give (empty: the built-in key), or fail."""
    key = s.payload_hash_key.get_secret_value().encode()
    if s.payload_hash_key_file is None:
        return key
    if key:
        fail("set PSMON_PAYLOAD_HASH_KEY or PSMON_PAYLOAD_HASH_KEY_FILE, not both")
    try:
        key = s.payload_hash_key_file.read_bytes().strip()
    except OSError as exc:
        fail(f"cannot read PSMON_PAYLOAD_HASH_KEY_FILE={str(s.payload_hash_key_file)!r}: {exc.strerror}")
    if not key:
        fail(f"PSMON_PAYLOAD_HASH_KEY_FILE={str(s.payload_hash_key_file)!r} is empty")
    return key


def _describe(ctx: Context, error: Any, values: dict[str, Any]) -> str:
    """One invalid setting in plain words: `invalid PSMON_METRICS_PORT='abc': Input should be ...`."""
    field = str(error["loc"][0]) if error["loc"] else ""
    source = _option_of(ctx, field, values[field]) if field in values else _ENV_PREFIX + field.upper()
    message = str(error["msg"]).removeprefix("Value error, ").split(", unable to parse")[0]
    shown = error.get("input")
    if not isinstance(shown, str | int | float):
        shown = str(shown)
    if isinstance(shown, str):  # a DSN may carry a password
        shown = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", shown)
    return f"invalid {source}={shown!r}: {message}"


def _option_of(ctx: Context, field: str, value: Any) -> str:
    """The option of this command, or of a parent, that set `field` to `value` (its env var if the
    option was set by its own `envvar`)."""
    wanted = _PARAM_OF_FIELD.get(field, field)
    level: Context | None = ctx
    while level is not None:
        given = [p for p in level.command.params if p.name and _given(level, p.name)]
        named = [p for p in given if p.name == wanted] or [p for p in given if level.params.get(p.name) == value]
        if named:
            param = named[0]
            envvar = getattr(param, "envvar", None)
            if level.get_parameter_source(str(param.name)) == ParameterSource.ENVIRONMENT and isinstance(envvar, str):
                return envvar
            return max(param.opts, key=len)
        level = level.parent
    return "--" + field.replace("_", "-")


def _warn_unknown_env(ctx: Context) -> None:
    """Warn about each `PSMON_*` variable psmon does not read (a typo is otherwise silently ignored)."""
    meta = ctx.find_root().meta
    if meta.get("psmon.env_checked"):
        return
    meta["psmon.env_checked"] = True
    known = known_env_vars()
    for name in sorted(os.environ):
        upper = name.upper()  # pydantic-settings reads the variables whatever their case
        if not upper.startswith(_ENV_PREFIX) or upper in known or upper.startswith(_OTHER_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        typer.secho(
            f"psmon: warning: {name} is not a psmon setting and is ignored; {hint}(see docs/configuration.md)",
            err=True,
            fg="yellow",
        )


def parse_drop(values: list[str]) -> list[tuple[str, str, float]]:
    """`--drop PROVINCE:METRIC:VALUE` options (VALUE a share, or a percentage with %)."""
    out = []
    for v in values:
        try:
            province, metric, value = v.split(":")
            out.append((province, metric, float(value.rstrip("%")) / (100 if value.endswith("%") else 1)))
        except ValueError:
            fail(f"--drop wants PROVINCE:METRIC:VALUE, e.g. 25:online_submission:0.3; got {v!r}")
    return out
