"""Segmentation's subscriber to tracking's port (``tracking.events``; listed in ``TRACKING_SUBSCRIBERS``).

- ``people_touched``: after the commit, real-time membership queues those people's
  re-evaluation (``segmentation.realtime``: Redis only, never raising).
- ``people_imported``: the workspace's dynamic segments are due for their full refresh.
- ``person_merged``, ``person_erased``, ``person_export``: memberships, their
  history and webhook deliveries (``segmentation.person_data``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from django.db import transaction

from accounts.models import Workspace
from segmentation import person_data, realtime
from tracking.events import Change, ErasedPerson
from tracking.models import Person


def people_touched(workspace_id: int, changes: Mapping[int, Change]) -> None:
    # Discarded with the transaction if it rolls back (and a retry publishes its own).
    transaction.on_commit(partial(realtime.people_touched, workspace_id, changes), robust=True)


def people_imported(workspace: Workspace) -> None:
    realtime.segments_mark_due(workspace=workspace)


def traits_recomputed(workspace: Workspace) -> None:
    realtime.segments_mark_due(workspace=workspace)


def person_merged(workspace_id: int, loser_id: int, survivor_id: int) -> None:
    person_data.memberships_merge(workspace_id=workspace_id, loser_id=loser_id, survivor_id=survivor_id)


def person_erased(erased: ErasedPerson) -> dict[str, int]:
    memberships, history = person_data.memberships_erase(workspace=erased.workspace, person_id=erased.person_id)
    deliveries = person_data.webhook_deliveries_erase(erased)
    return {"memberships": memberships, "membership_changes": history, "webhook_deliveries": deliveries}


def person_export(workspace: Workspace, person: Person) -> dict[str, Any]:
    return {
        "memberships": person_data.memberships_section(workspace, person),
        "messages": person_data.messages_section(workspace, person),
    }
