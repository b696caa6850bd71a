"""The topics psmon creates carry the replication settings on a real broker: the broker accepts
`min.insync.replicas` from the settings, and a second `ensure_topics` finds them all."""

from kafka import KafkaAdminClient

from psmon.settings import Settings
from psmon.streams.topics import ensure_topics


def test_topics_are_created_with_the_settings_replication(kafka_bootstrap: str, unique: str) -> None:
    # one broker: replication 1; min.insync.replicas is sent explicitly and must be accepted
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=unique,
        topic_partitions=2,
        topic_replication_factor=1,
        topic_min_insync_replicas=1,
    )
    assert sorted(ensure_topics(settings)) == sorted(settings.all_topics)
    assert ensure_topics(settings) == []  # they exist now
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="psmon-test")
    try:
        described = {name: admin.describe_topics([name])[0] for name in settings.all_topics}
    finally:
        admin.close()
    for name in settings.all_topics:
        partitions = described[name]["partitions"]
        assert len(partitions) == 2
        assert all(len(p["replica_nodes"]) == 1 for p in partitions), partitions
