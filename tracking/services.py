"""Writes of tracking outside the ingestion hot path (which is ``tracking.ingest``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from accounts.sql import execute_scoped, execute_session
from tracking import events, ingest, triggers
from tracking.messages import Message, parse_message
from tracking.models import Identity, IdentityKind, Person, ProcessedMessage, TrackingTrigger

# A retry with the same messageId within this long is stored once.
DEDUPE_WINDOW = timedelta(days=7)
# Monthly event partitions created ahead of time, counting the current month.
PARTITION_MONTHS_AHEAD = 3


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def event_partitions_ensure(*, now: datetime | None = None, months: int = PARTITION_MONTHS_AHEAD) -> list[str]:
    """Create the events partitions of the current month and the next ones; idempotent.

    Returns the names of the partitions it created. Rows that landed in the
    DEFAULT partition for one of these months move into the new partition.
    """
    today = (now or timezone.now()).date()
    created: list[str] = []
    with connection.cursor() as cursor:
        for offset in range(months):
            month = _add_months(today, offset)
            execute_session(cursor, "SELECT tracking_event_partition_ensure(%s)", [month])
            if cursor.fetchone()[0]:
                created.append(f"tracking_event_{month:%Y_%m}")
    return created


def processed_messages_purge(*, now: datetime | None = None) -> int:
    """Forget message ids older than the dedupe window; returns how many."""
    cutoff = (now or timezone.now()) - DEDUPE_WINDOW
    # Maintenance over every workspace: the window is the same for all.
    deleted, _ = ProcessedMessage.objects.unscoped().filter(received_at__lt=cutoff).delete()
    return deleted


def person_merge(*, workspace: Workspace, loser: Person, survivor: Person) -> None:
    """Fold ``loser`` into ``survivor`` (identities, events, groups, traits), as ``alias`` does.

    As for a merge in ingestion, subscribers move what they keep (``person_merged``) and hear
    that everything changed for the survivor (``people_touched``).
    """
    if loser.workspace_id != workspace.pk or survivor.workspace_id != workspace.pk:
        raise ValueError("both people must belong to the workspace")
    with transaction.atomic(), connection.cursor() as cursor:
        execute_scoped(
            cursor,
            "SELECT id FROM tracking_person WHERE workspace_id = %(workspace_id)s AND id = ANY(%(ids)s) "
            "ORDER BY id FOR UPDATE",
            {"ids": [loser.pk, survivor.pk]},
            workspace_id=workspace.pk,
        )
        ingest.people_merge(cursor, workspace_id=workspace.pk, loser_id=loser.pk, survivor_id=survivor.pk)
        events.people_touched(workspace.pk, {survivor.pk: events.Change(everything=True)})


def person_event_record(
    *,
    workspace: Workspace,
    person_id: int,
    event: str,
    properties: dict[str, Any],
    message_id: str,
    at: datetime | None = None,
) -> bool:
    """Store a server-side event (an email opened, a link clicked) on a known person, as ingestion would.

    The event goes through ingestion itself, as a track call by one of the person's ids (their
    user id, else an anonymous id): deduplicated by ``message_id`` (a retry with the same id is
    stored once), checked by the tracking plan, and published to the subscribers (segments'
    real-time refresh) like any event. Answers whether it was stored: False for a duplicate, a
    person who no longer exists (erased, or merged away and their ids gone) or an event the
    plan keeps out.
    """
    ids = Identity.objects.filter(workspace=workspace, person_id=person_id).order_by("created_at", "id")
    user_id = ids.filter(kind=IdentityKind.USER_ID).values_list("value", flat=True).first()
    anonymous_id = None if user_id else ids.values_list("value", flat=True).first()
    if user_id is None and anonymous_id is None:
        return False
    now = timezone.now()
    raw: dict[str, Any] = {"type": "track", "event": event, "properties": properties, "messageId": message_id}
    if user_id is not None:
        raw["userId"] = user_id
    else:
        raw["anonymousId"] = anonymous_id
    if at is not None:
        raw["timestamp"] = at.isoformat()
    message = parse_message(raw, kind=None, batch_sent_at=None, received_at=now)
    if not isinstance(message, Message):
        raise ValueError(f"event refused: {message.reason}")
    [result] = ingest.submissions_ingest([ingest.Submission(workspace.write_key, [message], [], now)])
    return result is not None and result.stored == 1


def people_traits_computed(*, workspace: Workspace, person_ids: Collection[int]) -> None:
    """These people's traits were just written, in the caller's open transaction, by a computation
    above tracking (the reserved ``$`` traits, such as insights' computed traits): tell the
    subscribers as ingestion tells them of an identify call, so that segments over those traits
    record their entries and exits."""
    if person_ids:
        # One Change shared by all (subscribers only read it): a run can write a million people.
        events.people_touched(workspace.pk, dict.fromkeys(person_ids, events.Change(traits=True)))


def people_traits_recomputed(*, workspace: Workspace) -> None:
    """Many people's computed traits were written, each chunk committed, without telling them one by
    one (``people_traits_computed``): the subscribers take everyone's traits as changed."""
    events.traits_recomputed(workspace)


# --- Triggers of the JS snippet -------------------------------------------------


def _trigger_spec(*, kind: str, selector: str, event_name: str, thresholds: list[int]) -> triggers.TriggerSpec:
    try:
        return triggers.check(kind, selector, event_name, thresholds)
    except triggers.TriggerInvalid as error:
        raise ValidationError({error.field: [error.message]}) from error


def _trigger_save(trigger: TrackingTrigger, *, update_fields: list[str] | None = None) -> None:
    """Save, turning a duplicate event name into a ValidationError on that field."""
    try:
        with transaction.atomic():
            trigger.save(update_fields=update_fields)
    except IntegrityError as error:
        raise ValidationError(
            {"event_name": [f"Another trigger already sends “{trigger.event_name}”. Choose another name."]}
        ) from error


def trigger_create(
    *,
    workspace: Workspace,
    actor: User | None,
    kind: str,
    selector: str = "",
    event_name: str = "",
    thresholds: list[int] | None = None,
    enabled: bool = True,
) -> TrackingTrigger:
    """A new trigger. Missing event names and thresholds take the kind's defaults."""
    if thresholds is None:
        thresholds = triggers.DEFAULT_THRESHOLDS.get(kind, [])
    spec = _trigger_spec(kind=kind, selector=selector, event_name=event_name, thresholds=thresholds)
    trigger = TrackingTrigger(
        workspace=workspace,
        kind=spec.kind,
        selector=spec.selector,
        event_name=spec.event_name,
        thresholds=spec.thresholds,
        enabled=enabled,
    )
    with transaction.atomic():
        _trigger_save(trigger)
        audit_record(
            workspace=workspace, actor=actor, action="trigger.created", target=spec.event_name, details={"kind": kind}
        )
    return trigger


def trigger_update(
    *,
    workspace: Workspace,
    trigger: TrackingTrigger,
    actor: User | None,
    kind: str,
    selector: str,
    event_name: str,
    thresholds: list[int],
    enabled: bool,
) -> TrackingTrigger:
    if trigger.workspace_id != workspace.pk:
        raise ValueError("trigger of another workspace")
    spec = _trigger_spec(kind=kind, selector=selector, event_name=event_name, thresholds=thresholds)
    trigger.kind, trigger.selector, trigger.event_name = spec.kind, spec.selector, spec.event_name
    trigger.thresholds, trigger.enabled = spec.thresholds, enabled
    with transaction.atomic():
        _trigger_save(trigger, update_fields=["kind", "selector", "event_name", "thresholds", "enabled", "updated_at"])
        audit_record(workspace=workspace, actor=actor, action="trigger.updated", target=spec.event_name)
    return trigger


def trigger_delete(*, workspace: Workspace, trigger: TrackingTrigger, actor: User | None) -> None:
    if trigger.workspace_id != workspace.pk:
        raise ValueError("trigger of another workspace")
    with transaction.atomic():
        TrackingTrigger.objects.filter(workspace=workspace, pk=trigger.pk).delete()
        audit_record(workspace=workspace, actor=actor, action="trigger.deleted", target=trigger.event_name)
