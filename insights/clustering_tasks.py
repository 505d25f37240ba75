"""The Celery task of suggested segments: compute one clustering run.

Idempotent: ``clustering_run_execute`` claims only a queued or running run, so a task
delivered twice (at least once, ``CELERY_TASK_ACKS_LATE``) computes it again at worst and
never over a finished one. Registered in worker processes by ``config.celery``
(``autodiscover_tasks`` of this module) and in web processes by the views that queue it.
"""

from __future__ import annotations

from celery import shared_task

from accounts.tasks import WorkspaceTask
from insights import clustering_services as services
from insights import runs
from insights.models import ClusteringRun

RUN_TASK = "insights.clustering_run"


@shared_task(base=WorkspaceTask, ignore_result=True, name=RUN_TASK)
def clustering_run_task(workspace_id: int, run_id: int) -> None:
    run = ClusteringRun.objects.filter(workspace_id=workspace_id, pk=run_id).first()
    if run is not None:  # a run deleted meanwhile (its workspace gone) is nothing to do
        services.clustering_run_execute(run=run)


def clustering_run_enqueue(run: ClusteringRun) -> None:
    """Queue the run's task once the transaction commits (``insights.runs.run_enqueue``)."""
    runs.run_enqueue(clustering_run_task, run, what="clustering")
