"""Celery tasks of event triggers: drain a workspace's trigger inbox; the beat's sweep of lost kicks.

Kept apart from ``campaigns.tasks`` (the sending engine's); ``config/celery.py`` discovers
this module by name. Both are idempotent: inbox rows are taken ``FOR UPDATE SKIP LOCKED``
and deleted with the sends they lead to, which are unique per occurrence.
"""

from __future__ import annotations

from celery import shared_task

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from campaigns import triggers

# Inbox batches per task run before it hands over to a fresh task.
MAX_BATCHES_PER_RUN = 20


@shared_task(base=WorkspaceTask, ignore_result=True, name=triggers.DRAIN_TASK)
def campaign_triggers_drain(workspace_id: int) -> int:
    """Turn the workspace's trigger inbox into sends, a batch per transaction; the sends written.

    Kicked on ingestion's commit and by the sweep. Hands over to a fresh task after a few
    batches when rows remain.
    """
    triggers.trigger_drain_kick_clear(workspace_id)
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return 0
    written = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        result = triggers.trigger_inbox_drain(workspace=workspace)
        written += result.written
        if not result.more:
            return written
    triggers.trigger_drain_kick(workspace_id)
    return written


@shared_task(ignore_result=True, name="campaigns.triggers_sweep")
def campaign_triggers_sweep() -> int:
    """Kick a drain of every workspace with inbox rows (beat): a lost kick costs a delay only.

    Not a WorkspaceTask: it looks across workspaces; each drain runs in its workspace's scope.
    """
    workspace_ids = triggers.trigger_inbox_workspaces()
    for workspace_id in workspace_ids:
        triggers.trigger_drain_kick(workspace_id)
    return len(workspace_ids)
