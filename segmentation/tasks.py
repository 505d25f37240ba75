"""Celery tasks of segments."""

from __future__ import annotations

from celery import shared_task

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from segmentation import realtime

# --- Real-time membership ---------------------------------------------------------------
# segmentation/realtime.py holds the logic; docs/segments.md ("Real-time membership") the rules.


@shared_task(base=WorkspaceTask, ignore_result=True)
def segment_realtime_drain(workspace_id: int) -> int:
    """Re-evaluate the workspace's pending people in small batches; the number of batches.

    Kicked by ingestion (debounced) and by the beat's sweep. Idempotent: two
    drains of one workspace pop disjoint batches, and re-evaluating a person
    twice changes nothing the second time. When work remains after its share,
    it hands over to a fresh task instead of holding the worker.
    """
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        realtime.workspace_forget(workspace_id=workspace_id)
        return 0
    result = realtime.workspace_drain(workspace=workspace)
    if result.more:
        segment_realtime_drain.apply_async((workspace_id,), queue=realtime.drain_queue(), retry=False)
    return result.batches


@shared_task(ignore_result=True)
def segment_realtime_sweep() -> int:
    """Drain every workspace with pending changes (beat, every few seconds): lost kicks cost a delay only.

    Not a WorkspaceTask: it reads the dirty set across workspaces in Redis and
    hands each workspace to ``segment_realtime_drain``, which runs in its scope.
    """
    workspace_ids = realtime.dirty_workspaces()
    for workspace_id in workspace_ids:
        segment_realtime_drain.apply_async(
            (workspace_id,), queue=realtime.drain_queue(), retry=False, expires=realtime.KICK_EXPIRES_SECONDS
        )
    return len(workspace_ids)
