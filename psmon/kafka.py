"""Kafka consumers of psmon's own groups, built from `Settings` in one place.

Stage 2 (`streams/rates_service.py`) and stage 3 (`sinks/service.py`) each consume with aiokafka
directly, in a group of their own, and commit offsets themselves (or never): the broker, the
group and client id, auto-commit off, "earliest" for a new group, and the group-membership
timings all come from the settings the same way; only the poll sizes and waits differ per caller.

It sits at the package root, beside `settings.py`, because it belongs to neither stage and both
import it downward (streams may not import sinks; neither should own what the other needs).
"""

from typing import Any

from aiokafka import AIOKafkaConsumer

from psmon.settings import Settings

__all__ = ["group_consumer"]


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
        **overrides,
    )
