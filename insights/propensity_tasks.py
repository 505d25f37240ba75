"""The Celery task of predictive propensity: compute one run.

Idempotent: ``propensity_run_execute`` claims only a queued or running run, so a task delivered
twice computes it again at worst (the trait writes only what differs) and never over a finished
one. Registered in worker processes by ``config.celery`` (``autodiscover_tasks`` of this module)
and in web processes by the views that queue it.
"""

from __future__ import annotations

from celery import shared_task

from accounts.tasks import WorkspaceTask
from insights import propensity_services as services
from insights import runs
from insights.models import PropensityRun

RUN_TASK = "insights.propensity_run"


@shared_task(base=WorkspaceTask, ignore_result=True, name=RUN_TASK)
def propensity_run_task(workspace_id: int, run_id: int) -> None:
    run = PropensityRun.objects.filter(workspace_id=workspace_id, pk=run_id).first()
    if run is not None:  # a run deleted meanwhile (its workspace gone) is nothing to do
        services.propensity_run_execute(run=run)


def propensity_run_enqueue(run: PropensityRun) -> None:
    """Queue the run's task once the transaction commits (``insights.runs.run_enqueue``)."""
    runs.run_enqueue(propensity_run_task, run, what="propensity")
