"""Celery tasks of webhooks: send deliveries; sweep for due retries (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from segmentation.webhooks import services


@shared_task(base=WorkspaceTask, ignore_result=True)
def webhook_deliver(workspace_id: int, delivery_ids: list[int]) -> None:
    """Send each due delivery once. Idempotent: a delivery not pending and due is skipped."""
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return
    for delivery_id in delivery_ids:
        services.delivery_attempt(workspace=workspace, delivery_id=delivery_id)


@shared_task(ignore_result=True)
def webhooks_sweep() -> int:
    """Enqueue due retries and deliveries whose first enqueue failed.

    Not a WorkspaceTask: it looks across workspaces, then hands each workspace's
    deliveries to ``webhook_deliver`` in that workspace's scope.
    """
    by_workspace = services.deliveries_sweep()
    for workspace_id, delivery_ids in by_workspace.items():
        services.deliveries_enqueue(workspace_id=workspace_id, delivery_ids=delivery_ids)
    return sum(len(ids) for ids in by_workspace.values())
