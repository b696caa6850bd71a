"""Topic administration: create psmon's topics before any stage starts.

Topics are created explicitly (kafka-python's admin client) rather than left to broker
auto-creation, so partition counts are what the settings say: `psmon.events` and `psmon.valid`
must have the same count because the Faust worker co-partitions them. Creating a topic that
exists is not an error; a topic that exists with another partition count is logged, since
psmon cannot repartition it (and the local broker cannot add partitions).
"""

import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from psmon.errors import BrokerError
from psmon.settings import Settings

__all__ = ["ensure_topics", "wait_for_broker"]

log = logging.getLogger(__name__)


def wait_for_broker(bootstrap: str, *, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client once the broker answers, or BrokerError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="psmon-admin", request_timeout_ms=5000)
        except KafkaError as exc:
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"Kafka broker at {bootstrap} did not answer within {timeout_s:.0f} s ({last}). "
                      "Is it running? Set --kafka / PSMON_KAFKA_BOOTSTRAP.")  # fmt: skip


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create missing psmon topics; returns the names created."""
    admin = wait_for_broker(settings.kafka_bootstrap, timeout_s=timeout_s)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in settings.all_topics if t not in existing]
        created = []
        for name in wanted:
            try:
                # Stage 2 rebuilds from psmon.valid: it must outlive the longest live window.
                configs = (
                    {"retention.ms": str(settings.valid_retention_days * 86_400_000)}
                    if name == settings.topic_valid
                    else {}
                )
                admin.create_topics([NewTopic(name, settings.topic_partitions, 1, topic_configs=configs)])
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
