"""Analysts' history: named questions, the 766 index over periods, reports, replay and dead letters.

Everything here reads or writes through the ClickHouse schema of `psmon/sinks/clickhouse`
(version 2 adds the rollups and views these modules query) and is driven by `psmon/cli/history.py`.
One job per module: `periods` (calendar periods), `queries` (named questions and read-only SQL),
`tables` (result rendering), `report` (HTML + PNG), `sources` (event files), `validate_file`
(checking a file against the contract), `replay` (backfill), `publish` (Kafka producer),
`dead_letters` (list, explain, re-drive). The 766 index rules are part of the contract's
vocabulary and live in `psmon/schemas/index766.py`.
"""
