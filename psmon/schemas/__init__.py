"""Event contract v1, its validation, the province registry and the personal-data guard."""

from psmon.schemas.events import EVENT_MODELS, EVENT_TYPES, SCHEMA_VERSION
from psmon.schemas.provinces import registry
from psmon.schemas.validation import REASONS, Invalid, ValidEvent, validate_event

__all__ = [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "REASONS",
    "SCHEMA_VERSION",
    "Invalid",
    "ValidEvent",
    "registry",
    "validate_event",
]
