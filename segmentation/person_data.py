"""What segmentation stores about one person: their export, and what a merge or an erasure does to it.

Called by ``segmentation.people``, this app's subscriber to tracking's port
(``tracking.events``); tracking never imports this app, and nothing here
cascades from ``Person``: these functions are the only way rows keyed by a
person follow a merge or go with an erasure.

- ``memberships``: the segments the person is in now (with ``entered_at``) and
  their history of entries and exits.
- ``messages``: the webhook deliveries about the person (a segment entry or
  exit sent to a subscriber's endpoint), with the payload as sent.
  Campaign sends will join this section when campaigns store them.

A merge moves the loser's memberships, history and deliveries to the survivor.
Where both were members of a segment, the survivor keeps the earlier
``entered_at``, and the loser's row goes with an exit recorded without a
person; the segment's size counts one person less. Where only the loser was,
the survivor takes its row (same ``entered_at``, no change recorded: the
person neither entered nor left). The survivor is then re-evaluated by
real-time membership (a merge is ``everything`` changed for them), which
records whatever the combined history changes.

An erasure removes the person's memberships, each with an exit recorded and
the size counting one less, and takes their id off their history: the
entries and exits stay counted in the segment's history, about nobody. A
change without a person is the trace of an id that no longer exists (merged
away or erased); there is nobody to tell about it, and consumers of the
changes skip it. Their webhook deliveries are deleted, pending or sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from segmentation.models import Membership, MembershipChange, MembershipChangeKind, Segment, WebhookDelivery
from tracking.events import ErasedPerson
from tracking.models import IdentityKind, Person


def _segment_names(workspace: Workspace, segment_ids: set[int]) -> dict[int, str]:
    return dict(Segment.objects.filter(workspace=workspace, pk__in=segment_ids).values_list("pk", "name"))


def memberships_section(workspace: Workspace, person: Person) -> dict[str, Any]:
    current = list(
        Membership.objects.filter(workspace=workspace, person=person)
        .order_by("entered_at", "segment_id")
        .values_list("segment_id", "entered_at")
    )
    history = list(
        MembershipChange.objects.filter(workspace=workspace, person=person)
        .order_by("at", "id")
        .values_list("segment_id", "kind", "at")
    )
    names = _segment_names(workspace, {s for s, _ in current} | {s for s, _, _ in history})
    return {
        "current": [{"segment": {"id": s, "name": names.get(s)}, "entered_at": at} for s, at in current],
        "history": [{"segment": {"id": s, "name": names.get(s)}, "kind": k, "at": at} for s, k, at in history],
    }


def _deliveries(workspace: Workspace, person_id: int, user_ids: list[str], anonymous_ids: Sequence[str] = ()) -> Any:
    # A delivery names the person by id, and (in its payload) by the ids they had then: a delivery
    # sent about a person merged into this one before merges moved deliveries is found by those.
    about = Q(person_id=person_id)
    if user_ids:
        about |= Q(payload__person__user_id__in=user_ids)
    for anonymous_id in anonymous_ids:
        about |= Q(payload__person__anonymous_ids__contains=[anonymous_id])
    return WebhookDelivery.objects.filter(about, workspace=workspace)


def messages_section(workspace: Workspace, person: Person) -> list[dict[str, Any]]:
    user_ids = list(person.identities.filter(kind=IdentityKind.USER_ID).values_list("value", flat=True))
    deliveries = _deliveries(workspace, person.pk, user_ids).select_related("subscription").order_by("created_at", "id")
    return [
        {
            "channel": "webhook",
            "id": d.pk,
            "event": d.event,
            "segment_id": d.segment_id,
            "url": d.subscription.url,
            "at": d.at,
            "status": d.status,
            "created_at": d.created_at,
            "delivered_at": d.delivered_at,
            "payload": d.payload,
        }
        for d in deliveries
    ]


def webhook_deliveries_erase(erased: ErasedPerson) -> int:
    """Delete the deliveries about the person, pending (never sent now) or sent (their payload held the person)."""
    about = _deliveries(
        erased.workspace,
        erased.person_id,
        erased.values(IdentityKind.USER_ID),
        erased.values(IdentityKind.ANONYMOUS_ID),
    )
    deleted, _ = about.delete()
    return deleted


def memberships_erase(*, workspace: Workspace, person_id: int) -> tuple[int, int]:
    """The person leaves every segment (an exit each, without them) and their history keeps no id.

    Answers (memberships removed, history rows anonymised).
    """
    segment_ids = sorted(
        Membership.objects.filter(workspace=workspace, person_id=person_id).values_list("segment_id", flat=True)
    )
    if segment_ids:
        Membership.objects.filter(workspace=workspace, person_id=person_id).delete()
        Segment.objects.filter(workspace=workspace, pk__in=segment_ids).update(size=F("size") - 1)
    anonymised = MembershipChange.objects.filter(workspace=workspace, person_id=person_id).update(person_id=None)
    _exits_record(workspace.pk, segment_ids)
    return len(segment_ids), anonymised


def memberships_merge(*, workspace_id: int, loser_id: int, survivor_id: int) -> None:
    """Move the loser's memberships, history and webhook deliveries to the survivor (see the module)."""
    loser = dict(
        Membership.objects.filter(workspace_id=workspace_id, person_id=loser_id).values_list("segment_id", "entered_at")
    )
    if loser:
        survivor = dict(
            Membership.objects.filter(
                workspace_id=workspace_id, person_id=survivor_id, segment_id__in=list(loser)
            ).values_list("segment_id", "entered_at")
        )
        moved = sorted(set(loser) - set(survivor))
        both = sorted(survivor)
        if moved:
            Membership.objects.filter(workspace_id=workspace_id, person_id=loser_id, segment_id__in=moved).update(
                person_id=survivor_id
            )
        if both:
            Membership.objects.filter(workspace_id=workspace_id, person_id=loser_id, segment_id__in=both).delete()
            for segment_id in both:
                if loser[segment_id] < survivor[segment_id]:
                    Membership.objects.filter(
                        workspace_id=workspace_id, person_id=survivor_id, segment_id=segment_id
                    ).update(entered_at=loser[segment_id])
            Segment.objects.filter(workspace_id=workspace_id, pk__in=both).update(size=F("size") - 1)
            _exits_record(workspace_id, both)
    MembershipChange.objects.filter(workspace_id=workspace_id, person_id=loser_id).update(person_id=survivor_id)
    WebhookDelivery.objects.filter(workspace_id=workspace_id, person_id=loser_id).update(person_id=survivor_id)


def _exits_record(workspace_id: int, segment_ids: list[int]) -> None:
    """An exit without a person from each segment: an id that no longer exists left it."""
    now = timezone.now()
    MembershipChange.objects.bulk_create(
        MembershipChange(
            workspace_id=workspace_id, segment_id=segment_id, person_id=None, kind=MembershipChangeKind.EXITED, at=now
        )
        for segment_id in segment_ids
    )
