"""Reads of predictive propensity: the runs of a workspace."""

from __future__ import annotations

from accounts.models import Workspace
from insights.models import ACTIVE_STATUSES, ClusteringStatus, PropensityRun, PropensityTarget


def propensity_get(workspace: Workspace, run_id: int) -> PropensityRun | None:
    return PropensityRun.objects.filter(workspace=workspace, pk=run_id).first()


def propensity_active(workspace: Workspace, target: str) -> PropensityRun | None:
    """The run of ``target`` queued or under way, if any (at most one: ``propensity_one_active_run``)."""
    return PropensityRun.objects.filter(workspace=workspace, target=target, status__in=ACTIVE_STATUSES).first()


def propensity_latest(workspace: Workspace) -> dict[str, PropensityRun | None]:
    """Per target, its latest run whatever its status: what ``GET /api/v1/insights/propensity/`` answers."""
    latest: dict[str, PropensityRun | None] = {}
    for target in PropensityTarget.values:
        latest[target] = (
            PropensityRun.objects.filter(workspace=workspace, target=target).order_by("-created_at", "-pk").first()
        )
    return latest


def propensity_latest_done(workspace: Workspace, target: str) -> PropensityRun | None:
    """The latest completed run of ``target``: the one whose figures the page shows (and whose verdict
    decided the trait)."""
    return (
        PropensityRun.objects.filter(workspace=workspace, target=target, status=ClusteringStatus.DONE)
        .order_by("-finished_at", "-pk")
        .first()
    )
