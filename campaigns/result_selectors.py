"""Reads of a campaign's results page beyond ``selectors.campaign_results``: sends over time, why
sends were capped, suppressed or failed, and who converted (for the segments made from them).

A recipient converted when the goal event followed one of their sent messages within the goal's
time, the same probe as ``campaign_results`` (so the segments' sizes agree with the page's numbers
for people with one send each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Max, Min
from django.db.models.functions import TruncDay, TruncHour

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from campaigns.models import Campaign, FrequencyCap, Send, SendState
from tracking.models import Event, Person

# Up to this span between the first and the last send, sends are counted per hour; beyond, per day.
HOURLY_SPAN = timedelta(hours=48)
OUTCOME_STATES = (SendState.CAPPED, SendState.SUPPRESSED, SendState.FAILED)


@dataclass(frozen=True)
class SendsOverTime:
    unit: str  # "hour" or "day"
    points: list[tuple[datetime, int]]


def sends_over_time(workspace: Workspace, campaign: Campaign) -> SendsOverTime:
    """Messages sent per hour (a span of up to two days) or per day, empty buckets included."""
    sent = Send.objects.filter(workspace=workspace, campaign=campaign, state=SendState.SENT, sent_at__isnull=False)
    span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
    first, last = span["first"], span["last"]
    if first is None or last is None:
        return SendsOverTime("hour", [])
    hourly = last - first <= HOURLY_SPAN
    trunc = TruncHour("sent_at") if hourly else TruncDay("sent_at")
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    counts = dict(sent.annotate(bucket=trunc).values_list("bucket").annotate(n=Count("id")).values_list("bucket", "n"))
    start = min(counts)
    end = max(counts)
    points = []
    at = start
    while at <= end:
        points.append((at, counts.get(at, 0)))
        at += step
    return SendsOverTime("hour" if hourly else "day", points)


@dataclass(frozen=True)
class OutcomeReason:
    state: str
    reason: str
    count: int


def send_outcome_reasons(workspace: Workspace, campaign: Campaign) -> list[OutcomeReason]:
    """Capped, suppressed and failed sends grouped by their reason (a capped send's reason is its
    rule, "at most 2 email per 1d", or that the rule was deleted since), largest first."""
    rows = (
        Send.objects.filter(workspace=workspace, campaign=campaign, state__in=OUTCOME_STATES)
        .values_list("state", "reason", "cap_id")
        .order_by()
        .annotate(n=Count("id"))
    )
    caps = {
        cap.pk: str(cap)
        for cap in FrequencyCap.objects.filter(workspace=workspace, pk__in={cap for _, _, cap, _ in rows if cap})
    }
    merged: dict[tuple[str, str], int] = {}
    for state, reason, cap_id, n in rows:
        if state == SendState.CAPPED and not reason:
            reason = caps.get(cap_id, "") if cap_id else "a frequency cap deleted since"
        key = (state, reason or "no reason recorded")
        merged[key] = merged.get(key, 0) + n
    order: dict[str, int] = {str(state): i for i, state in enumerate(OUTCOME_STATES)}
    return [
        OutcomeReason(state, reason, n)
        for (state, reason), n in sorted(merged.items(), key=lambda item: (order[item[0][0]], -item[1], item[0][1]))
    ]


# Per recipient (a person with at least one sent message): whether any of their messages converted.
_RECIPIENTS_SQL = with_tables(
    """
SELECT p.user_id, bool_or(c.hit IS NOT NULL) AS converted
FROM {send} s
JOIN {person} p ON p.workspace_id = %(workspace_id)s AND p.id = s.person_id
LEFT JOIN LATERAL (
    SELECT 1 AS hit FROM {event} e
    WHERE e.workspace_id = %(workspace_id)s
      AND e.person_id = s.person_id
      AND e.name = %(goal)s
      AND e."timestamp" >= s.sent_at
      AND e."timestamp" <= s.sent_at + make_interval(secs => %(within)s)
    LIMIT 1
) c ON true
WHERE s.workspace_id = %(workspace_id)s AND s.campaign_id = %(campaign)s AND s.state = 'sent'
GROUP BY p.id, p.user_id
""",
    send=Send,
    person=Person,
    event=Event,
)


@dataclass(frozen=True)
class Recipients:
    """The user ids of recipients who converted or did not, and how many had no user id (a static
    segment lists identified people only)."""

    user_ids: list[str]
    anonymous: int


def recipients(workspace: Workspace, campaign: Campaign, *, converted: bool) -> Recipients:
    """Recipients who converted (``converted=True``) or received a message and did not."""
    if not campaign.goal_event:
        return Recipients([], 0)
    params = {"campaign": campaign.pk, "goal": campaign.goal_event, "within": campaign.goal_within_seconds or 0}
    with connection.cursor() as cursor:
        execute_scoped(cursor, _RECIPIENTS_SQL, params, workspace_id=workspace.pk)
        rows = cursor.fetchall()
    chosen = [user_id for user_id, did in rows if bool(did) == converted]
    user_ids = sorted(user_id for user_id in chosen if user_id)
    return Recipients(user_ids, len(chosen) - len(user_ids))
