"""What people read: the human names of metrics and windows, and the report's and live table's words.

psmon's users are Vietnamese operations teams, so every screen a person reads (the HTML/PNG report
of `psmon report`, the live table of `psmon up`) speaks Vietnamese by default and English on
request (`PSMON_LANG` / `--lang`). Code names such as `online_submission` stay the identifiers
of queries, files and HTML anchors; they are never a heading.

Design decisions:
- One small catalogue, in one module, at the bottom layer beside the metric vocabulary it names
  (layer 1), so the report (layer 4), the alert texts (layer 4) and the live table (layer 5) all
  import the same words. A dictionary of pairs, not gettext: two languages, a few dozen phrases,
  and a test can check that every metric, window and phrase has both.
- The metric names are the ones the Vietnamese alert texts already use ("tỷ lệ hồ sơ nộp trực
  tuyến", …); `short` names fit a terminal column header.
- `text(key, lang, **fields)` formats with `str.format`, so a missing field fails loudly in tests.
"""

from typing import Final

from psmon.schemas.metrics import Metric, Window
from psmon.settings import Lang

__all__ = [
    "COLUMN_NAMES",
    "LANGS",
    "METRIC_NAMES",
    "METRIC_SHORT",
    "PHRASES",
    "WINDOW_NAMES",
    "Lang",
    "column_name",
    "metric_name",
    "text",
    "window_name",
]

LANGS: Final[tuple[Lang, ...]] = ("vi", "en")

#: metric -> (Vietnamese, English): the full human name, as in the alert texts.
METRIC_NAMES: Final[dict[Metric, tuple[str, str]]] = {
    "online_submission": ("tỷ lệ hồ sơ nộp trực tuyến", "online submission ratio"),
    "full_online": ("tỷ lệ hồ sơ trực tuyến toàn trình", "full-online ratio"),
    "online_payment": ("tỷ lệ thanh toán trực tuyến", "online payment ratio"),
    "dossier_digitization": ("tỷ lệ số hóa hồ sơ", "dossier digitization ratio"),
    "result_digitization": ("tỷ lệ số hóa kết quả", "result digitization ratio"),
    "on_time": ("tỷ lệ giải quyết đúng hạn", "on-time resolution ratio"),
}
#: metric -> (Vietnamese, English): a short name for a narrow column header.
METRIC_SHORT: Final[dict[Metric, tuple[str, str]]] = {
    "online_submission": ("nộp TT", "online"),
    "full_online": ("toàn trình", "full online"),
    "online_payment": ("TT trực tuyến", "paid online"),
    "dossier_digitization": ("số hóa HS", "digitized"),
    "result_digitization": ("số hóa KQ", "result digit."),
    "on_time": ("đúng hạn", "on time"),
}
#: window -> (Vietnamese, English)
WINDOW_NAMES: Final[dict[Window, tuple[str, str]]] = {
    "5m": ("5 phút", "5m"),
    "1h": ("1 giờ", "1h"),
    "24h": ("24 giờ", "24h"),
    "today": ("hôm nay", "today"),
    "month": ("tháng này", "this month"),
    "ytd": ("từ đầu năm", "year to date"),
}

#: key -> (Vietnamese, English); `{name}` fields are filled by `text`.
PHRASES: Final[dict[str, tuple[str, str]]] = {
    # CLI summaries of validate and replay
    "summary.validate": (
        "{total} sự kiện: {valid} hợp lệ, {invalid} không hợp lệ",
        "{total} events, {valid} valid, {invalid} invalid",
    ),
    "summary.replay.read": (
        "{rows} dòng đã đọc: {valid} hợp lệ, {invalid} không hợp lệ",
        "{rows} rows read, {valid} valid, {invalid} invalid",
    ),
    "summary.replay.stored": (
        "{inserted} đã ghi, {already_stored} đã có sẵn, {unstorable} không lưu được, "
        "{beyond_retention} quá hạn lưu giữ, {published} đã gửi Kafka",
        "{inserted} inserted, {already_stored} already stored, {unstorable} unstorable, "
        "{beyond_retention} beyond retention, {published} published",
    ),
    "summary.replay.speed": ("{elapsed_s} giây, {rate_eps} dòng/giây", "{elapsed_s} s, {rate_eps} rows/s"),
    # report
    "report.title": ("Báo cáo psmon, {period}", "psmon report, {period}"),
    "report.intro": (
        "Lập lúc {stamp} (giờ Việt Nam, Asia/Ho_Chi_Minh, UTC+7) từ dữ liệu lịch sử ClickHouse, theo 34 tỉnh, "
        "thành phố (mã cũ được tính vào tỉnh mới). Tỷ lệ có tử số và mẫu số từ các loại sự kiện khác nhau có "
        "thể vượt 100% trong một kỳ ngắn; tỉnh không có mẫu số thì không có giá trị. Tỉnh có ít hơn "
        "{min_volume} sự kiện ở mẫu số được ghi kèm cỡ mẫu (n) và tô xám, không xếp hạng.",
        "Generated {stamp} (Vietnam time, Asia/Ho_Chi_Minh, UTC+7) from ClickHouse history, in 34-province "
        "terms (old codes counted under their new province). Ratios whose numerator and denominator come "
        "from different event types can exceed 100% in a short period; a province without a denominator "
        "has no value. Provinces with fewer than {min_volume} events in the denominator are shown with "
        "their sample size (n) and greyed, not ranked.",
    ),
    "report.definition": ("{name} = {num} ÷ {den}. Mục tiêu: {target}.", "{name} = {num} ÷ {den}. Target: {target}."),
    "report.index766": (
        "Bộ chỉ số 766 (Quyết định 766/QĐ-TTg): các mục tính được",
        "Decision 766 index: computable items",
    ),
    "report.ranking_title": ("{name}, {period}: xếp hạng các tỉnh", "{name}, {period}: provinces ranked"),
    "report.trend_title": ("{name} (%) theo {grain}, {period}", "{name} (%) per {grain}, {period}"),
    "report.grid_title": (
        "{name}, {period}: 34 tỉnh, thành phố (ô theo mã, đại thể từ Bắc vào Nam)",
        "{name}, {period}: the 34 provinces (tiles by code, roughly north to south)",
    ),
    "report.axis_percent": ("{name} (%)", "{name} (%)"),
    "report.axis_date": ("ngày (giờ Việt Nam, UTC+7)", "date (Vietnam time, UTC+7)"),
    "report.target_line": ("mục tiêu {target}", "target {target}"),
    "report.below_floor": ("dưới ngưỡng cảnh báo {floor}", "below the alert floor {floor}"),
    "report.below_target": ("dưới mục tiêu", "below target"),
    "report.at_target": ("đạt mục tiêu", "at or above target"),
    "report.no_target": ("trên ngưỡng cảnh báo (không có mục tiêu)", "above the alert floor (no target)"),
    "report.small_sample": (
        "ít hơn {min_volume} sự kiện: không xếp hạng",
        "fewer than {min_volume} events: not ranked",
    ),
    "report.no_data": ("không có dữ liệu", "no data"),
    "report.no_events": ("không có sự kiện nào trong kỳ {period}", "no events in {period}"),
    "grain.month": ("tháng", "month"),
    "grain.day": ("ngày", "day"),
    "chart.trend": ("xu hướng", "trend"),
    "chart.ranking": ("xếp hạng", "ranking"),
    "chart.grid": ("lưới tỉnh", "province grid"),
    # live table
    "live.code": ("mã", "code"),
    "live.province": ("tỉnh, thành phố", "province"),
    "live.alert": ("CB", "alert"),
    "live.dossiers": ("hồ sơ 24 giờ", "dossiers 24h"),
    "live.title": (
        "psmon trực tiếp — sự kiện đã kiểm tra {processed:,.0f} · thư lỗi {invalid:,.0f} · "
        "trùng lặp {duplicates:,.0f} · tỉnh {provinces}",
        "psmon live — events validated {processed:,.0f} · dead letters {invalid:,.0f} · "
        "duplicates {duplicates:,.0f} · provinces {provinces}",
    ),
    "live.event_time": (" · giờ sự kiện {time} (UTC+7)", " · event time {time} (UTC+7)"),
    "live.alerting": (" · đang cảnh báo: {codes}", " · alerting: {codes}"),
    "live.legend": (
        "[bold red]đỏ[/]: dưới ngưỡng cảnh báo · [yellow]vàng[/]: dưới mục tiêu · {mark}: đang cảnh báo · "
        "–: quá ít sự kiện",
        "[bold red]red[/]: below the alert floor · [yellow]amber[/]: below target · {mark}: alert firing · "
        "–: too few events",
    ),
}


#: column of a history table -> (Vietnamese, English) heading; the code name stays the CSV/JSON key.
COLUMN_NAMES: Final[dict[str, tuple[str, str]]] = {
    "rank": ("hạng", "rank"),
    "period": ("kỳ", "period"),
    "province_code": ("mã tỉnh", "province code"),
    "province": ("tỉnh/thành phố", "province"),
    "numerator": ("tử số", "numerator"),
    "denominator": ("mẫu số (n)", "denominator (n)"),
    "ratio": ("tỷ lệ", "ratio"),
    "total": ("tổng điểm", "total points"),
    "max_points": ("điểm tối đa tính được", "computable maximum"),
}


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "vi" else pair[1]


def text(key: str, lang: Lang, **fields: object) -> str:
    """The phrase `key` in `lang`, with its `{fields}` filled."""
    return _pick(PHRASES[key], lang).format(**fields)


def metric_name(metric: Metric, lang: Lang, *, short: bool = False) -> str:
    """`online_submission` -> "tỷ lệ hồ sơ nộp trực tuyến" (or "nộp TT" when `short`)."""
    return _pick((METRIC_SHORT if short else METRIC_NAMES)[metric], lang)


def window_name(window: Window, lang: Lang) -> str:
    return _pick(WINDOW_NAMES[window], lang)


def column_name(column: str, lang: Lang) -> str:
    """A table heading for people; a column without one (a 766 item such as `1.1`) is its own name."""
    pair = COLUMN_NAMES.get(column)
    return _pick(pair, lang) if pair else column
