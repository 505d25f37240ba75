"""Reads of suggested segments: the runs of a workspace and the people of a cluster."""

from __future__ import annotations

from django.db import connection

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from insights.models import ACTIVE_STATUSES, ClusteringRun, ClusteringStatus
from tracking.models import Person

_CLUSTER_USER_IDS_SQL = with_tables(
    "SELECT p.user_id FROM insights_clustermember m JOIN {person} p ON p.id = m.person_id "
    "AND p.workspace_id = %(workspace_id)s "
    "WHERE m.workspace_id = %(workspace_id)s AND m.run_id = %(run)s AND m.cluster = %(cluster)s "
    "AND p.user_id IS NOT NULL ORDER BY p.user_id",
    person=Person,
)


def clustering_get(workspace: Workspace, run_id: int) -> ClusteringRun | None:
    return ClusteringRun.objects.filter(workspace=workspace, pk=run_id).first()


def clustering_latest_done(workspace: Workspace) -> ClusteringRun | None:
    """The latest completed run: what the page and ``GET /api/v1/insights/clusters/`` show."""
    return (
        ClusteringRun.objects.filter(workspace=workspace, status=ClusteringStatus.DONE)
        .order_by("-finished_at", "-pk")
        .first()
    )


def clustering_active(workspace: Workspace) -> ClusteringRun | None:
    """The run queued or under way, if any (at most one: ``clustering_one_active_run``)."""
    return ClusteringRun.objects.filter(workspace=workspace, status__in=ACTIVE_STATUSES).first()


def clustering_latest_failure(workspace: Workspace) -> ClusteringRun | None:
    """The latest run when it failed after the latest completed one (the page says why)."""
    latest = ClusteringRun.objects.filter(workspace=workspace).exclude(status__in=ACTIVE_STATUSES)
    run = latest.order_by("-created_at", "-pk").first()
    return run if run is not None and run.status == ClusteringStatus.FAILED else None


def cluster_user_ids(workspace: Workspace, run: ClusteringRun, cluster: int) -> list[str]:
    """The user ids of the cluster's people who have one (anonymous people have none), sorted."""
    with connection.cursor() as cursor:
        execute_scoped(cursor, _CLUSTER_USER_IDS_SQL, {"run": run.pk, "cluster": cluster}, workspace_id=workspace.pk)
        return [row[0] for row in cursor.fetchall()]
