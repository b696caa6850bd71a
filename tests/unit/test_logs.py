"""One log format for every psmon process: text or JSON, Vietnam time with its offset, and a
record is always one line, whatever its message or traceback holds."""

import io
import logging
import logging.config
import sys
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from psmon.logs import PsmonFormatter, configure_logging, mode_logging_config
from psmon.timeutil import LOCAL_TZ


def _capture(root: logging.Logger) -> io.StringIO:
    """Where psmon's handler writes, instead of stderr."""
    out = io.StringIO()
    ours = [h for h in root.handlers if isinstance(h.formatter, PsmonFormatter)]
    assert len(ours) == 1
    assert isinstance(ours[0], logging.StreamHandler)
    ours[0].setStream(out)
    return out


def _log_a_failure(name: str) -> None:
    log = logging.getLogger(name)
    log.info("first line\nforged 2026-01-01 ERROR line\x1b[31m")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("it failed")


def test_json_logs_are_one_object_per_line_with_the_exception(root: logging.Logger) -> None:
    configure_logging("info", fmt="json")
    out = _capture(root)
    _log_a_failure("psmon.test")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    records = [orjson.loads(line) for line in lines]
    assert records[0]["msg"] == "first line\nforged 2026-01-01 ERROR line\x1b[31m"
    assert {k: records[1][k] for k in ("level", "logger", "msg")} == {
        "level": "ERROR",
        "logger": "psmon.test",
        "msg": "it failed",
    }
    assert "ValueError: bad\nvalue" in records[1]["exc"]
    ts = datetime.fromisoformat(records[0]["ts"])
    assert ts.utcoffset() == LOCAL_TZ.utcoffset(None)


def test_text_logs_escape_controls_and_keep_the_traceback_on_the_line(root: logging.Logger) -> None:
    configure_logging("info")
    out = _capture(root)
    _log_a_failure("psmon.test")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    ts, level, rest = lines[0].split(" ", 2)
    assert datetime.fromisoformat(ts).utcoffset() == LOCAL_TZ.utcoffset(None) and ts.endswith("+07:00")
    assert (level, rest) == ("INFO", "psmon.test: first line\\nforged 2026-01-01 ERROR line\\x1b[31m")
    assert "\x1b" not in out.getvalue()
    assert lines[1].split(" ", 1)[1].startswith("ERROR psmon.test: it failed | Traceback")
    assert "ValueError: bad\\nvalue" in lines[1]


def test_configuring_twice_replaces_psmon_handler(root: logging.Logger) -> None:
    configure_logging("info")
    configure_logging("debug", fmt="json")
    assert len([h for h in root.handlers if isinstance(h.formatter, PsmonFormatter)]) == 1
    assert root.level == logging.DEBUG


def test_mode_and_faust_loggers_go_through_the_same_formatter(root: logging.Logger) -> None:
    """What a mode/Faust worker is given instead of its own coloured format routes theirs too."""
    config = mode_logging_config("info", "json")
    config["handlers"]["default"]["stream"] = io.StringIO()
    logging.config.dictConfig(config)
    handler = next(h for h in root.handlers if isinstance(h.formatter, PsmonFormatter))
    assert isinstance(handler, logging.StreamHandler)
    out = handler.stream
    for name in ("mode.worker", "faust.worker", "aiohttp.access"):
        logging.getLogger(name).warning("hello from %s", name)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [r["logger"] for r in records] == ["mode.worker", "faust.worker", "aiohttp.access"]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        PsmonFormatter("xml")


def test_a_later_call_without_a_format_keeps_the_chosen_one(root: logging.Logger) -> None:
    """`psmon up` chooses the format, then its runtime reconfigures for its log file."""
    configure_logging("info", fmt="json")
    configure_logging("info")
    out = _capture(root)
    logging.getLogger("psmon.test").info("x")
    assert orjson.loads(out.getvalue())["msg"] == "x"


def test_a_command_run_in_process_leaves_no_handler_on_a_closed_stream(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # what a test's CliRunner does: swap stderr for the command, close the stand-in afterwards
    stand_in, real = io.StringIO(), sys.stderr
    monkeypatch.setattr(sys, "stderr", stand_in)
    configure_logging("info")
    logging.getLogger("psmon.test").info("during the command")
    monkeypatch.setattr(sys, "stderr", real)
    assert "during the command" in stand_in.getvalue()
    stand_in.close()
    logging.getLogger("psmon.test").info("after the command")
    err = capsys.readouterr().err
    assert "after the command" in err and "Logging error" not in err


def test_mode_config_with_a_logfile_writes_psmon_records_there(root: logging.Logger, tmp_path: Path) -> None:
    # `psmon up` with its live table sends the worker's records (Faust's and mode's too) to a file
    logfile = tmp_path / "psmon.log"
    logging.config.dictConfig(mode_logging_config("info", "json", logfile=logfile))
    logging.getLogger("faust.worker").info("starting")
    for h in root.handlers:
        h.flush()
    body = orjson.loads(logfile.read_text().strip())
    assert (body["logger"], body["level"], body["msg"]) == ("faust.worker", "INFO", "starting")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_kafka_clients_are_quiet_unless_psmon_logs_at_debug(level: str, root: logging.Logger) -> None:
    """kafka-python and aiokafka log every connection at INFO: an operator reads psmon's lines."""
    loggers = [logging.getLogger(n) for n in ("kafka", "kafka.net.manager", "aiokafka.consumer")]
    before = [lg.level for lg in loggers]
    try:
        configure_logging(level)
        assert [lg.isEnabledFor(logging.INFO) for lg in loggers] == [level == "debug"] * 3
        assert all(lg.isEnabledFor(logging.WARNING) for lg in loggers)
        config = mode_logging_config(level)
        assert config["loggers"]["kafka"]["level"] == ("DEBUG" if level == "debug" else "WARNING")
    finally:
        for lg, lvl in zip(loggers, before, strict=True):
            lg.setLevel(lvl)
