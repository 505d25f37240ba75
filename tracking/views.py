"""HTML views: live events, people, a person's page, the quarantine; the snippet's settings pages
(install, triggers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from tracking import people_extensions, people_selectors, people_services, selectors, services
from tracking.embed import embed_code
from tracking.forms import TriggerForm
from tracking.labels import anonymous_label, first_anonymous_id
from tracking.models import Event, Person, QuarantineKind, TrackingTrigger
from tracking.snippet import current_snippet

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
    live = people_selectors.LiveFilter(name=filters["event"] or None)
    if filters["person"]:
        person = people_selectors.person_by_id_value(workspace, filters["person"])
        if person is None:
            live = people_selectors.LiveFilter(name=live.name, unknown_person=True)
        else:
            live = people_selectors.LiveFilter(name=live.name, person_id=person.pk)
    query = urlencode({key: value for key, value in filters.items() if value})
    feed_url = f"{reverse('live_events')}?{query}"
    filtered = any(filters.values())

    after = request.GET.get("after")
    if after is not None and getattr(request, "htmx", False):
        after_id = _positive_int(after) or 0
        full = request.GET.get("full") == "1"
        events = people_selectors.live_events(workspace, live, after_id=None if full else after_id)
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

    events = people_selectors.live_events(workspace, live, after_id=None)
    has_events = bool(events) or people_selectors.workspace_has_events(workspace)
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
            "event_names": people_selectors.recent_event_names(workspace) if has_events else [],
        },
    )


@dataclass(frozen=True)
class FilterShown:
    """A filter of the People page contributed by an app above (``tracking.people_extensions``)."""

    name: str
    label: str
    value: str
    choices: list[tuple[str, str]]
    error: str


@require_GET
@workspace_required()
def people(request: MemberRequest) -> HttpResponse:
    """People, searched and narrowed by the filters apps above contribute (``?segment=``), 50 a page.

    A filter value that names nothing here says so next to its control and lists nobody, rather than
    everyone: a stale link must not read as "these are the members".
    """
    workspace = request.workspace
    q = request.GET.get("q", "").strip()
    people = people_selectors.people_list(workspace, search=q or None)
    shown: list[FilterShown] = []
    refused = False
    for extension in people_extensions.people_filters():
        value = request.GET.get(extension.name, "").strip()
        error = ""
        if value:
            try:
                people = extension.apply(workspace, people, value)
            except people_extensions.FilterValueInvalid as problem:
                error, refused = str(problem), True
        shown.append(FilterShown(extension.name, extension.label, value, extension.choices(workspace), error))
    if refused:
        people = people.none()
    page = Paginator(people, PEOPLE_PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {"q": q, **{f.name: f.value for f in shown}}
    query = urlencode({key: value for key, value in kept.items() if value})
    return render(
        request,
        "tracking/people.html",
        {
            "section": "people",
            "page": page,
            "q": q,
            "filters": shown,
            "filtered": bool(query),
            "query": f"{query}&" if query else "",
        },
    )


def _person_or_404(request: MemberRequest, pk: int) -> Person:
    person = people_selectors.person_get(request.workspace, pk)
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
    try:
        # In UTC: PostgreSQL refuses offsets beyond +/-15:59, which Python accepts.
        return moment.astimezone(UTC), event_id
    except OverflowError:
        return None


@require_GET
@workspace_required()
def person_detail(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    person = _person_or_404(request, pk)
    cursor = _cursor(request.GET.get("before"))
    page = people_selectors.events_before(
        people_selectors.events_list(workspace, person_id=person.pk), cursor, TIMELINE_PAGE_SIZE + 1
    )
    events, more = page[:TIMELINE_PAGE_SIZE], len(page) > TIMELINE_PAGE_SIZE
    older_url = None
    if more:
        last = events[-1]
        older_url = "?" + urlencode({"before": f"{last.timestamp.isoformat()}_{last.pk}"})
    identities = people_selectors.user_ids(person), people_selectors.anonymous_ids(person)
    traits = person.traits
    display_name = (
        traits.get("name") or traits.get("email") or person.user_id or anonymous_label(first_anonymous_id(person))
    )
    return render(
        request,
        "tracking/person_detail.html",
        {
            "section": "people",
            "person": person,
            "display_name": str(display_name),
            "traits": [(key, _as_text(value)) for key, value in people_selectors.plain_traits(person)],
            "first_touch": [(key, _as_text(value)) for key, value in people_selectors.first_touch(person)],
            "identities": person.identity_list,  # type: ignore[attr-defined]
            "groups": list(people_selectors.person_groups(workspace, person)),
            "live_id": person.user_id or (identities[1][0] if identities[1] else ""),
            "events": _with_json(events),
            "older_url": older_url,
            "newer_url": "?" if cursor is not None else None,
            "panels": [panel.render(request, person) for panel in people_extensions.person_panels()],
        },
    )


@require_POST
@workspace_required(write="admin")
def person_erase(request: MemberRequest, pk: int) -> HttpResponse:
    person = _person_or_404(request, pk)
    erasure = people_services.person_erase(workspace=request.workspace, person=person, actor=request.user)
    if erasure is None:
        messages.info(request, "This person was already gone: erased, or merged into another person.")
    else:
        messages.success(
            request,
            f"Person erased with {erasure.events} events. Events that arrive later with their ids are dropped.",
        )
    return redirect("people")


@require_GET
@workspace_required()
def quarantine(request: MemberRequest) -> HttpResponse:
    """Rejected messages by reason; with ``?kind=warned``, the messages accepted with warnings; with
    ``?kind=plan``, the track calls the tracking plan kept out."""
    workspace = request.workspace
    requested = request.GET.get("kind")
    kind = requested if requested in (QuarantineKind.WARNED, QuarantineKind.PLAN) else QuarantineKind.REJECTED
    reason = request.GET.get("reason") or None
    reasons = people_selectors.quarantine_by_reason(workspace, kind=kind)
    page = Paginator(
        people_selectors.quarantine_list(workspace, kind=kind, reason=reason), QUARANTINE_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    for item in page.object_list:
        item.raw_json = _pretty(item.raw)  # type: ignore[attr-defined]
    rejected_total = (
        sum(row["count"] for row in reasons)
        if kind == QuarantineKind.REJECTED
        else sum(row["count"] for row in people_selectors.quarantine_by_reason(workspace))
    )
    return render(
        request,
        "tracking/quarantine.html",
        {
            "section": "live_events",
            "events_tab": "quarantine",
            "kind": kind,
            "warned": kind == QuarantineKind.WARNED,
            "blocked": kind == QuarantineKind.PLAN,
            "reasons": reasons,
            "quarantine_total": rejected_total,
            "reason": reason,
            "page": page,
        },
    )


# --- Settings pages of the snippet: install, triggers -------------------------------------


def _host(request: MemberRequest) -> str:
    """The origin sites send to: the one this page was reached at."""
    return request.build_absolute_uri("/").rstrip("/")


@workspace_required()
def settings_install(request: MemberRequest) -> HttpResponse:
    host = _host(request)
    return render(
        request,
        "tracking/settings_install.html",
        {
            "tab": "install",
            "host": host,
            "embed_code": embed_code(write_key=request.workspace.write_key, host=host),
            "versioned_url": host + reverse("snippet_versioned", args=[current_snippet().version]),
            "trigger_count": selectors.triggers_list(request.workspace).filter(enabled=True).count(),
        },
    )


def _form_errors(form: TriggerForm, error: ValidationError) -> None:
    for field, errors in error.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@workspace_required(write="member")
def settings_triggers(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    form = TriggerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            trigger = services.trigger_create(
                workspace=workspace,
                actor=request.user,
                kind=data["kind"],
                selector=data["selector"],
                event_name=data["event_name"],
                thresholds=data["thresholds"],
                enabled=data["enabled"],
            )
        except ValidationError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"Trigger “{trigger.event_name}” created. Sites pick it up within 5 minutes.")
            return redirect("settings_triggers")
    return render(
        request,
        "tracking/settings_triggers.html",
        {"tab": "triggers", "form": form, "triggers": selectors.triggers_list(workspace)},
    )


@workspace_required(write="member")
def settings_trigger_edit(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    trigger = get_object_or_404(selectors.triggers_list(workspace), pk=pk)
    form = TriggerForm.for_trigger(trigger, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.trigger_update(
                workspace=workspace,
                trigger=trigger,
                actor=request.user,
                kind=data["kind"],
                selector=data["selector"],
                event_name=data["event_name"],
                thresholds=data["thresholds"] or [],
                enabled=data["enabled"],
            )
        except ValidationError as error:
            trigger.refresh_from_db()
            _form_errors(form, error)
        else:
            messages.success(request, f"Trigger “{trigger.event_name}” saved.")
            return redirect("settings_triggers")
    return render(request, "tracking/settings_trigger_edit.html", {"tab": "triggers", "form": form, "trigger": trigger})


@workspace_required(write="member")
@require_POST
def settings_trigger_delete(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    trigger: TrackingTrigger = get_object_or_404(selectors.triggers_list(workspace), pk=pk)
    services.trigger_delete(workspace=workspace, trigger=trigger, actor=request.user)
    messages.success(request, f"Trigger “{trigger.event_name}” deleted.")
    return redirect("settings_triggers")
