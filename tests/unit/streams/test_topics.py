"""How the broker probe reads a failed connection: a refusal ends the wait early, silence does not."""

import socket

import pytest

from psmon.streams import topics


def _failing(exc: OSError):  # type: ignore[no-untyped-def]
    def connect(*_args: object, **_kwargs: object) -> socket.socket:
        raise exc

    return connect


def test_an_unknown_host_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "create_connection", _failing(socket.gaierror(socket.EAI_NONAME, "Name unknown")))
    assert topics._probe("no-such-host.invalid:9092") == (False, "unknown host 'no-such-host.invalid'")


def test_dns_that_does_not_answer_yet_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # EAI_AGAIN: a resolver that will answer later (a restarting container's name), not a refusal.
    monkeypatch.setattr(socket, "create_connection", _failing(socket.gaierror(socket.EAI_AGAIN, "Try again")))
    assert topics._probe("kafka:9092") == (False, None)
