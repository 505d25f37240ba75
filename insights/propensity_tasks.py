"""The Celery task of predictive propensity: compute one run.

Idempotent: ``propensity_run_execute`` claims only a queued or running run, so a task delivered
twice computes it again at worst (the trait writes only what differs) and never over a finished
one. Registered in worker processes by ``config.celery`` (``autodiscover_tasks`` of this module)
and in web processes by the views that queue it.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from accounts.tasks import WorkspaceTask
from accounts.tenancy import workspace_scope
from insights import propensity_services as services
from insights.models import PropensityRun

logger = logging.getLogger(__name__)

RUN_TASK = "insights.propensity_run"


@shared_task(base=WorkspaceTask, ignore_result=True, name=RUN_TASK)
def propensity_run_task(workspace_id: int, run_id: int) -> None:
    run = PropensityRun.objects.filter(workspace_id=workspace_id, pk=run_id).first()
    if run is not None:  # a run deleted meanwhile (its workspace gone) is nothing to do
        services.propensity_run_execute(run=run)


def propensity_run_enqueue(run: PropensityRun) -> None:
    """Queue the run's task once the transaction commits (at once outside one). A broker that
    refuses it fails the run with a message saying so, so that the page offers to run again."""
    workspace_id, run_id = run.workspace_id, run.pk

    def publish() -> None:
        try:
            propensity_run_task.apply_async((workspace_id, run_id), retry=False)
        except Exception:
            logger.exception("Could not queue propensity run %s of workspace %s", run_id, workspace_id)
            with workspace_scope(workspace_id):
                services.propensity_run_fail(
                    run=run, error="The run could not be queued (the task queue is unavailable); try again shortly."
                )

    transaction.on_commit(publish)
