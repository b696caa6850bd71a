"""One typed settings object for every psmon process.

Values come from, in rising priority: defaults here, `PSMON_*` environment variables, and CLI
flags (the CLI builds a `Settings` with explicit overrides). Only the CLI reads the environment;
library code receives a `Settings` (or plain keyword arguments) and never looks at `os.environ`.
Every duration and size carries its unit in its name.
"""

import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSaslMechanism", "KafkaSecurityProtocol", "Lang", "LogFormat", "LogLevel", "Settings", "locale_lang"]

LogLevel = Literal["debug", "info", "warning", "error"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogFormat = Literal["text", "json"]

#: Language of what people read (report, live table); see psmon.schemas.labels.
Lang = Literal["vi", "en"]


def locale_lang() -> Lang:
    """The language of the user's locale (the first of LC_ALL, LC_MESSAGES, LANG that is set):
    English for an `en*` locale, else Vietnamese, the operations teams' language."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "en" if value.lower().startswith("en") else "vi"
    return "vi"


class Settings(BaseSettings):
    """Configuration of psmon; see docs/configuration.md for the table of variables."""

    model_config = SettingsConfigDict(env_prefix="PSMON_", extra="forbid", frozen=True)

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", description="how every psmon client talks to Kafka; SASL_* needs a user and password"
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field("SCRAM-SHA-512", description="SASL mechanism")
    kafka_sasl_username: str = Field("", description="SASL user (SASL_PLAINTEXT / SASL_SSL)")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (never printed)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for SSL / SASL_SSL; empty = system CAs")
    topic_prefix: str = Field("psmon", description="prefix of every psmon topic")
    topic_catalog: str = Field(
        "psmon.catalog",
        description="compacted topic of the procedure catalog (keyed province/procedure); "
        "unset = <topic_prefix>.catalog",
    )
    topic_partitions: int = Field(8, ge=1, le=1024, description="partitions per psmon topic")
    topic_replication_factor: int = Field(
        1, ge=1, description="replicas of each psmon topic (3 on a production cluster; 1 on a single broker)"
    )
    topic_min_insync_replicas: int = Field(
        1, ge=1, description="min.insync.replicas of each psmon topic: replicas that must have a write (acks=all)"
    )
    valid_retention_days: int = Field(
        400, ge=1, description="retention of <prefix>.valid, from which stage 2 rebuilds its windows (ytd needs a year)"
    )
    events_retention_days: int = Field(
        7, ge=1, description="retention of <prefix>.events, the portals' raw messages (stage 1 reads them at once)"
    )
    app_id: str = Field("psmon", description="Faust app id; consumer group of the worker")
    session_timeout_s: float = Field(10.0, gt=0, description="Kafka consumer session timeout")
    heartbeat_interval_s: float = Field(1.0, gt=0, description="Kafka heartbeat interval")
    commit_interval_s: float = Field(
        1.0, gt=0, description="commit interval of Faust's own consumer (stage 1 commits after every batch)"
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        description="worker: longest a fetch waits for new data (bounds the latency per hop on brokers, "
        "the local one included, that do not answer a waiting fetch as soon as data arrives)",
    )
    validate_batch_max_events: int = Field(2000, ge=1, description="stage 1: events validated per batch")

    # ClickHouse
    clickhouse_dsn: str = Field(
        "",
        description="chdb:///<abs dir> (embedded) or http(s)://user:pass@host:8123; "
        "empty = embedded chDB in <data_dir>/clickhouse",
    )
    clickhouse_database: str = Field("psmon", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_events_ttl_days: int = Field(
        0, ge=0, description="expire raw events this many days after event time (rollups keep history); 0 = never"
    )
    clickhouse_dead_letters_ttl_days: int = Field(
        90, ge=0, description="expire dead letters this many days after they were received; 0 = never"
    )
    clickhouse_alerts_ttl_days: int = Field(
        400, ge=0, description="expire alert history this many days after the alert started; 0 = never"
    )

    # Dead-letter fingerprints (HMAC-SHA-256 of rejected payloads); one key per installation
    payload_hash_key: SecretStr = Field(
        SecretStr(""), description="key of the payload fingerprints; empty = the built-in key (not secret)"
    )
    payload_hash_key_file: Path | None = Field(
        None, description="file holding the payload fingerprint key (instead of payload_hash_key)"
    )
    clickhouse_wait_s: float = Field(
        30.0,
        ge=0,
        description="migrate: keep retrying a ClickHouse server that cannot be reached yet (still starting) "
        "this long; a refused login fails at once; 0 = one attempt",
    )

    # Stage 2: live rates
    rates_refresh_interval_s: float = Field(1.0, gt=0, description="gauge refresh period")
    rates_snapshot_interval_s: float = Field(10.0, gt=0, description="period of rate snapshots sent to ClickHouse")
    dedup_max_ids: int = Field(
        1_000_000, ge=1000, description="bound on remembered event_ids per worker, all partitions (covers 24 h)"
    )
    malloc_mmap_threshold_kib: int = Field(
        128,
        ge=0,
        le=32 * 1024,
        description="worker, sink and psmon up: glibc's fixed mmap threshold, so large buffers freed "
        "go back to the system instead of fragmenting the heap; 0 = glibc's adjusting default",
    )
    checkpoint_dir: Path | None = Field(
        None,
        description="stage 2's per-partition checkpoints (recovery replays only what follows them); "
        "share it between workers (a shared volume); empty = <data_dir>/checkpoints",
    )
    checkpoint_interval_s: float = Field(10.0, gt=0, description="period of stage 2's checkpoints")

    # Stage 3: sink
    sink_batch_max_rows: int = Field(5000, ge=1, description="rows per ClickHouse insert")
    sink_flush_interval_ms: int = Field(500, ge=1, description="max wait to fill a batch")
    sink_retry_max_backoff_s: float = Field(30.0, gt=0, description="cap of retry backoff")

    # Alerting (psmon rules, psmon alerts listen, and the servers psmon up starts)
    thresholds_file: Path | None = Field(None, description="thresholds.yaml; empty = the one shipped with psmon")
    prometheus_port: int = Field(9090, ge=0, le=65535, description="Prometheus started by psmon up; 0 = don't")
    alertmanager_port: int = Field(9093, ge=0, le=65535, description="Alertmanager started by psmon up; 0 = don't")
    alerts_host: str = Field("127.0.0.1", description="interface of the alert webhook receiver")
    alerts_port: int = Field(9095, ge=1, le=65535, description="port of the alert webhook receiver")
    alerts_token_file: Path | None = Field(
        None,
        description="file holding the bearer token Alertmanager sends to the webhook receiver; "
        "empty = psmon up makes <data_dir>/alerts-token, psmon alerts listen refuses to start",
    )
    alerts_list_enabled: bool = Field(False, description="webhook receiver: serve GET /alerts (token required)")
    alerts_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="webhook receiver: largest request body accepted (413 above)"
    )
    alerts_max_per_request: int = Field(
        500, ge=1, description="webhook receiver: most alerts accepted in one notification (413 above)"
    )

    # Process
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics port; 0 = off")
    metrics_host: str = Field("127.0.0.1", description="interface for /metrics")
    lang: Lang = Field(
        default_factory=locale_lang,
        description="language of the report, live table and CLI summaries: vi or en; default: the locale's, else vi",
    )
    data_dir: Path = Field(Path("./psmon-data"), description="state and logs of local runs")
    log_level: LogLevel = "info"
    log_format: LogFormat = Field(
        "text", description="text: one readable line per record; json: one JSON object per line (log shippers)"
    )
    worker_name: str = Field("", description="label for this process in metrics; default host:pid")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="SIGTERM: exit after this even if not drained")

    # Tests only: fault points, read once into a `psmon.faults.FaultPlan` (see there). 0 / empty = off.
    test_sink_crash_after_writes: int = Field(
        0, ge=0, description="tests only: SIGKILL the sink after its N-th write, before the commit"
    )
    test_worker_crash_after_events: int = Field(
        0, ge=0, description="tests only: SIGKILL the worker after validating N events, input not committed"
    )
    test_clickhouse_fault_file: str = Field(
        "", description="tests only: while this file exists, every ClickHouse write of the sink fails"
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _strip_scheme(cls, v: str) -> str:
        # Accept the kafka:// form Faust uses as well as plain host:port lists.
        return v.removeprefix("kafka://")

    @model_validator(mode="before")
    @classmethod
    def _catalog_topic_follows_prefix(cls, data: Any) -> Any:
        # The catalog topic is a setting of its own (PSMON_TOPIC_CATALOG), but unset it follows the
        # prefix like the other topics, so a test's or a deployment's prefix isolates it too.
        if isinstance(data, dict) and not data.get("topic_catalog"):
            return {**data, "topic_catalog": f"{data.get('topic_prefix') or 'psmon'}.catalog"}
        return data

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            protocol = self.kafka_security_protocol
            raise ValueError(f"kafka_security_protocol {protocol} needs kafka_sasl_username and kafka_sasl_password")
        return self

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        # More in-sync replicas required than exist would refuse every write with acks=all.
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"topic_min_insync_replicas ({self.topic_min_insync_replicas}) must not exceed "
                f"topic_replication_factor ({self.topic_replication_factor})"
            )
        return self

    @field_validator("clickhouse_dsn")
    @classmethod
    def _check_dsn(cls, v: str) -> str:
        scheme, sep, rest = v.partition("://")
        host = rest.split("/", 1)[0].rpartition("@")[2]
        if not v or (sep and scheme in ("http", "https") and host):
            return v
        if sep and scheme == "chdb":
            if rest.startswith("/"):
                return v
            raise ValueError("an embedded DSN needs an absolute path, e.g. chdb:///var/lib/psmon")
        if sep and scheme in ("http", "https"):
            raise ValueError(f"a server DSN needs a host, e.g. {scheme}://HOST:8123")
        raise ValueError(
            "use chdb:///ABS/DIR (embedded), http://HOST:8123 or https://HOST:8443 (a server), "
            "or leave it empty (embedded, in <data_dir>/clickhouse)"
        )

    @property
    def topic_events(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def topic_valid(self) -> str:
        return f"{self.topic_prefix}.valid"

    @property
    def topic_dead_letter(self) -> str:
        return f"{self.topic_prefix}.dead-letter"

    @property
    def topic_rates(self) -> str:
        return f"{self.topic_prefix}.rates"

    @property
    def all_topics(self) -> tuple[str, ...]:
        return (self.topic_events, self.topic_valid, self.topic_dead_letter, self.topic_rates, self.topic_catalog)

    @property
    def resolved_clickhouse_dsn(self) -> str:
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def resolved_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir if self.checkpoint_dir is not None else self.data_dir / "checkpoints"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.resolved_clickhouse_dsn.startswith("chdb:")
