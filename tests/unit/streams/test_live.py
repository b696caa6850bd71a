"""LiveRates with a fresh registry: counters, duplicates, gauges, partition revocation."""

from prometheus_client import CollectorRegistry

from psmon.metrics import PipelineMetrics
from psmon.schemas.dead_letter import DeadLetter
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
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) == 1
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
    # Owned like the contract counters: counted while re-reading, exported once caught up.
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) is None

    assert live.caught_up(3) == ["25"]
    live.observe(record("c", src=(0, 3)), partition=3)
    live.refresh_gauges()
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) == 3
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) == 1
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
    before_ms = utc_now().timestamp() * 1000
    rows = live.snapshot_rows()["25"]
    after_ms = utc_now().timestamp() * 1000
    assert len(rows) == 6 * 6
    row = next(r for r in rows if r["metric"] == "online_submission" and r["window"] == "1h")
    assert (row["numerator"], row["denominator"], row["ratio"]) == (1, 1, 1.0)
    # One row per province, metric, window and minute in ClickHouse: stamped with the minute.
    (stamp,) = {r["snapshot_at_ms"] for r in rows}
    assert stamp % 60_000 == 0 and before_ms - 60_000 < stamp <= after_ms


def test_a_redelivered_duplicate_counts_once() -> None:
    # After a stage-1 crash, the original and the portal's repeat are both re-sent, each with the
    # source coordinates of its own message on psmon.events.
    live, reg = make()
    for src in ((0, 1), (1, 7), (0, 1), (1, 7), (1, 7)):
        live.observe(record("a", src=src), partition=3)
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) == 1
    assert reg.get_sample_value("psmon_events_redelivered_total") == 3
    assert reg.get_sample_value("psmon_dossiers_submitted_total", SUBMITTED_25) == 1


def test_duplicates_of_a_revoked_partition_leave_with_it() -> None:
    live, reg = make()
    live.observe(record("a", src=(0, 1)), partition=3)
    live.observe(record("a", src=(1, 7)), partition=3)
    live.drop_partitions({3})
    assert reg.get_sample_value("psmon_events_duplicate_total", {"province": "25"}) is None


def letter(reason: str, src: tuple[int, int]) -> DeadLetter:
    return DeadLetter(
        dead_letter_id="x",
        reason=reason,
        detail="",
        redacted=None,
        payload_sha256="0" * 64,
        payload_bytes=1,
        src_partition=src[0],
        src_offset=src[1],
        src_ts_ms=1_700_000_000_000 + src[1],
    )


def invalid(reg: CollectorRegistry, reason: str) -> float | None:
    return reg.get_sample_value("psmon_events_invalid_total", {"reason": reason})


def test_dead_letters_count_once_per_source_message() -> None:
    live, reg = make()
    assert live.observe_letter(letter("invalid_json", (0, 5)), partition=1)
    assert not live.observe_letter(letter("invalid_json", (0, 5)), partition=1)  # re-validated after a crash
    assert live.observe_letter(letter("invalid_json", (2, 5)), partition=1)
    assert live.observe_letter(letter("missing_field", (0, 6)), partition=1)
    assert invalid(reg, "invalid_json") == 2
    assert invalid(reg, "missing_field") == 1
    assert reg.get_sample_value("psmon_events_redelivered_total") == 1


def test_dead_letters_re_read_after_assignment_appear_at_their_total() -> None:
    live, reg = make()
    live.catch_up_letters({1})
    live.observe_letter(letter("invalid_json", (0, 5)), partition=1)
    live.observe_letter(letter("invalid_json", (0, 6)), partition=1)
    live.observe_letter(letter("invalid_json", (0, 5)), partition=1)
    live.refresh_gauges()
    assert invalid(reg, "invalid_json") is None
    assert reg.get_sample_value("psmon_partitions_catching_up") == 1
    assert live.letters_caught_up(1) == ["invalid_json"]
    assert invalid(reg, "invalid_json") == 2
    live.observe_letter(letter("invalid_json", (0, 6)), partition=1)  # a late redelivery
    assert invalid(reg, "invalid_json") == 2
    # Regained later: re-read from scratch, never on top of the old total.
    live.catch_up_letters({1})
    live.observe_letter(letter("invalid_json", (0, 5)), partition=1)
    live.observe_letter(letter("invalid_json", (0, 6)), partition=1)
    live.letters_caught_up(1)
    assert invalid(reg, "invalid_json") == 2


def test_a_revoked_dead_letter_partition_takes_its_share_of_a_reason() -> None:
    live, reg = make()
    live.observe_letter(letter("invalid_json", (0, 5)), partition=1)
    live.observe_letter(letter("invalid_json", (0, 6)), partition=2)
    live.observe_letter(letter("missing_field", (0, 7)), partition=2)
    live.drop_letter_partitions({2})
    assert invalid(reg, "invalid_json") == 1  # partition 1's share stays, exported by this worker
    assert invalid(reg, "missing_field") is None  # now exported by the new owner only
