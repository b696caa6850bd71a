"""The root of `psmon`: --version, -h, and commands listed in the order a new user meets them."""

import re

from typer.testing import CliRunner

from psmon import __version__
from psmon.cli.main import COMMAND_ORDER, app

runner = CliRunner()


def test_version_flag_and_command() -> None:
    for args in (["--version"], ["version"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == __version__


def test_h_is_help_on_every_level() -> None:
    for args in (["-h"], ["query", "-h"], ["query", "rank", "-h"], ["dead-letters", "list", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Usage: " in result.stdout and "--help" in result.stdout


def test_help_lists_every_command_in_order() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    commands = result.stdout.split("─ Run ─")[1]  # the panels after the options
    listed = re.findall(r"^│ ([a-z-]+) ", commands, flags=re.MULTILINE)
    assert tuple(listed) == COMMAND_ORDER
