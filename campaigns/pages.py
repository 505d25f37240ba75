"""HTML views of campaigns: the list (with playbook starts) and the editor (htmx, no build step).

The editor is one form whose fields make the REST API's campaign body (rest-api.md, "Campaigns");
saving goes through ``campaigns.services.campaign_create`` / ``campaign_update`` and their
``campaigns.validation``, whose errors (by path: ``name``, ``audience.segments[0]``,
``variants[1].subject``) are shown next to their fields. Its htmx helpers answer partials: the
audience estimate (``campaigns.estimate``, the numbers the API's ``estimate`` answers), the person
search and the preview rendered for them, the test send, the launch confirmation, the progress.

Roles: viewers read (the form is disabled and every POST is a 403); members and admins write;
launching takes an admin, or a member when the workspace's ``members_can_launch`` is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.decorators import workspace_required
from accounts.models import Workspace
from accounts.requests import MemberRequest
from campaigns import rendering, selectors, services, stats
from campaigns.estimate import AudienceEstimate, audience_estimate, estimate_audience_errors
from campaigns.localtime import zone_named
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Channel, TriggerOn, Variant
from campaigns.validation import MAX_HOLDOUT_PERCENT, MAX_VARIANTS, VARIANT_FIELDS
from segmentation import services as segment_services
from segmentation.catalogue import selectors as catalogue
from segmentation.catalogue.models import PropertySource
from segmentation.models import Segment
from segmentation.playbooks import BY_SLUG
from tracking.labels import person_label
from tracking.models import Person

PAGE_SIZE = 20
PEOPLE_SHOWN = 8
TRAITS_SHOWN = 30
STATUS_FILTERS = [(value, label) for value, label in CampaignStatus.choices]


# --- playbooks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignPlaybook:
    """A campaign to start from: its segment template and a draft of the message."""

    slug: str
    name: str
    summary: str
    segment: str  # a slug of ``segmentation.playbooks``
    subject: str
    body: str


CAMPAIGN_PLAYBOOKS: tuple[CampaignPlaybook, ...] = (
    CampaignPlaybook(
        "win-back",
        "Win back lapsed customers",
        "People who bought before but not in the last 90 days: an offer before they forget you.",
        "lapsed-customers",
        'We miss you, {{ person.traits.name | default("there") }}',
        "<p>It has been a while. Here is 15% off your next order.</p>",
    ),
    CampaignPlaybook(
        "cart-abandonment",
        "Cart abandonment",
        "Added to cart but did not order within 48 hours: a reminder wins many back.",
        "cart-abandoners",
        "You left something in your cart",
        "<p>Your cart is waiting for you. Complete your order today.</p>",
    ),
    CampaignPlaybook(
        "welcome",
        "Welcome new sign-ups",
        "First seen in the last 7 days: welcome them and point them to what others love.",
        "new-this-week",
        'Welcome, {{ person.traits.name | default("friend") }}!',
        "<p>Thanks for joining. Here is what our customers love most.</p>",
    ),
    CampaignPlaybook(
        "vip-offer",
        "VIP offer for big spenders",
        "Spent 500 or more in the last 90 days: early access and loyalty perks.",
        "big-spenders",
        "An offer for our best customers",
        "<p>As one of our best customers, you get early access to the new collection.</p>",
    ),
)
CAMPAIGN_PLAYBOOKS_BY_SLUG = {playbook.slug: playbook for playbook in CAMPAIGN_PLAYBOOKS}


def _playbook_segment(workspace: Workspace, request: MemberRequest, slug: str) -> Segment:
    """The workspace's segment made from the template ``slug`` (by its name), created if missing."""
    template = BY_SLUG[slug]
    existing = Segment.objects.filter(workspace=workspace, name__iexact=template.name).first()
    if existing is not None:
        return existing
    return segment_services.segment_create(
        workspace=workspace,
        actor=request.user,
        name=template.name,
        definition=template.document(),
        description=template.summary,
    )


def _unused_name(workspace: Workspace, name: str) -> str:
    taken = {n.casefold() for n in Campaign.objects.filter(workspace=workspace).values_list("name", flat=True)}
    candidate, n = name, 2
    while candidate.casefold() in taken:
        candidate, n = f"{name} ({n})", n + 1
    return candidate


@workspace_required(write="member")
@require_POST
def campaign_from_playbook(request: MemberRequest, slug: str) -> HttpResponse:
    playbook = CAMPAIGN_PLAYBOOKS_BY_SLUG.get(slug)
    if playbook is None:
        raise Http404("No such playbook.")
    workspace = request.workspace
    with transaction.atomic():
        segment = _playbook_segment(workspace, request, playbook.segment)
        campaign = services.campaign_create(
            workspace=workspace,
            actor=request.user,
            data={
                "name": _unused_name(workspace, playbook.name),
                "description": playbook.summary,
                "channel": Channel.EMAIL,
                "kind": CampaignKind.BROADCAST,
                "audience": {"segments": [segment.pk], "exclude": []},
                "variants": [{"name": "A", "weight": 1, "subject": playbook.subject, "body": playbook.body}],
            },
        )
    messages.success(request, f"Draft “{campaign.name}” created for the segment “{segment.name}”.")
    return redirect("campaign_edit", pk=campaign.pk)


# --- the list ----------------------------------------------------------------------------------------


@dataclass
class Row:
    campaign: Campaign
    progress: dict[str, int]
    included: list[str]
    excluded: list[str]
    conversion: float | None

    @property
    def conversion_text(self) -> str:
        return stats.percent(self.conversion) if self.conversion is not None else ""


def _conversion(workspace: Workspace, campaign: Campaign, progress: dict[str, int]) -> float | None:
    if not campaign.goal_event or not progress["sent"]:
        return None
    results = selectors.campaign_results(workspace, campaign)
    exposed = sum(group.sent for group in results.variants)
    return sum(group.converted for group in results.variants) / exposed if exposed else None


@workspace_required()
@require_safe
def campaign_list(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    q = request.GET.get("q", "").strip()[:200]
    status = request.GET.get("status", "")
    channel = request.GET.get("channel", "")
    campaigns = selectors.campaign_list(workspace)
    if q:
        campaigns = campaigns.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if status in CampaignStatus.values:
        campaigns = campaigns.filter(status=status)
    if channel in Channel.values:
        campaigns = campaigns.filter(channel=channel)
    page = Paginator(campaigns, PAGE_SIZE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    progress = selectors.campaigns_progress(workspace, [c.pk for c in shown])
    segment_ids = {row.segment_id for c in shown for row in c.audience.all()}
    names = dict(Segment.objects.filter(workspace=workspace, pk__in=segment_ids).values_list("pk", "name"))
    rows = [
        Row(
            campaign=c,
            progress=progress_shown(progress[c.pk]),
            included=[names.get(a.segment_id, "?") for a in c.audience.all() if not a.exclude],
            excluded=[names.get(a.segment_id, "?") for a in c.audience.all() if a.exclude],
            conversion=_conversion(workspace, c, progress[c.pk]),
        )
        for c in shown
    ]
    filtered = bool(q or status or channel)
    context = {
        "section": "campaigns",
        "rows": rows,
        "page": page,
        "q": q,
        "status": status,
        "channel": channel,
        "statuses": STATUS_FILTERS,
        "channels": Channel.choices,
        "has_any": bool(rows) or (filtered and Campaign.objects.filter(workspace=workspace).exists()),
        "busy": any(r.campaign.status in (CampaignStatus.SENDING, CampaignStatus.SCHEDULED) for r in rows),
        "playbooks": CAMPAIGN_PLAYBOOKS,
        "can_write": request.membership.can_write,
        "query": request.GET.urlencode(),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "campaigns/campaign_list.html#campaign-table", context)
    return render(request, "campaigns/campaign_list.html", context)


# --- the editor: form <-> body ---------------------------------------------------------------------------


@dataclass
class VariantForm:
    index: int
    name: str = ""
    weight: str = "1"
    subject: str = ""
    body: str = ""
    text: str = ""
    url: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def letter(self) -> str:
        return chr(ord("A") + self.index)


@dataclass
class EditorForm:
    """What the editor's fields hold, as text (what the user typed is shown back as typed)."""

    name: str = ""
    description: str = ""
    channel: str = Channel.EMAIL
    kind: str = CampaignKind.BROADCAST
    include: list[int] = field(default_factory=list)
    exclude: list[int] = field(default_factory=list)
    schedule: str = "now"  # now | at | local
    send_at: str = ""  # datetime-local text, in the workspace's timezone
    trigger_on: str = TriggerOn.EVENT
    trigger_segment: str = ""
    trigger_event: str = ""
    delay: str = ""
    exit_event: str = ""
    holdout_percent: str = "0"
    goal_event: str = ""
    goal_within: str = ""
    variants: list[VariantForm] = field(default_factory=lambda: [VariantForm(0, "A")])


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit() and len(v) < 19]


def _number(text: str) -> Any:
    """A whole number when the text is one, else the text itself (validation names the field)."""
    return int(text) if re.fullmatch(r"-?\d{1,18}", text.strip()) else text


def _zone(workspace: Workspace) -> ZoneInfo:
    return zone_named(selectors.campaign_settings_get(workspace).timezone) or ZoneInfo("UTC")


def form_from_post(data: Any) -> EditorForm:
    form = EditorForm(
        name=data.get("name", ""),
        description=data.get("description", ""),
        channel=data.get("channel", Channel.EMAIL),
        kind=data.get("kind", CampaignKind.BROADCAST),
        include=_ids(data.getlist("include")),
        exclude=_ids(data.getlist("exclude")),
        schedule=data.get("schedule", "now"),
        send_at=data.get("send_at", ""),
        trigger_on=data.get("trigger_on", TriggerOn.EVENT),
        trigger_segment=data.get("trigger_segment", ""),
        trigger_event=data.get("trigger_event", ""),
        delay=data.get("delay", ""),
        exit_event=data.get("exit_event", ""),
        holdout_percent=data.get("holdout_percent", "0"),
        goal_event=data.get("goal_event", ""),
        goal_within=data.get("goal_within", ""),
        variants=[],
    )
    count = _number(data.get("variant_count", "1"))
    count = min(max(count if isinstance(count, int) else 1, 1), MAX_VARIANTS)
    for index in range(count):
        prefix = f"v{index}-"
        form.variants.append(
            VariantForm(
                index=index,
                name=data.get(prefix + "name", chr(ord("A") + index)),
                weight=data.get(prefix + "weight", "1"),
                subject=data.get(prefix + "subject", ""),
                body=data.get(prefix + "body", ""),
                text=data.get(prefix + "text", ""),
                url=data.get(prefix + "url", ""),
            )
        )
    return form


def form_from_campaign(workspace: Workspace, campaign: Campaign) -> EditorForm:
    body = selectors.campaign_body(campaign)
    trigger = body["trigger"] or {}
    send_at = ""
    if campaign.send_at is not None:
        zone = _zone(workspace)
        send_at = campaign.send_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    return EditorForm(
        name=campaign.name,
        description=campaign.description,
        channel=campaign.channel,
        kind=campaign.kind,
        include=list(body["audience"]["segments"]),
        exclude=list(body["audience"]["exclude"]),
        schedule="local" if campaign.local_time else ("at" if campaign.send_at else "now"),
        send_at=send_at,
        trigger_on=trigger.get("on", TriggerOn.EVENT),
        trigger_segment=str(trigger.get("segment", "")),
        trigger_event=trigger.get("event", ""),
        delay=trigger.get("delay", ""),
        exit_event=trigger.get("exit_event", ""),
        holdout_percent=str(campaign.holdout_percent),
        goal_event=campaign.goal_event,
        goal_within=campaign.goal_within,
        variants=[
            VariantForm(
                index=i, name=v.name, weight=str(v.weight), subject=v.subject, body=v.body, text=v.text, url=v.url
            )
            for i, v in enumerate(campaign.variants.all())
        ]
        or [VariantForm(0, "A")],
    )


# Content a variant may leave empty: left out of the body when it is.
OPTIONAL_CONTENT = {(Channel.EMAIL, "text"), (Channel.WEBHOOK, "body")}


def _variant_body(variant: VariantForm, channel: str) -> dict[str, Any]:
    document: dict[str, Any] = {"name": variant.name, "weight": _number(variant.weight)}
    for key in VARIANT_FIELDS.get(channel, {}):
        value = getattr(variant, key)
        if value or (channel, key) not in OPTIONAL_CONTENT:
            document[key] = value
    return document


def progress_shown(progress: dict[str, int]) -> dict[str, int]:
    """Progress as the pages show it: of the messages to send (holdout aside), how many are done."""
    to_send = progress["total"] - progress["holdout"]
    done = to_send - progress["pending"]
    return {**progress, "to_send": to_send, "done": done, "percent": round(100 * done / to_send) if to_send else 0}


def body_from_form(workspace: Workspace, form: EditorForm) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The REST body the form describes, and the errors only the form can know (a send time it
    cannot read); everything else is ``campaigns.validation``'s to judge."""
    errors: dict[str, list[str]] = {}
    body: dict[str, Any] = {
        "name": form.name,
        "description": form.description,
        "channel": form.channel,
        "kind": form.kind,
        "holdout_percent": _number(form.holdout_percent),
        "variants": [_variant_body(v, form.channel) for v in form.variants],
        "goal": {"event": form.goal_event, "within": form.goal_within} if form.goal_event.strip() else None,
        "audience": {"segments": form.include, "exclude": form.exclude},
    }
    if form.kind == CampaignKind.TRIGGERED:
        trigger: dict[str, Any] = {"on": form.trigger_on}
        if form.trigger_on == TriggerOn.SEGMENT_ENTRY:
            trigger["segment"] = _number(form.trigger_segment) if form.trigger_segment else None
        else:
            trigger["event"] = form.trigger_event
        if form.delay.strip():
            trigger["delay"] = form.delay.strip()
        if form.exit_event.strip():
            trigger["exit_event"] = form.exit_event
        body["trigger"] = trigger
        if not form.include and not form.exclude:
            body["audience"] = None
    else:
        body["trigger"] = None
        if form.schedule in ("at", "local"):
            try:
                local = datetime.fromisoformat(form.send_at)
            except ValueError:
                errors["send_at"] = ["Pick a date and time to send at."]
            else:
                at = local.replace(tzinfo=_zone(workspace)) if local.tzinfo is None else local
                body["send_at"] = at.isoformat()
            body["local_time"] = form.schedule == "local"
    return body, errors


def _place_errors(form: EditorForm, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Put variant errors on their variant; answer the others by top-level field."""
    top: dict[str, list[str]] = {}
    for path, found in errors.items():
        match = re.match(r"^variants\[(\d+)\](?:\.(\w+))?", path)
        if match and int(match.group(1)) < len(form.variants):
            key = match.group(2) or "name"
            form.variants[int(match.group(1))].errors.setdefault(key, []).extend(found)
            continue
        head = re.split(r"[.\[]", path, maxsplit=1)[0] or "form"
        if head == "trigger":
            head = {
                "trigger.event": "trigger_event",
                "trigger.segment": "trigger_segment",
                "trigger.delay": "delay",
                "trigger.exit_event": "exit_event",
            }.get(path, "trigger")
        if head in ("send_at", "local_time"):
            head = "schedule"
        top.setdefault(head, []).extend(found)
    return top


# --- the editor: pages ---------------------------------------------------------------------------------


def _segments(workspace: Workspace) -> list[tuple[int, str, int]]:
    rows = Segment.objects.filter(workspace=workspace).order_by(Lower("name"), "pk")
    return list(rows.values_list("pk", "name", "size"))


def _trigger_words(form: EditorForm, segments: dict[int, str]) -> str:
    """The trigger in words: "30 minutes after Product Added, unless Order Completed"."""
    if form.trigger_on == TriggerOn.SEGMENT_ENTRY:
        pk = _number(form.trigger_segment)
        what = f"entering “{segments.get(pk, 'a segment')}”" if isinstance(pk, int) else "entering a segment"
    else:
        what = form.trigger_event.strip() or "the event"
    delay = _duration_words(form.delay.strip())
    words = f"{delay} after {what}" if delay else f"Right after {what}"
    if form.exit_event.strip():
        words += f", unless {form.exit_event.strip()}"
    return words[0].upper() + words[1:]


_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}


def _duration_words(text: str) -> str:
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if not match:
        return text
    n, unit = int(match.group(1)), _UNITS[match.group(2)]
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _estimate_for(workspace: Workspace, form: EditorForm) -> tuple[AudienceEstimate | None, dict[str, list[str]]]:
    if not form.include:
        return None, {}
    errors = estimate_audience_errors(workspace, form.include, form.exclude)
    if errors:
        return None, errors
    return audience_estimate(workspace, form.include, form.exclude, form.channel), {}


def _editor(
    request: MemberRequest,
    form: EditorForm,
    campaign: Campaign | None,
    *,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    partial: str | None = None,
) -> HttpResponse:
    workspace = request.workspace
    segments = _segments(workspace)
    names = {pk: name for pk, name, _ in segments}
    estimate, _ = _estimate_for(workspace, form)
    settings_row = selectors.campaign_settings_get(workspace)
    refusal = services.launch_refusal(workspace=workspace, membership=request.membership)
    launched = campaign is not None and campaign.launched_at is not None
    context = {
        "section": "campaigns",
        "form": form,
        "campaign": campaign,
        "errors": _place_errors(form, errors or {}),
        "has_errors": bool(errors),
        "segments": segments,
        "segment_names": names,
        "estimate": estimate,
        "channels": Channel.choices,
        "kinds": CampaignKind.choices,
        "contents": VARIANT_FIELDS.get(form.channel, VARIANT_FIELDS[Channel.EMAIL]),
        "trigger_words": _trigger_words(form, names),
        "traits": [
            s.value for s in catalogue.property_keys(workspace, source=PropertySource.TRAIT, limit=TRAITS_SHOWN)
        ],
        "can_write": request.membership.can_write,
        "launch_refusal": refusal,
        "launched": launched,
        "locked": launched,
        "max_variants": MAX_VARIANTS,
        "max_holdout": MAX_HOLDOUT_PERCENT,
        "timezone": settings_row.timezone,
        "progress": progress_shown(selectors.campaigns_progress(workspace, [campaign.pk])[campaign.pk])
        if campaign
        else None,
        # Hooks of the later parts: present when their fields are.
        "best_hour_available": hasattr(Campaign, "best_hour"),
        "auto_winner_available": hasattr(Campaign, "winner_test_percent"),
        "user_email": request.user.email,
    }
    template = "campaigns/campaign_editor.html"
    if partial:
        template += f"#{partial}"
    return render(request, template, context, status=status)


def _campaign_or_404(workspace: Workspace, pk: int) -> Campaign:
    campaign = selectors.campaign_get(workspace, pk)
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


LOCKED_FORM_FIELDS = (
    "channel",
    "kind",
    "include",
    "exclude",
    "schedule",
    "send_at",
    "trigger_on",
    "trigger_segment",
    "trigger_event",
    "delay",
    "exit_event",
    "holdout_percent",
)


def _keep_locked(form: EditorForm, saved: EditorForm) -> None:
    """A launched campaign's editor disables what may not change (disabled fields are not
    posted): those are taken as saved, so that the content and name can still be changed."""
    for key in LOCKED_FORM_FIELDS:
        setattr(form, key, getattr(saved, key))
    given = {v.index: v for v in form.variants}
    form.variants = []
    for variant in saved.variants:
        posted = given.get(variant.index)
        if posted is not None:
            posted.name, posted.weight = variant.name, variant.weight
        form.variants.append(posted or variant)


def _editing_op(form: EditorForm, op: str) -> bool:
    """Add or remove a variant column without saving; True when ``op`` was one."""
    if op == "add_variant" and len(form.variants) < MAX_VARIANTS:
        index = len(form.variants)
        form.variants.append(VariantForm(index, chr(ord("A") + index)))
        return True
    if op.startswith("remove_variant:") and len(form.variants) > 1:
        index = _number(op.split(":", 1)[1])
        if isinstance(index, int) and 0 <= index < len(form.variants):
            del form.variants[index]
            for i, variant in enumerate(form.variants):
                variant.index = i
        return True
    return op == "refresh"


@workspace_required(write="member")
@require_http_methods(["GET", "POST"])
def campaign_new(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    if request.method == "GET":
        form = EditorForm()
        if request.GET.get("segment", "").isdigit():
            form.include = [int(request.GET["segment"])]
        form.variants = [VariantForm(0, "A"), VariantForm(1, "B")] if request.GET.get("ab") else form.variants
        return _editor(request, form, None)
    form = form_from_post(request.POST)
    if _editing_op(form, request.POST.get("op", "")):
        return _editor(request, form, None, partial="editor-form" if request.htmx else None)  # type: ignore[attr-defined]
    body, errors = body_from_form(workspace, form)
    if errors:
        return _editor(request, form, None, errors=errors, status=400)
    try:
        campaign = services.campaign_create(workspace=workspace, actor=request.user, data=body)
    except ValidationError as error:
        return _editor(request, form, None, errors=error.message_dict, status=400)
    messages.success(request, f"Draft “{campaign.name}” saved.")
    return redirect("campaign_edit", pk=campaign.pk)


@workspace_required(write="member")
@require_http_methods(["GET", "POST"])
def campaign_edit(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    campaign = _campaign_or_404(workspace, pk)
    if request.method == "GET":
        return _editor(request, form_from_campaign(workspace, campaign), campaign)
    form = form_from_post(request.POST)
    if campaign.launched_at is not None:
        _keep_locked(form, form_from_campaign(workspace, campaign))
    if _editing_op(form, request.POST.get("op", "")):
        return _editor(request, form, campaign, partial="editor-form" if request.htmx else None)  # type: ignore[attr-defined]
    body, errors = body_from_form(workspace, form)
    if errors:
        return _editor(request, form, campaign, errors=errors, status=400)
    try:
        services.campaign_update(campaign=campaign, actor=request.user, data=body)
    except ValidationError as error:
        return _editor(request, form, campaign, errors=error.message_dict, status=400)
    except services.CampaignConflict as error:
        return _editor(request, form, campaign, errors={"form": [str(error)]}, status=409)
    messages.success(request, f"“{body['name']}” saved.")
    return redirect("campaign_edit", pk=campaign.pk)


@workspace_required(write="member")
@require_POST
def campaign_estimate(request: MemberRequest) -> HttpResponse:
    """The audience estimate of the form as it stands (a write-role call, like the segment
    builder's preview: it runs the audience's queries on demand)."""
    form = form_from_post(request.POST)
    estimate, errors = _estimate_for(request.workspace, form)
    context = {"estimate": estimate, "estimate_errors": [m for found in errors.values() for m in found], "form": form}
    return render(request, "campaigns/campaign_editor.html#estimate", context)


# --- preview, test send ------------------------------------------------------------------------------------


@workspace_required()
@require_safe
def campaign_people(request: MemberRequest, pk: int) -> HttpResponse:
    """People to preview for: by user id, email or name (a few, for the picker)."""
    workspace = request.workspace
    _campaign_or_404(workspace, pk)
    q = (request.GET.get("person_q") or request.GET.get("q", "")).strip()[:200]
    people: list[Person] = []
    if q:
        found = Person.objects.filter(workspace=workspace).filter(
            Q(user_id__icontains=q) | Q(traits__email__icontains=q) | Q(traits__name__icontains=q)
        )
        people = list(found.order_by("pk")[:PEOPLE_SHOWN])
    rows = [(p, person_label(p)) for p in people]
    return render(request, "campaigns/campaign_editor.html#people", {"people": rows, "q": q})


def _in_memory(campaign: Campaign, form: EditorForm, index: int) -> tuple[Campaign, Variant]:
    """The campaign and variant as the form has them now (unsaved): the preview follows the typing."""
    shown = Campaign(pk=campaign.pk, workspace_id=campaign.workspace_id, channel=form.channel, name=campaign.name)
    given = form.variants[index]
    variant = Variant(
        workspace_id=campaign.workspace_id,
        campaign=shown,
        position=index,
        name=given.name,
        weight=1,
        subject=given.subject,
        body=given.body,
        text=given.text,
        url=given.url,
    )
    return shown, variant


def _person_picked(workspace: Workspace, raw: str) -> Person | None:
    ref: Any = int(raw) if raw.isdigit() and len(raw) < 19 else None
    return selectors.person_find(workspace, ref) if ref is not None else None


@workspace_required(write="member")
@require_POST
def campaign_preview(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    campaign = _campaign_or_404(workspace, pk)
    form = form_from_post(request.POST)
    index = _number(request.POST.get("preview_variant", "0"))
    index = index if isinstance(index, int) and 0 <= index < len(form.variants) else 0
    person = _person_picked(workspace, request.POST.get("preview_person", ""))
    context: dict[str, Any] = {"campaign": campaign, "form": form, "variant_index": index}
    if person is None:
        context["preview_error"] = "Pick a person to preview for."
    else:
        shown, variant = _in_memory(campaign, form, index)
        context["person_label"] = person_label(person)
        try:
            context["preview"] = selectors.campaign_preview(shown, variant, selectors.person_context(person))
        except rendering.RenderFailed as error:
            context["preview_error"] = error.reason
    return render(request, "campaigns/campaign_editor.html#preview", context)


@workspace_required(write="member")
@require_POST
def campaign_test(request: MemberRequest, pk: int) -> HttpResponse:
    """Send the saved variant to the signed-in user's address (or the one typed), rendered for the
    person picked for the preview (or for nobody)."""
    workspace = request.workspace
    campaign = _campaign_or_404(workspace, pk)
    address = request.POST.get("test_email", "").strip() or request.user.email
    context: dict[str, Any] = {"user_email": address}
    try:
        validate_email(address)
    except ValidationError:
        context["test_error"] = f"Not an email address: {address!r}."
        return render(request, "campaigns/campaign_editor.html#test-result", context, status=400)
    index = _number(request.POST.get("preview_variant", "0"))
    variants = list(campaign.variants.all())
    variant = variants[index] if isinstance(index, int) and 0 <= index < len(variants) else variants[0]
    person = _person_picked(workspace, request.POST.get("preview_person", ""))
    context_person = (
        selectors.person_context(person)
        if person
        else rendering.PersonContext(id=0, user_id=None, traits={"email": address})
    )
    try:
        subject = services.campaign_test_send(
            campaign=campaign, actor=request.user, address=address, variant=variant, person=context_person
        )
    except ValidationError as error:
        context["test_error"] = " ".join(error.messages)
        return render(request, "campaigns/campaign_editor.html#test-result", context, status=400)
    except rendering.RenderFailed as error:
        context["test_error"] = error.reason
        return render(request, "campaigns/campaign_editor.html#test-result", context, status=400)
    except services.TestSendFailed as error:
        context["test_error"] = str(error)
        return render(request, "campaigns/campaign_editor.html#test-result", context, status=502)
    context["test_sent"] = f"Sent “{subject}” (variant {variant.name}) to {address}."
    return render(request, "campaigns/campaign_editor.html#test-result", context)


# --- launch, pause, progress -------------------------------------------------------------------------------


@workspace_required(write="member")
@require_POST
def campaign_launch(request: MemberRequest, pk: int) -> HttpResponse:
    """Without ``confirmed``: the confirmation, repeating the audience size. With it: the launch."""
    workspace = request.workspace
    campaign = _campaign_or_404(workspace, pk)
    refusal = services.launch_refusal(workspace=workspace, membership=request.membership)
    if refusal is not None:
        raise PermissionDenied(refusal)
    if request.POST.get("confirmed") != "yes":
        form = form_from_campaign(workspace, campaign)
        estimate, _ = _estimate_for(workspace, form)
        context = {
            "campaign": campaign,
            "estimate": estimate,
            "trigger_words": _trigger_words(
                form, dict(Segment.objects.filter(workspace=workspace).values_list("pk", "name"))
            ),
        }
        return render(request, "campaigns/campaign_editor.html#confirm", context)
    try:
        campaign = services.campaign_launch(campaign=campaign, actor=request.user)
    except services.CampaignConflict as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"“{campaign.name}” is {campaign.get_status_display().lower()}.")
    return _redirect_to_editor(request, campaign)


@workspace_required(write="member")
@require_POST
def campaign_pause(request: MemberRequest, pk: int) -> HttpResponse:
    campaign = _campaign_or_404(request.workspace, pk)
    try:
        campaign = services.campaign_pause(campaign=campaign, actor=request.user)
    except services.CampaignConflict as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"“{campaign.name}” is paused: nothing more is sent until you resume it.")
    return _redirect_to_editor(request, campaign)


def _redirect_to_editor(request: MemberRequest, campaign: Campaign) -> HttpResponse:
    url = reverse("campaign_edit", args=[campaign.pk])
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@workspace_required()
@require_safe
def campaign_progress(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    campaign = _campaign_or_404(workspace, pk)
    progress = progress_shown(selectors.campaigns_progress(workspace, [campaign.pk])[campaign.pk])
    return render(request, "campaigns/campaign_editor.html#progress", {"campaign": campaign, "progress": progress})
