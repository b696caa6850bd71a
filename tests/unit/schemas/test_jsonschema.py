import orjson
import pytest

from psmon.schemas.events import EVENT_MODELS
from psmon.schemas.jsonschema import event_schemas, write_schemas


def test_one_schema_per_type_matching_the_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    schemas = event_schemas()
    assert set(schemas) == set(EVENT_MODELS)
    for event_type, schema in schemas.items():
        model = EVENT_MODELS[event_type]
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert set(schema["required"]) == required
        assert set(schema["properties"]) == set(model.model_fields)
        assert schema["additionalProperties"] is False
        assert schema["properties"]["event_type"]["const"] == event_type
        # optional fields are optional by omission, never nullable
        assert all("null" not in orjson.dumps(p).decode() for p in schema["properties"].values())
    paths = write_schemas(tmp_path)
    assert sorted(p.name for p in paths) == sorted([*(f"{t}.schema.json" for t in EVENT_MODELS), "catalog.schema.json"])
    assert orjson.loads(paths[0].read_bytes())["$schema"].endswith("2020-12/schema")


def test_every_string_field_has_a_character_set_and_free_text_fails_the_schema() -> None:
    import jsonschema  # type: ignore[import-untyped]

    event = {
        "event_id": "dvc-25-2026-000123:sub",
        "event_type": "application.resolved",
        "schema_version": 1,
        "occurred_at": "2026-08-14T09:12:03+07:00",
        "province_code": "25",
        "level": "commune",
        "procedure_code": "1.004227",
        "dossier_id": "000.00.12.H26-250101-0001",
        "agency_code": "000.00.12.H26",
        "source_system": "dvc-phutho",
        "on_time": True,
    }
    schema = event_schemas()["application.resolved"]
    for name, prop in schema["properties"].items():
        if prop.get("type") == "string" and "const" not in prop and "enum" not in prop:
            assert "pattern" in prop, name  # no free-text field
    jsonschema.validate(event, schema)
    for field, value in [("agency_code", "Nguyen Van A 0912345678"), ("source_system", "CCCD 001099012345")]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**event, field: value}, schema)
    assert "mobile number" in schema["description"] and "e-mail" in schema["description"]
