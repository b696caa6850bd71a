"""How `psmon ... --help` reads: value placeholders instead of Python type labels, and examples.

Typer labels every option with its Python type (`--period <str>`, `--view <bool>`,
`--help <bool>`), which reads like a stack trace. Like well-kept Click tools, psmon shows a
flag bare (`--dry-run`) and an option that takes a value with a placeholder naming the value
(`--period PERIOD`, `--data-dir DIR`): a `metavar` given where the option is declared wins, else
the option's long name in capitals. `PsmonTyper` applies this to every command and group it
builds (`PsmonCommand`, `PsmonGroup`), so a new option cannot bring a type label back.

Examples sit in a command's epilog (`examples(...)`), one command line per line; the unit tests
parse every example against the real app, so an example can't outlive a renamed option.
"""

from collections.abc import Callable
from typing import Any

import typer

# typer bundles its own click: parameters and contexts are of that click, not of `click`.
from typer._click.core import Context, Parameter
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

__all__ = ["EXAMPLES_HEADING", "PsmonCommand", "PsmonGroup", "PsmonTyper", "examples", "tidy_params"]

EXAMPLES_HEADING = "Examples:"


def examples(*lines: str) -> str:
    """An epilog listing example command lines, one per line (`\\b` keeps typer from joining them)."""
    return EXAMPLES_HEADING + "\n\b\n" + "\n".join(f"  {line}" for line in lines)


def _placeholder(param: Parameter) -> str:
    longest = max(param.opts, key=len) if param.opts else str(param.name)
    return longest.lstrip("-").replace("-", "_").upper()


def tidy_params(params: list[Parameter]) -> list[Parameter]:
    """Flags without a type label, options taking a value with a placeholder, arguments by name."""
    for p in params:
        if isinstance(p, TyperOption) and (p.is_flag or p.count):
            p.metavar = ""  # typer prints the metavar instead of the type: nothing for a flag
        elif isinstance(p, TyperOption) and p.metavar is None:
            p.metavar = _placeholder(p)
        elif isinstance(p, TyperArgument):
            if p.metavar is None:
                p.metavar = _placeholder(p)  # the usage line adds `...` to one taking several
            p.display_type_rich = _no_type  # type: ignore[method-assign]  # the name says it: no `<path>` beside it
    return params


def _no_type(ctx: Context) -> None:
    return None


class PsmonCommand(TyperCommand):
    def get_params(self, ctx: Context) -> list[Parameter]:
        return tidy_params(super().get_params(ctx))


class PsmonGroup(TyperGroup):
    def get_params(self, ctx: Context) -> list[Parameter]:
        return tidy_params(super().get_params(ctx))


class PsmonTyper(typer.Typer):
    """A `typer.Typer` whose commands and groups show help the psmon way (see the module doc)."""

    def __init__(self, *, cls: type[TyperGroup] | None = PsmonGroup, **kwargs: Any) -> None:
        super().__init__(cls=cls, **kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = PsmonCommand, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls, **kwargs)
