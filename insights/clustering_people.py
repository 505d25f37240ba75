"""Suggested segments' subscriber to tracking's port (``tracking.events``; listed in ``TRACKING_SUBSCRIBERS``).

A run keeps the cluster of each person of its sample (``ClusterMember``), keyed by person id
without a foreign key. A merge's loser leaves the runs (its behaviour now belongs to the
survivor, who keeps the cluster the survivor's own behaviour gave it, if sampled); an erased
person leaves them too, and their export lists the clusters they are in. The runs' centroids,
descriptions and rules are aggregates of many people and name no one.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from accounts.models import Workspace
from accounts.sql import execute_scoped
from insights.models import ClusteringRun, ClusterMember
from tracking.events import ErasedPerson
from tracking.models import Person

_DELETE_SQL = (
    "DELETE FROM insights_clustermember m WHERE m.workspace_id = %(workspace_id)s AND m.person_id = %(person)s"
)


def _forget(workspace_id: int, person_id: int) -> int:
    with connection.cursor() as cursor:
        execute_scoped(cursor, _DELETE_SQL, {"person": person_id}, workspace_id=workspace_id)
        return int(cursor.rowcount)


def person_merged(workspace_id: int, loser_id: int, survivor_id: int) -> None:
    _forget(workspace_id, loser_id)


def person_erased(erased: ErasedPerson) -> dict[str, int]:
    return {"cluster_assignments": _forget(erased.workspace.pk, erased.person_id)}


def person_export(workspace: Workspace, person: Person) -> dict[str, Any]:
    rows = ClusterMember.objects.filter(workspace=workspace, person_id=person.pk).values_list("run_id", "cluster")
    finished = dict(
        ClusteringRun.objects.filter(workspace=workspace, pk__in=[run for run, _ in rows]).values_list(
            "pk", "finished_at"
        )
    )
    return {
        "suggested_segment_clusters": [
            {"run": run, "cluster": cluster + 1, "run_finished_at": finished.get(run)} for run, cluster in rows
        ]
    }
