"""Celery tasks of segments: refresh one segment; the periodic fan-out of due refreshes.

A refresh is idempotent (it applies the difference to whatever is stored), so
a task delivered twice, or one racing the fan-out, does no harm: the second
either applies an empty difference or is skipped by the per-segment lock.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from accounts.tasks import WorkspaceTask
from segmentation import services
from segmentation.models import Segment

logger = logging.getLogger(__name__)


@shared_task(base=WorkspaceTask, ignore_result=True)
def segment_refresh_task(workspace_id: int, segment_id: int) -> None:
    """Refresh one segment; a segment deleted meanwhile is nothing to do."""
    segment = Segment.objects.filter(workspace_id=workspace_id, pk=segment_id).first()
    if segment is None:
        return
    result = services.segment_refresh(segment=segment)
    if result.error:
        logger.warning("Segment %s of workspace %s: %s", segment_id, workspace_id, result.error)


@shared_task(ignore_result=True)
def segments_refresh_due() -> int:
    """Enqueue one refresh per due dynamic segment of every workspace, referenced segments first.

    Not a WorkspaceTask: it looks across workspaces (``services.segments_claim_due``) and each
    refresh then runs in its own workspace's scope. Due means ``next_refresh_at`` has come,
    or is unset (never refreshed).
    """
    due = services.segments_claim_due(now=timezone.now())
    for workspace_id, segment_id in due:
        try:
            segment_refresh_task.apply_async((workspace_id, segment_id), retry=False)
        except Exception:
            logger.warning("Could not enqueue segment refreshes; the next run retries", exc_info=True)
            return 0
    return len(due)
