"""Writes of campaigns from the REST API: campaigns themselves, launching and pausing them,
frequency caps and the workspace's sending settings, a test message.

Every write is one transaction: a refused body (``ValidationError`` keyed by its path in the
body) or a refused state change (:class:`CampaignConflict`) writes nothing. Launching only
changes the campaign's status and, for a broadcast, adds its ``Run``; the engine's periodic
tick (kicked on commit) writes and sends the messages.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime, time
from email.utils import formataddr
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from campaigns import rendering, selectors
from campaigns.models import (
    Campaign,
    CampaignAudience,
    CampaignKind,
    CampaignSettings,
    CampaignStatus,
    Channel,
    FrequencyCap,
    Run,
    Send,
    Variant,
)
from campaigns.validation import CampaignSpec, campaign_read
from core.names import name_clean, name_constraint_violated, name_taken_message
from segmentation.definition import parse_duration
from segmentation.models import Segment
from segmentation.webhooks.services import webhook_url_check

logger = logging.getLogger(__name__)

NAME_CONSTRAINT = "campaign_name_ci_unique"
MAX_NAME = 200
KICK_TASK = "campaigns.dispatch_kick"
LIVE = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.LISTENING})
# Locked once a campaign has been launched: changing them would make its sends and results
# describe something else. Content, name, description, goal and re-eligibility stay editable.
LOCKED_ONCE_LAUNCHED = (
    "channel",
    "kind",
    "trigger",
    "audience",
    "holdout_percent",
    "send_at",
    "local_time",
    "send_time",
    "send_time_control_percent",
    "auto_winner",
)
MAX_CAP = 1_000_000
MAX_RATE = 100_000


class CampaignConflict(Exception):
    """The campaign's state does not allow this (launch a sent broadcast, delete a live campaign)."""


# --- campaigns ---------------------------------------------------------------------------------


def _known_segments(workspace: Workspace) -> Any:
    def known(ids: set[int]) -> set[int]:
        return set(Segment.objects.filter(workspace=workspace, pk__in=ids).values_list("pk", flat=True))

    return known


def _template_check(source: str, kind: str) -> str | None:
    return rendering.template_problem(source, kind=kind)  # type: ignore[arg-type]


_TEMPLATE_MARK = re.compile(r"\{[{%#]")


def _url_check(url: str) -> str | None:
    """Why a webhook variant's URL may not receive messages. A URL with template parts must
    name its host plainly (only its path and query may vary): the host is what is checked."""
    mark = _TEMPLATE_MARK.search(url)
    fixed = url if mark is None else url[: mark.start()]
    if mark is not None and not re.match(r"^https?://[^/?#{]+[/?]", fixed):
        return "Template parts may only follow the host: write the scheme and host plainly (https://host/...)."
    try:
        webhook_url_check(fixed)
    except ValidationError as error:
        return " ".join(error.messages)
    return None


def _read(workspace: Workspace, data: Any) -> CampaignSpec:
    spec = campaign_read(
        data, known_segments=_known_segments(workspace), template_check=_template_check, url_check=_url_check
    )
    if not isinstance(spec, CampaignSpec):
        raise ValidationError(spec)
    return spec


def _clean_name(workspace: Workspace, name: str, *, exclude: int | None = None) -> str:
    others = Campaign.objects.filter(workspace=workspace)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    return name_clean(name, noun="A campaign", max_length=MAX_NAME, existing=others.values_list("name", flat=True))


def _apply(campaign: Campaign, spec: CampaignSpec) -> None:
    campaign.description = spec.description
    campaign.channel = spec.channel
    campaign.kind = spec.kind
    campaign.trigger = spec.trigger
    campaign.trigger_on = spec.trigger_on
    campaign.trigger_segment_id = spec.trigger_segment_id
    campaign.trigger_event = spec.trigger_event
    campaign.delay_seconds = spec.delay_seconds
    campaign.exit_event = spec.exit_event
    campaign.send_at = spec.send_at
    campaign.local_time = spec.local_time
    campaign.send_time = spec.send_time
    campaign.send_time_control_percent = spec.send_time_control_percent
    campaign.auto_winner = spec.auto_winner
    campaign.holdout_percent = spec.holdout_percent
    campaign.goal_event = spec.goal_event
    campaign.goal_within = spec.goal_within
    campaign.goal_within_seconds = spec.goal_within_seconds
    campaign.once_per_person = spec.once_per_person
    campaign.reeligible_after = spec.reeligible_after
    campaign.reeligible_after_seconds = spec.reeligible_after_seconds


def _write_audience(campaign: Campaign, spec: CampaignSpec) -> None:
    CampaignAudience.objects.filter(workspace_id=campaign.workspace_id, campaign=campaign).delete()
    CampaignAudience.objects.bulk_create(
        [
            CampaignAudience(workspace_id=campaign.workspace_id, campaign=campaign, segment_id=pk, exclude=exclude)
            for exclude, ids in ((False, spec.include), (True, spec.exclude))
            for pk in ids
        ]
    )


def _write_variants(campaign: Campaign, spec: CampaignSpec, *, in_place: bool) -> None:
    """A draft's variants are written anew; a launched campaign's are changed in place (its sends
    point at them), their names and weights being locked."""
    if in_place:
        rows = list(Variant.objects.filter(workspace_id=campaign.workspace_id, campaign=campaign).order_by("position"))
        for row, given in zip(rows, spec.variants, strict=True):
            row.subject, row.body, row.text, row.url = given.subject, given.body, given.text, given.url
            row.format = given.format
            row.save(update_fields=["subject", "body", "text", "url", "format"])
        return
    Variant.objects.filter(workspace_id=campaign.workspace_id, campaign=campaign).delete()
    Variant.objects.bulk_create(
        [
            Variant(
                workspace_id=campaign.workspace_id,
                campaign=campaign,
                position=position,
                name=given.name,
                weight=given.weight,
                subject=given.subject,
                body=given.body,
                text=given.text,
                url=given.url,
                format=given.format,
            )
            for position, given in enumerate(spec.variants)
        ]
    )


def _name_taken(name: str) -> ValidationError:
    return ValidationError({"name": [name_taken_message("A campaign", name)]})


def campaign_create(*, workspace: Workspace, actor: User | None, data: Any) -> Campaign:
    """A new draft campaign from a body of rest-api.md's shape; ``ValidationError`` by path, nothing written."""
    spec = _read(workspace, data)
    name = _clean_name(workspace, spec.name)
    campaign = Campaign(workspace=workspace, name=name, created_by=actor)
    _apply(campaign, spec)
    try:
        with transaction.atomic():
            campaign.save()
            _write_audience(campaign, spec)
            _write_variants(campaign, spec, in_place=False)
            audit_record(workspace=workspace, actor=actor, action="campaign.created", target=name)
    except IntegrityError as error:
        if not name_constraint_violated(error, NAME_CONSTRAINT):
            raise
        raise _name_taken(name) from error
    return campaign


def _locked_changes(campaign: Campaign, current: Mapping[str, Any], spec: CampaignSpec) -> dict[str, list[str]]:
    """What ``spec`` changes of a launched campaign that may not change any more."""
    message = "Cannot change once the campaign has been launched; duplicate it to change this."
    audience = current["audience"]
    changed = {
        "channel": spec.channel != campaign.channel,
        "kind": spec.kind != campaign.kind,
        "trigger": spec.trigger != campaign.trigger,
        "audience": (spec.include, spec.exclude) != (audience["segments"], audience["exclude"]),
        "holdout_percent": spec.holdout_percent != campaign.holdout_percent,
        "send_at": spec.send_at != campaign.send_at,
        "local_time": spec.local_time != campaign.local_time,
        "send_time": spec.send_time != campaign.send_time,
        "send_time_control_percent": spec.send_time_control_percent != campaign.send_time_control_percent,
        "auto_winner": spec.auto_winner != campaign.auto_winner,
    }
    errors = {key: [message] for key in LOCKED_ONCE_LAUNCHED if changed[key]}
    if [(v.name, v.weight) for v in spec.variants] != [(v["name"], v["weight"]) for v in current["variants"]]:
        errors["variants"] = [
            "The variants' number, names and weights cannot change once the campaign has been launched; "
            "their content can."
        ]
    return errors


def campaign_update(*, campaign: Campaign, actor: User | None, data: Any) -> Campaign:
    """Change what ``data`` gives (top-level fields replace the current ones whole; ``variants``
    replaces every variant). A launched campaign's ``LOCKED_ONCE_LAUNCHED`` fields, and its
    variants' number, names and weights, are refused when changed."""
    workspace = Workspace(pk=campaign.workspace_id)
    if not isinstance(data, Mapping):
        raise ValidationError({"": ["Expected a JSON object."]})
    current = selectors.campaign_body(campaign)
    merged = {**current, **data}
    spec = _read(workspace, merged)
    launched = campaign.launched_at is not None
    if launched and (errors := _locked_changes(campaign, current, spec)):
        raise ValidationError(errors)
    name = _clean_name(workspace, spec.name, exclude=campaign.pk)
    try:
        with transaction.atomic():
            locked = Campaign.objects.select_for_update().get(workspace=workspace, pk=campaign.pk)
            if (locked.launched_at is not None) != launched:
                raise CampaignConflict("The campaign was launched meanwhile; read it again and retry.")
            campaign.name = name
            _apply(campaign, spec)
            campaign.save()
            if not launched:
                _write_audience(campaign, spec)
            _write_variants(campaign, spec, in_place=launched)
            audit_record(
                workspace=workspace,
                actor=actor,
                action="campaign.updated",
                target=name,
                details={"fields": sorted(data)},
            )
    except IntegrityError as error:
        if not name_constraint_violated(error, NAME_CONSTRAINT):
            raise
        raise _name_taken(name) from error
    return campaign


def campaign_delete(*, campaign: Campaign, actor: User | None) -> None:
    """Delete a campaign that is not live, with its sends (its results go with it)."""
    workspace = Workspace(pk=campaign.workspace_id)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(workspace=workspace, pk=campaign.pk)
        if locked.status in LIVE:
            raise CampaignConflict(f"The campaign is {locked.status}: pause it before deleting it.")
        Send.objects.filter(workspace=workspace, campaign_id=campaign.pk).delete()
        audit_record(workspace=workspace, actor=actor, action="campaign.deleted", target=campaign.name)
        locked.delete()


def dispatch_kick() -> None:
    """Ask a worker to dispatch now rather than at the next tick. Never raises: with the broker
    down the request still succeeds, and the periodic tick does the work."""
    try:
        current_app.send_task(KICK_TASK, kwargs={}, retry=False, expires=60)
    except Exception as error:
        logger.warning("Campaigns: could not kick the dispatcher (%s); the periodic tick sends", error)


def campaign_launch(*, campaign: Campaign, actor: User | None, now: datetime | None = None) -> Campaign:
    """Start a draft or paused campaign: a broadcast gets a run (unless one is unfinished) and is
    ``scheduled`` (``send_at`` ahead) or ``sending``; a triggered campaign is ``listening``.

    A live campaign is left as it is (launching twice is harmless); a sent broadcast is a
    :class:`CampaignConflict`.
    """
    now = now or timezone.now()
    workspace = Workspace(pk=campaign.workspace_id)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(workspace=workspace, pk=campaign.pk)
        if locked.status in LIVE:
            return locked
        if locked.status == CampaignStatus.SENT:
            raise CampaignConflict("The broadcast has been sent; duplicate it to send it again.")
        if locked.kind == CampaignKind.BROADCAST:
            if not Run.objects.filter(workspace=workspace, campaign=locked, finished_at__isnull=True).exists():
                Run.objects.create(workspace=workspace, campaign=locked)
            due_later = locked.send_at is not None and locked.send_at > now
            locked.status = CampaignStatus.SCHEDULED if due_later else CampaignStatus.SENDING
        else:
            locked.status = CampaignStatus.LISTENING
            # Triggers count from here: those that came while it was paused or a draft are skipped.
            locked.listening_since = now
        resumed = locked.launched_at is not None
        locked.launched_at = locked.launched_at or now
        locked.paused_at = None
        locked.save(update_fields=["status", "launched_at", "listening_since", "paused_at", "updated_at"])
        audit_record(
            workspace=workspace,
            actor=actor,
            action="campaign.resumed" if resumed else "campaign.launched",
            target=locked.name,
            details={"status": locked.status},
        )
        transaction.on_commit(dispatch_kick)
    return locked


def campaign_pause(*, campaign: Campaign, actor: User | None, now: datetime | None = None) -> Campaign:
    """Stop a live campaign: its pending sends stay pending until it is launched again.
    Pausing a paused campaign is harmless; a draft or a sent broadcast is a :class:`CampaignConflict`."""
    workspace = Workspace(pk=campaign.workspace_id)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(workspace=workspace, pk=campaign.pk)
        if locked.status == CampaignStatus.PAUSED:
            return locked
        if locked.status not in LIVE:
            raise CampaignConflict(f"Only a live campaign can be paused; this one is {locked.status}.")
        locked.status = CampaignStatus.PAUSED
        locked.paused_at = now or timezone.now()
        locked.save(update_fields=["status", "paused_at", "updated_at"])
        audit_record(workspace=workspace, actor=actor, action="campaign.paused", target=locked.name)
    return locked


# --- frequency caps ------------------------------------------------------------------------------


def frequency_cap_create(*, workspace: Workspace, actor: User | None, channel: Any, max: Any, per: Any) -> FrequencyCap:
    """A workspace-wide rule: at most ``max`` messages of ``channel`` per person in any rolling ``per``."""
    errors: dict[str, list[str]] = {}
    if channel not in Channel.values:
        errors["channel"] = [f"One of {', '.join(Channel.values)}, not {channel!r}."]
    if isinstance(max, bool) or not isinstance(max, int) or not 1 <= max <= MAX_CAP:
        errors["max"] = [f"A whole number from 1 to {MAX_CAP}, not {max!r}."]
    duration = parse_duration(per)
    if duration is None:
        errors["per"] = [f'Expected a duration such as "30m", "48h", "1d" or "4w", not {per!r}.']
    if errors:
        raise ValidationError(errors)
    assert duration is not None
    with transaction.atomic():
        cap = FrequencyCap.objects.create(
            workspace=workspace,
            channel=channel,
            max=max,
            per=duration.text,
            per_seconds=duration.seconds,
            created_by=actor,
        )
        audit_record(workspace=workspace, actor=actor, action="frequency_cap.created", target=str(cap))
    return cap


def frequency_cap_delete(*, cap: FrequencyCap, actor: User | None) -> None:
    """Delete a rule; sends it capped keep their state (their ``cap`` becomes null)."""
    workspace = Workspace(pk=cap.workspace_id)
    with transaction.atomic():
        audit_record(workspace=workspace, actor=actor, action="frequency_cap.deleted", target=str(cap))
        cap.delete()


# --- settings --------------------------------------------------------------------------------------

SETTINGS_FIELDS = (
    "from_email",
    "from_name",
    "reply_to",
    "timezone",
    "quiet_start",
    "quiet_end",
    "emails_per_second",
    "webhooks_per_second",
    "members_can_launch",
)

LAUNCH_REFUSED = (
    "Only admins may launch or resume campaigns in this workspace; "
    "an admin can let members launch them in the campaign settings (members_can_launch)."
)
SETTING_ADMIN_ONLY = "Only admins may change who launches campaigns."


def launch_refusal(*, workspace: Workspace, membership: Any) -> str | None:
    """Why this membership may not launch a campaign of ``workspace`` (None: it may): admins
    always may, members when the workspace's ``members_can_launch`` is set, viewers never."""
    if membership is None or not membership.can_write:
        return "Your role in this workspace does not allow this change."
    if membership.can_admin:
        return None
    return None if selectors.campaign_settings_get(workspace).members_can_launch else LAUNCH_REFUSED


def _email_or_blank(value: Any, key: str, errors: dict[str, list[str]]) -> str | None:
    if not isinstance(value, str):
        errors[key] = ["Expected an email address (a string), or an empty string."]
        return None
    value = value.strip()
    if value:
        try:
            validate_email(value)
        except ValidationError:
            errors[key] = [f"Not an email address: {value!r}."]
            return None
    return value


def _time_or_null(value: Any, key: str, errors: dict[str, list[str]]) -> time | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 15:
            raise ValueError
        return time.fromisoformat(value)
    except ValueError:
        errors[key] = [f'Expected a time of day such as "21:00", or null, not {value!r}.']
        return None


def campaign_settings_update(*, workspace: Workspace, actor: User | None, data: Any) -> CampaignSettings:
    """Change what ``data`` gives of the workspace's sending settings (created on first change)."""
    if not isinstance(data, Mapping):
        raise ValidationError({"": ["Expected a JSON object."]})
    errors: dict[str, list[str]] = {key: ["Unknown field."] for key in data if key not in SETTINGS_FIELDS}
    values: dict[str, Any] = {}
    for key in ("from_email", "reply_to"):
        if key in data and (value := _email_or_blank(data[key], key, errors)) is not None:
            values[key] = value
    if "from_name" in data:
        name = data["from_name"]
        if not isinstance(name, str) or len(name) > 100 or any(c in name for c in "\r\n\x00"):
            errors["from_name"] = ["Expected a name of at most 100 characters on one line."]
        else:
            values["from_name"] = name.strip()
    if "timezone" in data:
        zone = data["timezone"]
        try:
            if not isinstance(zone, str) or not zone or len(zone) > 64:
                raise ValueError
            zoneinfo.ZoneInfo(zone)
            values["timezone"] = zone
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            errors["timezone"] = [f'Expected an IANA timezone such as "Europe/Paris", not {zone!r}.']
    for key in ("quiet_start", "quiet_end"):
        if key in data:
            values[key] = _time_or_null(data[key], key, errors)
    if "members_can_launch" in data:
        if not isinstance(data["members_can_launch"], bool):
            errors["members_can_launch"] = [f"Expected true or false, not {data['members_can_launch']!r}."]
        else:
            values["members_can_launch"] = data["members_can_launch"]
    for key in ("emails_per_second", "webhooks_per_second"):
        if key in data:
            rate = data[key]
            if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_RATE:
                errors[key] = [f"A whole number from 1 to {MAX_RATE}, not {rate!r}."]
            else:
                values[key] = rate
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        row, _ = CampaignSettings.objects.select_for_update().get_or_create(workspace=workspace)
        for key, value in values.items():
            setattr(row, key, value)
        if (row.quiet_start is None) != (row.quiet_end is None):
            missing = "quiet_end" if row.quiet_end is None else "quiet_start"
            raise ValidationError({missing: ["Quiet hours need both a start and an end (or neither)."]})
        row.save()
        audit_record(
            workspace=workspace, actor=actor, action="campaign_settings.updated", details={"fields": sorted(values)}
        )
    return row


def sender_address(row: CampaignSettings) -> str:
    """The From header of the workspace's messages."""
    address = row.from_email or settings.DEFAULT_FROM_EMAIL
    if row.from_name and row.from_email:
        return formataddr((row.from_name, row.from_email))
    return address


# --- a test message ----------------------------------------------------------------------------------


class TestSendFailed(Exception):
    """The mail server did not take the test message; ``str()`` says why, for the user."""


TEST_SUBJECT_PREFIX = "[Test] "


def campaign_test_send(
    *,
    campaign: Campaign,
    actor: User | None,
    address: str,
    variant: Variant,
    person: rendering.PersonContext,
    event_properties: dict[str, Any] | None = None,
) -> str:
    """Send ``variant`` rendered for ``person`` to ``address`` now, through Django's email backend.

    A test leaves no ``Send`` row: it counts in no result and no frequency cap, and carries no
    tracking links or unsubscribe headers (nothing it does becomes an event). Its subject starts
    with "[Test] ". Answers the subject sent; ``RenderFailed`` or :class:`TestSendFailed`.
    """
    if campaign.channel != Channel.EMAIL:
        raise ValidationError({"channel": ["Test messages are sent for email campaigns only; use the preview."]})
    rendered = rendering.render_variant(
        variant=variant, channel=campaign.channel, person=person, event_properties=event_properties
    )
    row = selectors.campaign_settings_get(Workspace(pk=campaign.workspace_id))
    subject = TEST_SUBJECT_PREFIX + rendered.subject
    message = EmailMultiAlternatives(
        subject=subject,
        body=rendered.text,
        from_email=sender_address(row),
        to=[address],
        reply_to=[row.reply_to] if row.reply_to else None,
        headers={"X-Cohortly-Test": f"campaign {campaign.pk}"},
    )
    message.attach_alternative(rendered.html, "text/html")
    try:
        message.send(fail_silently=False)
    except Exception as error:  # smtplib's, socket's, an ESP backend's: all mean "not sent"
        raise TestSendFailed(f"The mail server did not take the message: {error}") from error
    audit_record(
        workspace=Workspace(pk=campaign.workspace_id),
        actor=actor,
        action="campaign.test_sent",
        target=campaign.name,
        details={"variant": variant.name},
    )
    return subject
