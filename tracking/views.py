"""Settings pages of tracking: install the snippet, configure its triggers."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.requests import MemberRequest
from accounts.views import workspace_required
from tracking import selectors, services
from tracking.embed import embed_code
from tracking.forms import TriggerForm
from tracking.models import TrackingTrigger
from tracking.snippet import current_snippet


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
