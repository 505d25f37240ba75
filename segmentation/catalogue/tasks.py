"""Periodic upkeep of the catalogue: a sweep over workspaces, one idempotent task per workspace."""

from __future__ import annotations

from celery import shared_task

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from segmentation.catalogue import services


@shared_task(base=WorkspaceTask)
def catalogue_update_task(workspace_id: int) -> int:
    """Idempotent: the watermark row decides what was already counted."""
    run = services.catalogue_update(workspace=Workspace.objects.get(pk=workspace_id))
    return run.events_read


@shared_task
def catalogue_sweep() -> int:
    """Beat entry point: enqueue the update of every workspace (each returns at once when nothing is new)."""
    ids = list(Workspace.objects.values_list("pk", flat=True))
    for workspace_id in ids:
        catalogue_update_task.delay(workspace_id)
    return len(ids)
