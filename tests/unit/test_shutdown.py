"""The Faust worker psmon runs: its logging stays at the configured level.

Faust's terminal spinner, kept at a level of WARNING or above, lowers the root logger to DEBUG so
that every record spins it; every debug call of the Kafka client (one per message produced) then
builds a record for nothing. `BoundedFaustWorker` runs without the spinner.
"""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from psmon.logs import mode_logging_config
from psmon.settings import Settings
from psmon.shutdown import BoundedFaustWorker
from psmon.streams.app import create_app


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize("level", ["warning", "error", "info"])
def test_the_worker_logs_at_the_configured_level_not_debug(tmp_path: Path, level: str, restored_logging: None) -> None:
    s = Settings(data_dir=tmp_path, log_level=level)
    worker = BoundedFaustWorker(
        create_app(s),
        loglevel=s.log_level,
        logging_config=mode_logging_config(s.log_level),
        quiet=True,
        redirect_stdouts=False,
        shutdown_timeout_s=5,
    )
    worker._setup_logging()
    assert logging.getLogger().level == logging.getLevelName(level.upper())
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
