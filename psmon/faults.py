"""Fault points for the delivery tests: deterministic crashes and a ClickHouse outage on demand.

psmon claims at-least-once delivery into Kafka and exactly-once counting in ClickHouse across
crashes. The moment that claim is really about is narrow: the sink has written a batch but not
yet committed its offsets, or the worker has sent its outputs but not committed its inputs. A
SIGKILL at a random time rarely lands there, so the delivery tests ask a process to kill itself
exactly there (`PSMON_TEST_SINK_CRASH_AFTER_WRITES`, `PSMON_TEST_WORKER_CRASH_AFTER_EVENTS`)
and to fail its ClickHouse writes while a file exists (`PSMON_TEST_CLICKHOUSE_FAULT_FILE`).

The stages receive a `FaultPlan` and call one intention-named method at each point; the plan
decides. Its default (`FaultPlan.none()`, and `from_settings` of settings that set none of these)
does nothing, which is what every production run gets.
"""

import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from psmon.errors import ClickHouseError
from psmon.settings import Settings

__all__ = ["FaultPlan"]

log = logging.getLogger(__name__)


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class FaultPlan:
    """Where a test wants a process to fail; every threshold 0 / path empty = never."""

    #: stage 1: SIGKILL once this many events are validated (outputs sent, inputs not committed)
    worker_crash_after_events: int = 0
    #: stage 3: SIGKILL after this many ClickHouse writes (written, offsets not committed)
    sink_crash_after_writes: int = 0
    #: stage 3: every ClickHouse write fails while this file exists
    clickhouse_fault_file: str = ""
    #: how a crash point ends the process; tests of the plan inject a recorder
    kill: Callable[[], None] = field(default=_sigkill_self, repr=False, compare=False)

    @classmethod
    def none(cls) -> Self:
        """The plan of production: no fault anywhere."""
        return cls()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The plan the `PSMON_TEST_*` settings ask for (a no-op plan when none is set)."""
        return cls(
            worker_crash_after_events=settings.test_worker_crash_after_events,
            sink_crash_after_writes=settings.test_sink_crash_after_writes,
            clickhouse_fault_file=settings.test_clickhouse_fault_file,
        )

    def after_validated(self, n_total: int) -> None:
        """Stage 1 validated and sent its `n_total`-th event: crash if that is the threshold."""
        if self.worker_crash_after_events and n_total >= self.worker_crash_after_events:
            log.error("test crash point reached after %d events: SIGKILL", n_total)
            self.kill()

    def after_sink_write(self, n_writes: int) -> None:
        """Stage 3 finished its `n_writes`-th write, before the commit: crash if that is the threshold."""
        if self.sink_crash_after_writes and n_writes >= self.sink_crash_after_writes:
            log.error("test crash point reached after %d writes: SIGKILL", n_writes)
            self.kill()

    def check_clickhouse(self) -> None:
        """Before a ClickHouse write: raise ClickHouseError while the fault file exists."""
        fault = self.clickhouse_fault_file
        if fault and os.path.exists(fault):
            raise ClickHouseError(f"fault injected: {fault} exists")
