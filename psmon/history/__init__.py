"""Analysts' history: named questions, the 766 index, reports, replay and dead letters.

Everything here reads or writes through the ClickHouse schema of `psmon/sinks/clickhouse`
(version 2 adds the rollups and views these modules query) and is driven by `psmon/cli/history.py`.
One job per module: `periods` (calendar periods), `queries` (named questions), `index766` (the
index rules), `tables` (result rendering), `report` (HTML + PNG), `sources` (event files),
`replay` (backfill), `publish` (Kafka producer), `dead_letters` (list, explain, re-drive).
"""
