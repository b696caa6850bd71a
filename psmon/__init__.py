"""psmon: a live monitor of Vietnam's online public services.

Portal events flow through Kafka into Faust agents (validation, rolling rates per province),
then into ClickHouse (history) and Prometheus (live metrics and alerts). See README.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
