"""FaultPlan: a no-op by default, crash points at their thresholds, the ClickHouse fault file."""

import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import psmon.faults
from psmon.errors import ClickHouseError
from psmon.faults import FaultPlan
from psmon.settings import Settings


class Kills:
    """Stands in for SIGKILL: counts the crashes a plan asks for, and the test process lives on."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


TEST_ENV = (
    "PSMON_TEST_WORKER_CRASH_AFTER_EVENTS",
    "PSMON_TEST_SINK_CRASH_AFTER_WRITES",
    "PSMON_TEST_CLICKHOUSE_FAULT_FILE",
)


@pytest.mark.parametrize("make", [FaultPlan.none, FaultPlan, lambda: FaultPlan.from_settings(Settings())])
def test_the_default_plan_never_crashes_nor_fails_a_write(
    make: Callable[[], FaultPlan], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in TEST_ENV:
        monkeypatch.delenv(name, raising=False)
    kills = Kills()
    plan = replace(make(), kill=kills)
    for n in (0, 1, 10**9):
        plan.after_validated(n)
        plan.after_sink_write(n)
    plan.check_clickhouse()
    assert kills.count == 0


def test_from_settings_reads_the_test_settings() -> None:
    s = Settings(test_worker_crash_after_events=7, test_sink_crash_after_writes=3, test_clickhouse_fault_file="/tmp/f")
    plan = FaultPlan.from_settings(s)
    assert (plan.worker_crash_after_events, plan.sink_crash_after_writes, plan.clickhouse_fault_file) == (
        7,
        3,
        "/tmp/f",
    )


def test_from_settings_keeps_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # The delivery tests set these very names on the processes they start.
    for name, value in zip(TEST_ENV, ("5", "2", "/x/fault"), strict=True):
        monkeypatch.setenv(name, value)
    plan = FaultPlan.from_settings(Settings())
    assert plan == FaultPlan(worker_crash_after_events=5, sink_crash_after_writes=2, clickhouse_fault_file="/x/fault")


def test_worker_crashes_once_the_threshold_of_validated_events_is_reached() -> None:
    kills = Kills()
    plan = FaultPlan(worker_crash_after_events=3, kill=kills)
    plan.after_validated(1)
    plan.after_validated(2)
    assert kills.count == 0
    plan.after_validated(3)
    assert kills.count == 1
    # Not the sink's threshold: the worker's plan does not fire on writes.
    plan.after_sink_write(100)
    assert kills.count == 1


def test_sink_crashes_after_its_nth_write() -> None:
    kills = Kills()
    plan = FaultPlan(sink_crash_after_writes=2, kill=kills)
    plan.after_sink_write(1)
    assert kills.count == 0
    plan.after_sink_write(2)
    assert kills.count == 1
    plan.after_validated(100)
    assert kills.count == 1


def test_clickhouse_fails_while_the_fault_file_exists(tmp_path: Path) -> None:
    fault = tmp_path / "clickhouse-down"
    plan = FaultPlan(clickhouse_fault_file=str(fault))
    plan.check_clickhouse()  # no file yet: writes go through
    fault.touch()
    with pytest.raises(ClickHouseError, match="fault injected"):
        plan.check_clickhouse()
    fault.unlink()
    plan.check_clickhouse()  # outage over


def test_the_plan_is_frozen() -> None:
    plan = FaultPlan.none()
    with pytest.raises(AttributeError):
        plan.sink_crash_after_writes = 1  # type: ignore[misc]


def test_a_crash_point_sigkills_its_own_process(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(psmon.faults.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    FaultPlan(sink_crash_after_writes=1).after_sink_write(1)
    assert sent == [(os.getpid(), signal.SIGKILL)]
