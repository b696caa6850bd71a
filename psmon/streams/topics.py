"""Topic administration: create psmon's topics before any stage starts.

Topics are created explicitly (kafka-python's admin client) rather than left to broker
auto-creation, so partition counts are what the settings say: `psmon.events` and `psmon.valid`
must have the same count because the Faust worker co-partitions them. Creating a topic that
exists is not an error; a topic that exists with another partition count is logged, since
psmon cannot repartition it (and the local broker cannot add partitions).
"""

import errno
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from psmon.errors import BrokerError
from psmon.kafka import PLAINTEXT, KafkaAuth
from psmon.settings import Settings

__all__ = ["ensure_topics", "new_topic", "wait_for_broker"]

log = logging.getLogger(__name__)


def wait_for_broker(
    bootstrap: str, *, auth: KafkaAuth = PLAINTEXT, timeout_s: float = 30.0, refused_for_s: float = 2.0
) -> KafkaAdminClient:
    """An admin client once the broker answers, or BrokerError.

    A broker that does not answer (a start-up, a firewall) gets `timeout_s`; one that refuses
    the connection, or a host name that does not resolve, gets `refused_for_s` (a broker being
    restarted), not the whole timeout: nothing listens there, waiting would only hide the
    mistake. kafka-python's own logs of the failed attempts stay quiet meanwhile; the error says
    it all.
    """
    deadline = time.monotonic() + timeout_s
    refused_since: float | None = None
    last: object = None
    with _quiet_kafka_logs():
        while True:
            reachable, refusal = _probe(bootstrap)
            if reachable:
                refused_since = None
                try:
                    return KafkaAdminClient(
                        bootstrap_servers=bootstrap,
                        client_id="psmon-admin",
                        request_timeout_ms=5000,
                        **auth.kafka_python(),
                    )
                except KafkaError as exc:
                    last = exc
            elif refusal is not None:
                now = time.monotonic()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since >= refused_for_s:
                    raise BrokerError(
                        f"cannot reach Kafka at {bootstrap}: {refusal}. "
                        "Is a broker running there? Set --kafka / PSMON_KAFKA_BOOTSTRAP."
                    )
            else:
                last = "no answer"
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"Kafka broker at {bootstrap} did not answer within {timeout_s:.0f} s ({last}). "
                    "Is it running? Set --kafka / PSMON_KAFKA_BOOTSTRAP."
                )
            time.sleep(0.2)


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each server of a `host:port[,host:port]` list (port 9092 when left out)."""
    out = []
    for server in filter(None, (s.strip() for s in bootstrap.split(","))):
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit() or (host.startswith("[") != host.endswith("]")):
            host, port = server, "9092"
        out.append((host.strip("[]"), int(port)))
    return out


def _probe(bootstrap: str) -> tuple[bool, str | None]:
    """(whether one bootstrap server accepts a TCP connection, why all refused it if all did).

    The reason is None when some server did not answer at all: only the timeout decides then.
    """
    addresses = _addresses(bootstrap)
    refusals, silent = [], False
    for host, port in addresses:
        where = f"{host}:{port}: " if len(addresses) > 1 else ""
        try:
            socket.create_connection((host, port), timeout=2.0).close()
            return True, None
        except ConnectionRefusedError:
            refusals.append(f"{where}connection refused")
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:  # DNS not answering yet (a restarting container): wait
                silent = True
            else:
                refusals.append(f"{where}unknown host {host!r}")
        except OSError as exc:  # a timeout, or no route to the host
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                refusals.append(f"{where}{exc.strerror}")
            else:
                silent = True
    if silent:
        return False, None
    return False, "; ".join(refusals) or "no bootstrap server given"


@contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs each failed connection attempt (dozens of lines a second); mute it."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def new_topic(settings: Settings, name: str) -> NewTopic:
    """The definition psmon creates `name` with: partitions, replication and min.insync.replicas
    from the settings (a production cluster keeps 3 replicas, 2 in sync, so one broker can fail
    without losing an acknowledged write); psmon.valid keeps its long retention, psmon.events a
    short one, and the procedure catalog's topic is compacted (its newest version per key, for
    ever: a worker reads the whole catalog from it)."""
    configs = {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
    if name == settings.topic_valid:
        # Stage 2 rebuilds from psmon.valid: it must outlive the longest live window.
        configs["retention.ms"] = str(settings.valid_retention_days * 86_400_000)
    elif name == settings.topic_events:
        # The portals' raw messages, rejected ones with whatever personal data they carried:
        # kept only as long as a stage-1 outage or a re-read may need, not the broker's default.
        configs["retention.ms"] = str(settings.events_retention_days * 86_400_000)
    elif name == settings.topic_catalog:
        configs["cleanup.policy"] = "compact"
    return NewTopic(name, settings.topic_partitions, settings.topic_replication_factor, topic_configs=configs)


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create missing psmon topics; returns the names created."""
    admin = wait_for_broker(settings.kafka_bootstrap, auth=KafkaAuth.from_settings(settings), timeout_s=timeout_s)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in settings.all_topics if t not in existing]
        created = []
        for name in wanted:
            try:
                admin.create_topics([new_topic(settings, name)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        for name in set(settings.all_topics) & existing:
            parts = admin.describe_topics([name])[0].get("partitions") or []
            if len(parts) != settings.topic_partitions:
                log.warning(
                    "topic %s has %d partitions, settings say %d",
                    name,
                    len(parts),
                    settings.topic_partitions,
                )
        return created
    finally:
        admin.close()
