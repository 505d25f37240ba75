"""What segmentation stores about one person, for tracking's person export and erasure.

Registered from ``SegmentationConfig.ready`` with tracking's ports
(``tracking.exports``, ``tracking.people_services``): tracking never imports
this app.

- ``memberships``: the segments the person is in now (with ``entered_at``) and
  their history of entries and exits. Both tables cascade from the person, so
  erasure removes them with the person's row.
- ``messages``: the webhook deliveries about the person (a segment entry or
  exit sent to a subscriber's endpoint), with the payload as sent. They keep a
  plain person id (the log outlives merges), so erasure deletes them here.
  Campaign sends will join this section when campaigns store them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from accounts.models import Workspace
from segmentation.models import Membership, MembershipChange, Segment, WebhookDelivery
from tracking.models import IdentityKind, Person
from tracking.people_services import ErasedPerson


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


def _deliveries(workspace: Workspace, person_id: int, user_ids: list[str]) -> Any:
    # A delivery names the person by id, and (in its payload) by the user id it had then:
    # the id of a person merged into this one since is found by that user id.
    about = Q(person_id=person_id)
    if user_ids:
        about |= Q(payload__person__user_id__in=user_ids)
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
    deleted, _ = _deliveries(erased.workspace, erased.person_id, erased.values(IdentityKind.USER_ID)).delete()
    return deleted
