"""Kafka clients' connection settings and psmon's group consumers, built from `Settings` in one place.

Stage 1 (`streams/validate_service.py`), stage 2 (`streams/rates_service.py`) and stage 3
(`sinks/service.py`) each consume with aiokafka directly, in a group of their own, and commit
offsets themselves (or never): the broker, the group and client id, auto-commit off,
"earliest" for a new group, and the group-membership timings all come from the settings the
same way; only the poll sizes and waits differ per caller. A fetch is at most `FETCH_MAX_BYTES`
(1 MiB, aiokafka's default is 50 MiB): the local broker filled a fetch to ~5 MiB per
partition, so a worker reading 8 partitions of a long backlog held ~40 MiB of responses at a
time and its RSS swung by tens of MiB as they came and went; at 1 MiB its RSS over a 2 M-event
run grew smoothly with its state alone, at the same rate (docs/performance.md, "Worker RSS at
4x the events").

Authentication (`KafkaAuth`): psmon talks to Kafka through three client libraries (aiokafka for
stages 1 to 3, Faust for the worker's runtime, kafka-python for the admin client, the simulator
and replay), and each spells SASL/TLS differently. `KafkaAuth` holds the one configuration
(security protocol, SASL mechanism and credentials, CA file) and renders it for each, so a broker
with SASL/SCRAM and ACLs (docs/deployment.md) is reached by every process the same way. The
password is a `SecretStr` until the moment a client is built, so it never reaches a log line.

It sits at the package root, beside `settings.py`, because it belongs to neither stage and both
import it downward (streams may not import sinks; neither should own what the other needs).
"""

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from psmon.settings import KafkaSaslMechanism, KafkaSecurityProtocol, Settings

__all__ = ["FETCH_MAX_BYTES", "PLAINTEXT", "KafkaAuth", "group_consumer"]


@dataclass(frozen=True)
class KafkaAuth:
    """How every psmon Kafka client authenticates (see module docstring); default: plaintext."""

    protocol: KafkaSecurityProtocol = "PLAINTEXT"
    mechanism: KafkaSaslMechanism = "SCRAM-SHA-512"
    username: str = ""
    password: str = ""
    cafile: Path | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> "KafkaAuth":
        return cls(
            protocol=s.kafka_security_protocol,
            mechanism=s.kafka_sasl_mechanism,
            username=s.kafka_sasl_username,
            password=s.kafka_sasl_password.get_secret_value(),
            cafile=s.kafka_ssl_cafile,
        )

    def __repr__(self) -> str:  # the password stays out of reprs and logs
        return f"KafkaAuth(protocol={self.protocol!r}, mechanism={self.mechanism!r}, username={self.username!r})"

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)

    def _common(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            kw |= {
                "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return kw

    def kafka_python(self) -> dict[str, Any]:
        """Arguments of kafka-python's KafkaProducer/KafkaAdminClient (TLS: a CA file)."""
        return self._common() | ({"ssl_cafile": str(self.cafile)} if self.tls and self.cafile else {})

    def aiokafka(self) -> dict[str, Any]:
        """Arguments of aiokafka's producers and consumers (TLS: an SSL context)."""
        return self._common() | ({"ssl_context": self.ssl_context()} if self.tls else {})

    def faust(self) -> CredentialsT | None:
        """`broker_credentials` of the Faust app (None: plaintext)."""
        if self.sasl:
            return SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.tls:
            return SSLCredentials(self.ssl_context())
        return None


#: no authentication, no TLS: the local broker, and the default of every client
PLAINTEXT: Final = KafkaAuth()


#: Bytes per fetch response (see the module docstring).
FETCH_MAX_BYTES: Final = 1024 * 1024


def group_consumer(settings: Settings, group: str, **overrides: Any) -> AIOKafkaConsumer:
    """An unstarted consumer in group `<app_id>-<group>` (also its client id), without
    auto-commit, starting a new group at the earliest offset; `overrides` are further
    AIOKafkaConsumer arguments (poll sizes, fetch waits)."""
    name = f"{settings.app_id}-{group}"
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=name,
        client_id=name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        **KafkaAuth.from_settings(settings).aiokafka(),
        **({"fetch_max_bytes": FETCH_MAX_BYTES} | overrides),
    )
