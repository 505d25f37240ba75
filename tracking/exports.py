"""Everything stored about one person, as one JSON document (``GET /api/v1/export/people/{id}/``).

Tracking writes what it stores itself: the person, their traits, identities,
groups and events. Apps above tracking (which tracking never imports) add what
they store about people as named sections, through the ``person_export`` hook
of tracking's port (``tracking.events``).

Events are streamed, not capped: an export answers a person's request for all
of their data, and a person may have millions of events. The other sections
are computed before the answer starts (so that an error is still a JSON error
answer); the events follow in keyset pages of ``EVENT_PAGE`` rows, each read in
the workspace's scope, so memory stays flat whatever the person's history.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from tracking import events
from tracking import people_selectors as selectors
from tracking.models import Event, Identity, Person

OWN_SECTIONS = ("exported_at", "person", "traits", "identities", "groups", "events")
EVENT_PAGE = 1000


def _person(person: Person) -> dict[str, Any]:
    return {
        "id": person.pk,
        "user_id": person.user_id,
        "anonymous_ids": selectors.anonymous_ids(person),
        "user_ids": selectors.user_ids(person),
        "first_seen": person.first_seen,
        "last_seen": person.last_seen,
        "first_event_at": person.first_event_at,
        "last_event_at": person.last_event_at,
    }


def _identities(workspace: Workspace, person: Person) -> list[dict[str, Any]]:
    identities = Identity.objects.filter(workspace=workspace, person=person).order_by("created_at", "id")
    return [{"kind": i.kind, "value": i.value, "created_at": i.created_at} for i in identities]


def _groups(workspace: Workspace, person: Person) -> list[dict[str, Any]]:
    return [{"group_id": g.group_id, "traits": g.traits} for g in selectors.person_groups(workspace, person)]


def event_document(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "event": event.name,
        "timestamp": event.timestamp,
        "received_at": event.received_at,
        "message_id": event.message_id,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "session_id": event.session_id,
        "properties": event.properties,
        "context": event.context,
        "warnings": event.warnings,
    }


def person_export_head(*, workspace: Workspace, person: Person) -> dict[str, Any]:
    """Every section but ``events``: tracking's, then the subscribers'."""
    head: dict[str, Any] = {
        "exported_at": timezone.now(),
        "person": _person(person),
        "traits": person.traits,
        "identities": _identities(workspace, person),
        "groups": _groups(workspace, person),
    }
    head.update(events.person_export(workspace, person, reserved=OWN_SECTIONS))
    return head


def person_event_pages(*, workspace_id: int, person_id: int, page: int | None = None) -> Iterator[list[Event]]:
    """The person's events, newest first, in pages, each read in the workspace's scope (the
    answer is streamed after the request's scope has closed)."""
    page = page or EVENT_PAGE
    cursor: tuple[datetime, int] | None = None
    while True:
        with workspace_scope(workspace_id):
            workspace = Workspace(pk=workspace_id)
            rows = selectors.events_before(selectors.events_list(workspace, person_id=person_id), cursor, page)
        if rows:
            yield rows
        if len(rows) < page:
            return
        cursor = (rows[-1].timestamp, rows[-1].pk)


def person_export_json(head: dict[str, Any], pages: Iterator[list[Event]]) -> Iterator[bytes]:
    """The document as JSON in pieces: ``head``'s sections, then ``"events": [...]`` a page at a time."""
    opening = orjson.dumps(head, option=orjson.OPT_UTC_Z)
    yield opening[:-1] + (b',"events":[' if head else b'{"events":[')
    separator = b""
    for rows in pages:
        yield separator + b",".join(orjson.dumps(event_document(event), option=orjson.OPT_UTC_Z) for event in rows)
        separator = b","
    yield b"]}"
