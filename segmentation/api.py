"""REST endpoints of segments (rest-api.md, "Segments"): /api/v1/segments/.

Members of the workspace write, viewers read. An invalid definition answers 400
with errors keyed by its path inside the body (``definition.conditions[1].count.operator``),
before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import request_actor, request_workspace
from core.api import Pagination, StrictSerializer
from segmentation import selectors, services
from segmentation.definition import (
    DefinitionInvalid,
)
from segmentation.exports import csv_lines
from segmentation.models import MAX_TAG_LENGTH, MAX_TAGS, Segment
from segmentation.serializers import DefinitionField, SegmentSerializer
from tracking.serializers import PersonSerializer


def _tags_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH),
        max_length=MAX_TAGS,
        help_text="Labels for finding the segment; stored case folded, each once; no commas.",
        **kwargs,
    )


class SegmentCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    tags = _tags_field(required=False, default=list)
    definition = DefinitionField(required=False, allow_null=True, default=None)
    static = serializers.BooleanField(required=False, default=False, help_text="A list of people, no definition.")
    refresh_interval_seconds = serializers.IntegerField(
        required=False,
        min_value=services.MIN_REFRESH_INTERVAL_SECONDS,
        max_value=services.MAX_REFRESH_INTERVAL_SECONDS,
    )


class SegmentUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    tags = _tags_field(required=False)
    definition = DefinitionField(required=False)
    refresh_interval_seconds = serializers.IntegerField(
        required=False,
        min_value=services.MIN_REFRESH_INTERVAL_SECONDS,
        max_value=services.MAX_REFRESH_INTERVAL_SECONDS,
    )

    def to_internal_value(self, data: Any) -> Any:
        # Refused by name, not as an unknown field: the reason helps more than "Unknown field."
        if isinstance(data, dict) and "static" in data:
            raise serializers.ValidationError(
                {"static": ["A segment cannot change between static and dynamic; create a new one."]}
            )
        return super().to_internal_value(data)

    def validate_definition(self, value: Any) -> Any:
        if value is None:
            raise serializers.ValidationError("A dynamic segment needs a definition.")
        return value


class PreviewSerializer(StrictSerializer):
    definition = DefinitionField()
    sample_size = serializers.IntegerField(required=False, default=10, min_value=0, max_value=services.MAX_SAMPLE_SIZE)


class PreviewResultSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    sample = PersonSerializer(many=True)


class SegmentMemberSerializer(PersonSerializer):
    entered_at = serializers.DateTimeField(read_only=True, help_text="When the person entered the segment.")

    class Meta(PersonSerializer.Meta):
        fields = [*PersonSerializer.Meta.fields, "entered_at"]
        read_only_fields = fields


class MembersChangeSerializer(StrictSerializer):
    add = serializers.ListField(
        child=serializers.CharField(max_length=services.MAX_USER_ID_LENGTH, trim_whitespace=False),
        required=False,
        default=list,
        max_length=services.MAX_STATIC_CHANGE,
    )
    remove = serializers.ListField(
        child=serializers.CharField(max_length=services.MAX_USER_ID_LENGTH, trim_whitespace=False),
        required=False,
        default=list,
        max_length=services.MAX_STATIC_CHANGE,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("add", "remove"):
            for index, value in enumerate(attrs[name]):
                if not isinstance(self.initial_data[name][index], str):
                    raise serializers.ValidationError({f"{name}[{index}]": ["Expected a user id (a string)."]})
                if "\x00" in value:
                    raise serializers.ValidationError({f"{name}[{index}]": ["Must not contain the NUL character."]})
        return attrs


class MembersChangeResultSerializer(serializers.Serializer[Any]):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    unknown = serializers.ListField(child=serializers.CharField(), help_text="User ids that name nobody here.")
    size = serializers.IntegerField()


class HistoryDaySerializer(serializers.Serializer[Any]):
    date = serializers.DateField()
    size = serializers.IntegerField(allow_null=True, help_text="After the day's last refresh; null before the first.")
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()


class QueuedSerializer(serializers.Serializer[Any]):
    status = serializers.CharField()


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The segment is in use."


class QueryTimeout(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "timeout"
    default_detail = "The segment took too long to evaluate."


def definition_errors(error: DefinitionInvalid) -> serializers.ValidationError:
    """The parser's errors keyed by their path inside the request body."""
    errors: dict[str, list[str]] = {}
    for item in error.errors:
        key = f"definition.{item.path}" if item.path else "definition"
        errors.setdefault(key, []).append(item.message)
    return serializers.ValidationError(errors)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise serializers.ValidationError({name: [f"Expected true or false, not {value!r}."]})


ORDERING = OpenApiParameter(
    "ordering", OpenApiTypes.STR, enum=sorted(selectors.SEGMENT_ORDERS), description="sort order (default name)"
)
SEARCH = OpenApiParameter("search", OpenApiTypes.STR, description="part of the name or description, or a tag")
TAG = OpenApiParameter("tag", OpenApiTypes.STR, description="only the segments with this tag (case-insensitive)")


class SegmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Segment]
):
    """Segments of the workspace: dynamic (a definition, refreshed periodically) or static (a list)."""

    serializer_class = SegmentSerializer
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return Segment.objects.unscoped().none()
        workspace = request_workspace(self.request)
        if self.action != "list":
            return selectors.segment_list(workspace)
        order = self.request.query_params.get("ordering", "name")
        if order not in selectors.SEGMENT_ORDERS:
            raise serializers.ValidationError(
                {"ordering": [f"One of {', '.join(sorted(selectors.SEGMENT_ORDERS))}, not {order!r}."]}
            )
        return selectors.segment_list(
            workspace,
            search=self.request.query_params.get("search", ""),
            order=order,
            tag=self.request.query_params.get("tag"),
        )

    @extend_schema(parameters=[SEARCH, TAG, ORDERING])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=SegmentCreateSerializer, responses={201: SegmentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = SegmentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workspace = request_workspace(request)
        if values.get("refresh_interval_seconds") is not None and values["static"]:
            raise serializers.ValidationError({"refresh_interval_seconds": ["A static segment is never refreshed."]})
        try:
            with transaction.atomic():  # a segment with its interval, or nothing
                segment = services.segment_create(
                    workspace=workspace,
                    actor=request_actor(request),
                    name=values["name"],
                    definition=values["definition"],
                    static=values["static"],
                    description=values["description"],
                    tags=values["tags"],
                )
                if values.get("refresh_interval_seconds") is not None:
                    segment = services.segment_update(
                        segment=segment,
                        actor=request_actor(request),
                        refresh_interval_seconds=values["refresh_interval_seconds"],
                    )
        except DefinitionInvalid as error:
            raise definition_errors(error) from error
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SegmentUpdateSerializer, responses=SegmentSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        segment = self.get_object()
        data = SegmentUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            segment = services.segment_update(
                segment=segment,
                actor=request_actor(request),
                name=values.get("name"),
                definition=values.get("definition"),
                description=values.get("description"),
                tags=values.get("tags"),
                refresh_interval_seconds=values.get("refresh_interval_seconds"),
            )
        except DefinitionInvalid as error:
            raise definition_errors(error) from error
        return Response(SegmentSerializer(segment).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="another segment's definition uses it")})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        segment = self.get_object()
        try:
            services.segment_delete(segment=segment, actor=request_actor(request))
        except DjangoValidationError as error:
            raise Conflict(" ".join(error.messages)) from error
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """How many people a definition holds now, and a sample, without saving anything."""
        data = PreviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = services.segment_preview(
                workspace=request_workspace(request),
                definition=data.validated_data["definition"],
                sample_size=data.validated_data["sample_size"],
            )
        except DefinitionInvalid as error:
            raise definition_errors(error) from error
        except services.SegmentQueryTimeout as error:
            raise QueryTimeout(str(error)) from error
        return Response({"count": result.count, "sample": PersonSerializer(result.sample, many=True).data})

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("wait", OpenApiTypes.BOOL, description="refresh now and answer the segment")],
        responses={202: QueuedSerializer, 200: SegmentSerializer},
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Queue a refresh (202); with ``?wait=true``, refresh now and answer the segment (200).

        A failed synchronous refresh answers 200 too, with ``status`` "failed" and the reason in ``error``.
        """
        segment = self.get_object()
        if not _flag(request, "wait"):
            services.segment_refresh_enqueue(segment=segment)
            return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)
        services.segment_refresh(segment=segment)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(methods=["GET"], responses=SegmentMemberSerializer(many=True))
    @extend_schema(methods=["POST"], request=MembersChangeSerializer, responses=MembersChangeResultSerializer)
    @action(detail=True, methods=["get", "post"])
    def members(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """GET: the current members, most recent entries first. POST: add or remove people of a static segment."""
        segment = self.get_object()
        workspace = request_workspace(request)
        if request.method == "GET":
            paginator = Pagination()
            page = paginator.paginate_queryset(
                selectors.segment_members(workspace, segment, identities=True), request, view=self
            )
            return paginator.get_paginated_response(SegmentMemberSerializer(page, many=True).data)
        data = MembersChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = services.segment_static_change(
            segment=segment,
            actor=request_actor(request),
            add=data.validated_data["add"],
            remove=data.validated_data["remove"],
        )
        return Response(
            {"added": change.added, "removed": change.removed, "unknown": change.unknown, "size": segment.size}
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days",
                {"type": "integer", "minimum": 1, "maximum": 365},
                description="how many UTC days, 1..365 (default 30)",
            )
        ],
        responses=HistoryDaySerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Per UTC day: the size after the day's last refresh, and the day's entries and exits."""
        segment = self.get_object()
        raw = request.query_params.get("days", "30")
        if not raw.isdigit() or not 1 <= int(raw) <= 365:
            raise serializers.ValidationError({"days": [f"A whole number of days from 1 to 365, not {raw!r}."]})
        rows = selectors.segment_history(request_workspace(request), segment, days=int(raw))
        return Response(HistoryDaySerializer(rows, many=True).data)


CSV_COLUMNS = ["user_id", "anonymous_ids", "entered_at", "traits"]


def _csv_lines(rows: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    return csv_lines(
        CSV_COLUMNS,
        (
            (user_id, json.dumps(list(anonymous_ids)), entered_at.isoformat(), traits)
            for user_id, anonymous_ids, entered_at, traits in rows
        ),
    )


class SegmentMembersCsvView(APIView):
    """Every member of a segment as CSV, streamed from a server-side cursor."""

    def get_queryset(self) -> Any:
        """For the schema only: names the path's id after the segment."""
        return Segment.objects.unscoped().none()

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The answer is CSV whatever the Accept header; errors still answer JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="Header row user_id, anonymous_ids (JSON list), entered_at (ISO 8601), traits (JSON).",
            )
        }
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        workspace = request_workspace(request)
        segment = selectors.segment_get(workspace, pk)
        if segment is None:
            raise exceptions.NotFound()
        response = StreamingHttpResponse(
            _csv_lines(selectors.segment_member_rows(workspace, segment)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-members.csv"'
        return response
