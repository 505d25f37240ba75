"""REST endpoints of insights (rest-api.md, "Insights"): /api/v1/insights/.

- ``POST funnel/``: a funnel's counts, conversions and median times, answered in the request;
- ``POST funnel/segment/``: a dynamic segment of the people who dropped off after step k (201);
- ``POST retention/``: a retention table; ``POST retention/segment/``: a cohort or a cell as a segment;
- ``GET``/``PATCH computed-traits/``: how computed traits are computed, and how the last run went;
  ``POST computed-traits/refresh/``: queue a recompute (202).

Computing a funnel or a retention table changes nothing: every member of the workspace may, viewers
included. Making a segment or changing settings takes a member's write role. Bad input answers 400
naming each faulty field (``steps[1].filters[0].operator``); a computation past its statement timeout
answers 503.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import WorkspaceRole
from accounts.requests import request_actor, request_body_required, request_workspace
from core.api import StrictSerializer
from insights import funnels, retention, traits
from insights.inputs import MAX_BREAKDOWN_SEGMENTS, InputInvalid
from insights.models import ComputedTraitSettings
from insights.tasks import computed_traits_refresh_task
from segmentation import services as segment_services
from segmentation.definition import DURATION_PATTERN, FILTER_OPERATORS, MAX_KEY_LENGTH, DefinitionInvalid
from segmentation.membership import is_timeout
from segmentation.serializers import SegmentSerializer


class ComputeOrWrite(WorkspaceRole):
    """A member's role, as everywhere; but computing (a POST of a view that ``computes_only``, which
    writes nothing) is open to every member who may read, viewers included."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if super().has_permission(request, view):
            return True
        if not getattr(view, "computes_only", False) or request.method != "POST":
            return False
        return getattr(request._request, "membership", None) is not None


class QueryTimeout(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "timeout"
    default_detail = "The computation took too long: narrow the dates or the steps."


def _invalid(error: InputInvalid) -> serializers.ValidationError:
    return serializers.ValidationError(error.errors)


def _definition_invalid(error: DefinitionInvalid) -> serializers.ValidationError:
    errors: dict[str, list[str]] = {}
    for item in error.errors:
        errors.setdefault(f"definition.{item.path}" if item.path else "definition", []).append(item.message)
    return serializers.ValidationError(errors)


# --- the documented shapes -----------------------------------------------------------------------

_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}
_FILTER: dict[str, Any] = {
    "type": "object",
    "required": ["key", "operator"],
    "additionalProperties": False,
    "description": "A property filter, as in a segment definition (docs/segments.md).",
    "properties": {
        "key": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": r"\S"},
        "operator": {"type": "string", "pattern": f"^({'|'.join(sorted(FILTER_OPERATORS))})$"},
        "value": {"description": "A string, number or boolean; a list for in/not_in/between; none for is_set."},
    },
}
_STEPS: dict[str, Any] = {
    "type": "array",
    "minItems": funnels.MIN_STEPS,
    "maxItems": funnels.MAX_STEPS,
    "items": {
        "type": "object",
        "required": ["event"],
        "additionalProperties": False,
        "properties": {"event": _NAME, "filters": {"type": "array", "items": _FILTER, "maxItems": 50}},
    },
}
_INSTANT: dict[str, Any] = {
    "type": "string",
    "nullable": True,
    "description": 'A duration back from now ("30d") or an ISO-8601 timestamp; null leaves that side open.',
}
_BREAKDOWN: dict[str, Any] = {
    "nullable": True,
    "description": 'By a trait\'s value ({"type": "trait", "key": "plan"}) or by segment membership '
    f'({{"type": "segment", "segments": [12, 14]}}, 1 to {MAX_BREAKDOWN_SEGMENTS} segments).',
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "key"],
            "additionalProperties": False,
            "properties": {"type": {"type": "string", "pattern": "^trait$"}, "key": _NAME},
        },
        {
            "type": "object",
            "required": ["type", "segments"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "pattern": "^segment$"},
                "segments": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_BREAKDOWN_SEGMENTS,
                    "uniqueItems": True,
                    "items": {"type": "integer", "minimum": 1},
                },
            },
        },
    ],
}


@extend_schema_field(_STEPS)
class StepsField(serializers.JSONField):
    pass


@extend_schema_field(_INSTANT)
class InstantField(serializers.JSONField):
    pass


@extend_schema_field(_BREAKDOWN)
class BreakdownField(serializers.JSONField):
    pass


class FunnelRequestSerializer(StrictSerializer):
    """Documents the body; ``insights.funnels.funnel_parse`` reads it."""

    steps = StepsField(help_text="2 to 8 steps: an event name and optional property filters each.")
    within = serializers.RegexField(
        DURATION_PATTERN, required=False, help_text="Every step within this of step 1 (default 7d)."
    )
    since = InstantField(required=False, help_text="Runs starting at or after (default 30d).")
    until = InstantField(required=False, help_text="Runs starting before (default: up to now).")
    breakdown = BreakdownField(required=False)


class FunnelSegmentRequestSerializer(FunnelRequestSerializer):
    dropped_after = serializers.IntegerField(
        min_value=1, max_value=funnels.SEGMENT_MAX_STEPS - 1, help_text="Reached this step, not the next one."
    )
    name = serializers.CharField(max_length=200, help_text="The new segment's name.")


class StepSerializer(serializers.Serializer[Any]):
    event = serializers.CharField()
    count = serializers.IntegerField(help_text="People with at least one run that reached this step.")
    conversion = serializers.FloatField(allow_null=True, help_text="Share of step 1's people; null if none.")
    conversion_from_previous = serializers.FloatField(allow_null=True, help_text="Share of the previous step's.")
    median_seconds_from_previous = serializers.FloatField(
        allow_null=True, help_text="Median time from the previous step, over each person's furthest run."
    )


@extend_schema_field({"nullable": True, "oneOf": [{"type": "string"}, {"type": "integer"}]})
class GroupValueField(serializers.JSONField):
    pass


class BreakdownGroupSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["value", "none", "other", "segment", "no_segment"])
    value = GroupValueField(help_text="The trait's value (as text) or the segment id; null for the rest.")
    # Named like Field.label, harmlessly: DRF's metaclass moves declared fields out of the class.
    label = serializers.CharField()  # type: ignore[assignment]
    steps = StepSerializer(many=True)


class FunnelResultSerializer(serializers.Serializer[Any]):
    steps = StepSerializer(many=True)
    conversion = serializers.FloatField(allow_null=True, help_text="Last step's share of step 1's people.")
    breakdown = BreakdownGroupSerializer(many=True, allow_null=True)
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField()
    computed_at = serializers.DateTimeField()


class RetentionRequestSerializer(StrictSerializer):
    start_event = serializers.CharField(max_length=200, help_text="$any: any event.")
    return_event = serializers.CharField(max_length=200, help_text="$any: any event.")
    period = serializers.ChoiceField(choices=list(retention.PERIODS), required=False, help_text="Default week.")
    periods = serializers.IntegerField(
        min_value=1,
        max_value=max(retention.MAX_PERIODS.values()),
        required=False,
        help_text="Days up to 90, weeks up to 52, months up to 24.",
    )
    cohort = serializers.ChoiceField(
        choices=["first", "any"], required=False, help_text="By the first start event (default) or by each."
    )
    segment = serializers.IntegerField(min_value=1, required=False, allow_null=True, help_text="Only its members.")


class RetentionSegmentRequestSerializer(RetentionRequestSerializer):
    cohort_start = serializers.DateField(help_text="The cohort's start, as the table gives it.")
    offset = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="Periods after the cohort's; null: the whole cohort."
    )
    name = serializers.CharField(max_length=200, help_text="The new segment's name.")


class CohortSerializer(serializers.Serializer[Any]):
    start = serializers.DateField()
    size = serializers.IntegerField()
    returned = serializers.ListField(child=serializers.IntegerField(), help_text="People back n periods later.")


class RetentionResultSerializer(serializers.Serializer[Any]):
    period = serializers.CharField()
    cohorts = CohortSerializer(many=True)
    computed_at = serializers.DateTimeField()


class ComputedTraitSettingsSerializer(serializers.ModelSerializer[ComputedTraitSettings]):
    engagement_weights = serializers.DictField(child=serializers.FloatField(), read_only=True)
    # Text, not a choice: a segment's status is another set of choices under the same field name.
    status = serializers.CharField(read_only=True, help_text="idle, queued, running, done or failed")

    class Meta:
        model = ComputedTraitSettings
        fields = [
            "rfm_event",
            "rfm_revenue_property",
            "engagement_weights",
            "engagement_default_weight",
            "engagement_half_life_days",
            "status",
            "stage",
            "progress",
            "started_at",
            "computed_at",
            "seconds",
            "people_changed",
            "error",
        ]
        read_only_fields = fields


class ComputedTraitSettingsUpdateSerializer(StrictSerializer):
    rfm_event = serializers.CharField(max_length=200, required=False)
    rfm_revenue_property = serializers.CharField(max_length=200, required=False)
    engagement_weights = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=traits.MAX_WEIGHT),
        required=False,
        help_text=f"Event name -> weight, at most {traits.MAX_WEIGHTED_EVENTS} events; "
        "events not listed weigh engagement_default_weight.",
    )
    engagement_default_weight = serializers.FloatField(min_value=0, max_value=traits.MAX_WEIGHT, required=False)
    engagement_half_life_days = serializers.FloatField(
        min_value=0.01, max_value=traits.MAX_HALF_LIFE_DAYS, required=False
    )


class RecomputeQueuedSerializer(serializers.Serializer[Any]):
    status = serializers.CharField(help_text="queued")


# --- the views -----------------------------------------------------------------------------------


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"": ["The body must be a JSON object."]})
    return dict(request.data)


def _computed(compute: Any) -> Any:
    try:
        return compute()
    except InputInvalid as error:
        raise _invalid(error) from error
    except Exception as error:
        if is_timeout(error):
            raise QueryTimeout() from error
        raise


class FunnelView(APIView):
    """A funnel: runs as the ``sequence`` condition counts them, step by step."""

    permission_classes = [ComputeOrWrite]
    computes_only = True

    @extend_schema(
        request=FunnelRequestSerializer,
        responses={200: FunnelResultSerializer, 503: OpenApiResponse(description="Past the statement timeout.")},
    )
    def post(self, request: Request) -> Response:
        workspace = request_workspace(request)
        now = timezone.now()
        try:
            spec = funnels.funnel_parse(_body(request), now=now)
        except InputInvalid as error:
            raise _invalid(error) from error
        result = _computed(lambda: funnels.funnel_compute(workspace=workspace, spec=spec, now=now))
        return Response(result.as_json())


class FunnelSegmentView(APIView):
    """A dynamic segment of the people who dropped off after step k of a funnel."""

    permission_classes = [ComputeOrWrite]

    @extend_schema(request=FunnelSegmentRequestSerializer, responses={201: SegmentSerializer})
    def post(self, request: Request) -> Response:
        body = _body(request)
        try:
            spec = funnels.funnel_parse(body, now=timezone.now(), extra=frozenset({"dropped_after", "name"}))
            dropped_after = body.get("dropped_after")
            if isinstance(dropped_after, bool) or not isinstance(dropped_after, int):
                raise InputInvalid({"dropped_after": ["is required: the step people reached, from 1"]})
            definition = funnels.dropoff_definition(spec, dropped_after)
        except InputInvalid as error:
            raise _invalid(error) from error
        return _segment_created(request, body, definition)


def _segment_created(request: Request, body: dict[str, Any], definition: dict[str, Any]) -> Response:
    name = body.get("name")
    if not isinstance(name, str):
        raise serializers.ValidationError({"name": ["is required: the new segment's name"]})
    try:
        with transaction.atomic():
            segment = segment_services.segment_create(
                workspace=request_workspace(request), actor=request_actor(request), name=name, definition=definition
            )
    except DefinitionInvalid as error:
        raise _definition_invalid(error) from error
    except DjangoValidationError as error:
        raise serializers.ValidationError(error.message_dict) from error
    return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class RetentionView(APIView):
    """A retention table: cohorts by the period of their start event, and who came back after."""

    permission_classes = [ComputeOrWrite]
    computes_only = True

    @extend_schema(
        request=RetentionRequestSerializer,
        responses={200: RetentionResultSerializer, 503: OpenApiResponse(description="Past the statement timeout.")},
    )
    def post(self, request: Request) -> Response:
        workspace = request_workspace(request)
        try:
            spec = retention.retention_parse(_body(request))
        except InputInvalid as error:
            raise _invalid(error) from error
        result = _computed(lambda: retention.retention_compute(workspace=workspace, spec=spec))
        return Response(result.as_json())


class RetentionSegmentView(APIView):
    """A dynamic segment of a cohort, or of one cell of its row (who came back ``offset`` periods later)."""

    permission_classes = [ComputeOrWrite]

    @extend_schema(request=RetentionSegmentRequestSerializer, responses={201: SegmentSerializer})
    def post(self, request: Request) -> Response:
        body = _body(request)
        try:
            spec = retention.retention_parse(body, extra=frozenset({"cohort_start", "offset", "name"}))
            definition = retention.cell_definition(
                spec, _date(body.get("cohort_start")), _offset(body.get("offset")), now=timezone.now()
            )
        except InputInvalid as error:
            raise _invalid(error) from error
        return _segment_created(request, body, definition)


def _date(raw: Any) -> date:
    try:
        return date.fromisoformat(raw)
    except (TypeError, ValueError):
        raise InputInvalid({"cohort_start": ["is required: a date (YYYY-MM-DD), a cohort's start"]}) from None


def _offset(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InputInvalid({"offset": ["must be a whole number of periods, or null"]})
    return raw


class ComputedTraitsView(APIView):
    """How the computed traits of the workspace are computed, and how the last run went."""

    permission_classes = [ComputeOrWrite]

    @extend_schema(responses=ComputedTraitSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(ComputedTraitSettingsSerializer(traits.settings_for(request_workspace(request))).data)

    @extend_schema(request=ComputedTraitSettingsUpdateSerializer, responses=ComputedTraitSettingsSerializer)
    def patch(self, request: Request) -> Response:
        request_body_required(request)
        data = ComputedTraitSettingsUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = traits.settings_update(
                workspace=request_workspace(request), actor=request_actor(request), **data.validated_data
            )
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from error
        return Response(ComputedTraitSettingsSerializer(row).data)


class ComputedTraitsRefreshView(APIView):
    """Queue a recompute of the workspace's computed traits now (the beat runs one within minutes anyway)."""

    permission_classes = [ComputeOrWrite]

    @extend_schema(request=None, responses={202: RecomputeQueuedSerializer})
    def post(self, request: Request) -> Response:
        workspace = request_workspace(request)
        traits.settings_for(workspace)
        traits.mark_queued(workspace_ids=[workspace.pk])
        transaction.on_commit(lambda: computed_traits_refresh_task.delay(workspace.pk))
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)
