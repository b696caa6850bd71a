"""Small mode services that `psmon up` runs beside the Faust agents and the sink.

- `SimulatorService`: the simulator in a thread (kafka-python's producer is blocking), stopped
  through an Event when the worker stops.
- `Deadline`: stops the whole process after `duration_s` by sending itself SIGTERM, which takes
  the same graceful path as Ctrl-C (flush, commit, stop the broker).
"""

import asyncio
import logging
import os
import signal
import threading
from typing import Any

from mode import Service

from psmon.kafka import PLAINTEXT, KafkaAuth
from psmon.simulator.runner import KafkaSink, SimulationConfig, SimulationStats, run_simulation

__all__ = ["Deadline", "SimulatorService"]

log = logging.getLogger(__name__)


class SimulatorService(Service):
    def __init__(
        self, config: SimulationConfig, *, bootstrap: str, topic: str, auth: KafkaAuth = PLAINTEXT, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.config = config
        self.bootstrap = bootstrap
        self.topic = topic
        self.auth = auth
        self._stop_flag = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats: SimulationStats | None = None

    async def on_start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sink = KafkaSink(self.bootstrap, self.topic, auth=self.auth)
        try:
            self.stats = run_simulation(self.config, sink, stop=self._stop_flag)
        except Exception:
            log.exception("simulator failed")
        finally:
            sink.close()

    async def on_stop(self) -> None:
        self._stop_flag.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)
        if self.stats:
            log.info(
                "simulator sent %d events (%d bad) in %.1f s",
                self.stats.sent,
                self.stats.bad,
                self.stats.elapsed_s,
            )


class Deadline(Service):
    def __init__(self, duration_s: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.duration_s = duration_s

    @Service.task
    async def _expire(self) -> None:
        await self.sleep(self.duration_s)
        log.info("duration of %.0f s reached: stopping", self.duration_s)
        os.kill(os.getpid(), signal.SIGTERM)
