"""The Celery task of suggested segments: compute one clustering run.

Idempotent: ``clustering_run_execute`` claims only a queued or running run, so a task
delivered twice (at least once, ``CELERY_TASK_ACKS_LATE``) computes it again at worst and
never over a finished one. Registered in worker processes by ``config.celery``
(``autodiscover_tasks`` of this module) and in web processes by the views that queue it.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from accounts.tasks import WorkspaceTask
from accounts.tenancy import workspace_scope
from insights import clustering_services as services
from insights.models import ClusteringRun

logger = logging.getLogger(__name__)

RUN_TASK = "insights.clustering_run"


@shared_task(base=WorkspaceTask, ignore_result=True, name=RUN_TASK)
def clustering_run_task(workspace_id: int, run_id: int) -> None:
    run = ClusteringRun.objects.filter(workspace_id=workspace_id, pk=run_id).first()
    if run is not None:  # a run deleted meanwhile (its workspace gone) is nothing to do
        services.clustering_run_execute(run=run)


def clustering_run_enqueue(run: ClusteringRun) -> None:
    """Queue the run's task once the transaction commits (at once outside one). A broker that
    refuses it fails the run with a message saying so, so that the page offers to run again."""
    workspace_id, run_id = run.workspace_id, run.pk

    def publish() -> None:
        try:
            clustering_run_task.apply_async((workspace_id, run_id), retry=False)
        except Exception:
            logger.exception("Could not queue clustering run %s of workspace %s", run_id, workspace_id)
            with workspace_scope(workspace_id):
                services.clustering_run_fail(
                    run=run, error="The run could not be queued (the task queue is unavailable); try again shortly."
                )

    transaction.on_commit(publish)
