"""The dead-letter fingerprint key comes from the settings, set once where a command builds them."""

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from psmon.cli.options import settings
from psmon.schemas.digest import BUILTIN_KEY, payload_digest, set_key
from psmon.streams.topics import new_topic

PAYLOAD = b'"001099012345"'


def _digest_of_a_command(env: dict[str, str]) -> tuple[int, str]:
    app = typer.Typer()

    @app.command()
    def show(ctx: typer.Context) -> None:
        settings(ctx)
        typer.echo(payload_digest(PAYLOAD))

    try:
        result = CliRunner().invoke(app, [], env=env)
    finally:
        set_key(b"")  # the process-wide key goes back to the built-in one for the other tests
    return result.exit_code, result.output.strip()


def test_the_key_or_key_file_of_the_settings_keys_the_digests(tmp_path: Path) -> None:
    set_key(b"")
    builtin = payload_digest(PAYLOAD)
    assert _digest_of_a_command({}) == (0, builtin)
    set_key(b"secret-1")
    expected = payload_digest(PAYLOAD)
    set_key(b"")
    assert _digest_of_a_command({"PSMON_PAYLOAD_HASH_KEY": "secret-1"}) == (0, expected)
    key_file = tmp_path / "key"
    key_file.write_bytes(b"secret-1\n")
    assert _digest_of_a_command({"PSMON_PAYLOAD_HASH_KEY_FILE": str(key_file)}) == (0, expected)
    assert expected != builtin and payload_digest(PAYLOAD) == builtin and BUILTIN_KEY


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PSMON_PAYLOAD_HASH_KEY": "a", "PSMON_PAYLOAD_HASH_KEY_FILE": "/x"}, "not both"),
        ({"PSMON_PAYLOAD_HASH_KEY_FILE": "/nonexistent/key"}, "cannot read"),
    ],
)
def test_a_bad_key_setting_stops_the_command(env: dict[str, str], message: str) -> None:
    code, output = _digest_of_a_command(env)
    assert code == 1 and message in output


def test_the_events_topic_has_its_own_short_retention() -> None:
    from psmon.settings import Settings

    s = Settings(events_retention_days=3)
    assert new_topic(s, s.topic_events).topic_configs["retention.ms"] == str(3 * 86_400_000)
    assert Settings().events_retention_days == 7  # documented default
