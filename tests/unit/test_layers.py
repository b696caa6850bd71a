"""The package's import graph points downward: the contract at the bottom, the CLI at the top.

Layers, lowest first (a module may import its own layer and those below it, never above):
0 process-wide basics (`settings`, `errors`, `metrics`, `kafka`, `faults`, `logs`, `embedded`, ...),
1 `schemas` (the contract and its vocabulary), 2 `streams` (stages 1 and 2), 3 `sinks` (stage 3),
4 the consumers of history and metrics (`history`, `alerting`, `dashboards`, `simulator`),
5 `local` (the one-process runtime of `psmon up`), 6 `cli`, and on top the package itself
(`psmon/__init__.py`, the public facade for Python users: `psmon.History`). Imports inside a function count too:
a lazy import is still a dependency. Modules of one layer must not import each other in a circle.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "psmon"

LAYERS: dict[str, int] = {
    "schemas": 1,
    "streams": 2,
    "sinks": 3,
    "history": 4,
    "alerting": 4,
    "dashboards": 4,
    "simulator": 4,
    "local": 5,
    "cli": 6,
    "": 7,  # the package root, `psmon/__init__.py`
}


def _unit(module: str) -> str:
    """`psmon.sinks.clickhouse.writer` -> `sinks`; a root module (`psmon.settings`) is itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(unit: str) -> int:
    return LAYERS.get(unit, 0)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m == "psmon" or m.startswith("psmon.")}
    return graph


GRAPH = _imports()


def test_the_graph_was_read() -> None:
    assert len(GRAPH) > 50 and "psmon.cli.main" in GRAPH and "psmon.schemas.metrics" in GRAPH


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_runs_up_a_layer(module: str) -> None:
    mine = _layer(_unit(module))
    upward = [m for m in GRAPH[module] if _layer(_unit(m)) > mine]
    assert not upward, f"{module} (layer {mine}) imports {upward}"


def test_no_import_circle() -> None:
    seen: set[str] = set()
    on_path: list[str] = []

    def visit(node: str) -> None:
        if node in on_path:
            pytest.fail("import circle: " + " -> ".join([*on_path[on_path.index(node) :], node]))
        if node in seen:
            return
        seen.add(node)
        on_path.append(node)
        for dep in sorted(GRAPH.get(node, ())):
            visit(dep)
        on_path.pop()

    for module in sorted(GRAPH):
        visit(module)
