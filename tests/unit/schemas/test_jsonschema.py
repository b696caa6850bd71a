import orjson

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
    assert sorted(p.name for p in paths) == sorted(f"{t}.schema.json" for t in EVENT_MODELS)
    assert orjson.loads(paths[0].read_bytes())["$schema"].endswith("2020-12/schema")
