"""Fixtures shared by unit tests."""

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The root logger, given back as it was (handlers and level) after the test, as is the
    format a command chose."""
    monkeypatch.setattr("psmon.logs._chosen_format", "text")
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for h in logger.handlers:
        if h not in handlers:
            h.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)
