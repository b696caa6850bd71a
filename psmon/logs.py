"""One logging setup for every psmon process, so all of them log in the same format.

Two formats, chosen by `PSMON_LOG_FORMAT` (`Settings.log_format`):

* `text`: `2026-11-24T09:00:00.123+07:00 INFO psmon.sinks: message`, one line per record;
* `json`: one JSON object per line, `{"ts", "level", "logger", "msg"}` plus `exc` (the formatted
  traceback) when the record carries one, for log shippers (Loki, Vector, journald).

Times are Vietnam time with their explicit offset (`+07:00`, `psmon.timeutil.LOCAL_TZ`), the
zone the tables and the live view show, so an operator reads one clock everywhere and a program
still gets an unambiguous instant. A record never spans lines: in text mode control characters
of the message and of the traceback are escaped (`\\n` → `\\\\n`), in JSON mode the encoder escapes
them, so a value sent by a portal cannot forge a log line.

Faust and mode set logging up themselves when a worker starts (their own coloured format); they
are handed `mode_logging_config()` instead, which routes every logger, theirs, aiohttp's and
aiokafka's included, through the root handler with this formatter.
"""

import logging
import logging.config
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from psmon.timeutil import LOCAL_TZ

__all__ = ["CHATTY_LOGGERS", "LOG_FORMATS", "PsmonFormatter", "configure_logging", "mode_logging_config"]

LOG_FORMATS: Final = ("text", "json")

#: C0 controls (newline included) and DEL/C1: escaped in text mode so a record stays one line.
_ESCAPES: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
}


def _one_line(text: str) -> str:
    return text.translate(_ESCAPES)


class PsmonFormatter(logging.Formatter):
    """The psmon record format: text or JSON, Vietnam time with its offset, always one line."""

    def __init__(self, fmt: str = "text") -> None:
        super().__init__()
        if fmt not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}; got {fmt!r}")
        self.json = fmt == "json"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, LOCAL_TZ).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        exc = self.formatException(record.exc_info) if record.exc_info else (record.exc_text or "")
        if record.stack_info:
            exc = (exc + "\n" if exc else "") + self.formatStack(record.stack_info)
        ts = self.formatTime(record)
        if self.json:
            body: dict[str, Any] = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": message}
            if exc:
                body["exc"] = exc
            return orjson.dumps(body, default=str).decode()
        line = f"{ts} {record.levelname} {record.name}: {_one_line(message)}"
        return line + (" | " + _one_line(exc) if exc else "")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever `sys.stderr` is when a record is written, not when it was made: a
    command run in-process (a test's CliRunner, an embedding program) swaps stderr and closes its
    stand-in afterwards, and a handler holding that stand-in would fail on every later record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._chosen: Any = None  # a stream given later with `setStream` wins

    @property
    def stream(self) -> Any:
        return self._chosen if self._chosen is not None else sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._chosen = value


#: Client libraries that log every connection and metadata refresh at INFO: quiet (WARNING and
#: above) unless psmon itself logs at debug, so an operator reads psmon's lines, not theirs.
CHATTY_LOGGERS: Final = ("kafka", "aiokafka")


def _chatty_level(level: str) -> str:
    return "DEBUG" if level.upper() == "DEBUG" else "WARNING"


def mode_logging_config(level: str, fmt: str = "text", logfile: Path | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` for mode/Faust workers (`Worker(logging_config=...)`): the
    root handler on stderr (or appending to `logfile`) with `PsmonFormatter`, and every existing
    logger propagating to it. Mode ignores its own `logfile` when it is given a config, so the
    file is named here."""
    handler: dict[str, Any] = {"class": "logging.StreamHandler", "formatter": "psmon", "stream": "ext://sys.stderr"}
    if logfile is not None:
        handler = {"class": "logging.FileHandler", "formatter": "psmon", "filename": str(logfile)}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"psmon": {"()": PsmonFormatter, "fmt": fmt}},
        "handlers": {"default": handler},
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {name: {"level": _chatty_level(level)} for name in CHATTY_LOGGERS},
    }


#: The format of the last `configure_logging` that named one: a later call that names none (a
#: stage reconfiguring for its log file) keeps what the command line chose.
_chosen_format = "text"


def configure_logging(level: str, logfile: Path | None = None, fmt: str | None = None) -> None:
    """Log at `level` in format `fmt` (None: as chosen before, else text) to `logfile`, or to
    stderr when it is None. A second call replaces the handler of the first (handlers others
    added, a test runner's, stay)."""
    global _chosen_format
    if fmt is not None:
        PsmonFormatter(fmt)  # an unknown format fails here, before anything changes
        _chosen_format = fmt
    handler: logging.Handler = logging.FileHandler(logfile) if logfile else _StderrHandler()
    handler.setFormatter(PsmonFormatter(_chosen_format))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, PsmonFormatter)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(_chatty_level(level))
