"""Reads of campaigns: lists, the campaign document the API answers, progress, results.

Results count sends by state and measure conversions against tracking's events in one
statement (``campaign_results``); the arithmetic is ``campaigns.stats``'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Prefetch, QuerySet

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from campaigns import rendering, stats
from campaigns.assignment import bucket_sql
from campaigns.fanout import CONTROL_SALT
from campaigns.models import (
    Campaign,
    CampaignAudience,
    CampaignSettings,
    Channel,
    FrequencyCap,
    Send,
    SendState,
    SendTime,
    Variant,
)
from campaigns.progress import PROGRESS_KEYS
from campaigns.validation import REQUIRED_CONTENT, VARIANT_FIELDS
from core.names import name_key
from tracking.models import Event, Person


def campaign_list(workspace: Workspace) -> QuerySet[Campaign]:
    """The workspace's campaigns, newest first, with their variants and audience (three queries)."""
    return (
        Campaign.objects.filter(workspace=workspace)
        .prefetch_related(
            Prefetch("variants", queryset=Variant.objects.filter(workspace=workspace).order_by("position")),
            Prefetch("audience", queryset=CampaignAudience.objects.filter(workspace=workspace).order_by("pk")),
        )
        .order_by("-created_at", "-pk")
    )


def campaign_get(workspace: Workspace, pk: int) -> Campaign | None:
    return campaign_list(workspace).filter(pk=pk).first()


def campaign_body(campaign: Campaign) -> dict[str, Any]:
    """The campaign in the shape of the body that creates it (rest-api.md, "Campaigns")."""
    audience = list(campaign.audience.all())
    variants = list(campaign.variants.all())
    goal = {"event": campaign.goal_event, "within": campaign.goal_within} if campaign.goal_event else None
    return {
        "name": campaign.name,
        "description": campaign.description,
        "channel": campaign.channel,
        "kind": campaign.kind,
        "trigger": campaign.trigger,
        "audience": {
            "segments": [row.segment_id for row in audience if not row.exclude],
            "exclude": [row.segment_id for row in audience if row.exclude],
        },
        "variants": [_variant_body(v, campaign.channel) for v in variants],
        "holdout_percent": campaign.holdout_percent,
        "goal": goal,
        "once_per_person": campaign.once_per_person,
        "reeligible_after": campaign.reeligible_after or None,
        "send_at": campaign.send_at.isoformat().replace("+00:00", "Z") if campaign.send_at else None,
        "local_time": campaign.local_time,
        "send_time": campaign.send_time or None,
        "send_time_control_percent": campaign.send_time_control_percent,
        "auto_winner": campaign.auto_winner,
    }


def _variant_body(variant: Variant, channel: str) -> dict[str, Any]:
    """A variant as given: optional content left empty (an email's text, a webhook's body) is left out."""
    document: dict[str, Any] = {"name": variant.name, "weight": variant.weight}
    for key in VARIANT_FIELDS[channel]:
        value = getattr(variant, key)
        if value or key in REQUIRED_CONTENT[channel]:
            document[key] = value
    if channel == Channel.ONSITE:
        document["format"] = variant.format or "banner"
    return document


def campaigns_progress(workspace: Workspace, campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """``campaigns.progress.campaign_progress`` of many campaigns in one grouped query (a list page):
    the same keys, counted the same way."""
    ids = list(campaign_ids)
    progress = {pk: dict.fromkeys(PROGRESS_KEYS, 0) for pk in ids}
    if ids:
        rows = (
            Send.objects.filter(workspace=workspace, campaign_id__in=ids)
            .values_list("campaign_id", "state")
            .order_by()
            .annotate(n=Count("*"))
        )
        for campaign_id, state, n in rows:
            counts = progress[campaign_id]
            counts["total"] += n
            key = "pending" if state in (SendState.PENDING, SendState.CLAIMED) else state
            counts[key] = counts.get(key, 0) + n
    return progress


def campaign_document(campaign: Campaign, progress: dict[str, int]) -> dict[str, Any]:
    """The API's answer for a campaign: its body plus what the server keeps."""
    return {
        "id": campaign.pk,
        **campaign_body(campaign),
        "status": campaign.status,
        "created_at": campaign.created_at,
        "launched_at": campaign.launched_at,
        "progress": progress,
    }


def frequency_cap_list(workspace: Workspace) -> QuerySet[FrequencyCap]:
    return FrequencyCap.objects.filter(workspace=workspace).order_by("channel", "per_seconds", "pk")


def campaign_settings_get(workspace: Workspace) -> CampaignSettings:
    """The workspace's sending settings; the defaults (unsaved) until someone changes them."""
    row = CampaignSettings.objects.filter(workspace=workspace).first()
    return row if row is not None else CampaignSettings(workspace=workspace)


def person_find(workspace: Workspace, ref: Any) -> Person | None:
    """A person of the workspace by id (a number) or user id (a string)."""
    people = Person.objects.filter(workspace=workspace)
    if isinstance(ref, int) and not isinstance(ref, bool):
        return people.filter(pk=ref).first() if 0 < ref < 2**63 else None
    if isinstance(ref, str) and ref and "\x00" not in ref:
        return people.filter(user_id=ref).first()
    return None


# --- results -------------------------------------------------------------------------------------

HOLDOUT = "holdout"

# Per variant (and the holdout): sends by state, opens, clicks and conversions. A send converts when
# its person did the goal event within the goal's time after it was sent, or, in the holdout, after
# it was due (the time it would have been sent). One lateral probe per sent or held-out row, on the
# events' (workspace, person, timestamp) index, stops at the first matching event.
_RESULTS_SQL = """
SELECT s.variant_id, s.state = 'holdout' AS held_out,
       count(*) AS targeted,
       count(*) FILTER (WHERE s.state = 'sent') AS sent,
       count(*) FILTER (WHERE s.state = 'capped') AS capped,
       count(*) FILTER (WHERE s.state = 'suppressed') AS suppressed,
       count(*) FILTER (WHERE s.state = 'failed') AS failed,
       count(*) FILTER (WHERE s.opened_at IS NOT NULL) AS opened,
       count(*) FILTER (WHERE s.clicked_at IS NOT NULL) AS clicked,
       count(c.hit) AS converted
FROM {send} s
LEFT JOIN LATERAL (
    SELECT 1 AS hit FROM {event} e
    WHERE e.workspace_id = %(workspace_id)s
      AND e.person_id = s.person_id
      AND e.name = %(goal)s
      AND e."timestamp" >= COALESCE(s.sent_at, s.due_at)
      AND e."timestamp" <= COALESCE(s.sent_at, s.due_at) + make_interval(secs => %(within)s)
      AND s.state IN ('sent', 'holdout')
      AND %(measured)s
    LIMIT 1
) c ON true
WHERE s.workspace_id = %(workspace_id)s AND s.campaign_id = %(campaign)s
GROUP BY 1, 2
"""


@dataclass
class GroupResult:
    name: str
    targeted: int = 0
    sent: int = 0
    capped: int = 0
    suppressed: int = 0
    failed: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    conversion_rate: float | None = None
    interval: tuple[float, float] | None = None
    lift: float | None = None

    @property
    def exposed(self) -> int:
        """The denominator of the rate: people sent the message, or, in the holdout, held out."""
        return self.targeted if self.name == HOLDOUT else self.sent

    def add(self, row: dict[str, int]) -> None:
        for key in ("targeted", "sent", "capped", "suppressed", "failed", "opened", "clicked", "converted"):
            setattr(self, key, getattr(self, key) + row[key])

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "targeted": self.targeted,
            "sent": self.sent,
            "capped": self.capped,
            "suppressed": self.suppressed,
            "failed": self.failed,
            "opened": self.opened,
            "clicked": self.clicked,
            "converted": self.converted,
            "conversion_rate": self.conversion_rate,
            "interval": list(self.interval) if self.interval else None,
            "lift": self.lift,
        }


@dataclass
class CampaignResults:
    goal: dict[str, str] | None
    variants: list[GroupResult]
    holdout: GroupResult
    test: str | None
    p_value: float | None
    verdict: str
    computed_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


def campaign_results(workspace: Workspace, campaign: Campaign) -> CampaignResults:
    """Per variant and for the holdout: sends by outcome, opens, clicks, conversions, the rate with
    its Wilson interval and lift over the holdout; the test between variants (a single variant is
    tested against the holdout) and its verdict."""
    variants = list(Variant.objects.filter(workspace=workspace, campaign=campaign).order_by("position"))
    groups = {variant.pk: GroupResult(name=variant.name) for variant in variants}
    holdout = GroupResult(name=HOLDOUT)
    sql = with_tables(_RESULTS_SQL, send=Send, event=Event)
    params = {
        "campaign": campaign.pk,
        "goal": campaign.goal_event,
        "within": campaign.goal_within_seconds or 0,
        "measured": bool(campaign.goal_event),
    }
    with connection.cursor() as cursor:
        execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        group = holdout if row["held_out"] else groups.get(row["variant_id"])
        if group is not None:
            group.add(row)
    measured = bool(campaign.goal_event)
    everyone = [*groups.values(), holdout]
    for group in everyone:
        if measured and group.exposed:
            group.conversion_rate = group.converted / group.exposed
            group.interval = stats.wilson_interval(group.converted, group.exposed)
    for group in groups.values():
        group.lift = stats.lift(group.conversion_rate, holdout.conversion_rate)
    goal = {"event": campaign.goal_event, "within": campaign.goal_within} if measured else None
    if not measured:
        return CampaignResults(goal, list(groups.values()), holdout, None, None, "no goal set")
    compared = list(groups.values()) if len(groups) > 1 else [*groups.values(), holdout]
    tested = [stats.Group(g.name, g.converted, g.exposed) for g in compared]
    p = stats.p_value(tested)
    test = None if len(tested) < 2 else ("two-proportion z-test" if len(tested) == 2 else "chi-square")
    return CampaignResults(goal, list(groups.values()), holdout, test, p, stats.verdict(tested, p))


# Best hour against the random-hour control: the same conversion probe, the sends (the holdout's
# rows left out) grouped by the fan-out's control bucket, recomputed from the same hash.
_SEND_TIME_SQL = """
SELECT ({control} < %(control)s::float8) AS control,
       count(*) AS targeted,
       count(*) FILTER (WHERE s.state = 'sent') AS sent,
       count(c.hit) AS converted
FROM {send} s
LEFT JOIN LATERAL (
    SELECT 1 AS hit FROM {event} e
    WHERE e.workspace_id = %(workspace_id)s
      AND e.person_id = s.person_id
      AND e.name = %(goal)s
      AND e."timestamp" >= s.sent_at
      AND e."timestamp" <= s.sent_at + make_interval(secs => %(within)s)
      AND s.state = 'sent'
      AND %(measured)s
    LIMIT 1
) c ON true
WHERE s.workspace_id = %(workspace_id)s AND s.campaign_id = %(campaign)s AND s.state <> 'holdout'
GROUP BY 1
"""
BEST_HOUR_GROUP = "best hour"
CONTROL_GROUP = "random hour"


def send_time_results(workspace: Workspace, campaign: Campaign) -> dict[str, Any] | None:
    """A best-hour broadcast's comparison: people sent at their best hour against the control share
    sent at a random hour (sent, converted, rate with its interval), the z-test and its verdict.
    None for other campaigns."""
    if campaign.send_time != SendTime.BEST_HOUR:
        return None
    control = bucket_sql(campaign_param="assign_campaign", person_column="s.person_id", salt=CONTROL_SALT)
    sql = with_tables(_SEND_TIME_SQL.replace("{control}", control), send=Send, event=Event)
    params = {
        "assign_campaign": campaign.pk,
        "campaign": campaign.pk,
        "control": campaign.send_time_control_percent / 100,
        "goal": campaign.goal_event,
        "within": campaign.goal_within_seconds or 0,
        "measured": bool(campaign.goal_event),
    }
    counts = {True: (0, 0, 0), False: (0, 0, 0)}
    with connection.cursor() as cursor:
        execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
        for is_control, targeted, sent, converted in cursor.fetchall():
            counts[bool(is_control)] = (targeted, sent, converted)
    measured = bool(campaign.goal_event)
    groups: list[dict[str, Any]] = []
    tested: list[stats.Group] = []
    for name, key in ((BEST_HOUR_GROUP, False), (CONTROL_GROUP, True)):
        targeted, sent, converted = counts[key]
        interval = stats.wilson_interval(converted, sent) if measured else None
        groups.append(
            {
                "name": name,
                "targeted": targeted,
                "sent": sent,
                "converted": converted,
                "conversion_rate": converted / sent if measured and sent else None,
                "interval": list(interval) if interval else None,
            }
        )
        tested.append(stats.Group(name, converted, sent))
    p = stats.p_value(tested) if measured else None
    return {
        "control_percent": campaign.send_time_control_percent,
        "best_hour": groups[0],
        "control": groups[1],
        "p_value": p,
        "verdict": stats.verdict(tested, p) if measured else "no goal set",
    }


# --- preview ---------------------------------------------------------------------------------------


def person_context(person: Person) -> rendering.PersonContext:
    return rendering.PersonContext(id=person.pk, user_id=person.user_id, traits=dict(person.traits or {}))


def variant_pick(campaign: Campaign, name: str | None) -> Variant | None:
    """The variant named ``name`` (by its name's key), or the first one when no name is given."""
    variants = list(Variant.objects.filter(workspace_id=campaign.workspace_id, campaign=campaign).order_by("position"))
    if name is None:
        return variants[0] if variants else None
    return next((v for v in variants if name_key(v.name) == name_key(name)), None)


def campaign_preview(
    campaign: Campaign,
    variant: Variant,
    person: rendering.PersonContext,
    event_properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The variant rendered for ``person``, the fields of its channel only; ``RenderFailed`` as the renderer says."""
    rendered = rendering.render_variant(
        variant=variant, channel=campaign.channel, person=person, event_properties=event_properties
    )
    if campaign.channel == Channel.EMAIL:
        return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}
    if campaign.channel == Channel.WEBHOOK:
        return {"url": rendered.url, "json": rendered.json_body}
    # On-site: what the snippet receives (``campaigns.onsite``), all plain text.
    return {
        "format": variant.format or "banner",
        "title": rendered.subject,
        "body": rendered.text,
        "link_url": rendered.url,
        "link_text": rendered.link_text,
    }
