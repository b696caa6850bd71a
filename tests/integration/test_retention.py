"""Retention of what psmon keeps about rejected input: dead letters and alerts expire on real chDB,
and an existing table gets the TTL the settings give (ALTER ... MODIFY TTL), 0 removing it."""

from psmon.settings import Settings
from psmon.sinks.clickhouse import schema
from psmon.sinks.clickhouse.client import Client, connect


def _ddl(client: Client, db: str, table: str) -> str:
    return str(client.query(f"SHOW CREATE TABLE {db}.{table}").result_rows[0][0])


def test_dead_letters_and_alerts_get_the_ttl_of_the_settings(clickhouse_dsn: str, unique: str) -> None:
    client = connect(clickhouse_dsn)
    try:
        schema.migrate(client, unique)  # tables exist first: the TTL must reach existing tables
        assert "TTL" not in _ddl(client, unique, "dead_letters")
        s = Settings()
        assert (s.clickhouse_dead_letters_ttl_days, s.clickhouse_alerts_ttl_days) == (90, 400)  # documented
        schema.migrate(
            client,
            unique,
            dead_letters_ttl_days=s.clickhouse_dead_letters_ttl_days,
            alerts_ttl_days=s.clickhouse_alerts_ttl_days,
        )
        assert "TTL toDateTime(received_at) + toIntervalDay(90)" in _ddl(client, unique, "dead_letters")
        assert "TTL toDateTime(starts_at) + toIntervalDay(400)" in _ddl(client, unique, "alerts")
        schema.migrate(client, unique, dead_letters_ttl_days=90, alerts_ttl_days=400)  # again: unchanged
        assert "toIntervalDay(90)" in _ddl(client, unique, "dead_letters")
        schema.migrate(client, unique, dead_letters_ttl_days=7, alerts_ttl_days=0)
        assert "toIntervalDay(7)" in _ddl(client, unique, "dead_letters")
        assert "TTL" not in _ddl(client, unique, "alerts")
        # An expired dead letter goes away at the next TTL merge.
        client.command(
            f"INSERT INTO {unique}.dead_letters (dead_letter_id, reason, detail, redacted, payload_sha256, "
            "payload_bytes, src_partition, src_offset, received_at) VALUES "
            "('old', 'personal_data', '', '', '', 1, 0, 0, now64(3) - INTERVAL 8 DAY), "
            "('new', 'personal_data', '', '', '', 1, 0, 1, now64(3))"
        )
        client.command(f"OPTIMIZE TABLE {unique}.dead_letters FINAL")
        rows = client.query(f"SELECT dead_letter_id FROM {unique}.dead_letters").result_rows
        assert rows == [("new",)]
    finally:
        client.close()
