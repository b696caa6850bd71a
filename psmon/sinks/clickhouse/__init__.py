"""ClickHouse: client (chDB or HTTP), versioned schema, batched idempotent writer."""
