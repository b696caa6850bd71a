"""The one exception base of psmon.

Every error psmon raises on purpose derives from `PsmonError` and carries a message that says
what went wrong and what to do; the CLI turns these into a readable line and exit code 1
instead of a traceback.
"""

import errno

__all__ = ["BrokerError", "ClickHouseError", "ConfigError", "MetricsPortError", "PsmonError"]


class PsmonError(Exception):
    """Base of all psmon errors."""


class ConfigError(PsmonError):
    """Settings or a configuration file are invalid."""


class MetricsPortError(ConfigError):
    """The `/metrics` port cannot be listened on: another process has it, or it is not allowed."""

    def __init__(self, host: str, port: int, cause: OSError):
        if cause.errno == errno.EADDRINUSE:
            problem, setting = "is in use", "--metrics-port or PSMON_METRICS_PORT"
        else:  # an address not on this host, a port below 1024
            problem = f"cannot be opened ({cause.strerror or cause})"
            setting = "--metrics-port or PSMON_METRICS_PORT, PSMON_METRICS_HOST"
        super().__init__(f"metrics port {host}:{port} {problem} (set {setting}; 0 turns it off)")


class BrokerError(PsmonError):
    """The Kafka-protocol broker could not be started or reached."""


class ClickHouseError(PsmonError):
    """ClickHouse could not be reached or refused a statement."""
