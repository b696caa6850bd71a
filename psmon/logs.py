"""One logging setup for every psmon command, so all processes log in the same format."""

import logging
from pathlib import Path

__all__ = ["configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, logfile: Path | None = None) -> None:
    """Log at `level` to `logfile`, or to stderr when it is None."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, filename=str(logfile) if logfile else None)
