"""Event contract v1: the JSON that portals send, as pydantic models.

These models are the single source of the contract: validation (`psmon.schemas.validation`) runs
them in strict mode, and the JSON Schemas published for portal teams (`psmon schema export`) are
generated from them. Strict means JSON types are not coerced: `true` is not `1`, `1.0` is not
`1`, `"1"` is not `1`.

Rules that a per-field type cannot express (province code known, `district` only before the
merger, `online` not with `offline`, time range) live in `validation.py`, because each has its own
dead-letter reason.

Every number has an upper bound as well as a lower one: a value the contract accepts must be one
ClickHouse can store (`amount_vnd` is a `Nullable(Int64)` column). A valid event that the store
refuses would otherwise stop the history sink, so the bound is part of the contract, far above
any real fee.

Every string field has a strict character set, free text none: codes and ids are ASCII letters,
digits and a few separators (`.`, `-`, `_`, plus `:` and `/` where real ids use them), so a name or
a sentence ("Nguyen Van A 0912345678") cannot pass as an agency or a source system. The sets
follow the real formats: national procedure codes (`1.004227`, `2.000889.000.00.00.H56`), agency
codes of the national directory (`000.00.12.H26`, `G01.02`), the portals' dossier numbers
(`000.00.12.H26-250101-0001`, `H25.99-260814-0001`, psmon's simulator `H25.000000123`) and UUIDs.
A character set cannot tell a phone number from a dossier number (`0912345678` fits both); that is
the value check of `psmon.schemas.pii`, which validation runs on every string first.
"""

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ENVELOPE_FIELDS",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "MAX_AMOUNT_VND",
    "SCHEMA_VERSION",
    "ApplicationResolved",
    "ApplicationSubmitted",
    "EventType",
    "PaymentCompleted",
    "PortalEvent",
    "RecordDigitized",
]

SCHEMA_VERSION = 1

#: Largest `amount_vnd` accepted: 10**15 VND (a million billion), far above any fee and far below
#: the Int64 column that stores it (about 9.2 * 10**18).
MAX_AMOUNT_VND: Final = 10**15

EventType = Literal["application.submitted", "application.resolved", "payment.completed", "record.digitized"]

# RFC 3339 date-time with a mandatory offset (Z or ±hh:mm) and at most 6 fraction digits.
_RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"

EventId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Timestamp = Annotated[str, StringConstraints(max_length=35, pattern=_RFC3339)]
ProvinceCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}$")]
ProcedureCode = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")]
DossierId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
#: Agency codes and portal names: a code, never free text.
Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")]
CommuneCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]


class PortalEvent(BaseModel):
    """Fields common to every event type (the envelope)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    event_id: EventId = Field(description="Globally unique per event; the idempotency key.")
    event_type: EventType
    schema_version: Literal[1] = Field(description="Contract version; always 1 here.")
    occurred_at: Timestamp = Field(
        description="Event time, RFC 3339 with Z or ±hh:mm; not before 2015-01-01T00:00:00+07:00, "
        "not more than 5 minutes after the Kafka record timestamp."
    )
    province_code: ProvinceCode = Field(
        description="One of the 34 province codes, or an old 63-province code (mapped to 34)."
    )
    level: Literal["province", "commune", "ministry", "district"] = Field(
        description="Receiving level; 'district' only before 2025-07-01."
    )
    procedure_code: ProcedureCode = Field(description="National procedure code, e.g. 1.004227.")
    dossier_id: DossierId = Field(description="The portal's opaque dossier reference.")
    agency_code: Code | None = Field(None, description="Receiving agency's code, e.g. 000.00.12.H26.")
    commune_code: CommuneCode | None = Field(None, description="Receiving commune, five digits.")
    source_system: Code | None = Field(None, description="Portal that reported the event, e.g. dvc-phutho.")


class ApplicationSubmitted(PortalEvent):
    """A dossier was received, online, at a counter or by post."""

    event_type: Literal["application.submitted"]
    channel: Literal["online", "counter", "postal"]
    service_mode: Literal["full_online", "partial_online", "offline"] = Field(
        description="How the procedure is offered; channel=online with offline is invalid."
    )
    fee_bearing: bool


class ApplicationResolved(PortalEvent):
    """A dossier was resolved, on time or late."""

    event_type: Literal["application.resolved"]
    on_time: bool


class PaymentCompleted(PortalEvent):
    """The fee of a fee-bearing dossier was paid (one per paid dossier)."""

    event_type: Literal["payment.completed"]
    method: Literal["online", "counter"]
    amount_vnd: int = Field(ge=0, le=MAX_AMOUNT_VND, description="Fee paid, in VND; 0 to 10**15.")


class RecordDigitized(PortalEvent):
    """A dossier's components, or its result, were digitized (one per dossier per kind)."""

    event_type: Literal["record.digitized"]
    kind: Literal["dossier", "result"]


EVENT_MODELS: dict[str, type[PortalEvent]] = {
    "application.submitted": ApplicationSubmitted,
    "application.resolved": ApplicationResolved,
    "payment.completed": PaymentCompleted,
    "record.digitized": RecordDigitized,
}
EVENT_TYPES = tuple(EVENT_MODELS)
ENVELOPE_FIELDS = frozenset(PortalEvent.model_fields)
