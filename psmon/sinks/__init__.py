"""Stage 3: the ClickHouse sink service, its idempotent writer, the schema migrations and rollups.

The only writer of ClickHouse. The Prometheus exporter that every stage shares is `psmon.metrics`,
below the stages, not here.
"""
