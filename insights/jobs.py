"""Funnels and retention tables computed by Celery for the pages, with their progress.

The page posts the request, gets a job and polls it (htmx, every second) until it is done. The
stage and percentage of a running job live in the cache (Redis), written as the computation goes:
the computation itself runs inside one database transaction, whose writes nobody else would see
before it ends. The job row holds the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import User, Workspace
from insights import funnels, retention
from insights.inputs import InputInvalid
from insights.models import InsightJob, InsightKind, RunStatus
from segmentation.membership import is_timeout

RUN_TASK = "insights.tasks.insight_job_run"
PROGRESS_SECONDS = 3600
KEEP_JOBS = timedelta(days=7)


@dataclass(frozen=True)
class JobProgress:
    stage: str
    percent: int


def _progress_key(job: InsightJob) -> str:
    return f"insights-job:{job.workspace_id}:{job.pk}"


def job_create(*, workspace: Workspace, actor: User | None, kind: str, params: dict[str, Any]) -> InsightJob:
    """A queued job for already validated ``params``; its task is sent once the transaction commits."""
    job = InsightJob.objects.create(workspace=workspace, kind=kind, params=params, created_by=actor)
    transaction.on_commit(partial(_enqueue, workspace.pk, job.pk))
    return job


def jobs_purge(*, now: Any = None) -> int:
    """Forget the pages' results older than ``KEEP_JOBS`` (recomputing one takes a click)."""
    cutoff = (now or timezone.now()) - KEEP_JOBS
    # Every workspace's: the same age limit holds for all (the beat's sweep calls it).
    deleted, _ = InsightJob.objects.unscoped().filter(created_at__lt=cutoff).delete()
    return deleted


def _enqueue(workspace_id: int, job_id: int) -> None:
    current_app.tasks[RUN_TASK].apply_async((workspace_id, job_id))


def job_progress(job: InsightJob) -> JobProgress:
    if job.status == RunStatus.DONE:
        return JobProgress("Done", 100)
    stored = cache.get(_progress_key(job))
    if isinstance(stored, dict):
        return JobProgress(str(stored.get("stage", "")), int(stored.get("percent", 0)))
    return JobProgress("Waiting for a worker" if job.status == RunStatus.QUEUED else "Starting", 0)


def job_run(*, job: InsightJob) -> None:
    """Compute the job once: a job already finished (a task delivered twice) is left as it is."""
    claimed = InsightJob.objects.filter(pk=job.pk, workspace=job.workspace, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING
    )
    if not claimed:
        return
    key = _progress_key(job)

    def report(stage: str, percent: int) -> None:
        cache.set(key, {"stage": stage, "percent": percent}, PROGRESS_SECONDS)

    workspace = job.workspace
    timeout = settings.INSIGHTS_JOB_TIMEOUT_SECONDS
    try:
        if job.kind == InsightKind.FUNNEL:
            spec = funnels.funnel_parse(job.params, now=timezone.now())
            result = funnels.funnel_compute(workspace=workspace, spec=spec, progress=report, timeout_seconds=timeout)
        else:
            rspec = retention.retention_parse(job.params)
            result = retention.retention_compute(  # type: ignore[assignment]
                workspace=workspace, spec=rspec, progress=report, timeout_seconds=timeout
            )
    except InputInvalid as error:
        _finish(job, status=RunStatus.FAILED, error=str(error))
        return
    except Exception as error:
        reason = "The computation took too long; narrow the dates." if is_timeout(error) else "The computation failed."
        _finish(job, status=RunStatus.FAILED, error=reason)
        if not is_timeout(error):
            raise
        return
    _finish(job, status=RunStatus.DONE, result=result.as_json())


def _finish(job: InsightJob, *, status: str, result: Any = None, error: str = "") -> None:
    InsightJob.objects.filter(pk=job.pk, workspace=job.workspace).update(
        status=status, result=result, error=error[:2000], finished_at=timezone.now()
    )
    cache.delete(_progress_key(job))
    job.refresh_from_db()
