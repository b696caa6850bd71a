"""Kafka authentication: one configuration, rendered for aiokafka, Faust and kafka-python."""

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import certifi
import pytest
from aiokafka import AIOKafkaConsumer
from faust.auth import SASLCredentials
from pydantic import ValidationError

from psmon.kafka import FETCH_MAX_BYTES, PLAINTEXT, KafkaAuth, group_consumer
from psmon.settings import Settings
from psmon.streams.app import create_app

SASL = {
    "kafka_security_protocol": "SASL_PLAINTEXT",
    "kafka_sasl_mechanism": "SCRAM-SHA-256",
    "kafka_sasl_username": "psmon-worker",
    "kafka_sasl_password": "s3cret-pw",
}


async def _built(make: Callable[[], AIOKafkaConsumer]) -> AIOKafkaConsumer:
    """A consumer built (never started) inside a loop, as aiokafka requires."""
    return make()


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    auth = KafkaAuth.from_settings(Settings())
    assert auth == PLAINTEXT
    assert auth.kafka_python() == auth.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert auth.faust() is None


def test_sasl_reaches_every_client_library(tmp_path: Path) -> None:
    s = Settings(**SASL, data_dir=tmp_path)  # type: ignore[arg-type]
    auth = KafkaAuth.from_settings(s)
    expected = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "psmon-worker",
        "sasl_plain_password": "s3cret-pw",
    }
    assert auth.kafka_python() == expected
    assert auth.aiokafka() == expected
    # aiokafka checks the combination when a client is built (no broker needed for that)
    client = asyncio.run(_built(lambda: group_consumer(s, "rates")))._client
    assert (client._sasl_mechanism, client._security_protocol) == ("SCRAM-SHA-256", "SASL_PLAINTEXT")
    # Faust (the worker's runtime) gets the same credentials as its broker_credentials
    app = create_app(s)
    creds = app.conf.broker_credentials
    assert isinstance(creds, SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("psmon-worker", "s3cret-pw", "SCRAM-SHA-256")
    assert creds.protocol.value == "SASL_PLAINTEXT"


def test_sasl_over_tls_uses_the_ca_file_everywhere(tmp_path: Path) -> None:
    ca = Path(certifi.where())  # any PEM bundle will do; certifi comes with clickhouse-connect
    auth = KafkaAuth.from_settings(Settings(**{**SASL, "kafka_security_protocol": "SASL_SSL"}, kafka_ssl_cafile=ca))  # type: ignore[arg-type]
    assert auth.kafka_python()["ssl_cafile"] == str(ca)
    assert isinstance(auth.aiokafka()["ssl_context"], ssl.SSLContext)
    creds = auth.faust()
    assert isinstance(creds, SASLCredentials) and creds.protocol.value == "SASL_SSL"
    client = asyncio.run(_built(lambda: AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", **auth.aiokafka())))._client
    assert client._security_protocol == "SASL_SSL"  # a combination aiokafka accepts


def test_the_password_is_never_in_a_repr_or_the_settings_dump() -> None:
    s = Settings(**SASL)  # type: ignore[arg-type]
    assert "s3cret-pw" not in repr(KafkaAuth.from_settings(s))
    assert "s3cret-pw" not in repr(s) and "s3cret-pw" not in str(s.model_dump())


def test_sasl_without_credentials_is_refused_naming_them() -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_username and kafka_sasl_password"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="psmon")


def test_group_consumers_fetch_at_most_a_mebibyte_unless_told_otherwise(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    default = asyncio.run(_built(lambda: group_consumer(s, "rates")))
    wider = asyncio.run(_built(lambda: group_consumer(s, "rates", fetch_max_bytes=4 * FETCH_MAX_BYTES)))
    assert default._fetch_max_bytes == FETCH_MAX_BYTES == 1024 * 1024
    assert wider._fetch_max_bytes == 4 * FETCH_MAX_BYTES
