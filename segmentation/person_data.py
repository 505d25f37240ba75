"""What segmentation stores about one person, for tracking's person erasure.

Registered from ``SegmentationConfig.ready`` with tracking's port
(``tracking.people_services``): tracking never imports this app.

Memberships and their history cascade from the person, so erasure removes them
with the person's row. Webhook deliveries about the person (a segment entry or
exit sent to a subscriber's endpoint, the person's traits in the payload) keep
a plain person id (the log outlives merges), so erasure deletes them here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from accounts.models import Workspace
from segmentation.models import WebhookDelivery
from tracking.models import IdentityKind
from tracking.people_services import ErasedPerson


def _deliveries(workspace: Workspace, person_id: int, user_ids: list[str]) -> Any:
    # A delivery names the person by id, and (in its payload) by the user id it had then:
    # the id of a person merged into this one since is found by that user id.
    about = Q(person_id=person_id)
    if user_ids:
        about |= Q(payload__person__user_id__in=user_ids)
    return WebhookDelivery.objects.filter(about, workspace=workspace)


def webhook_deliveries_erase(erased: ErasedPerson) -> int:
    deleted, _ = _deliveries(erased.workspace, erased.person_id, erased.values(IdentityKind.USER_ID)).delete()
    return deleted
