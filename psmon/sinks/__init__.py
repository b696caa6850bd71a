"""Stage 3 and exporters: the ClickHouse sink service and writer, and the Prometheus metrics."""
