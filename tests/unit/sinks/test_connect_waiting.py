"""`psmon migrate` waits, bounded, for a ClickHouse server that cannot be reached yet (Compose
starts it beside the server), and fails at once on anything the server answers."""

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from typer.testing import CliRunner

from psmon.cli.main import app
from psmon.errors import ClickHouseError
from psmon.sinks.clickhouse.client import connect_waiting


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused, as while a server starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class _Refuses(BaseHTTPRequestHandler):
    """Answers every request as ClickHouse answers a wrong password."""

    def _answer(self) -> None:
        body = b"Code: 516. DB::Exception: psmon_writer: Authentication failed. (AUTHENTICATION_FAILED)\n"
        self.send_response(403)
        self.send_header("X-ClickHouse-Exception-Code", "516")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_server_is_retried_until_the_wait_ends(closed_port: int) -> None:
    dsn = f"http://psmon_writer:secret@127.0.0.1:{closed_port}"
    with pytest.raises(ClickHouseError) as caught:
        connect_waiting(dsn, wait_s=1.0, retry_every_s=0.2)
    message = str(caught.value)
    assert f"ClickHouse at http://psmon_writer:***@127.0.0.1:{closed_port} could not be reached in 1 s" in message
    attempts = int(message.split(" attempts")[0].rsplit("(", 1)[1])
    assert attempts >= 2  # it tried again, and stopped: bounded
    assert "secret" not in message


def test_a_server_that_answers_is_not_waited_for(refusing_server: int) -> None:
    dsn = f"http://psmon_writer:wrong@127.0.0.1:{refusing_server}"
    with pytest.raises(ClickHouseError) as caught:
        connect_waiting(dsn, wait_s=30.0, retry_every_s=0.2)
    assert "could not be reached" not in str(caught.value)  # the first answer is the error
    assert "516" in str(caught.value) or "Authentication" in str(caught.value)


def test_migrate_waits_with_its_setting_and_says_so(closed_port: int) -> None:
    result = CliRunner().invoke(
        app,
        ["migrate", "--clickhouse", f"http://psmon_writer:secret@127.0.0.1:{closed_port}"],
        env={"PSMON_CLICKHOUSE_WAIT_S": "1"},
    )
    assert result.exit_code != 0
    text = result.output + str(result.exception or "")
    assert "could not be reached in 1 s" in text and "PSMON_CLICKHOUSE_WAIT_S" in text
