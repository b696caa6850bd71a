"""The demo's procedure catalog: `psmon up` loads the simulator's catalog before anything runs.

The simulator files its dossiers against a catalog per province (`simulator.catalog`); without
that catalog the catalog metrics (docs/index766.md items 3.1, 3.2, 3.5a, 3.5b) would have no
denominator and the demo would show none of them. So `psmon up`, when it runs the simulator,
loads the same catalog the way `psmon catalog load` does: stored as new versions in ClickHouse
through `history.catalog.CatalogStore` (a second start writes nothing: the versions are equal)
and the newest version of every key published to the compacted topic, where the worker's
`CatalogService` reads it. It runs before the worker starts, in the same process as the sink
(embedded chDB allows one process per directory, not one client), so the catalog is on the topic
before the first event and the shares are there from the start. The price is a start-up delay:
storing and publishing ~34k rows takes about 6 s here (16 s before `history.publish` moved from
kafka-python's producer to aiokafka: 10 s were the producer), and the worker reads them in a few
seconds; run in a thread beside the pipeline instead, it took 60 s on the shared CI machine and
the first minute of the demo had no shares.
"""

import logging
from dataclasses import dataclass

from psmon.history.catalog import CatalogStore, publish_entries
from psmon.history.publish import KafkaPublisher
from psmon.kafka import KafkaAuth
from psmon.settings import Settings
from psmon.simulator.catalog import entries, simulated_catalog
from psmon.sinks.clickhouse.client import connect
from psmon.sinks.clickhouse.schema import migrate_configured

__all__ = ["DemoCatalog", "load_demo_catalog"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoCatalog:
    procedures: int
    provinces: int
    written: int  # versions written to ClickHouse (0 when the same catalog is stored already)
    published: int


def load_demo_catalog(settings: Settings, *, seed: int = 0) -> DemoCatalog:
    """Store and publish the simulator's catalog for `seed` (see module docstring)."""
    catalog = simulated_catalog(seed)
    rows = list(entries(catalog))
    client = connect(settings.resolved_clickhouse_dsn)
    try:
        migrate_configured(client, settings)
        store = CatalogStore(client, database=settings.clickhouse_database)
        written = store.write(store.plan(rows))
    finally:
        client.close()
    publisher = KafkaPublisher(settings.kafka_bootstrap, settings.topic_catalog, auth=KafkaAuth.from_settings(settings))
    try:
        published = publish_entries(rows, publisher.send)
        publisher.flush()
    finally:
        publisher.close()
    log.info("demo catalog: %d procedures of %d provinces, %d versions written", len(rows), len(catalog), written)
    return DemoCatalog(len(rows), len(catalog), written, published)
