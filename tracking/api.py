"""REST endpoints for people and their events, the quarantine and a person's export
(rest-api.md, "People").

Event and quarantine lists use cursor pagination on ``(time, id)``: the tables
are big, and a page never counts them.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import WorkspaceRole
from accounts.requests import request_actor, request_workspace
from accounts.services import audit_record
from core.api import CursorPagination
from tracking import exports, people_extensions
from tracking import people_selectors as selectors
from tracking import people_services as services
from tracking.models import Event, Person, QuarantinedMessage, QuarantineKind
from tracking.serializers import PersonSerializer


class EventCursorPagination(CursorPagination):
    """Newest first; the cursor holds a position, not an offset into the whole table."""

    ordering = ("-timestamp", "-id")


class EventSerializer(serializers.ModelSerializer[Event]):
    event = serializers.CharField(source="name", read_only=True, help_text="The name; $pageview for pages.")
    person = serializers.IntegerField(source="person_id", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "event",
            "timestamp",
            "received_at",
            "person",
            "user_id",
            "anonymous_id",
            "message_id",
            "properties",
        ]
        read_only_fields = fields


def _text_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.strip():
        raise ValidationError({name: ["Must not be empty."]})
    return value


def _time_param(request: Request, name: str) -> datetime | None:
    value = _text_param(request, name)
    if value is None:
        return None
    try:
        moment = parse_datetime(value.strip().replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationError({name: [f"Not an ISO 8601 timestamp: {value!r}."]})
    if moment.tzinfo is None:
        raise ValidationError({name: ["Give a time zone, e.g. 2026-01-31T12:00:00Z."]})
    # In UTC: PostgreSQL refuses offsets beyond +/-15:59, which Python accepts.
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError({name: [f"Out of range (years 1-9999 in UTC): {value!r}."]}) from None


def _int_param(request: Request, name: str) -> int | None:
    value = _text_param(request, name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationError({name: [f"Not a person id: {value!r}."]})
    return int(value)


# Not empty and not only white space (``_text_param``).
_TEXT = {"type": "string", "pattern": r"\S"}
PEOPLE_PARAMETERS = [
    OpenApiParameter("user_id", _TEXT, description="people known by this user id"),
    OpenApiParameter("anonymous_id", _TEXT, description="people known by this anonymous id"),
    OpenApiParameter(
        "search", OpenApiTypes.STR, description="a user or anonymous id, email or trait value; key=value for one trait"
    ),
]
EVENT_PARAMETERS = [
    OpenApiParameter("person", {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}, description="a person's id"),
    OpenApiParameter("event", _TEXT, description="an event name ($pageview for pages)"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="at or after this instant (ISO 8601)"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="strictly before this instant (ISO 8601)"),
]


def _extension_parameters() -> list[OpenApiParameter]:
    """The filters apps above contribute (``tracking.people_extensions``), registered before this module loads."""
    return [
        OpenApiParameter(extension.name, extension.schema, description=extension.description)
        for extension in people_extensions.people_filters()
    ]


@functools.cache
def person_detail_serializer() -> type[PersonSerializer]:
    """One person's answer: the person with the fields apps above contribute (``segments``)."""
    extra = people_extensions.person_fields()
    names = [field.name for field in extra]
    meta = type("Meta", (PersonSerializer.Meta,), {"fields": [*PersonSerializer.Meta.fields, *names]})
    attrs: dict[str, Any] = {field.name: field.field() for field in extra}
    return type("PersonDetailSerializer", (PersonSerializer,), {**attrs, "Meta": meta, "__module__": __name__})


def _filtered(request: Request, people: Any) -> Any:
    """The people narrowed by each contributed filter given; a value naming nothing here is a 400 naming it."""
    workspace = request_workspace(request)
    for extension in people_extensions.people_filters():
        value = _text_param(request, extension.name)
        if value is None:
            continue
        try:
            people = extension.apply(workspace, people, value)
        except people_extensions.FilterValueInvalid as error:
            raise ValidationError({extension.name: [str(error)]}) from error
    return people


@extend_schema_view(list=extend_schema(parameters=[*PEOPLE_PARAMETERS, *_extension_parameters()]))
class PersonViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Person]
):
    """People of the workspace. DELETE erases a person (right to be forgotten)."""

    serializer_class = PersonSerializer
    admin_only = True  # erasure is the only write, and an admin's decision
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return Person.objects.unscoped().none()
        workspace = request_workspace(self.request)
        if self.action != "list":
            return selectors.people_list(workspace)
        people = selectors.people_list(
            workspace,
            user_id=_text_param(self.request, "user_id"),
            anonymous_id=_text_param(self.request, "anonymous_id"),
            search=self.request.query_params.get("search"),
        )
        return _filtered(self.request, people)

    def get_serializer_class(self) -> Any:
        if self.action == "retrieve":
            return person_detail_serializer()
        return super().get_serializer_class()

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The person, with what apps above know of them (``segments``: the segments they are in now)."""
        person = self.get_object()
        workspace = request_workspace(request)
        for field in people_extensions.person_fields():
            setattr(person, field.name, field.value(workspace, person))
        return Response(self.get_serializer(person).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        erasure = services.person_erase(
            workspace=request_workspace(request), person=self.get_object(), actor=request_actor(request)
        )
        if erasure is None:  # erased (or merged away) by a concurrent request since get_object
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=EventSerializer(many=True), parameters=EVENT_PARAMETERS[1:])
    @action(detail=True, methods=["get"], serializer_class=EventSerializer, pagination_class=EventCursorPagination)
    def events(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The person's events, newest first."""
        person = self.get_object()
        events = selectors.events_list(
            request_workspace(request),
            person_id=person.pk,
            name=_text_param(request, "event"),
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
        )
        paginator = EventCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventSerializer(page, many=True).data)


@extend_schema_view(list=extend_schema(parameters=EVENT_PARAMETERS))
class EventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Event]):
    """Events of the workspace, newest first, filtered by person, name and time."""

    serializer_class = EventSerializer
    pagination_class = EventCursorPagination

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return Event.objects.unscoped().none()
        workspace = request_workspace(self.request)
        since = _time_param(self.request, "since")
        until = _time_param(self.request, "until")
        if since is not None and until is not None and since >= until:
            raise ValidationError({"until": ["Must be later than since."]})
        person_id = _int_param(self.request, "person")
        if person_id is not None and not selectors.person_exists(workspace, person_id):
            raise ValidationError({"person": [f"No person with id {person_id}."]})
        return selectors.events_list(
            workspace, person_id=person_id, name=_text_param(self.request, "event"), since=since, until=until
        )


# --- The quarantine ------------------------------------------------------------------------


class QuarantineCursorPagination(CursorPagination):
    ordering = ("-received_at", "-id")


class QuarantinedMessageSerializer(serializers.ModelSerializer[QuarantinedMessage]):
    message = serializers.JSONField(source="raw", read_only=True, help_text="The message as received.")
    reason = serializers.CharField(
        read_only=True, help_text="Why it was refused; for kind=warned, its warnings joined by '; '."
    )
    message_id = serializers.CharField(read_only=True, allow_null=True, help_text="Null without a usable messageId.")

    class Meta:
        model = QuarantinedMessage
        fields = ["id", "received_at", "reason", "message_id", "message"]
        read_only_fields = fields


QUARANTINE_PARAMETERS = [
    OpenApiParameter(
        "kind",
        OpenApiTypes.STR,
        enum=list(QuarantineKind.values),
        description="rejected (the default): messages refused on their own; warned: messages stored with warnings; "
        "plan: track calls the tracking plan kept out (see /api/v1/tracking-plan/)",
    ),
    OpenApiParameter("reason", _TEXT, description="only messages with exactly this reason"),
]


@extend_schema_view(list=extend_schema(parameters=QUARANTINE_PARAMETERS))
class QuarantineViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[QuarantinedMessage]):
    """Messages refused on their own while the rest of their batch was stored, newest first.

    With ``kind=warned``: messages stored after a change (a time replaced, NUL characters
    replaced), with their warnings as ``reason``. With ``kind=plan``: track calls that violated the
    tracking plan where it quarantines them, with the violations as ``reason``. Every member of the
    workspace may read it.
    """

    serializer_class = QuarantinedMessageSerializer
    pagination_class = QuarantineCursorPagination

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return QuarantinedMessage.objects.unscoped().none()
        kind = self.request.query_params.get("kind", QuarantineKind.REJECTED)
        if kind not in QuarantineKind.values:
            raise ValidationError({"kind": [f"One of {', '.join(QuarantineKind.values)}, not {kind!r}."]})
        return selectors.quarantine_list(
            request_workspace(self.request), kind=kind, reason=_text_param(self.request, "reason")
        )


# --- A person's export ------------------------------------------------------------------------


class CanExportPeople(WorkspaceRole):
    """An export is all of a person's data in one answer: owners and admins only (a key acts
    with the role its request carries), as for erasure, the other data-subject duty."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        membership = request._request.membership  # type: ignore[attr-defined]
        if membership is None:  # a key that carries no role acts with its workspace's full rights
            return request.auth is not None
        self.message = "Only an owner or admin of the workspace may export a person's data."
        return bool(membership.can_admin)


class ExportIdentitySerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["user_id", "anonymous_id"])
    value = serializers.CharField()
    created_at = serializers.DateTimeField()


class ExportPersonSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    user_id = serializers.CharField(allow_null=True)
    anonymous_ids = serializers.ListField(child=serializers.CharField())
    user_ids = serializers.ListField(child=serializers.CharField())
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    first_event_at = serializers.DateTimeField(allow_null=True)
    last_event_at = serializers.DateTimeField(allow_null=True)


class ExportGroupSerializer(serializers.Serializer[Any]):
    group_id = serializers.CharField()
    traits = serializers.DictField()


class ExportEventSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    event = serializers.CharField(help_text="The name; $pageview for pages, $screen for screens.")
    timestamp = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    message_id = serializers.CharField()
    user_id = serializers.CharField(allow_null=True)
    anonymous_id = serializers.CharField(allow_null=True)
    session_id = serializers.CharField(allow_null=True)
    properties = serializers.DictField()
    # The metaclass takes declared fields off the class: no clash with Serializer.context.
    context = serializers.DictField()  # type: ignore[assignment]
    warnings = serializers.ListField(child=serializers.CharField())


class ExportSegmentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True, help_text="Null when the segment was deleted since.")


class ExportMembershipSerializer(serializers.Serializer[Any]):
    segment = ExportSegmentSerializer()
    entered_at = serializers.DateTimeField()


class ExportMembershipChangeSerializer(serializers.Serializer[Any]):
    segment = ExportSegmentSerializer()
    kind = serializers.ChoiceField(choices=["entered", "exited"])
    at = serializers.DateTimeField()


class ExportMembershipsSerializer(serializers.Serializer[Any]):
    current = ExportMembershipSerializer(many=True, help_text="The segments the person is in now.")
    history = ExportMembershipChangeSerializer(many=True, help_text="Entries and exits, oldest first.")


class ExportMessageSerializer(serializers.Serializer[Any]):
    channel = serializers.ChoiceField(choices=["webhook"])
    id = serializers.IntegerField()
    event = serializers.CharField(help_text="segment.entered or segment.exited")
    segment_id = serializers.IntegerField(allow_null=True)
    url = serializers.URLField(help_text="Where it was sent.")
    at = serializers.DateTimeField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    payload = serializers.JSONField(allow_null=True, help_text="The body as sent; null before the first attempt.")


class ExportClusterSerializer(serializers.Serializer[Any]):
    run = serializers.IntegerField(help_text="The clustering run (suggested segments).")
    cluster = serializers.IntegerField(help_text="The person's cluster in it, numbered from 1 as the page shows it.")
    run_finished_at = serializers.DateTimeField(allow_null=True)


class ExportCampaignMessageSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    campaign = serializers.CharField()
    campaign_id = serializers.IntegerField()
    variant = serializers.CharField(allow_null=True, help_text="Null for the holdout.")
    channel = serializers.ChoiceField(choices=["email", "webhook", "onsite"])
    occurrence = serializers.CharField(help_text="run:<id>, change:<id> or event:<id>")
    state = serializers.CharField()
    reason = serializers.CharField(help_text="Why it was not sent, if it was not.")
    recipient = serializers.CharField(help_text="The address or URL it went to.")
    due_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    opened_at = serializers.DateTimeField(allow_null=True)
    clicked_at = serializers.DateTimeField(allow_null=True)


class ExportSuppressionSerializer(serializers.Serializer[Any]):
    address = serializers.CharField()
    reason = serializers.ChoiceField(choices=["unsubscribed", "bounced", "complained", "manual"])
    campaign_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class ExportActiveHoursSerializer(serializers.Serializer[Any]):
    best_hour = serializers.IntegerField(help_text="Hour of the week in their timezone: 0 is Monday 00:00-01:00.")
    in_words = serializers.CharField()
    confidence = serializers.FloatField()
    events = serializers.IntegerField()
    histogram = serializers.ListField(child=serializers.FloatField(), help_text="168 decayed weights, hour 0 first.")
    as_of = serializers.DateTimeField()


class PersonExportSerializer(serializers.Serializer[Any]):
    """The document. Apps may add sections; ``memberships`` and ``messages`` are segmentation's,
    ``suggested_segment_clusters`` insights', ``campaign_messages``, ``email_suppressions`` and
    ``active_hours`` campaigns'."""

    exported_at = serializers.DateTimeField()
    person = ExportPersonSerializer()
    traits = serializers.DictField()
    identities = ExportIdentitySerializer(many=True, help_text="Every id the person is known by, oldest first.")
    groups = ExportGroupSerializer(many=True)
    memberships = ExportMembershipsSerializer()
    messages = ExportMessageSerializer(many=True, help_text="Messages sent about the person, oldest first.")
    suggested_segment_clusters = ExportClusterSerializer(
        many=True, help_text="The clusters of suggested segments the person was placed in (kept runs only)."
    )
    campaign_messages = ExportCampaignMessageSerializer(
        many=True, help_text="Campaign messages to the person, with their engagement, oldest first."
    )
    email_suppressions = ExportSuppressionSerializer(
        many=True, help_text="The person's addresses no campaign emails any more (unsubscribed, bounced...)."
    )
    active_hours = ExportActiveHoursSerializer(
        allow_null=True, help_text="When the person is usually active, learned from their events (null: not yet)."
    )
    events = ExportEventSerializer(many=True, help_text="Every event, newest first (the answer is streamed).")


class PersonExportView(viewsets.ViewSet):
    """Everything stored about one person, as one JSON document (the right of access).

    Owners and admins only. The events are streamed whole, never capped; each export is
    written to the audit log.
    """

    permission_classes = [CanExportPeople]
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        """For the schema only: names the path's id after the person."""
        return Person.objects.unscoped().none()

    @extend_schema(
        responses={
            200: PersonExportSerializer,
            403: OpenApiResponse(description="Not an owner or admin of the workspace."),
            404: OpenApiResponse(description="No such person in this workspace."),
        }
    )
    def retrieve(self, request: Request, pk: int, **kwargs: Any) -> StreamingHttpResponse:
        workspace = request_workspace(request)
        person = selectors.person_get(workspace, int(pk))
        if person is None:
            raise NotFound()
        head = exports.person_export_head(workspace=workspace, person=person)
        audit_record(
            workspace=workspace,
            actor=request_actor(request),
            action="person.exported",
            target=f"person {person.pk}",
            details={},
        )
        pages = exports.person_event_pages(workspace_id=workspace.pk, person_id=person.pk)
        response = StreamingHttpResponse(exports.person_export_json(head, pages), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="person-{person.pk}.json"'
        return response
