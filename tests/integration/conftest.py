"""Session servers of the integration tests: real Prometheus and Alertmanager on loopback
(`tests/integration/monitoring.py`), started on first use and stopped at the end of the session.
"""

from collections.abc import Iterator

import pytest

from tests.integration.monitoring import Monitoring, running_monitoring


@pytest.fixture(scope="session")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    with running_monitoring(tmp_path_factory.mktemp("monitoring")) as m:
        yield m
