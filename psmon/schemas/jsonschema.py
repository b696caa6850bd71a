"""JSON Schemas of contract v1, generated from the pydantic models, for portal teams.

One schema per event type (`application.submitted.schema.json`, ...). They describe structure
and types, every string with its character set (`pattern`); rules that span fields or need
reference data (known province codes, `district` only before 2025-07-01, `online` not with
`offline`, the time window) are stated in each schema's description, because JSON Schema cannot
check them against psmon's registry. So is the personal-data value check, which a `pattern` could
only express with lookaheads that many validators do not support.
"""

from pathlib import Path
from typing import Any

import orjson

from psmon.schemas.events import EVENT_MODELS

__all__ = ["event_schemas", "write_schemas"]

_RULES = (
    "Contract v1 of psmon. Also checked by psmon and not expressible here: province_code must be "
    "one of the 34 current or 63 old codes; level 'district' only before 2025-07-01 (UTC+7); "
    "occurred_at not before 2015-01-01T00:00:00+07:00, before 2100-01-01T00:00:00Z and at most 5 minutes "
    "after the Kafka record timestamp, which must itself be in milliseconds, not before 2015 and at most "
    "1 day after psmon's clock; JSON null is not accepted for optional fields (omit them); field names that denote "
    "personal data are rejected, and so is a string value, in any field, that contains a national ID number (a "
    "12-digit CCCD, or 9 digits as a word of their own: not a group inside a code like H25.000000123), a Vietnamese "
    "mobile number (0[35789] or +84 and 8 digits) or an e-mail address; a message is at most 8 KiB."
)


def event_schemas() -> dict[str, dict[str, Any]]:
    """event_type -> JSON Schema (draft 2020-12)."""
    out: dict[str, dict[str, Any]] = {}
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://psmon.invalid/schemas/v1/{event_type}.schema.json"
        schema["description"] = f"{(model.__doc__ or '').strip()} {_RULES}"
        schema["additionalProperties"] = False
        # Optional fields are optional by omission; strip pydantic's "or null" branch.
        for prop in schema["properties"].values():
            if "anyOf" in prop and {"type": "null"} in prop["anyOf"]:
                rest = [s for s in prop.pop("anyOf") if s != {"type": "null"}]
                prop.update(rest[0])
                prop.pop("default", None)
        out[event_type] = schema
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in event_schemas().items():
        path = directory / f"{event_type}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        written.append(path)
    return written
