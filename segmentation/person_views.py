"""Segmentation's additions to tracking's views of people (``tracking.people_extensions``; listed in
``TRACKING_PEOPLE_EXTENSIONS``). Tracking shows them without knowing segments exist.

- the filter ``segment``: ``GET /api/v1/people/?segment=ID`` and the People page's select, the
  segment's current members (its stored membership). An id that is not a whole number, or names no
  segment of this workspace (another workspace's included), is a 400 naming ``segment``, as an
  unknown ``person`` is for the events list;
- the field ``segments`` of ``GET /api/v1/people/{id}/``: ``[{"id", "name", "entered_at"}]``, the
  segments the person is in now, earliest entry first;
- the section "Segments" of a person's page: the segments they are in (since when), their latest
  entries and exits, and "why is this person in (or out of) this segment" for a chosen segment
  (``segmentation.explain``), rendered inline from ``?why=<segment id>`` and, with htmx, fetched
  from ``/segments/why/``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from rest_framework import serializers

from accounts.models import Workspace
from segmentation import selectors
from segmentation.explain import Explanation, person_explain
from segmentation.models import Segment
from tracking.models import Person
from tracking.people_extensions import FilterValueInvalid, PeopleFilter, PersonField, PersonPanel

RECENT_CHANGES = 10
MAX_ID = 10**18 - 1


def segment_id_or_none(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 18 or int(value) < 1:
        return None
    return int(value)


def _in_segment(workspace: Workspace, people: QuerySet[Person], value: str) -> QuerySet[Person]:
    segment_id = segment_id_or_none(value.strip())
    if segment_id is None:
        raise FilterValueInvalid(f"Not a segment id: {value!r}.")
    segment = selectors.segment_get(workspace, segment_id)
    if segment is None:
        raise FilterValueInvalid(f"No segment with id {segment_id} in this workspace.")
    return selectors.people_in_segment(workspace, people, segment)


def _segment_choices(workspace: Workspace) -> list[tuple[str, str]]:
    rows = Segment.objects.filter(workspace=workspace).order_by("name", "id").values_list("pk", "name", "size")
    return [(str(pk), f"{name} ({size:,})") for pk, name, size in rows]


def people_filters() -> list[PeopleFilter]:
    return [
        PeopleFilter(
            name="segment",
            label="Segment",
            description="only the current members of this segment (its id; 400 when it names no segment here)",
            schema={"type": "integer", "minimum": 1, "maximum": MAX_ID},
            apply=_in_segment,
            choices=_segment_choices,
        )
    ]


class PersonSegmentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    entered_at = serializers.DateTimeField(read_only=True, help_text="When the person entered the segment.")


def _current_segments(workspace: Workspace, person: Person) -> list[dict[str, Any]]:
    current = selectors.person_segments(workspace, person.pk)
    return [{"id": s.id, "name": s.name, "entered_at": s.entered_at} for s in current]


def person_fields() -> list[PersonField]:
    return [
        PersonField(
            name="segments",
            field=lambda: PersonSegmentSerializer(
                many=True, read_only=True, help_text="The segments the person is in now, earliest entry first."
            ),
            value=_current_segments,
        )
    ]


def explanation_for(request: HttpRequest, person: Person, value: str | None) -> Explanation | None:
    """The explanation for ``?why=<segment id>``, or None when it names no segment of the workspace."""
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    segment_id = segment_id_or_none(value)
    segment = selectors.segment_get(workspace, segment_id) if segment_id is not None else None
    if segment is None:
        return None
    return person_explain(workspace=workspace, segment=segment, person=person)


def _segments_panel(request: HttpRequest, person: Person) -> str:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    current = selectors.person_segments(workspace, person.pk)
    why = request.GET.get("why")
    explanation = explanation_for(request, person, why)
    context = {
        "person": person,
        "current": current,
        "changes": selectors.person_changes(workspace, person.pk, limit=RECENT_CHANGES),
        "segments": list(Segment.objects.filter(workspace=workspace).order_by("name", "id").values_list("pk", "name")),
        "member_of": {s.id for s in current},
        "explanation": explanation,
        "why_unknown": why is not None and explanation is None,
    }
    # Without the request: the page around it has run the context processors already.
    return render_to_string("segmentation/_person_segments.html", context)


def person_panels() -> list[PersonPanel]:
    return [PersonPanel(name="segments", render=_segments_panel)]
