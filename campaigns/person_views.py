"""Campaigns' additions to tracking's views of people (``tracking.people_extensions``; listed in
``TRACKING_PEOPLE_EXTENSIONS``): when a person is usually active (``campaigns.active_hours``).

- the field ``active_hours`` of ``GET /api/v1/people/{id}/``: ``{"best_hour", "in_words",
  "confidence", "events", "own"}`` (``own`` false: too little history, the workspace's best hour);
- the section "Usually active" of a person's page, the same in words, with their timezone.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from rest_framework import serializers

from accounts.models import Workspace
from campaigns.active_hours import MIN_EVENTS, person_active_hours
from campaigns.localtime import zone_named
from tracking.models import Person
from tracking.people_extensions import PersonField, PersonPanel


class PersonActiveHoursSerializer(serializers.Serializer[Any]):
    best_hour = serializers.IntegerField(help_text="Hour of the week in their timezone: 0 is Monday 00:00-01:00.")
    in_words = serializers.CharField(help_text='The hour in words, e.g. "Tuesday 10:00-11:00".')
    confidence = serializers.FloatField(allow_null=True, help_text="That hour's share of their decayed activity.")
    events = serializers.IntegerField(help_text="Events counted.")
    own = serializers.BooleanField(help_text="False: too little history, the workspace's best hour.")


def _active_hours(workspace: Workspace, person: Person) -> dict[str, Any]:
    found = person_active_hours(workspace.pk, person.pk)
    return {
        "best_hour": found.best_hour,
        "in_words": found.label,
        "confidence": found.confidence,
        "events": found.events,
        "own": found.own,
    }


def person_fields() -> list[PersonField]:
    return [
        PersonField(
            name="active_hours",
            field=lambda: PersonActiveHoursSerializer(
                read_only=True, help_text="When the person is usually active (send-time optimisation)."
            ),
            value=_active_hours,
        )
    ]


def _panel(request: HttpRequest, person: Person) -> str:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    found = person_active_hours(workspace.pk, person.pk)
    traits = person.traits if isinstance(person.traits, dict) else {}
    own_zone = traits.get("timezone")
    zone = own_zone if zone_named(own_zone) is not None else f"the workspace's, {found.workspace_zone}"
    context = {
        "active": found,
        "zone": zone,
        "confidence": f"{found.confidence * 100:.0f} %" if found.confidence is not None else "",
        "min_events": MIN_EVENTS,
    }
    return render_to_string("campaigns/_person_active_hours.html", context)


def person_panels() -> list[PersonPanel]:
    return [PersonPanel(name="active_hours", render=_panel)]
