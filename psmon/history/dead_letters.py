"""Dead letters for people: list them, explain each reason, and re-drive them after a fix.

The store holds what the contract allows (docs/contract.md): the reason, a detail, and the
*redacted* payload (only contract fields whose values validated; nothing at all for unparseable
input). So a re-drive rebuilds the event from the redacted payload, applies the fixes the
operator gives (`--set level=commune`: a field value that the portal team confirmed), validates
it again with today's code and registry, and publishes only the events that are valid now to
`psmon.events`, where stage 1 handles them like any message. Letters that still fail are
reported with the reason they fail now; they stay in the store. Re-driving twice is harmless:
the event ids are the original ones, so stage 1 counts the second copy as a duplicate and
history keeps one.

Typical fixes: `personal_data` letters usually become valid as they are (redaction removed the
personal field); `invalid_value`/`missing_field` need the dropped field set; `unknown_province`
letters lost their code to redaction and need `--set province_code=..`; letters without a
redacted payload (`malformed_json`, `not_an_object`, `too_large`) cannot be re-driven: the portal
must re-send them. `unstorable` letters (valid events that ClickHouse refused, set aside by the
sink or by `psmon replay`) keep every field that still validates; today's validation rejects the
values that caused them, so a re-drive needs the offending field set (`--set amount_vnd=...`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from psmon.history.tables import ResultTable, local_time
from psmon.schemas.validation import DEAD_LETTER_REASONS, DeadLetterReason, Invalid, ValidEvent, validate_event
from psmon.sinks.clickhouse.client import Client

__all__ = ["REASON_HELP", "DeadLetterStore", "RedriveOutcome", "parse_fixes", "rebuild"]

#: What each reason means and what fixes it (shown by `psmon dead-letters explain`).
REASON_HELP: Final[dict[DeadLetterReason, str]] = {
    "malformed_json": "not UTF-8 JSON; the portal must fix its encoder and re-send (payload not kept)",
    "not_an_object": "JSON, but not an object; the portal must send one object per message (payload not kept)",
    "too_large": "over 8 KiB; the portal must drop oversized optional fields and re-send (payload not kept)",
    "missing_field": "a required field is absent; re-drive with --set FIELD=VALUE once the value is known",
    "unknown_field": "a field outside contract v1; redaction dropped it, so a re-drive usually succeeds as is",
    "invalid_value": "a value of the wrong type or out of its set; redaction dropped it: --set FIELD=VALUE",
    "unknown_event_type": "event_type not in v1; needs a new contract version, not a re-drive",
    "unsupported_schema_version": "schema_version other than 1; needs a psmon that supports it",
    "unknown_province": "province_code not among the 34 or the 63 old codes: --set province_code=CODE",
    "time_out_of_range": "occurred_at before 2015 or in the future (redaction dropped it: --set occurred_at=...), "
    "or a Kafka record timestamp not in milliseconds: fix the producer, then re-drive as is",
    "personal_data": (
        "a field named like personal data, or a value that looks like an ID number, phone number or e-mail"
        " address; redaction dropped it, so a re-drive succeeds as is unless it was a required field"
        " (then supply it with --set)"
    ),
    "unstorable": "valid, but ClickHouse refused a value (see detail): --set the dropped FIELD=VALUE and re-drive",
}
assert set(REASON_HELP) == set(DEAD_LETTER_REASONS)

_COLUMNS: Final = "dead_letter_id, received_at, reason, detail, redacted, payload_bytes"


def parse_fixes(values: list[str]) -> dict[str, Any]:
    """`FIELD=VALUE` pairs; VALUE is read as JSON when it parses (true, 0), else as a string."""
    fixes: dict[str, Any] = {}
    for v in values:
        name, sep, raw = v.partition("=")
        if not sep or not name:
            raise ValueError(f"--set wants FIELD=VALUE, got {v!r}")
        try:
            fixes[name] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            fixes[name] = raw
    return fixes


def rebuild(redacted: dict[str, Any] | None, fixes: dict[str, Any]) -> bytes | None:
    """The message to re-drive, or None when nothing of the original was kept."""
    if redacted is None:
        return None
    return orjson.dumps({**redacted, **fixes})


@dataclass
class RedriveOutcome:
    dead_letter_id: str
    reason: str
    now: str  # "valid" or the reason it still fails
    detail: str
    message: bytes | None
    province_code: str | None


class DeadLetterStore:
    def __init__(self, client: Client, *, database: str):
        self._client = client
        self._db = database

    def _select(
        self, *, reason: str | None, ids: list[str] | None, since: datetime | None, limit: int | None
    ) -> list[tuple[Any, ...]]:
        where: list[str] = ["1"]
        params: dict[str, Any] = {}
        if reason:
            where.append("reason = {reason:String}")
            params["reason"] = reason
        if ids:
            where.append("dead_letter_id IN {ids:Array(String)}")
            params["ids"] = ids
        if since:
            where.append("received_at >= {since:DateTime64(3)}")
            params["since"] = since
        sql = (
            f"SELECT {_COLUMNS} FROM {self._db}.dead_letters FINAL WHERE {' AND '.join(where)} "
            "ORDER BY received_at DESC, dead_letter_id"
        ) + (f" LIMIT {int(limit)}" if limit else "")
        return [tuple(r) for r in self._client.query(sql, parameters=params).result_rows]

    def letters(
        self, *, reason: str | None = None, since: datetime | None = None, limit: int | None = 50
    ) -> ResultTable:
        rows = self._select(reason=reason, ids=None, since=since, limit=limit)
        return ResultTable(
            title="dead letters (newest first)",
            columns=["dead_letter_id", "received_at", "reason", "detail", "redacted", "payload_bytes"],
            rows=rows,
            empty=_none("no dead letters", reason=reason, since=since),
        )

    def explain(self, *, since: datetime | None = None) -> ResultTable:
        where, params = "", dict[str, Any]()
        if since:
            where, params = "WHERE received_at >= {since:DateTime64(3)}", {"since": since}
        result = self._client.query(
            f"SELECT reason, count() FROM {self._db}.dead_letters FINAL {where} GROUP BY reason", parameters=params
        )
        counts: dict[str, int] = {str(r[0]): int(r[1]) for r in result.result_rows}
        rows = [(r, int(counts[r]), REASON_HELP[r]) for r in DEAD_LETTER_REASONS if counts.get(r)]
        rows.sort(key=lambda r: -r[1])
        return ResultTable(
            title="dead letters by reason",
            columns=["reason", "count", "meaning and fix"],
            rows=rows,
            empty=_none("no dead letters", reason=None, since=since),
        )

    def redrive(
        self,
        *,
        publish: Callable[[bytes | None, bytes], None] | None,
        fixes: dict[str, Any],
        reason: str | None = None,
        ids: list[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[RedriveOutcome]:
        """Re-validate the selected letters with `fixes`; publish the valid ones unless `publish` is None."""
        outcomes = []
        for dl_id, _received, dl_reason, _detail, redacted, _n in self._select(
            reason=reason, ids=ids, since=since, limit=limit
        ):
            message = rebuild(orjson.loads(redacted) if redacted else None, fixes)
            if message is None:
                outcomes.append(RedriveOutcome(dl_id, dl_reason, "not_redrivable", "payload was not kept", None, None))
                continue
            verdict = validate_event(message)
            if isinstance(verdict, Invalid):
                outcomes.append(RedriveOutcome(dl_id, dl_reason, verdict.reason, verdict.detail, None, None))
                continue
            assert isinstance(verdict, ValidEvent)
            if publish is not None:
                publish(verdict.raw_province_code.encode(), message)
            outcomes.append(RedriveOutcome(dl_id, dl_reason, "valid", "", message, verdict.province_code))
        return outcomes


def _none(what: str, *, reason: str | None, since: datetime | None) -> str:
    """The line of an empty listing, naming its filters (`no dead letters with reason x since ...`)."""
    return what + (f" with reason {reason}" if reason else "") + (f" since {local_time(since)}" if since else " stored")
