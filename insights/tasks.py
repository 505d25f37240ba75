"""Celery tasks of insights: funnels and retention tables for the pages, and computed traits.

Each is idempotent: a job runs once (``jobs.job_run`` claims it), and a computed traits run of a
workspace skips while another holds its lock and otherwise writes only what changed.
"""

from __future__ import annotations

import logging

from celery import shared_task

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from insights import jobs, traits
from insights.models import InsightJob

logger = logging.getLogger(__name__)


@shared_task(base=WorkspaceTask, ignore_result=True)
def insight_job_run(workspace_id: int, job_id: int) -> None:
    job = InsightJob.objects.filter(workspace_id=workspace_id, pk=job_id).select_related("workspace").first()
    if job is not None:
        jobs.job_run(job=job)


@shared_task(base=WorkspaceTask, ignore_result=True)
def computed_traits_refresh_task(workspace_id: int) -> None:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return
    outcome = traits.computed_traits_refresh(workspace=workspace)
    if outcome.ran:
        logger.info(
            "Computed traits of workspace %s: %d people changed in %.1f s",
            workspace_id,
            outcome.people_changed,
            outcome.seconds,
        )


@shared_task(base=WorkspaceTask, ignore_result=True)
def catalogue_recount_task(workspace_id: int) -> None:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is not None:
        traits.catalogue_recount(workspace=workspace)


@shared_task(ignore_result=True)
def computed_traits_sweep() -> int:
    """Beat: queue the recompute of every workspace that is due (``traits.workspaces_due``).

    Not a WorkspaceTask: it looks across workspaces; each recompute runs in its own scope.
    """
    due = traits.workspaces_due()
    traits.mark_queued(workspace_ids=due)
    for workspace_id in due:
        computed_traits_refresh_task.delay(workspace_id)
    jobs.jobs_purge()
    return len(due)
