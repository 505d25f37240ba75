"""The REST shapes of segments that other apps answer with too: a segment, and its definition's schema.

``SegmentSerializer`` is a segment as /api/v1/segments/ answers it; insights answers the segments it
creates (a funnel's drop-off, a cluster) with it, so both stay one shape.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from segmentation.definition import (
    AGGREGATE_FUNCTIONS,
    COMPARISON_OPERATORS,
    DURATION_PATTERN,
    FILTER_OPERATORS,
    MAX_COUNT,
    MAX_DURATION_SECONDS,
    MAX_GROUP_CONDITIONS,
    MAX_GROUP_DEPTH,
    MAX_KEY_LENGTH,
    MAX_LIST_VALUES,
    MAX_NODES,
    MAX_NUMBER,
    MAX_PERIODS,
    MAX_SEQUENCE_STEPS,
    MAX_STRING_LENGTH,
    MIN_SEQUENCE_STEPS,
)
from segmentation.models import Segment


def _choice(values: list[str]) -> dict[str, Any]:
    """A string from a fixed list, as a pattern: drf-spectacular hoists every ``enum`` into a
    component named after the property, which would merge the different ``type`` and
    ``operator`` lists of the definition's variants into one."""
    return {"type": "string", "pattern": f"^({'|'.join(values)})$", "description": f"One of: {', '.join(values)}."}


# Every bound below is one of segmentation.definition's constants, which the parser enforces
# (tests/segmentation/test_api.py checks that the schema and the parser agree at each bound).
_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}
_NUMBER: dict[str, Any] = {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}
_SCALAR: list[dict[str, Any]] = [{"type": "string", "maxLength": MAX_STRING_LENGTH}, _NUMBER, {"type": "boolean"}]
_FILTER: dict[str, Any] = {
    "type": "object",
    "required": ["key", "operator"],
    "additionalProperties": False,
    "properties": {
        "key": {**_NAME, "description": 'A top-level property; dots reach into objects ("address.country").'},
        "operator": _choice(sorted(FILTER_OPERATORS)),
        "value": {
            "description": "A string, number or boolean; a list for in/not_in/between; none for is_set. "
            f"Numbers lie within -{MAX_NUMBER} and {MAX_NUMBER}.",
            "anyOf": [
                *_SCALAR,
                {"type": "array", "items": {"anyOf": _SCALAR}, "minItems": 1, "maxItems": MAX_LIST_VALUES},
            ],
        },
    },
}
_DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "description": f'e.g. "30m", "48h", "7d", "4w"; at most {MAX_DURATION_SECONDS // 86400} days (a century).',
}
_WINDOW: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "since": {"type": "string", "description": "A duration (now minus it) or an ISO-8601 timestamp; inclusive."},
        "until": {"type": "string", "description": "A duration (now minus it) or an ISO-8601 timestamp; exclusive."},
    },
}


def _compared(number: dict[str, Any], description: str) -> dict[str, Any]:
    """``{"operator", "value"}``: a number, or two for between."""
    pair = {"type": "array", "items": number, "minItems": 2, "maxItems": 2}
    return {
        "type": "object",
        "required": ["operator", "value"],
        "additionalProperties": False,
        "properties": {
            "operator": _choice(sorted(COMPARISON_OPERATORS)),
            "value": {"description": description, "oneOf": [number, pair]},
        },
    }


_COMPARISON = _compared(
    _NUMBER,
    f"A number within -{MAX_NUMBER} and {MAX_NUMBER}, or [low, high] for between.",
)
_COUNT = _compared(
    {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
    f"A whole number from 0 to {MAX_COUNT}, or [low, high] for between.",
)
_NODE: dict[str, Any] = {"$ref": "#/components/schemas/SegmentDefinition"}
_FILTERS: dict[str, Any] = {"type": "array", "items": _FILTER, "maxItems": MAX_GROUP_CONDITIONS}
_CONDITIONS: dict[str, Any] = {"type": "array", "items": _NODE, "minItems": 1, "maxItems": MAX_GROUP_CONDITIONS}


def _variant(kind: str, required: list[str], properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["type", *required],
        "additionalProperties": False,
        "properties": {"type": _choice([kind]), **properties},
    }


DEFINITION_SCHEMA: dict[str, Any] = {
    "description": (
        "A segment definition: one node, groups nesting up to "
        f"{MAX_GROUP_DEPTH} deep and {MAX_NODES} nodes in all. Unknown fields are refused. "
        "See docs/segments.md and the segment-definition contract."
    ),
    "oneOf": [
        _variant("and", ["conditions"], {"conditions": _CONDITIONS}, "Every holds."),
        _variant("or", ["conditions"], {"conditions": _CONDITIONS}, "One holds."),
        _variant("not", ["condition"], {"condition": _NODE}, "The condition does not hold."),
        _variant("trait", ["key", "operator"], _FILTER["properties"], "A property of the person."),
        _variant(
            "event",
            ["event"],
            {"event": _NAME, "filters": _FILTERS, "window": _WINDOW, "count": _COUNT},
            'How often the person did it ($any: every event); count defaults to {"operator": "gte", "value": 1}.',
        ),
        _variant(
            "aggregate",
            ["event", "key", "function", "operator", "value"],
            {
                "event": _NAME,
                "key": _NAME,
                "function": _choice(sorted(AGGREGATE_FUNCTIONS)),
                "filters": _FILTERS,
                "window": _WINDOW,
                **_COMPARISON["properties"],
            },
            "A sum, average, minimum or maximum of a numeric event property.",
        ),
        *(
            _variant(
                f"{which}_performed",
                ["event"],
                {"event": _NAME, "filters": _FILTERS, "window": _WINDOW},
                f"The {which} occurrence of the event falls inside the window.",
            )
            for which in ("first", "last")
        ),
        _variant(
            "regular",
            ["event", "period", "periods", "min_periods"],
            {
                "event": _NAME,
                "filters": _FILTERS,
                "period": _DURATION,
                "periods": {"type": "integer", "minimum": 1, "maximum": MAX_PERIODS},
                "min_periods": {"type": "integer", "minimum": 1, "maximum": MAX_PERIODS},
            },
            "The event in at least min_periods of the last periods periods.",
        ),
        _variant(
            "sequence",
            ["steps", "within"],
            {
                "steps": {
                    "type": "array",
                    "minItems": MIN_SEQUENCE_STEPS,
                    "maxItems": MAX_SEQUENCE_STEPS,
                    "items": {
                        "type": "object",
                        "required": ["event"],
                        "additionalProperties": False,
                        "properties": {"event": _NAME, "filters": _FILTERS},
                    },
                },
                "within": _DURATION,
                "window": _WINDOW,
                "completed": {"type": "boolean", "default": True},
                "dropped_after": {
                    "type": "integer",
                    "nullable": True,
                    "minimum": 1,
                    "maximum": MAX_SEQUENCE_STEPS - 1,
                    "description": "Only with completed: false. The run reached exactly this step (1-based) and "
                    "not the next one within `within`; less than the number of steps. Absent: any step.",
                },
            },
            "Did the steps in order within a time (completed: false: dropped off, after step dropped_after).",
        ),
        _variant(
            "segment",
            ["segment"],
            {"segment": {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER}},
            "A member of another segment of this workspace (its stored membership).",
        ),
    ],
}


@extend_schema_field(DEFINITION_SCHEMA, component_name="SegmentDefinition")
class DefinitionField(serializers.JSONField):
    """The definition document as JSON; validated by ``segmentation.definition.parse`` in the service."""


class SegmentSerializer(serializers.ModelSerializer[Segment]):
    static = serializers.BooleanField(source="is_static", read_only=True)
    definition = DefinitionField(read_only=True, allow_null=True, help_text="Null for a static segment.")

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "tags",
            "definition",
            "static",
            "size",
            "status",
            "error",
            "refreshed_at",
            "next_refresh_at",
            "refresh_interval_seconds",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
