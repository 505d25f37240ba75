"""Long computations kept on their own row, with their progress: clustering and propensity runs.

A run row has ``status`` (queued, running, done, failed), ``progress`` (percent), ``stage`` (a line
of text), ``heartbeat_at`` (its task's last report), ``created_at``, ``finished_at`` and ``error``.
Its task writes the progress as it goes (``RunReporter``); a run whose task stopped reporting is
failed when the next one is asked for (``stale_runs_fail``), so that a lost worker never blocks
the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.tenancy import workspace_scope
from insights.models import ACTIVE_STATUSES, ClusteringStatus

logger = logging.getLogger(__name__)

# A run whose task has not reported for this long is taken for lost (a worker killed): longer than
# the features' statement timeout, the longest step without a report.
STALE_AFTER = timedelta(minutes=20)
ERROR_MAX_LENGTH = 2000


def stale_runs_fail(model: type[Model], workspace: Workspace, **among: object) -> None:
    """Runs (of ``model``, filtered by ``among``) whose task stopped reporting (or never started)
    long ago are failed, so that a new one may start."""
    cutoff = timezone.now() - STALE_AFTER
    runs = model.objects.filter(workspace=workspace, status__in=ACTIVE_STATUSES, **among)  # type: ignore[attr-defined]
    for run in runs:
        last = run.heartbeat_at or run.created_at
        if last < cutoff:
            queued = run.status == ClusteringStatus.QUEUED
            message = "No worker picked the run up." if queued else "The run stopped reporting."
            model.objects.filter(workspace=workspace, pk=run.pk, status=run.status).update(  # type: ignore[attr-defined]
                status=ClusteringStatus.FAILED, error=message, finished_at=timezone.now()
            )


def run_request(
    model: type[Model], *, workspace: Workspace, actor: User | None, among: dict[str, object], **fields: object
) -> tuple[Any, bool]:
    """A new queued run of ``model`` (with ``among`` and ``fields``), or the one ``among`` the same
    values already queued or under way (at most one, by the model's unique condition); ``True`` when
    it is new. Stale runs among them are failed first (``stale_runs_fail``)."""
    stale_runs_fail(model, workspace, **among)
    active = model.objects.filter(workspace=workspace, status__in=ACTIVE_STATUSES, **among)  # type: ignore[attr-defined]
    run = active.first()
    if run is not None:
        return run, False
    try:
        with transaction.atomic():
            created = model.objects.create(  # type: ignore[attr-defined]
                workspace=workspace, requested_by=actor, stage="Waiting for a worker", **among, **fields
            )
    except IntegrityError:  # a concurrent request queued one between the check and the insert
        run = active.first()
        if run is None:
            raise
        return run, False
    return created, True


def run_claim(run: Model) -> bool:
    """Take a queued (or interrupted) run for its task: ``running`` from now. False when it is done or
    failed already (a task delivered twice leaves it alone); ``run`` is then refreshed."""
    claimed = (
        type(run)
        .objects.filter(  # type: ignore[attr-defined]
            workspace_id=run.workspace_id,  # type: ignore[attr-defined]
            pk=run.pk,
            status__in=ACTIVE_STATUSES,
        )
        .update(status=ClusteringStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), error="")
    )
    if not claimed:
        run.refresh_from_db()
    return bool(claimed)


def run_fail(run: Model, error: str) -> None:
    """Mark a queued or running run failed (its task could not be queued, or it raised)."""
    type(run).objects.filter(  # type: ignore[attr-defined]
        workspace_id=run.workspace_id,  # type: ignore[attr-defined]
        pk=run.pk,
        status__in=ACTIVE_STATUSES,
    ).update(status=ClusteringStatus.FAILED, error=error[:ERROR_MAX_LENGTH], finished_at=timezone.now())


def run_enqueue(task: Any, run: Model, *, what: str) -> None:
    """Queue ``task(workspace_id, run_id)`` once the transaction commits (at once outside one). A
    broker that refuses it fails the run with a message saying so, so that the page offers to run
    again. ``what`` names the kind of run in the log."""
    workspace_id, run_id = run.workspace_id, run.pk  # type: ignore[attr-defined]

    def publish() -> None:
        try:
            task.apply_async((workspace_id, run_id), retry=False)
        except Exception:
            logger.exception("Could not queue %s run %s of workspace %s", what, run_id, workspace_id)
            with workspace_scope(workspace_id):
                run_fail(run, "The run could not be queued (the task queue is unavailable); try again shortly.")

    transaction.on_commit(publish)


def readable(error: BaseException, what: str) -> str:
    """The first line of an unexpected error, for the page: "The clustering failed: ..."."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{what} failed: {text}"[:ERROR_MAX_LENGTH]


class RunReporter:
    """Writes the run's progress (percent and a line of text) when either changes."""

    def __init__(self, run: Model) -> None:
        self.run = run
        self.last: tuple[int, str] | None = None

    def __call__(self, percent: float, stage: str) -> None:
        value = (max(0, min(99, int(percent))), stage[:200])
        if value == self.last:
            return
        self.last = value
        type(self.run).objects.filter(workspace_id=self.run.workspace_id, pk=self.run.pk).update(  # type: ignore[attr-defined]
            progress=value[0], stage=value[1], heartbeat_at=timezone.now()
        )

    def span(self, start: float, end: float) -> Callable[[float, str], None]:
        """A reporter of fractions 0..1 of one step, mapped onto ``start``..``end`` percent."""
        return lambda fraction, stage: self(start + (end - start) * fraction, stage)
