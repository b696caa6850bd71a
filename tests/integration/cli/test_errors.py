"""Mistakes a user makes on the first day are one line on stderr and exit code 1, never a traceback.

Where a real process matters (a port held by another process, chDB's lock on its directory, a
Kafka that refuses the connection) the test runs `python -m psmon.cli.main` as a user does; the
rest goes through `main()` in this process. The Kafka checks run against a loopback port nothing
listens on; their subprocess timeout is a guard against a hang, not a speed measure.
"""

import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from psmon.cli.main import main
from psmon.errors import BrokerError
from psmon.streams.topics import wait_for_broker

PSMON = [sys.executable, "-m", "psmon.cli.main"]


def _clean_env() -> dict[str, str]:
    """This environment without PSMON_* variables, so the command line alone says what runs."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PSMON_")}


def _psmon(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PSMON, *args], capture_output=True, text=True, timeout=timeout_s, env=_clean_env(), cwd=Path.cwd()
    )


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def refused() -> Iterator[str]:
    """A loopback host:port where nothing listens (the connection is refused at once).

    The port stays bound, without listening, for the whole test: Linux refuses connections to it,
    and no other process can take the port meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process (here: this one) is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `psmon ARGS` through `main()` (its error handling included): (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["psmon", *args])
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    return int(code or 0), capsys.readouterr().err


# -- 1. a busy metrics port ---------------------------------------------------------------------
@pytest.mark.parametrize("command", [["worker"], ["sink"], ["up", "--no-view", "--rate", "0"]])
def test_busy_metrics_port_is_one_line(tmp_path: Path, busy_port: int, refused: str, command: list[str]) -> None:
    # Kafka is unreachable too: the port, a local check, is reported first.
    extra = [] if command == ["worker"] else ["--data-dir", str(tmp_path)]
    proc = _psmon(*command, "--metrics-port", str(busy_port), "--kafka", refused, *extra)
    assert proc.returncode == 1
    assert _one_line(proc.stderr) == (
        f"psmon: metrics port 127.0.0.1:{busy_port} is in use (set --metrics-port or PSMON_METRICS_PORT; "
        "0 turns it off)"
    )


# -- 2. a second process on one embedded chDB directory ----------------------------------------
HOLD = """
import sys, time
from psmon.sinks.clickhouse.client import connect
client = connect(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held_dsn(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A chDB directory held by another process (as by a running sink or `psmon up`); its pid."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, dsn], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield dsn, holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=60)


def test_a_second_process_on_an_embedded_directory_is_one_line(held_dsn: tuple[str, int], refused: str) -> None:
    dsn, pid = held_dsn
    directory = dsn.removeprefix("chdb://")
    commands = [
        ["sink", "--clickhouse", dsn, "--metrics-port", "0", "--kafka", refused],  # chDB before Kafka
        ["query", "--clickhouse", dsn, "--sql", "SELECT 1"],
        ["report", "--period", "2026", "--clickhouse", dsn],
        ["migrate", "--clickhouse", dsn],
    ]
    procs = [
        subprocess.Popen([*PSMON, *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
        for c in commands
    ]
    for command, proc in zip(commands, procs, strict=True):
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, (command, stderr)
        line = _one_line(stderr)
        assert line.startswith(
            f"psmon: the embedded ClickHouse directory {directory} is held by another psmon process (pid {pid}): "
            "one process per embedded chDB directory."
        ), (command, line)
        assert "--clickhouse http://HOST:8123" in line


# -- 3. missing files ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["validate"], ["replay", "--no-progress"]])
def test_a_missing_input_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "events.jsonl"
    code, err = run_main(monkeypatch, capsys, *command, str(missing))
    assert code == 1
    assert _one_line(err) == f"psmon: {missing}: no such file"


def test_report_on_a_data_dir_with_no_history_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --data-dir is said as such; no empty database is created there."""
    data_dir = tmp_path / "typo"
    code, err = run_main(monkeypatch, capsys, "report", "--period", "2026", "--data-dir", str(data_dir))
    assert code == 1
    assert _one_line(err).startswith(f"psmon: {(data_dir / 'clickhouse').resolve()}: no such directory")
    assert not data_dir.exists()


def test_report_into_a_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    out.write_text("")
    code, err = run_main(monkeypatch, capsys, "report", "--period", "2026", "--out", str(out))
    assert code == 1
    assert _one_line(err) == f"psmon: --out {out}: is a file; give a directory for the report"


# -- 4. a Kafka that refuses the connection -----------------------------------------------------
@pytest.mark.parametrize("command", [["topics"], ["simulate", "--count", "1"]])
def test_a_refused_kafka_fails_fast_in_one_line(refused: str, command: list[str]) -> None:
    proc = _psmon(*command, "--kafka", refused, timeout_s=60)  # 30 s of retries before the fix
    assert proc.returncode == 1
    assert _one_line(proc.stderr) == (
        f"psmon: cannot reach Kafka at {refused}: connection refused. "
        "Is a broker running there? Set --kafka / PSMON_KAFKA_BOOTSTRAP."
    )


def test_the_broker_check_mutes_kafka_python_only_meanwhile(refused: str) -> None:
    kafka_logger = logging.getLogger("kafka")
    before = kafka_logger.level
    with pytest.raises(BrokerError, match="connection refused"):
        wait_for_broker(refused, refused_for_s=0)
    assert kafka_logger.level == before


def test_every_refusing_bootstrap_server_is_named(refused: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The unknown name is answered as a resolver does (EAI_NONAME), whatever DNS this machine has.
    connect = socket.create_connection

    def resolving(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        if address[0] == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return connect(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", resolving)
    with pytest.raises(BrokerError) as error:
        wait_for_broker(f"{refused},no-such-host.invalid:9092", refused_for_s=0)
    assert f"{refused}: connection refused; no-such-host.invalid:9092: unknown host" in str(error.value)


# -- 5. the ClickHouse DSN and misspelt variables ------------------------------------------------
@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("foo://bar", "use chdb:///ABS/DIR (embedded), http://HOST:8123 or https://HOST:8443 (a server)"),
        ("localhost:8123", "use chdb:///ABS/DIR (embedded)"),
        ("chdb://relative/dir", "an embedded DSN needs an absolute path, e.g. chdb:///var/lib/psmon"),
        ("http://", "a server DSN needs a host, e.g. http://HOST:8123"),
    ],
)
def test_a_bad_clickhouse_dsn_is_refused_with_what_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dsn: str, message: str
) -> None:
    monkeypatch.delenv("PSMON_CLICKHOUSE_DSN", raising=False)
    code, err = run_main(monkeypatch, capsys, "migrate", "--clickhouse", dsn)
    assert code == 1
    assert _one_line(err).startswith(f"psmon: invalid --clickhouse={dsn!r}: {message}")
    monkeypatch.setenv("PSMON_CLICKHOUSE_DSN", dsn)
    code, err = run_main(monkeypatch, capsys, "migrate")
    assert code == 1
    assert _one_line(err).startswith(f"psmon: invalid PSMON_CLICKHOUSE_DSN={dsn!r}: {message}")


def test_good_clickhouse_dsns_pass() -> None:
    from psmon.settings import Settings

    for dsn in ("", "chdb:///var/lib/psmon", "http://localhost:8123", "https://user:pw@ch.example:8443/"):
        assert Settings(clickhouse_dsn=dsn).clickhouse_dsn == dsn


def test_a_bad_dsn_never_shows_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(monkeypatch, capsys, "migrate", "--clickhouse", "htp://psmon:s3cret@ch:8123")
    assert code == 1
    assert "s3cret" not in err and "htp://psmon:***@ch:8123" in err


def test_a_misspelt_variable_is_a_warning_naming_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PSMON_CLICKHOUSE_DNS", "PSMON_CLICKHOUS_DSN"):
        monkeypatch.setenv(name, "http://ch:8123")
    for name in ("PSMON_TEST_KAFKA", "PSMON_TEST_CLICKHOUSE", "PSMON_GRAFANA_URL", "PSMON_VERSION"):
        monkeypatch.setenv(name, "x")
    code, err = run_main(monkeypatch, capsys, "rules", "--out", str(tmp_path))
    assert code == 0, err
    assert err.splitlines() == [
        f"psmon: warning: {name} is not a psmon setting and is ignored; did you mean PSMON_CLICKHOUSE_DSN? "
        "(see docs/configuration.md)"
        for name in ("PSMON_CLICKHOUSE_DNS", "PSMON_CLICKHOUS_DSN")
    ]


def test_every_variable_psmon_reads_is_known() -> None:
    """The warning's list of names covers every `PSMON_*` name the code mentions."""
    from psmon.cli.options import known_env_vars

    source = Path(__file__).parents[3] / "psmon"
    mentioned = {
        name
        for path in source.rglob("*.py")
        for name in re.findall(r"\bPSMON_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8"))
    }
    assert mentioned, "no PSMON_ names found"
    unknown = {n for n in mentioned if n not in known_env_vars() and not n.startswith("PSMON_GRAFANA_")}
    assert unknown == set()


# -- 6. an invalid value names the variable or the flag it came from ----------------------------
def test_an_invalid_variable_is_named_with_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PSMON_METRICS_PORT", "abc")
    code, err = run_main(monkeypatch, capsys, "topics")
    assert code == 1
    assert _one_line(err) == "psmon: invalid PSMON_METRICS_PORT='abc': Input should be a valid integer"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["topics", "--partitions", "0"], "psmon: invalid --partitions=0: Input should be greater than or equal to 1"),
        (
            ["alerts", "listen", "--port", "0"],
            "psmon: invalid --port=0: Input should be greater than or equal to 1",
        ),
        (
            ["query", "--clickhouse", "foo://bar", "rank", "--metric", "on_time", "--period", "2026-08"],
            "psmon: invalid --clickhouse='foo://bar': use chdb:///ABS/DIR (embedded), http://HOST:8123 or "
            "https://HOST:8443 (a server), or leave it empty (embedded, in <data_dir>/clickhouse)",
        ),
    ],
)
def test_an_invalid_flag_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    monkeypatch.delenv("PSMON_CLICKHOUSE_DSN", raising=False)
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 1
    assert _one_line(err) == line


# -- 7. psmon up checks its configuration before it starts anything -----------------------------
class _NoBroker:
    """Stands in for the local broker: starting it is what the tests below must not see."""

    started: ClassVar[list[str]] = []

    def __init__(self, **_: object) -> None:
        pass

    def start(self) -> "_NoBroker":
        _NoBroker.started.append("broker")
        raise AssertionError("the broker was started before the configuration was checked")


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"PSMON_THRESHOLDS_FILE": "{tmp}/missing.yaml"}, [], "psmon: cannot read thresholds file {tmp}/missing.yaml"),
        ({}, ["--drop", "99:online_submission:0.3"], "psmon: --drop 99:online_submission:0.3: unknown province '99'"),
    ],
)
def test_up_checks_its_configuration_before_starting_the_broker(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setattr("psmon.local.runtime.LocalBroker", _NoBroker)
    monkeypatch.setattr(_NoBroker, "started", [])
    monkeypatch.delenv("PSMON_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("PSMON_THRESHOLDS_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{tmp}", str(tmp_path)))
    code, err = run_main(
        monkeypatch, capsys, "up", "--no-view", "--metrics-port", "0", "--data-dir", str(tmp_path), *args
    )
    assert code == 1
    assert _one_line(err).startswith(message.replace("{tmp}", str(tmp_path)))
    assert _NoBroker.started == []
