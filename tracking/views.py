"""HTML views: live events, people, a person's page, the quarantine."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from accounts.requests import MemberRequest
from accounts.views import workspace_required
from tracking import people_selectors as selectors
from tracking import people_services as services
from tracking.models import Event, Person

PEOPLE_PAGE_SIZE = 50
TIMELINE_PAGE_SIZE = 50
QUARANTINE_PAGE_SIZE = 50


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


PROPERTIES_SHOWN = 6


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _with_json(events: list[Event]) -> list[Event]:
    """Properties ready for templates. Computed here, not in the template: a property named
    ``items`` or ``keys`` would shadow the dict's methods in template lookups."""
    for event in events:
        properties = event.properties if isinstance(event.properties, dict) else {"value": event.properties}
        pairs = [(str(key), _as_text(value)) for key, value in properties.items()]
        event.prop_pairs = pairs[:PROPERTIES_SHOWN]  # type: ignore[attr-defined]
        event.more_props = max(0, len(pairs) - PROPERTIES_SHOWN)  # type: ignore[attr-defined]
        event.properties_json = _pretty(event.properties)  # type: ignore[attr-defined]
    return events


def _positive_int(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


@require_GET
@workspace_required()
def live_events(request: MemberRequest) -> HttpResponse:
    """The live feed. Its htmx poller calls back with ``after=<last id>`` every 2 s and gets
    only the newer rows (204 when there are none, so the page stays as it is)."""
    workspace = request.workspace
    filters = {
        "event": request.GET.get("event", "").strip(),
        "person": request.GET.get("person", "").strip(),
    }
    live = selectors.LiveFilter(name=filters["event"] or None)
    if filters["person"]:
        person = selectors.person_by_id_value(workspace, filters["person"])
        if person is None:
            live = selectors.LiveFilter(name=live.name, unknown_person=True)
        else:
            live = selectors.LiveFilter(name=live.name, person_id=person.pk)
    query = urlencode({key: value for key, value in filters.items() if value})
    feed_url = f"{reverse('live_events')}?{query}"
    filtered = any(filters.values())

    after = request.GET.get("after")
    if after is not None and getattr(request, "htmx", False):
        after_id = _positive_int(after) or 0
        full = request.GET.get("full") == "1"
        events = selectors.live_events(workspace, live, after_id=None if full else after_id)
        if not events:
            return HttpResponse(status=204)
        context = {
            "events": _with_json(events),
            "last_id": max(event.pk for event in events),
            "feed_url": feed_url,
            "filtered": filtered,
            "has_events": True,
            "fresh": not full,
        }
        template = "tracking/_live_feed.html" if full else "tracking/_live_rows.html"
        return render(request, template, context)

    events = selectors.live_events(workspace, live, after_id=None)
    has_events = bool(events) or selectors.workspace_has_events(workspace)
    return render(
        request,
        "tracking/live_events.html",
        {
            "section": "live_events",
            "events_tab": "live",
            "events": _with_json(events),
            "last_id": max((event.pk for event in events), default=0),
            "filters": filters,
            "filtered": filtered,
            "has_events": has_events,
            "feed_url": feed_url,
            "event_names": selectors.recent_event_names(workspace) if has_events else [],
        },
    )


@require_GET
@workspace_required()
def people(request: MemberRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    page = Paginator(selectors.people_list(request.workspace, search=q or None), PEOPLE_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "tracking/people.html", {"section": "people", "page": page, "q": q})


def _person_or_404(request: MemberRequest, pk: int) -> Person:
    person = selectors.person_get(request.workspace, pk)
    if person is None:
        raise Http404("No such person in this workspace.")
    return person


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    """``<ISO timestamp>_<id>``: where an older page of a timeline starts."""
    if not value:
        return None
    moment_text, _, id_text = value.rpartition("_")
    try:
        moment = parse_datetime(moment_text.replace(" ", "+"))
    except ValueError:
        return None
    event_id = _positive_int(id_text)
    if moment is None or moment.tzinfo is None or event_id is None:
        return None
    return moment, event_id


@require_GET
@workspace_required()
def person_detail(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    person = _person_or_404(request, pk)
    cursor = _cursor(request.GET.get("before"))
    page = selectors.events_before(
        selectors.events_list(workspace, person_id=person.pk), cursor, TIMELINE_PAGE_SIZE + 1
    )
    events, more = page[:TIMELINE_PAGE_SIZE], len(page) > TIMELINE_PAGE_SIZE
    older_url = None
    if more:
        last = events[-1]
        older_url = "?" + urlencode({"before": f"{last.timestamp.isoformat()}_{last.pk}"})
    identities = selectors.user_ids(person), selectors.anonymous_ids(person)
    traits = person.traits
    display_name = traits.get("name") or traits.get("email") or person.user_id or f"Anonymous #{person.pk}"
    return render(
        request,
        "tracking/person_detail.html",
        {
            "section": "people",
            "person": person,
            "display_name": str(display_name),
            "traits": [(key, _as_text(value)) for key, value in selectors.plain_traits(person)],
            "first_touch": [(key, _as_text(value)) for key, value in selectors.first_touch(person)],
            "identities": person.identity_list,  # type: ignore[attr-defined]
            "groups": list(selectors.person_groups(workspace, person)),
            "live_id": person.user_id or (identities[1][0] if identities[1] else ""),
            "events": _with_json(events),
            "older_url": older_url,
            "newer_url": "?" if cursor is not None else None,
        },
    )


@require_POST
@workspace_required(write="admin")
def person_erase(request: MemberRequest, pk: int) -> HttpResponse:
    person = _person_or_404(request, pk)
    erasure = services.person_erase(workspace=request.workspace, person=person, actor=request.user)
    messages.success(
        request,
        f"Person erased with {erasure.events} events. Events that arrive later with their ids are dropped.",
    )
    return redirect("people")


@require_GET
@workspace_required()
def quarantine(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    reason = request.GET.get("reason") or None
    reasons = selectors.quarantine_by_reason(workspace)
    page = Paginator(selectors.quarantine_list(workspace, reason=reason), QUARANTINE_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for item in page.object_list:
        item.raw_json = _pretty(item.raw)  # type: ignore[attr-defined]
    return render(
        request,
        "tracking/quarantine.html",
        {
            "section": "live_events",
            "events_tab": "quarantine",
            "reasons": reasons,
            "quarantine_total": sum(row["count"] for row in reasons),
            "reason": reason,
            "page": page,
        },
    )
