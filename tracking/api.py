"""REST endpoints for people and their events (rest-api.md, "People").

Event lists use cursor pagination on ``(timestamp, id)``: the events table is
big, and a page never counts it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import _actor, _workspace
from config.api import CursorPagination
from tracking import people_selectors as selectors
from tracking import people_services as services
from tracking.models import Event, Person


class EventCursorPagination(CursorPagination):
    """Newest first; the cursor holds a position, not an offset into the whole table."""

    ordering = ("-timestamp", "-id")


class PersonSerializer(serializers.ModelSerializer[Person]):
    user_id = serializers.CharField(read_only=True, allow_null=True, help_text="Null when the person is anonymous.")
    anonymous_ids = serializers.SerializerMethodField()
    user_ids = serializers.SerializerMethodField(help_text="Every user id the person is known by (aliases too).")

    class Meta:
        model = Person
        fields = ["id", "user_id", "anonymous_ids", "user_ids", "traits", "first_seen", "last_seen"]
        read_only_fields = fields

    def get_anonymous_ids(self, person: Person) -> list[str]:
        return selectors.anonymous_ids(person)

    def get_user_ids(self, person: Person) -> list[str]:
        return selectors.user_ids(person)


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


@extend_schema_view(list=extend_schema(parameters=PEOPLE_PARAMETERS))
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
        workspace = _workspace(self.request)
        if self.action != "list":
            return selectors.people_list(workspace)
        return selectors.people_list(
            workspace,
            user_id=_text_param(self.request, "user_id"),
            anonymous_id=_text_param(self.request, "anonymous_id"),
            search=self.request.query_params.get("search"),
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        erasure = services.person_erase(workspace=_workspace(request), person=self.get_object(), actor=_actor(request))
        if erasure is None:  # erased (or merged away) by a concurrent request since get_object
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=EventSerializer(many=True), parameters=EVENT_PARAMETERS[1:])
    @action(detail=True, methods=["get"], serializer_class=EventSerializer, pagination_class=EventCursorPagination)
    def events(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The person's events, newest first."""
        person = self.get_object()
        events = selectors.events_list(
            _workspace(request),
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
        workspace = _workspace(self.request)
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
