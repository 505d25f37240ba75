"""``GET/PUT /api/v1/tracking-plan/``: the workspace's tracking plan as one JSON document.

The body is checked by ``tracking.plan.parse`` itself, not by DRF fields (which would take ``1``
for ``true``): every problem is a 400 naming its path. The JSON Schema below is built from the same
constants, and ``tests/tracking/test_plan_api.py`` checks that schema and parser agree at each bound.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import request_actor, request_workspace
from core.api import StrictSerializer
from tracking import plan, plan_selectors, plan_services

MAX_VERSION = 2**31 - 1
_DESCRIPTION = {"type": "string", "maxLength": plan.MAX_DESCRIPTION_LENGTH, "default": ""}
_FLAG = {"type": "boolean", "default": False}
# A schema no value satisfies: the key it names is refused.
_NOTHING: dict[str, Any] = {"not": {}}

PROPERTY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": list(plan.PROPERTY_TYPES)},
        "required": {**_FLAG, "description": "A track call without it (or with null) violates the plan."},
        "description": _DESCRIPTION,
    },
}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": _DESCRIPTION,
        "quarantine_violations": {
            **_FLAG,
            "description": "A track call of this event that violates the plan goes to the quarantine instead of "
            "being stored.",
        },
        "properties": {
            "type": "object",
            "maxProperties": plan.MAX_PROPERTIES,
            # OpenAPI 3.0 has no propertyNames: the names refused are properties no value satisfies.
            "properties": {"": _NOTHING},
            "additionalProperties": PROPERTY_SCHEMA,
            "default": {},
            "description": "The event's properties by name. Any other property of a track call violates the plan.",
        },
    },
}
EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": plan.MAX_EVENTS,
    "properties": {name: _NOTHING for name in ("", *plan.UNCHECKED_EVENTS)},
    "additionalProperties": EVENT_SCHEMA,
    "description": "The planned events by name, exactly as track calls send it (track calls carry at most "
    f"{plan.MAX_NAME_LENGTH} characters; $pageview and $screen, page and screen calls, are not checked). "
    "{} is no plan: nothing is checked.",
}


@extend_schema_field(EVENTS_SCHEMA, component_name="TrackingPlanEvents")
class PlanEventsField(serializers.JSONField):
    """The plan's events; checked by ``tracking.plan.parse`` in the view."""


class TrackingPlanSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(help_text="Goes up by one with every change; 0: never saved.")
    updated_at = serializers.DateTimeField(allow_null=True)
    block_unplanned_events = serializers.BooleanField(
        help_text="Track calls of events not in the plan go to the quarantine instead of being stored."
    )
    events = PlanEventsField()


# For the schema only: the view checks the body with ``tracking.plan.parse``.
class TrackingPlanUpdateSerializer(StrictSerializer):
    """The new plan, which replaces the whole plan."""

    version = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_VERSION,
        help_text="Optional: save only if the plan is still at this version (409 otherwise, nothing saved).",
    )
    block_unplanned_events = serializers.BooleanField(required=False, default=False)
    events = PlanEventsField()


class VersionConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _as_json(state: plan_selectors.PlanState) -> dict[str, Any]:
    return {"version": state.version, "updated_at": state.updated_at, **state.document.as_json()}


def _expected_version(data: dict[str, Any]) -> int | None:
    if "version" not in data:
        return None
    value = data.pop("version")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise ValidationError({"version": [f"A whole number from 0 to {MAX_VERSION}: the version you read."]})
    return value


class TrackingPlanView(APIView):
    """The workspace's tracking plan: the events expected, their properties and types (docs/tracking-plan.md).

    Every member and key reads it; owners and admins replace it. A PUT replaces the whole plan
    (``{"events": {}}`` empties it); with ``version``, only if nobody saved it since that version.
    """

    admin_only = True

    @extend_schema(responses=TrackingPlanSerializer)
    def get(self, request: Request) -> Response:
        return Response(TrackingPlanSerializer(_as_json(plan_selectors.tracking_plan(request_workspace(request)))).data)

    @extend_schema(
        request=TrackingPlanUpdateSerializer,
        responses={
            200: TrackingPlanSerializer,
            409: OpenApiResponse(description="version was given and the plan was saved since: nothing saved."),
        },
    )
    def put(self, request: Request) -> Response:
        workspace = request_workspace(request)
        if not isinstance(request.data, dict):
            raise ValidationError({"": ["The body must be a JSON object: the plan."]})
        data = dict(request.data)
        expected = _expected_version(data)
        try:
            document = plan.parse(data)
            plan_services.tracking_plan_replace(
                workspace=workspace,
                actor=request_actor(request),
                document=document,
                expected_version=expected,
                what="replaced through the API",
            )
        except plan.PlanInvalid as error:
            raise ValidationError(error.errors) from error
        except plan_services.PlanVersionConflict as conflict:
            raise VersionConflict(str(conflict)) from conflict
        return Response(TrackingPlanSerializer(_as_json(plan_selectors.tracking_plan(workspace))).data)
