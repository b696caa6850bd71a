"""Topic replication comes from the settings wherever psmon creates topics (the admin client of
`ensure_topics` and the Faust app), never a hard-coded 1."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from psmon.settings import Settings
from psmon.streams.app import create_app
from psmon.streams.topics import new_topic


def test_every_topic_is_created_with_the_configured_replication(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSMON_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("PSMON_TOPIC_MIN_INSYNC_REPLICAS", "2")
    s = Settings()
    for name in s.all_topics:
        topic = new_topic(s, name)
        assert (topic.name, topic.replication_factor, topic.num_partitions) == (name, 3, s.topic_partitions)
        assert topic.topic_configs["min.insync.replicas"] == "2"
    # each topic keeps its own retention beside the replication settings
    assert new_topic(s, s.topic_valid).topic_configs["retention.ms"] == str(s.valid_retention_days * 86_400_000)
    assert new_topic(s, s.topic_events).topic_configs["retention.ms"] == str(s.events_retention_days * 86_400_000)
    # the catalog's topic keeps the newest version per key (province/procedure) for ever
    assert new_topic(s, s.topic_catalog).topic_configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in new_topic(s, s.topic_catalog).topic_configs


def test_the_faust_app_declares_the_configured_replication(tmp_path: Path) -> None:
    s = Settings(topic_replication_factor=3, topic_min_insync_replicas=2, data_dir=tmp_path)
    app = create_app(s)
    assert app.conf.topic_replication_factor == 3


def test_more_insync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not exceed topic_replication_factor"):
        Settings(topic_replication_factor=1, topic_min_insync_replicas=2)
    assert Settings().topic_replication_factor == 1  # a single broker (psmon up, the tests)
