"""Bounded shutdown for psmon's long-running processes (worker, sink, `psmon up`).

SIGTERM/SIGINT start mode's orderly stop: the sink finishes and commits its batch, producers
flush, consumers leave their groups. That path awaits the broker and ClickHouse, and either may
be gone (a dead broker makes aiokafka retry for minutes). Operators and orchestrators need the
process to go within a known time, so the first signal also arms a watchdog thread: if the
orderly stop has not finished after `shutdown_timeout_s`, the process exits with code 1. Exiting
then loses nothing: every uncommitted input is re-delivered and written idempotently.
"""

import logging
import os
import signal
import threading
from typing import Any

import faust
import mode

__all__ = ["BoundedFaustWorker", "BoundedWorker"]

log = logging.getLogger(__name__)


class BoundedWorker(mode.Worker):
    """A mode worker whose stop on SIGTERM/SIGINT cannot take longer than `shutdown_timeout_s`."""

    def __init__(self, *services: Any, shutdown_timeout_s: float, **kwargs: Any):
        super().__init__(*services, **kwargs)
        self.shutdown_timeout_s = shutdown_timeout_s
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Timer(self.shutdown_timeout_s, self._expire)
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(sig)

    def _expire(self) -> None:
        log.error("orderly shutdown took over %.0f s; exiting now", self.shutdown_timeout_s)
        logging.shutdown()
        os._exit(1)


class BoundedFaustWorker(BoundedWorker, faust.Worker):
    """The Faust worker with the same bound, and without Faust's terminal spinner."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # At a log level of WARNING or above, Faust's spinner sets the root logger to DEBUG so that
        # every record spins it: each debug call of aiokafka (one per message produced) then
        # builds a LogRecord that the handlers drop, 15% of the worker's time in its profile
        # (streams/validate_service.py). psmon's processes are services, not terminal sessions.
        self.spinner = None
        super().on_setup_root_logger(logger, level)
