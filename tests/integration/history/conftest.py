"""Fixtures of the history tests: the generated dataset (once per session) and a loaded chDB.

chDB allows one data directory per process, so each test module gets one directory (or the
server of PSMON_TEST_CLICKHOUSE) and tests separate themselves by database name. The loaded
database is shared by a module's read-only tests; tests that write use their own database.
"""

import os
import uuid
from collections.abc import Iterator

import pytest

from psmon.history.replay import replay_files
from psmon.sinks.clickhouse.client import Client, connect
from psmon.sinks.clickhouse.schema import migrate
from psmon.sinks.clickhouse.writer import ClickHouseWriter
from tests.history_dataset import valid_events, write_dataset
from tests.integration.history.dataset import BATCH_ROWS, Dataset, Loaded


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("history") / "merger-2025.jsonl"
    lines = write_dataset(path)
    return Dataset(path, lines, valid_events(lines))


@pytest.fixture(scope="module")
def module_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("PSMON_TEST_CLICKHOUSE") or f"chdb://{tmp_path_factory.mktemp('ch') / 'clickhouse'}"


@pytest.fixture(scope="module")
def module_client(module_dsn: str) -> Iterator[Client]:
    client = connect(module_dsn)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fresh_db(module_client: Client) -> str:
    """A database name of this test's own (created by `migrate`)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def loaded(module_client: Client, module_dsn: str, dataset: Dataset) -> Loaded:
    """A migrated database holding the dataset, replayed through the sink's writer (read-only use)."""
    database = "h" + uuid.uuid4().hex[:10]
    migrate(module_client, database)
    writer = ClickHouseWriter(module_client, database=database)
    stats = replay_files([dataset.path], writer=writer, batch_rows=BATCH_ROWS)
    return Loaded(module_client, database, module_dsn, writer, stats)
