"""Celery tasks of segments: refresh one segment; the periodic fan-out of due refreshes.

A refresh is idempotent (it applies the difference to whatever is stored), so
a task delivered twice, or one racing the fan-out, does no harm: the second
either applies an empty difference or is skipped by the per-segment lock.

The tasks import the services and real time; those queue tasks by name through
``segmentation.queueing`` and never import this module.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from core.kicks import KICK_EXPIRES_SECONDS
from segmentation import feed, queueing, realtime, services
from segmentation.models import Segment


@shared_task(base=WorkspaceTask, ignore_result=True)
def segment_refresh_task(workspace_id: int, segment_id: int) -> None:
    """Refresh one segment (one deleted meanwhile is nothing to do), then hand the slot it held
    to the workspace's next due segment, queued behind whatever other workspaces have queued."""
    segment = Segment.objects.filter(workspace_id=workspace_id, pk=segment_id).first()
    if segment is not None:
        # A failure is logged once, by the service, with the segment and the workspace.
        services.segment_refresh(segment=segment)
    services.segment_refreshes_enqueue(services.segments_claim_due(now=timezone.now(), workspace_id=workspace_id))


@shared_task(ignore_result=True)
def segments_refresh_due() -> int:
    """Claim due refreshes fairly across workspaces and enqueue them (``services.segments_claim_due``).

    Not a WorkspaceTask: it looks across workspaces and each refresh then runs in its own
    workspace's scope. Due means ``next_refresh_at`` has come, or is unset (never refreshed).
    Answers how many were enqueued.
    """
    return services.segment_refreshes_enqueue(services.segments_claim_due(now=timezone.now()))


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
        queueing.drain_enqueue(workspace_id=workspace_id)
    return result.batches


@shared_task(ignore_result=True)
def segment_realtime_sweep() -> int:
    """Drain every workspace with pending changes (beat, every few seconds): lost kicks cost a delay only.

    Not a WorkspaceTask: it reads the dirty set across workspaces in Redis and
    hands each workspace to ``segment_realtime_drain``, which runs in its scope.
    """
    workspace_ids = realtime.dirty_workspaces()
    for workspace_id in workspace_ids:
        queueing.drain_enqueue(workspace_id=workspace_id, expires=KICK_EXPIRES_SECONDS)
    return len(workspace_ids)


# --- The change feed ---------------------------------------------------------------------
# segmentation/feed.py holds the logic; docs/architecture.md ("Change feed") the rules.


@shared_task(base=WorkspaceTask, ignore_result=True, name=feed.DRAIN_TASK)
def segment_feed_drain(workspace_id: int) -> int:
    """Hand the workspace's unread segment entries and exits to every feed consumer; changes read.

    Kicked on commit by the writers of changes and by the beat's sweep. Idempotent: the
    cursors decide what was read. When work remains after its share, it hands over to a fresh task.
    """
    feed.kick_clear(workspace_id)
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return 0
    result = feed.feed_drain(workspace=workspace)
    if result.more:
        feed.feed_kick(workspace_id)
    return sum(result.read.values())


@shared_task(ignore_result=True, name="segmentation.feed_sweep")
def segment_feed_sweep() -> int:
    """Kick a drain of every workspace with changes a consumer has not read (beat): lost kicks cost a delay only.

    Not a WorkspaceTask: it looks across workspaces; each drain runs in its workspace's scope.
    """
    workspace_ids = feed.workspaces_unread()
    for workspace_id in workspace_ids:
        feed.feed_kick(workspace_id)
    return len(workspace_ids)
