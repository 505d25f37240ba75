"""Reactions to segment entries and exits: the one place they start.

The membership refresh calls ``segment_changes_committed`` from
``transaction.on_commit`` once entries and exits are stored.
"""

from __future__ import annotations

import logging
from datetime import datetime

from accounts.models import Workspace
from accounts.tenancy import workspace_scope

logger = logging.getLogger(__name__)


def segment_changes_committed(
    workspace_id: int, segment_id: int, entered: list[int], exited: list[int], at: datetime
) -> None:
    """People (ids) entered or left a segment at ``at``: record and enqueue webhook deliveries.

    Cheap when no subscription matches (one query). Never raises into the caller:
    a failure is logged; deliveries that could not be enqueued stay pending for
    the sweep (``segmentation.webhooks.tasks.webhooks_sweep``).
    """
    from segmentation.webhooks import services

    if not entered and not exited:
        return
    try:
        with workspace_scope(workspace_id):
            workspace = Workspace(pk=workspace_id)
            delivery_ids = services.deliveries_record(
                workspace=workspace, segment_id=segment_id, entered=list(entered), exited=list(exited), at=at
            )
    except Exception:
        logger.exception("Could not record webhook deliveries for segment %s of workspace %s", segment_id, workspace_id)
        return
    if delivery_ids:
        services.deliveries_enqueue(workspace_id=workspace_id, delivery_ids=delivery_ids)
