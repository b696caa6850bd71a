"""`psmon --help` as operators read it: shell completion, placeholders instead of Python type
labels, and examples that are true (each one parses against the real app)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer._click.core import Command, Context
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from psmon.cli.help import EXAMPLES_HEADING
from psmon.cli.main import app

runner = CliRunner()


def _commands(cmd: Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(cmd, TyperGroup):
        for name, sub in cmd.commands.items():
            found += _commands(sub, (*path, name))
    return found


ALL_COMMANDS = _commands(get_command(app))
#: Every command whose help shows examples (found, not listed: a new one is checked too).
WITH_EXAMPLES = [list(p) for p in ALL_COMMANDS if EXAMPLES_HEADING in runner.invoke(app, [*p, "--help"]).stdout]


def test_shell_completion_can_be_installed() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    # Typer detects the shell from the process's ancestors, so ask from a bash, as a user would
    # (under `make`, pytest's nearest shell is sh, which Typer does not complete); a second
    # command keeps bash from exec-ing psmon in its place.
    psmon = Path(sys.executable).parent / "psmon"
    shown = subprocess.run(
        ["bash", "-c", f"'{psmon}' --show-completion; exit $?"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert "_PSMON_COMPLETE=complete_bash" in shown.stdout


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "psmon")
def test_help_shows_no_python_type_labels(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    labels = re.findall(r"<(?:bool|str|int|float|path|datetime|list\[[a-z]+\])>", result.stdout)
    assert labels == [], f"psmon {' '.join(path)} --help shows {labels}"


def test_an_option_taking_a_value_shows_a_placeholder_and_a_flag_none() -> None:
    text = runner.invoke(app, ["query", "rates", "--help"], terminal_width=200).stdout
    assert re.search(r"--period +PERIOD ", text)
    assert re.search(r"--data-dir +DIR ", text)
    assert re.search(r"--historical-codes +codes as sent", text)


def _examples(path: list[str]) -> list[str]:
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert EXAMPLES_HEADING in result.stdout, f"psmon {' '.join(path)} --help has no examples"
    after = result.stdout.split(EXAMPLES_HEADING, 1)[1]
    return [line.strip() for line in after.splitlines() if line.strip().startswith("psmon ")]


def _parse(args: list[str]) -> Context:
    """Parse `args` like `psmon` would, down to the command, without running anything: unknown
    options, missing required ones and values of the wrong type fail here."""
    cmd: Command = get_command(app)
    ctx = cmd.make_context("psmon", list(args))
    while isinstance(cmd, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, sub_args = cmd.resolve_command(ctx, rest)
        assert sub is not None, f"no command {name}"
        cmd, ctx = sub, sub.make_context(name or "", sub_args, parent=ctx)
    return ctx


def test_every_command_of_the_help_has_an_example() -> None:
    """Each entry of `psmon --help` (a command, or a group through one of its commands) shows one."""
    top = {p[0] for p in ALL_COMMANDS if p} - {"version"}
    assert top - {p[0] for p in WITH_EXAMPLES} == set()


def test_commands_are_grouped_by_what_people_do() -> None:
    text = runner.invoke(app, ["--help"], terminal_width=200).stdout
    panels = re.findall(r"─ (Run|Data|Analyse|Operate) ─", text)
    assert panels == ["Run", "Data", "Analyse", "Operate"]
    run_panel = text.split("─ Run ─", 1)[1].split("─ Data ─", 1)[0]
    assert all(f" {c} " in run_panel for c in ("up", "worker", "sink", "simulate"))


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=" ".join)
def test_every_example_parses(path: list[str]) -> None:
    found = _examples(path)
    assert found
    for line in found:
        args = shlex.split(line)[1:]
        ctx: Context | None = _parse(args)
        chain = []
        while ctx is not None:
            chain.insert(0, ctx.info_name)
            ctx = ctx.parent
        assert chain[1 : 1 + len(path)] == path, f"{line!r} runs {chain}"


def test_the_example_check_catches_an_unknown_option() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["query", "rank", "-m", "on_time", "--period", "2026-08", "--nope"])
