"""Settings -> Data: the tracking plan, edited on the page (htmx where available) or imported as JSON.

Every change is a POST to its own URL that applies one edit of ``tracking.plan`` through
``tracking.plan_services`` and answers the page again: under htmx the page itself (the plan's
part is swapped in, with a notice), otherwise a redirect to it. A refused change answers the
page with the form's errors and nothing saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from tracking import people_selectors, plan, plan_forms, plan_selectors, plan_services

# Event names offered when adding an event (the recent ones not in the plan).
SUGGESTIONS = 50


@dataclass
class EventCard:
    """A planned event on the page, with its counts and the forms of its own changes."""

    event: plan.PlannedEvent
    anchor: str
    violations: plan_selectors.EventViolations | None
    update_form: forms.Form
    property_form: forms.Form
    examples: list[dict[str, Any]] = field(default_factory=list)
    # Why the last change to this event was refused (from any of its forms).
    errors: list[str] = field(default_factory=list)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _examples(summary: plan_selectors.EventViolations | None) -> list[dict[str, Any]]:
    if summary is None:
        return []
    return [
        {
            **example,
            "at": parse_datetime(str(example.get("at"))),
            "properties_json": _pretty(example.get("properties", {})),
        }
        for example in summary.examples
    ]


def _messages(form: forms.Form) -> list[str]:
    return [str(message) for problems in form.errors.values() for message in problems]


def _page(
    request: MemberRequest,
    *,
    failed: dict[str, forms.Form] | None = None,
    failed_event: str | None = None,
    notice: str = "",
    notice_event: str | None = None,
) -> HttpResponse:
    """The page; ``failed`` holds a refused form by its place (``add``, ``import``, ``settings``,
    ``update``/``property`` of ``failed_event``), shown with its errors."""
    failed = failed or {}
    workspace = request.workspace
    state = plan_selectors.tracking_plan(workspace)
    document = state.document
    violations = plan_selectors.violations_by_event(workspace)
    cards = []
    for index, event in enumerate(document.events, start=1):
        anchor = plan_selectors.EVENT_ANCHOR.format(index)
        mine = event.name == failed_event
        summary = violations.get(event.name)
        cards.append(
            EventCard(
                event=event,
                anchor=anchor,
                violations=summary,
                update_form=failed["update"]
                if mine and "update" in failed
                else plan_forms.EventUpdateForm(
                    initial={
                        "event": event.name,
                        "description": event.description,
                        "quarantine_violations": event.quarantine_violations,
                    },
                    auto_id=f"id_{anchor}_%s",
                ),
                property_form=failed["property"]
                if mine and "property" in failed
                else plan_forms.PropertySetForm(initial={"event": event.name}, auto_id=f"id_{anchor}_p_%s"),
                examples=_examples(summary),
                errors=_messages(next(iter(failed.values()))) if mine and failed else [],
            )
        )
    unplanned = sorted(
        (summary for name, summary in violations.items() if document.event(name) is None),
        key=lambda summary: (-summary.total, summary.event),
    )
    planned = {event.name for event in document.events}
    seen = [name for name in people_selectors.recent_event_names(workspace) if name not in planned]
    refused_elsewhere = failed_event is not None and not any(event.name == failed_event for event in document.events)
    return render(
        request,
        "tracking/settings_data.html",
        {
            "tab": "data",
            "state": state,
            "cards": cards,
            "unplanned": unplanned,
            "seen_events": [name for name in seen if name not in plan.UNCHECKED_EVENTS][:SUGGESTIONS],
            "settings_form": failed.get("settings")
            or plan_forms.PlanSettingsForm(initial={"block_unplanned_events": document.block_unplanned_events}),
            "add_form": failed.get("add") or plan_forms.EventAddForm(),
            "import_form": failed.get("import") or plan_forms.ImportForm(),
            "failed_event": failed_event,
            # A change to an event that left the plan meanwhile: its errors, above the events.
            "stray_errors": _messages(next(iter(failed.values()))) if refused_elsewhere and failed else [],
            "notice": notice,
            "notice_event": notice_event if any(event.name == notice_event for event in document.events) else None,
            "max_events": plan.MAX_EVENTS,
            "property_types": plan.PROPERTY_TYPES,
        },
    )


def _done(request: MemberRequest, notice: str, *, event: str | None = None) -> HttpResponse:
    """After a change: under htmx, the page with ``notice`` (in ``event``'s card when it has one);
    otherwise a redirect to the page, at that card."""
    if getattr(request, "htmx", False):
        return _page(request, notice=notice, notice_event=event)
    messages.success(request, notice)
    anchor = _anchor_of(request, event) if event else ""
    return redirect(reverse("settings_data") + (f"#{anchor}" if anchor else ""))


def _refused(form: forms.Form, error: plan.PlanInvalid) -> None:
    for name, problems in error.errors.items():
        for problem in problems:
            form.add_error(name if name in form.fields else None, problem)


def _anchor_of(request: MemberRequest, name: str) -> str:
    return plan_selectors.event_anchor(plan_selectors.tracking_plan(request.workspace).document, name)


def _edit(
    request: MemberRequest,
    form: forms.Form,
    place: str,
    edit: Callable[[plan.PlanDocument], plan.PlanDocument],
    *,
    what: str,
    notice: str,
    event: str | None = None,
) -> HttpResponse:
    """Save ``edit`` of the plan; on ``PlanInvalid``, the page with ``form`` (at ``place``) refused."""
    try:
        plan_services.tracking_plan_edit(workspace=request.workspace, actor=request.user, edit=edit, what=what)
    except plan.PlanInvalid as error:
        _refused(form, error)
        return _page(request, failed={place: form}, failed_event=event)
    return _done(request, notice, event=event)


@require_GET
@workspace_required()
def settings_data(request: MemberRequest) -> HttpResponse:
    return _page(request)


@require_GET
@workspace_required()
def settings_data_export(request: MemberRequest) -> HttpResponse:
    """The plan as a JSON file, in the form the import (and the REST API's PUT) takes."""
    document = plan_selectors.tracking_plan(request.workspace).document
    response = HttpResponse(
        json.dumps(document.as_json(), indent=2, ensure_ascii=False) + "\n", content_type="application/json"
    )
    response["Content-Disposition"] = 'attachment; filename="tracking-plan.json"'
    return response


@require_POST
@workspace_required(write="admin")
def settings_data_import(request: MemberRequest) -> HttpResponse:
    form = plan_forms.ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, failed={"import": form})
    try:
        document = plan.parse_json_text(form.cleaned_data["json"])
        plan_services.tracking_plan_replace(
            workspace=request.workspace, actor=request.user, document=document, what="imported from JSON"
        )
    except plan.PlanInvalid as error:
        for path, problems in error.errors.items():
            for problem in problems:
                form.add_error(None, f"{path}: {problem}" if path else problem)
        # On the field it came from too: the page puts the cursor there, next to the list.
        source = "file" if form.cleaned_data.get("file") is not None else "text"
        form.add_error(source, "Fix the problems listed above; nothing was imported.")
        return _page(request, failed={"import": form})
    return _done(request, f"Plan imported: {len(document.events)} events.")


@require_POST
@workspace_required(write="admin")
def settings_data_settings(request: MemberRequest) -> HttpResponse:
    form = plan_forms.PlanSettingsForm(request.POST)
    if not form.is_valid():
        return _page(request, failed={"settings": form})
    block = form.cleaned_data["block_unplanned_events"]

    def edit(document: plan.PlanDocument) -> plan.PlanDocument:
        return plan.PlanDocument(document.events, block)

    notice = "Unplanned events are now blocked." if block else "Unplanned events are now stored (and counted)."
    return _edit(
        request, form, "settings", edit, what="block unplanned events: " + ("on" if block else "off"), notice=notice
    )


@require_POST
@workspace_required(write="admin")
def settings_data_event_add(request: MemberRequest) -> HttpResponse:
    form = plan_forms.EventAddForm(request.POST)
    if not form.is_valid():
        return _page(request, failed={"add": form})
    data = form.cleaned_data
    name = data["name"]
    seen = plan_selectors.observed_property_types(request.workspace, name) if data["with_seen_properties"] else {}

    def edit(document: plan.PlanDocument) -> plan.PlanDocument:
        document = plan.event_add(
            document, name=name, description=data["description"], quarantine_violations=data["quarantine_violations"]
        )
        for key, kind in list(seen.items())[: plan.MAX_PROPERTIES]:
            document = plan.property_set(document, event=name, name=key, type=kind, required=False)
        return document

    with_properties = f" with {len(seen)} properties seen in its events" if seen else ""
    return _edit(
        request,
        form,
        "add",
        edit,
        what=f"added event {name}",
        notice=f"“{name}” added to the plan{with_properties}.",
        event=name,
    )


def _event_form(request: MemberRequest, form_class: type[forms.Form]) -> tuple[forms.Form, str | None]:
    # Its own ids: the page holds the other events' forms of the same fields.
    form = form_class(request.POST, auto_id="id_refused_%s")
    return form, (form.data.get("event") or None)


@require_POST
@workspace_required(write="admin")
def settings_data_event_update(request: MemberRequest) -> HttpResponse:
    form, event = _event_form(request, plan_forms.EventUpdateForm)
    if not form.is_valid():
        return _page(request, failed={"update": form}, failed_event=event)
    data = form.cleaned_data

    def edit(document: plan.PlanDocument) -> plan.PlanDocument:
        return plan.event_update(
            document,
            name=data["event"],
            description=data["description"],
            quarantine_violations=data["quarantine_violations"],
        )

    return _edit(
        request,
        form,
        "update",
        edit,
        what=f"changed event {data['event']}",
        notice=f"“{data['event']}” saved.",
        event=event,
    )


@require_POST
@workspace_required(write="admin")
def settings_data_event_remove(request: MemberRequest) -> HttpResponse:
    form, event = _event_form(request, plan_forms.EventForm)
    if not form.is_valid():
        return _page(request, failed={"other": form}, failed_event=event)
    name = form.cleaned_data["event"]
    return _edit(
        request,
        form,
        "other",
        lambda document: plan.event_remove(document, name=name),
        what=f"removed event {name}",
        notice=f"“{name}” removed from the plan: its calls now count as unplanned.",
        event=name,
    )


@require_POST
@workspace_required(write="admin")
def settings_data_property_set(request: MemberRequest) -> HttpResponse:
    form, event = _event_form(request, plan_forms.PropertySetForm)
    if not form.is_valid():
        return _page(request, failed={"property": form}, failed_event=event)
    data = form.cleaned_data

    def edit(document: plan.PlanDocument) -> plan.PlanDocument:
        planned = document.event(data["event"])
        if planned is not None and planned.property(data["name"]) is not None:
            raise plan.PlanInvalid(
                {"name": [f"“{data['name']}” is already a property of this event: change it in the list."]}
            )
        return plan.property_set(
            document, event=data["event"], name=data["name"], type=data["type"], required=data["required"]
        )

    return _edit(
        request,
        form,
        "property",
        edit,
        what=f"added property {data['name']} to {data['event']}",
        notice=f"Property “{data['name']}” added to “{data['event']}”.",
        event=event,
    )


@require_POST
@workspace_required(write="admin")
def settings_data_property_change(request: MemberRequest) -> HttpResponse:
    form, event = _event_form(request, plan_forms.PropertyChangeForm)
    if not form.is_valid():
        return _page(request, failed={"other": form}, failed_event=event)
    data = form.cleaned_data

    def edit(document: plan.PlanDocument) -> plan.PlanDocument:
        planned = document.event(data["event"])
        if planned is not None and planned.property(data["name"]) is None:
            raise plan.PlanInvalid(
                {"name": [f"“{data['name']}” is not a property of this event (any more): reload the page."]}
            )
        return plan.property_set(
            document, event=data["event"], name=data["name"], type=data["type"], required=data["required"]
        )

    required = "required" if data["required"] else "optional"
    return _edit(
        request,
        form,
        "other",
        edit,
        what=f"changed property {data['name']} of {data['event']}",
        notice=f"“{data['name']}” of “{data['event']}”: {data['type']}, {required}.",
        event=event,
    )


@require_POST
@workspace_required(write="admin")
def settings_data_property_remove(request: MemberRequest) -> HttpResponse:
    form, event = _event_form(request, plan_forms.PropertyRemoveForm)
    if not form.is_valid():
        return _page(request, failed={"other": form}, failed_event=event)
    data = form.cleaned_data
    return _edit(
        request,
        form,
        "other",
        lambda document: plan.property_remove(document, event=data["event"], name=data["name"]),
        what=f"removed property {data['name']} from {data['event']}",
        notice=f"Property “{data['name']}” removed from “{data['event']}”.",
        event=event,
    )
