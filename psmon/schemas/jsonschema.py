"""JSON Schemas of contract v1, generated from the pydantic models, for portal teams; and the
procedure catalog's (`catalog.schema.json`), written from the constants its validator uses.

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

import psmon.schemas.catalog as catalog
from psmon.schemas.events import EVENT_MODELS

__all__ = ["CATALOG_SCHEMA_FILE", "catalog_schema", "event_schemas", "write_schemas"]

#: The file `write_schemas` writes the catalog's schema to, beside the event types' schemas.
CATALOG_SCHEMA_FILE = "catalog.schema.json"

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


_CATALOG_RULES = (
    "One row of psmon's procedure catalog (psmon catalog load), as a JSONL line; CSV has the same columns "
    "(booleans true/false/1/0, an empty valid_to for none) and Parquet the same fields. Also checked by psmon "
    "and not expressible here: province_code must be one of the 34 current or 63 old codes (old codes are "
    "mapped); valid_to (exclusive) must be after valid_from; one row per province_code, procedure_code and "
    "valid_from in a file; no string, the name included, may contain a national ID number, a Vietnamese mobile "
    "number or an e-mail address. A file with any bad row is not loaded at all."
)


def catalog_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one catalog row, from the constants of `psmon.schemas.catalog`."""
    day = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://psmon.invalid/schemas/v1/{CATALOG_SCHEMA_FILE}",
        "title": "CatalogEntry",
        "description": _CATALOG_RULES,
        "type": "object",
        "additionalProperties": False,
        "required": list(catalog.REQUIRED_FIELDS),
        "properties": {
            "province_code": {"type": "string", "pattern": "^[0-9]{2}$", "description": "province code (34 or old 63)"},
            "procedure_code": {
                "type": "string",
                "maxLength": catalog.MAX_PROCEDURE_CODE_LEN,
                "pattern": catalog.PROCEDURE_CODE_PATTERN,
                "description": "national procedure code, e.g. 1.001234 or 2.000123",
            },
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": catalog.MAX_NAME_LEN,
                "pattern": catalog.NAME_PATTERN,
                "description": "procedure name, one line (Vietnamese text allowed)",
            },
            "level": {"enum": list(catalog.PROCEDURE_LEVELS)},
            "online_level": {
                "enum": list(catalog.ONLINE_LEVELS),
                "description": "full = toàn trình, partial = một phần, none = not online",
            },
            "fee_bearing": {"type": "boolean"},
            "payment_integrated": {"type": "boolean", "description": "integrated with online payment"},
            "valid_from": {**day, "description": "first day in force (local date)"},
            "valid_to": {
                "anyOf": [{**day}, {"type": "null"}],
                "description": "first day no longer in force (exclusive); null or absent = open-ended",
            },
        },
    }


def write_schemas(directory: Path) -> list[Path]:
    """One file per event type, and `catalog.schema.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    schemas = {f"{t}.schema.json": schema for t, schema in event_schemas().items()}
    schemas[CATALOG_SCHEMA_FILE] = catalog_schema()
    for name, schema in schemas.items():
        path = directory / name
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        written.append(path)
    return written
