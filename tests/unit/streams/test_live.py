"""LiveRates with a fresh registry: counters, duplicates, gauges, partition revocation."""

from prometheus_client import CollectorRegistry

from psmon.metrics import PipelineMetrics
from psmon.schemas.normalized import decode_valid, encode_valid
from psmon.schemas.validation import ValidEvent
from psmon.streams.live import LiveRates
from psmon.streams.windows import RollingRates
from psmon.timeutil import utc_now


def record(event_id: str, *, province: str = "25", channel: str = "online", src: tuple[int, int] = (0, 1)):  # type: ignore[no-untyped-def]
    now = utc_now().timestamp() - 30
    ev = ValidEvent(
        event_id=event_id,
        event_type="application.submitted",
        occurred_at_s=now,
        province_code=province,
        raw_province_code=province,
        level="commune",
        procedure_code="1.1",
        dossier_id="d",
        channel=channel,
        service_mode="partial_online",
        fee_bearing=False,
    )
    return decode_valid(encode_valid(ev, src_partition=src[0], src_offset=src[1], src_ts_ms=int(now * 1000)))


def make() -> tuple[LiveRates, CollectorRegistry]:
    reg = CollectorRegistry()
    return LiveRates(metrics=PipelineMetrics(reg), dedup_max_ids=1000, worker="w", rates=RollingRates()), reg


def test_counts_once_and_tells_duplicates_from_redeliveries() -> None:
    live, reg = make()
    live.observe(record("a", src=(0, 1)), partition=3)
    live.observe(record("a", src=(0, 1)), partition=3)  # redelivery
    live.observe(record("a", src=(1, 7)), partition=3)  # portal sent it again
    live.observe(record("b", channel="counter", src=(0, 2)), partition=3)
    labels = {"province": "25", "service_mode": "partial_online"}
    assert reg.get_sample_value("psmon_dossiers_submitted_total", {**labels, "channel": "online"}) == 1
    assert reg.get_sample_value("psmon_dossiers_submitted_total", {**labels, "channel": "counter"}) == 1
    assert reg.get_sample_value("psmon_events_duplicate_total") == 1
    assert reg.get_sample_value("psmon_events_redelivered_total") == 1
    live.refresh_gauges()
    assert reg.get_sample_value("psmon_ratio", {"province": "25", "metric": "online_submission", "window": "5m"}) == 0.5
    assert reg.get_sample_value("psmon_ratio", {"province": "25", "metric": "on_time", "window": "5m"}) is None


SUBMITTED_25 = {"province": "25", "channel": "online", "service_mode": "partial_online"}


def test_revoked_partition_drops_every_series_of_its_provinces() -> None:
    live, reg = make()
    live.observe(record("a", province="25"), partition=3)
    live.observe(record("b", province="01", src=(0, 2)), partition=4)
    live.refresh_gauges()
    assert live.drop_partitions({3}) == ["25"]
    live.refresh_gauges()
    g = {"metric": "online_submission", "window": "5m"}
    assert reg.get_sample_value("psmon_ratio", {"province": "25", **g}) is None
    assert reg.get_sample_value("psmon_ratio", {"province": "01", **g}) == 1.0
    # The new owner exports province 25's counter now; this worker must not report it too.
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) is None
    assert reg.get_sample_value("psmon_dossiers_submitted_total", {**SUBMITTED_25, "province": "01"}) == 1


def test_catching_up_partition_exports_its_totals_only_when_caught_up() -> None:
    live, reg = make()
    live.catch_up({3})
    live.observe(record("a", src=(0, 1)), partition=3)
    live.observe(record("b", src=(0, 2)), partition=3)
    live.observe(record("a", src=(5, 9)), partition=3)  # a repeat met while re-reading
    live.refresh_gauges()
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) is None
    assert (
        reg.get_sample_value("psmon_ratio", {"province": "25", "metric": "online_submission", "window": "5m"}) is None
    )
    assert live.snapshot_rows() == {}
    assert reg.get_sample_value("psmon_partitions_catching_up") == 1
    assert reg.get_sample_value("psmon_events_duplicate_total") == 0  # the previous owner counted it

    assert live.caught_up(3) == ["25"]
    live.observe(record("c", src=(0, 3)), partition=3)
    live.refresh_gauges()
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) == 3
    assert reg.get_sample_value("psmon_ratio", {"province": "25", "metric": "online_submission", "window": "5m"}) == 1.0
    assert reg.get_sample_value("psmon_partitions_catching_up") == 0


def test_reassigned_partition_is_counted_from_scratch_not_on_top() -> None:
    live, reg = make()
    live.observe(record("a"), partition=3)
    live.catch_up({3})  # lost and regained: its re-read must not add to the old totals
    live.observe(record("a"), partition=3)
    live.caught_up(3)
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) == 1


def test_snapshot_rows_cover_every_window_and_metric() -> None:
    live, _ = make()
    live.observe(record("a"), partition=0)
    rows = live.snapshot_rows()["25"]
    assert len(rows) == 6 * 6
    row = next(r for r in rows if r["metric"] == "online_submission" and r["window"] == "1h")
    assert (row["numerator"], row["denominator"], row["ratio"]) == (1, 1, 1.0)
