"""The one exception base of psmon.

Every error psmon raises on purpose derives from `PsmonError` and carries a message that says
what went wrong and what to do; the CLI turns these into a readable line and exit code 1
instead of a traceback.
"""

__all__ = ["BrokerError", "ClickHouseError", "ConfigError", "PsmonError"]


class PsmonError(Exception):
    """Base of all psmon errors."""


class ConfigError(PsmonError):
    """Settings or a configuration file are invalid."""


class BrokerError(PsmonError):
    """The Kafka-protocol broker could not be started or reached."""


class ClickHouseError(PsmonError):
    """ClickHouse could not be reached or refused a statement."""
