"""Settings → Campaigns: the workspace's sending settings (sender, timezone, quiet hours, rates)
and frequency caps; and the development outbox.

Every member reads; only admins change (``workspace_required(write="admin")``: a viewer's or a
member's POST is a 403). The forms only carry the values to ``campaigns.services``, which checks
them exactly as the REST API does; a refusal is shown beside its field (status 400) and writes
nothing.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import cache
from typing import Any

from csp.decorators import csp_update
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.decorators import workspace_required
from accounts.models import Workspace
from accounts.requests import MemberRequest
from campaigns import outbox, selectors, services
from campaigns.models import Campaign, CampaignSettings, Channel


@cache
def _zones() -> list[tuple[str, str]]:
    return [(zone, zone) for zone in sorted(zoneinfo.available_timezones())]


class SettingsForm(forms.Form):
    from_email = forms.CharField(
        label="From address", required=False, max_length=254, help_text="Empty: the server's default sender."
    )
    from_name = forms.CharField(label="From name", required=False, max_length=200)
    reply_to = forms.CharField(label="Reply-To", required=False, max_length=254)
    timezone = forms.CharField(
        label="Timezone",
        max_length=64,
        help_text="For people without a timezone trait: their quiet hours and local send times.",
    )
    quiet_start = forms.CharField(label="Quiet hours from", required=False, max_length=15, help_text="e.g. 21:00")
    quiet_end = forms.CharField(label="Quiet hours until", required=False, max_length=15, help_text="e.g. 08:00")
    emails_per_second = forms.CharField(label="Emails per second", max_length=12)
    webhooks_per_second = forms.CharField(label="Webhooks per second", max_length=12)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].widget = forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"})
        for name in ("quiet_start", "quiet_end"):
            self.fields[name].widget = forms.TextInput(attrs={"inputmode": "numeric", "placeholder": "HH:MM"})
        for name in ("emails_per_second", "webhooks_per_second"):
            self.fields[name].widget = forms.TextInput(attrs={"inputmode": "numeric"})

    def data_for_service(self) -> dict[str, Any]:
        """The cleaned values in the REST API's shape: numbers as numbers when they read as such,
        empty quiet hours as null; the service refuses the rest with its own words."""
        data: dict[str, Any] = dict(self.cleaned_data)
        for key in ("quiet_start", "quiet_end"):
            data[key] = data[key].strip() or None
        for key in ("emails_per_second", "webhooks_per_second"):
            value = data[key].strip()
            data[key] = int(value) if value.isdigit() and len(value) < 12 else value
        return data


def _settings_initial(row: CampaignSettings) -> dict[str, Any]:
    return {
        "from_email": row.from_email,
        "from_name": row.from_name,
        "reply_to": row.reply_to,
        "timezone": row.timezone,
        "quiet_start": row.quiet_start.strftime("%H:%M") if row.quiet_start else "",
        "quiet_end": row.quiet_end.strftime("%H:%M") if row.quiet_end else "",
        "emails_per_second": str(row.emails_per_second),
        "webhooks_per_second": str(row.webhooks_per_second),
    }


class CapForm(forms.Form):
    channel = forms.ChoiceField(label="Channel", choices=Channel.choices)
    max = forms.CharField(label="At most", max_length=12, widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    per = forms.CharField(label="Per", max_length=16, help_text="A duration: 30m, 48h, 1d, 4w.")

    def data_for_service(self) -> dict[str, Any]:
        value = self.cleaned_data["max"].strip()
        number: Any = int(value) if value.isdigit() and len(value) < 12 else value
        return {"channel": self.cleaned_data["channel"], "max": number, "per": self.cleaned_data["per"].strip()}


def _errors_to_form(form: forms.Form, error: ValidationError) -> None:
    for field, errors in error.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _page(
    request: MemberRequest,
    *,
    settings_form: SettingsForm | None = None,
    cap_form: CapForm | None = None,
    status: int = 200,
) -> HttpResponse:
    workspace = request.workspace
    row = selectors.campaign_settings_get(workspace)
    return render(
        request,
        "campaigns/settings/campaigns.html",
        {
            "tab": "campaigns",
            "settings_form": settings_form or SettingsForm(initial=_settings_initial(row)),
            "cap_form": cap_form or CapForm(initial={"channel": Channel.EMAIL}),
            "caps": list(selectors.frequency_cap_list(workspace)),
            "zones": [zone for zone, _ in _zones()],
            "outbox_enabled": outbox.enabled(),
        },
        status=status,
    )


@workspace_required(write="admin")
@require_http_methods(["GET", "HEAD", "POST"])
def settings_campaigns(request: MemberRequest) -> HttpResponse:
    """The page; a POST saves the sending settings."""
    if request.method != "POST":
        return _page(request)
    form = SettingsForm(request.POST)
    if form.is_valid():
        try:
            services.campaign_settings_update(
                workspace=request.workspace, actor=request.user, data=form.data_for_service()
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, "Sending settings saved.")
            return redirect("settings_campaigns")
    return _page(request, settings_form=form, status=400)


@workspace_required(write="admin")
@require_POST
def settings_campaign_cap_add(request: MemberRequest) -> HttpResponse:
    form = CapForm(request.POST)
    if form.is_valid():
        try:
            cap = services.frequency_cap_create(
                workspace=request.workspace, actor=request.user, **form.data_for_service()
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, f"Frequency cap added: {cap}.")
            return redirect("settings_campaigns")
    return _page(request, cap_form=form, status=400)


@workspace_required(write="admin")
@require_POST
def settings_campaign_cap_delete(request: MemberRequest, pk: int) -> HttpResponse:
    cap = get_object_or_404(selectors.frequency_cap_list(request.workspace), pk=pk)
    text = str(cap)
    services.frequency_cap_delete(cap=cap, actor=request.user)
    messages.success(request, f"Frequency cap deleted: {text}.")
    return redirect("settings_campaigns")


# --- the development outbox ---------------------------------------------------------------------


def _workspace_messages(workspace: Workspace) -> list[dict[str, Any]]:
    """The outbox's messages of this workspace: its sends, and test messages of its campaigns."""
    entries = outbox.recent()
    tested = {e["test_campaign_id"] for e in entries if e.get("test_campaign_id")}
    ours = set(Campaign.objects.filter(workspace=workspace, pk__in=tested).values_list("pk", flat=True))
    shown = []
    for e in entries:
        if e.get("workspace_id") == workspace.pk or (e.get("test_campaign_id") in ours):
            shown.append(
                {**e, "at": datetime.fromisoformat(e["at"]), "html": outbox.without_pixel(e.get("html") or "")}
            )
    return shown


# The messages' HTML is shown in sandboxed ``srcdoc`` frames, which inherit this page's policy:
# their inline styles need 'unsafe-inline' for styles (no script runs: the sandbox allows none).
@workspace_required()
@require_safe
@csp_update({"style-src": ["'unsafe-inline'"]})  # type: ignore[arg-type]
def settings_campaign_outbox(request: MemberRequest) -> HttpResponse:
    """The last emails sent, in development only (console or locmem backend); else 404."""
    if not outbox.enabled():
        raise Http404("The outbox exists only while emails are not really sent.")
    entries = _workspace_messages(request.workspace)
    return render(
        request,
        "campaigns/settings/outbox.html",
        {"tab": "campaigns", "entries": entries, "limit": outbox.OUTBOX_SIZE},
    )
