"""psmon: a live monitor of Vietnam's online public services.

Portal events flow through Kafka into Faust agents (validation, rolling rates per province),
then into ClickHouse (history) and Prometheus (live metrics and alerts). See README.md.

This module is the public facade for Python users, so it sits above every layer of the package
(tests/unit/test_layers.py) and no psmon module imports it. `psmon.History` (the history from a
notebook, `psmon.history.notebook`) is imported on first use, so `import psmon` stays light for
the processes that never read the history.
"""

from typing import TYPE_CHECKING, Any

from psmon.version import __version__

__all__ = ["History", "__version__"]

if TYPE_CHECKING:
    from psmon.history.notebook import History


def __getattr__(name: str) -> Any:
    if name == "History":
        from psmon.history.notebook import History

        return History
    raise AttributeError(f"module 'psmon' has no attribute {name!r}")
