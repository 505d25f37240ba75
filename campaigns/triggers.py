"""Triggered campaigns: segment entries and events become pending ``Send`` rows; the dispatcher sends them.

Two doors, one writer:

- *Segment entry*: ``sends_from_changes`` is the change feed's ``campaigns`` consumer
  (``SEGMENT_FEED_CONSUMERS``; ``segmentation.feed``). It runs inside the feed's
  transaction, next to the cursor it moves, and writes a send per ``entered``
  change of a listening campaign's trigger segment (occurrence ``change:<id>``).
  Segments are never polled.
- *Event*: ingestion notes, in its own transaction, the people who did an event some
  listening campaign triggers on (``campaigns.trigger_people``, a ``TriggerInbox`` row
  per person and name); ``trigger_inbox_drain`` turns the rows into sends off the hot
  path (occurrence ``event:<id>``, the event's properties in the send's context).

Both hand their candidates to ``_sends_write``, which applies the audience's excluded
segments and re-eligibility (once per person, again after a duration, or every
occurrence) under a per-(campaign, person) advisory lock, picks the variant
(``campaigns.assignment``; the holdout gets a row in state ``holdout``) and inserts
every send in one statement that ignores a row already there: a batch read twice
writes nothing twice.

What listens: a campaign in status ``listening``, and only to triggers at or after its
last launch (``listening_since``, set by the launch that resumed it after a pause too;
else ``launched_at``): a change or an event from before, or from while it was paused,
writes nothing. The rules are in
docs/campaigns.md, "Triggered campaigns".
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import dangerously_execute_across_workspaces, execute_scoped, execute_session, with_tables
from campaigns.assignment import variant_for
from campaigns.models import (
    Campaign,
    CampaignAudience,
    CampaignStatus,
    Send,
    SendState,
    TriggerInbox,
    TriggerOn,
    Variant,
)
from core.kicks import KICK_EXPIRES_SECONDS, Kick
from segmentation.models import Membership, MembershipChangeKind
from tracking.models import Event

logger = logging.getLogger(__name__)

# Celery's names of the tasks this module queues (queued by name: services never import tasks).
DRAIN_TASK = "campaigns.triggers_drain"
DISPATCH_KICK_TASK = "campaigns.dispatch_kick"
# Inbox rows per drain transaction; a drain that took a full batch queues another.
INBOX_BATCH = 500
# An event whose timestamp is older than this when it is noted is history (a replay, a
# late upload), not a trigger.
EVENT_MAX_AGE = timedelta(days=1)
# How long a process trusts its list of the event names a workspace's listening campaigns
# trigger on (ingestion asks once per transaction): a campaign launched or paused is heard,
# or no longer heard, after at most this.
EVENT_NAMES_TTL_SECONDS = 2.0
# pg_advisory_xact_lock(LOCK_CLASS, hash of (campaign, person)): held while a person's
# re-eligibility is checked and their send written, so that two batches never both pass.
LOCK_CLASS = 1601
# A send due this soon after its commit is worth a dispatcher kick; later ones wait for the beat's tick.
KICK_DISPATCH_WITHIN = timedelta(seconds=5)


class SegmentChange(Protocol):
    """What the consumer reads of a change of the feed (``segmentation.feed.FeedChange``, private to segmentation)."""

    @property
    def id(self) -> int: ...
    @property
    def segment_id(self) -> int: ...
    @property
    def person_id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True)
class Candidate:
    """A send a trigger asks for, before exclusions and re-eligibility."""

    person_id: int
    occurrence: str
    triggered_at: datetime
    context: dict[str, Any] | None = None


@dataclass
class Written:
    """What ``_sends_write`` did with the candidates it was given."""

    written: int = 0  # rows inserted (pending or holdout)
    excluded: int = 0  # in an excluded segment
    ineligible: int = 0  # re-eligibility said no
    due_soon: bool = field(default=False)  # some pending send is due within KICK_DISPATCH_WITHIN


# --- Segment entry: the change feed's consumer ------------------------------------------


def sends_from_changes(*, workspace: Workspace, changes: Sequence[SegmentChange]) -> None:
    """The change feed's ``campaigns`` consumer: a send per entry into a listening campaign's trigger segment.

    Inside the feed's transaction (which also moves the cursor); a batch read again meets its
    sends by (campaign, person, ``change:<id>``) and writes none. No query when the batch has
    no entry; one when no campaign listens to the segments entered.
    """
    entered = [c for c in changes if c.kind == MembershipChangeKind.ENTERED and c.person_id is not None]
    if not entered:
        return
    campaigns = list(
        Campaign.objects.filter(
            workspace=workspace,
            status=CampaignStatus.LISTENING,
            trigger_on=TriggerOn.SEGMENT_ENTRY,
            trigger_segment_id__in={c.segment_id for c in entered},
        ).order_by("pk")
    )
    if not campaigns:
        return
    wanted: list[tuple[Campaign, list[Candidate]]] = []
    for campaign in campaigns:
        candidates = [
            Candidate(person_id=change.person_id, occurrence=f"change:{change.id}", triggered_at=change.at)
            for change in entered
            if change.segment_id == campaign.trigger_segment_id
            and change.person_id is not None
            and _listening_at(campaign, change.at)
        ]
        if candidates:
            wanted.append((campaign, candidates))
    result = _sends_write(workspace=workspace, wanted=wanted, now=timezone.now())
    if result.due_soon:
        transaction.on_commit(dispatch_kick, robust=True)


def _listening_at(campaign: Campaign, at: datetime) -> bool:
    """Whether the campaign was listening at ``at``: at or after its last launch (``listening_since``,
    else ``launched_at``). A trigger from before, or from while it was paused, is skipped."""
    since = campaign.listening_since or campaign.launched_at
    return since is None or at >= since


# --- Event triggers: ingestion's inbox and its drain ------------------------------------

_event_names: dict[int, tuple[float, frozenset[str]]] = {}


def trigger_events_listened(workspace_id: int) -> frozenset[str]:
    """The event names the workspace's listening campaigns trigger on, as this process last read them.

    Read again at most every ``EVENT_NAMES_TTL_SECONDS`` per workspace (one indexed query):
    ingestion asks on every transaction. The drain checks the campaigns again, so a name
    read while a campaign was still listening costs an inbox row, never a send.
    """
    now = time.monotonic()
    known = _event_names.get(workspace_id)
    if known is not None and now - known[0] < EVENT_NAMES_TTL_SECONDS:
        return known[1]
    names = frozenset(
        Campaign.objects.filter(
            workspace_id=workspace_id, status=CampaignStatus.LISTENING, trigger_on=TriggerOn.EVENT
        ).values_list("trigger_event", flat=True)
    )
    _event_names[workspace_id] = (now, names)
    return names


def trigger_events_forget() -> None:
    """Forget every workspace's names (tests; a process that must see a launch at once)."""
    _event_names.clear()


_INBOX_INSERT = with_tables(
    "INSERT INTO {inbox} (workspace_id, person_id, event, noted_at) "
    "SELECT %(workspace_id)s, t.person_id, t.event, now() "
    "FROM unnest(%(people)s::bigint[], %(events)s::text[]) AS t(person_id, event)",
    inbox=TriggerInbox,
)


def trigger_inbox_note(*, workspace_id: int, people: Sequence[int], event_names: Sequence[str]) -> None:
    """Note, in the caller's transaction, that each person did the event of the same position; one statement.

    A drain of the workspace is queued once the transaction commits (``trigger_drain_kick``).
    """
    with connection.cursor() as cursor:
        execute_scoped(
            cursor, _INBOX_INSERT, {"people": list(people), "events": list(event_names)}, workspace_id=workspace_id
        )
    transaction.on_commit(lambda: trigger_drain_kick(workspace_id), robust=True)


_INBOX_CLAIM = with_tables(
    "SELECT i.id, i.person_id, i.event, i.noted_at FROM {inbox} i "
    "WHERE i.workspace_id = %(workspace_id)s ORDER BY i.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
    inbox=TriggerInbox,
)
_INBOX_DELETE = with_tables(
    "DELETE FROM {inbox} WHERE workspace_id = %(workspace_id)s AND id = ANY(%(ids)s::bigint[])",
    inbox=TriggerInbox,
)
# The people's events of the noted names since each row's ``since`` (the scalar ``since`` is the
# smallest of them: it lets PostgreSQL skip the event table's older partitions).
_EVENTS_SQL = with_tables(
    "SELECT e.id, e.person_id, e.name, e.properties, e.timestamp, e.received_at "
    "FROM unnest(%(people)s::bigint[], %(names)s::text[], %(sinces)s::timestamptz[]) AS t(person_id, name, since) "
    "JOIN {event} e ON e.workspace_id = %(workspace_id)s AND e.person_id = t.person_id AND e.name = t.name "
    "AND e.timestamp >= t.since "
    "WHERE e.timestamp >= %(since)s "
    "ORDER BY e.timestamp, e.id",
    event=Event,
)


@dataclass
class InboxDrain:
    rows: int = 0  # inbox rows taken (and deleted)
    written: int = 0  # sends written
    more: bool = False  # a full batch: rows may be left


def trigger_inbox_drain(*, workspace: Workspace, limit: int = INBOX_BATCH) -> InboxDrain:
    """Turn up to ``limit`` inbox rows of the workspace into sends, in one transaction.

    Rows are taken ``FOR UPDATE SKIP LOCKED`` (two drains take disjoint rows), the people's
    events of those names are read from tracking's table (events up to ``EVENT_MAX_AGE``
    older than the row and, per campaign, received and happened since its launch), each
    listening campaign on that name gets a send per event (``event:<id>``; re-eligibility
    decides), and the rows are deleted. A row whose events were read before (two rows of
    one person and name) writes nothing twice: the sends' unique occurrence decides.
    """
    result = InboxDrain()
    with transaction.atomic():
        with connection.cursor() as cursor:
            execute_scoped(cursor, _INBOX_CLAIM, {"limit": limit}, workspace_id=workspace.pk)
            rows: list[tuple[int, int, str, datetime]] = cursor.fetchall()
        if not rows:
            return result
        result.rows = len(rows)
        result.more = len(rows) >= limit
        campaigns = list(
            Campaign.objects.filter(
                workspace=workspace,
                status=CampaignStatus.LISTENING,
                trigger_on=TriggerOn.EVENT,
                trigger_event__in={name for _, _, name, _ in rows},
            ).order_by("pk")
        )
        if campaigns:
            result.written = _event_sends_write(workspace=workspace, campaigns=campaigns, rows=rows)
        with connection.cursor() as cursor:
            execute_scoped(cursor, _INBOX_DELETE, {"ids": [row[0] for row in rows]}, workspace_id=workspace.pk)
    return result


def _event_sends_write(
    *, workspace: Workspace, campaigns: list[Campaign], rows: list[tuple[int, int, str, datetime]]
) -> int:
    sinces: dict[tuple[int, str], datetime] = {}
    for _, person_id, name, noted_at in rows:
        since = noted_at - EVENT_MAX_AGE
        key = (person_id, name)
        sinces[key] = min(since, sinces.get(key, since))
    listened = {c.trigger_event for c in campaigns}
    keys = [key for key in sinces if key[1] in listened]
    if not keys:
        return 0
    with connection.cursor() as cursor:
        execute_scoped(
            cursor,
            _EVENTS_SQL,
            {
                "people": [p for p, _ in keys],
                "names": [n for _, n in keys],
                "sinces": [sinces[k] for k in keys],
                "since": min(sinces[k] for k in keys),
            },
            workspace_id=workspace.pk,
        )
        events = cursor.fetchall()
    wanted: list[tuple[Campaign, list[Candidate]]] = []
    for campaign in campaigns:
        candidates = [
            Candidate(
                person_id=person_id,
                occurrence=f"event:{event_id}",
                triggered_at=timestamp,
                context={"event": {"properties": _json(properties)}},
            )
            for event_id, person_id, name, properties, timestamp, received_at in events
            if name == campaign.trigger_event
            and _listening_at(campaign, timestamp)
            and _listening_at(campaign, received_at)
        ]
        if candidates:
            wanted.append((campaign, candidates))
    result = _sends_write(workspace=workspace, wanted=wanted, now=timezone.now())
    if result.due_soon:
        transaction.on_commit(dispatch_kick, robust=True)
    return result.written


def _json(value: Any) -> Any:
    """A jsonb column of a raw query: Django's connection hands it back as text (its fields decode it)."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def trigger_inbox_workspaces() -> list[int]:
    """Ids of the workspaces with inbox rows (the beat's sweep; crosses workspaces)."""
    with connection.cursor() as cursor:
        dangerously_execute_across_workspaces(
            cursor,
            with_tables("SELECT DISTINCT workspace_id FROM {inbox}", inbox=TriggerInbox),
            why="the beat's sweep drains every workspace whose drain kick was lost",
        )
        return sorted(row[0] for row in cursor.fetchall())


# --- The one writer: exclusions, re-eligibility, variants, the rows ----------------------


def _lock_key(campaign_id: int, person_id: int) -> int:
    """A signed 32-bit key of (campaign, person); a collision only makes two people wait for each other."""
    return zlib.crc32(f"{campaign_id}:{person_id}".encode()) - 2**31


def _lock(keys: Iterable[int]) -> None:
    """Take the advisory locks in one statement, in key order (two writers never wait for each other in a cycle)."""
    ordered = sorted(set(keys))
    if not ordered:
        return
    with connection.cursor() as cursor:
        execute_session(
            cursor,
            "SELECT count(pg_advisory_xact_lock(%s, k)) "
            "FROM (SELECT DISTINCT k FROM unnest(%s::int[]) AS k ORDER BY k) AS keys",
            [LOCK_CLASS, ordered],
        )


def _sends_write(*, workspace: Workspace, wanted: list[tuple[Campaign, list[Candidate]]], now: datetime) -> Written:
    """Insert the sends the candidates earn, in the caller's transaction.

    - A person in one of the campaign's excluded segments (now, as the trigger is read) gets nothing.
    - Re-eligibility, under the per-(campaign, person) lock and counting every send of the
      campaign but cancelled ones (a buyer whose reminder the exit event cancelled may be
      reminded again): ``once_per_person`` → none if any; ``reeligible_after_seconds`` →
      none if one was triggered less than that before or after this trigger; neither →
      every occurrence. Candidates of one batch count against each other, in time order.
    - The variant from ``campaigns.assignment.variant_for``; none (the holdout) → state ``holdout``.
    """
    result = Written()
    wanted = [(campaign, candidates) for campaign, candidates in wanted if candidates]
    if not wanted:
        return result
    campaign_ids = [campaign.pk for campaign, _ in wanted]
    people = {c.person_id for _, candidates in wanted for c in candidates}

    excluded_segments: dict[int, set[int]] = defaultdict(set)
    for campaign_id, segment_id in CampaignAudience.objects.filter(
        workspace=workspace, campaign_id__in=campaign_ids, exclude=True
    ).values_list("campaign_id", "segment_id"):
        excluded_segments[campaign_id].add(segment_id)
    members: set[tuple[int, int]] = set()
    if excluded_segments:
        members = set(
            Membership.objects.filter(
                workspace=workspace,
                segment_id__in={s for segments in excluded_segments.values() for s in segments},
                person_id__in=people,
            ).values_list("segment_id", "person_id")
        )

    def excluded(campaign: Campaign, person_id: int) -> bool:
        return any((segment, person_id) in members for segment in excluded_segments.get(campaign.pk, ()))

    kept: list[tuple[Campaign, list[Candidate]]] = []
    for campaign, candidates in wanted:
        remaining = [c for c in candidates if not excluded(campaign, c.person_id)]
        result.excluded += len(candidates) - len(remaining)
        if remaining:
            kept.append((campaign, remaining))

    ruled = [(c, cs) for c, cs in kept if c.once_per_person or c.reeligible_after_seconds]
    _lock(_lock_key(campaign.pk, c.person_id) for campaign, candidates in ruled for c in candidates)
    earlier: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    if ruled:
        for campaign_id, person_id, triggered_at, due_at in (
            Send.objects.filter(
                workspace=workspace,
                campaign_id__in=[c.pk for c, _ in ruled],
                person_id__in={c.person_id for _, candidates in ruled for c in candidates},
            )
            .exclude(state=SendState.CANCELLED)
            .values_list("campaign_id", "person_id", "triggered_at", "due_at")
        ):
            earlier[(campaign_id, person_id)].append(triggered_at or due_at)

    variants: dict[int, list[Variant]] = defaultdict(list)
    for variant in Variant.objects.filter(workspace=workspace, campaign_id__in=campaign_ids).order_by("position"):
        variants[variant.campaign_id].append(variant)

    rows: list[tuple[int, int | None, int, str, str, str, datetime, datetime, str | None]] = []
    for campaign, candidates in kept:
        if not variants[campaign.pk]:
            logger.warning(
                "Campaign %s of workspace %s has no variant: its trigger writes nothing", campaign.pk, workspace.pk
            )
            continue
        delay = timedelta(seconds=campaign.delay_seconds)
        window = timedelta(seconds=campaign.reeligible_after_seconds or 0)
        for candidate in sorted(candidates, key=lambda c: (c.triggered_at, c.occurrence)):
            before = earlier[(campaign.pk, candidate.person_id)]
            if campaign.once_per_person and before:
                result.ineligible += 1
                continue
            if (
                not campaign.once_per_person
                and campaign.reeligible_after_seconds
                and any(abs(candidate.triggered_at - at) < window for at in before)
            ):
                result.ineligible += 1
                continue
            before.append(candidate.triggered_at)
            chosen = variant_for(campaign=campaign, variants=variants[campaign.pk], person_id=candidate.person_id)
            due_at = candidate.triggered_at + delay
            rows.append(
                (
                    campaign.pk,
                    chosen.pk if chosen is not None else None,
                    candidate.person_id,
                    candidate.occurrence,
                    campaign.channel,
                    SendState.PENDING if chosen is not None else SendState.HOLDOUT,
                    due_at,
                    candidate.triggered_at,
                    json.dumps(candidate.context) if candidate.context is not None else None,
                )
            )
            if chosen is not None and due_at <= now + KICK_DISPATCH_WITHIN:
                result.due_soon = True
    if rows:
        columns = list(zip(*rows, strict=True))
        with connection.cursor() as cursor:
            execute_scoped(
                cursor,
                _SENDS_INSERT,
                {name: list(values) for name, values in zip(_SENDS_COLUMNS, columns, strict=True)},
                workspace_id=workspace.pk,
            )
            result.written = len(cursor.fetchall())
    return result


_SENDS_COLUMNS = (
    "campaigns",
    "variants",
    "people",
    "occurrences",
    "channels",
    "states",
    "due",
    "triggered",
    "contexts",
)
# One statement for the batch; a row of the same (campaign, person, occurrence) already there is left as it is.
_SENDS_INSERT = with_tables(
    "INSERT INTO {send} (workspace_id, campaign_id, variant_id, person_id, occurrence, channel, state, reason, "
    "due_at, triggered_at, context, attempts, recipient, created_at) "
    "SELECT %(workspace_id)s, t.campaign_id, t.variant_id, t.person_id, t.occurrence, t.channel, t.state, '', "
    "t.due_at, t.triggered_at, t.context, 0, '', now() "
    "FROM unnest(%(campaigns)s::bigint[], %(variants)s::bigint[], %(people)s::bigint[], %(occurrences)s::text[], "
    "%(channels)s::text[], %(states)s::text[], %(due)s::timestamptz[], %(triggered)s::timestamptz[], "
    "%(contexts)s::jsonb[]) AS t(campaign_id, variant_id, person_id, occurrence, channel, state, due_at, "
    "triggered_at, context) "
    "ON CONFLICT ON CONSTRAINT send_once_per_occurrence DO NOTHING RETURNING id",
    send=Send,
)


# --- Kicks: never raise, never wait -----------------------------------------------------


def _queue() -> str:
    """The campaigns' Celery queue (``CAMPAIGNS_QUEUE``), the engine's too."""
    return str(settings.CAMPAIGNS_QUEUE)


# ``trigger_drain_kick(workspace_id)`` after ingestion noted triggers; the drain clears the mark
# (``trigger_drain_kick_clear``) before it reads. A lost kick waits for the beat's sweep.
trigger_drain_kick = Kick("campaign-triggers", DRAIN_TASK, _queue, "Campaign triggers")
trigger_drain_kick_clear = trigger_drain_kick.clear


def dispatch_kick() -> None:
    """Ask the dispatcher to look at due sends now (``campaigns.dispatch_kick``, by name). Never raises.

    A lost kick costs a delay only: the beat's tick dispatches due sends every few seconds.
    """
    try:
        current_app.signature(DISPATCH_KICK_TASK).apply_async(queue=_queue(), retry=False, expires=KICK_EXPIRES_SECONDS)
    except Exception as error:
        logger.warning("Campaign triggers: could not kick the dispatcher (%s); the tick sends what is due", error)
