"""Suggested segments, the writes: requesting a run, running it, turning a cluster into a segment.

A run is requested by a member (``clustering_run_request``: one at a time per workspace, a
second request joins the one under way) and computed by a Celery task
(``insights.clustering_tasks``) through ``clustering_run_execute``, which reports its
progress on the run's row as it goes and writes the results in one transaction at the end:
nothing half-written is ever shown, and the previous results stay on the page until then.

A cluster becomes a static segment of its identified people through segmentation's static
lists (``segment_static_change``), or a dynamic segment whose definition is the cluster's
rule (``segment_create``), in one transaction each.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.sql import execute_scoped, with_tables
from insights import clustering_selectors as selectors
from insights import runs
from insights.clustering import NotClusterable, PeopleFeatures, cluster, precision_recall, rule_definition
from insights.clustering_features import MAX_SAMPLE, people_features, people_sample
from insights.models import ACTIVE_STATUSES, ClusteringRun, ClusteringStatus
from insights.traits import settings_for
from segmentation import services as segment_services
from segmentation.models import Segment
from tracking.models import Person

logger = logging.getLogger(__name__)

DEFAULT_SEED = 0
# Completed runs kept per workspace (with their members); older ones are deleted.
KEEP_RUNS = 3
MAX_SEGMENT_NAME = 200

_MEMBERS_INSERT_SQL = (
    "INSERT INTO insights_clustermember (workspace_id, run_id, person_id, cluster) "
    "SELECT %(workspace_id)s, %(run)s, person_id, cluster "
    "FROM unnest(%(people)s::bigint[], %(clusters)s::int[]) AS t(person_id, cluster)"
)
_MEMBERS_DELETE_SQL = (
    "DELETE FROM insights_clustermember m WHERE m.workspace_id = %(workspace_id)s AND m.run_id = ANY(%(runs)s)"
)
_IDENTIFIED_SQL = with_tables(
    "SELECT p.id FROM {person} p WHERE p.workspace_id = %(workspace_id)s AND p.id = ANY(%(people)s) "
    "AND p.user_id IS NOT NULL",
    person=Person,
)


# --- requesting a run ---------------------------------------------------------------------------


def clustering_run_request(
    *, workspace: Workspace, actor: User | None, seed: int = DEFAULT_SEED
) -> tuple[ClusteringRun, bool]:
    """A queued run, or the one already queued or under way; ``True`` when it is new.

    The caller queues the task for a new run once the transaction commits
    (``insights.clustering_tasks.clustering_run_enqueue``).
    """
    return runs.run_request(ClusteringRun, workspace=workspace, actor=actor, among={}, seed=seed)


def clustering_run_fail(*, run: ClusteringRun, error: str) -> None:
    """Mark a run failed (its task could not be queued, or it raised)."""
    runs.run_fail(run, error)


# --- running it ---------------------------------------------------------------------------------


def clustering_run_execute(*, run: ClusteringRun, max_sample: int = MAX_SAMPLE) -> ClusteringRun:
    """Compute the run (a queued or interrupted one) and store its results; answers the run as stored.

    Idempotent for a task delivered twice: a run already done or failed is left alone.
    """
    if not runs.run_claim(run):
        return run
    workspace = Workspace.objects.get(pk=run.workspace_id)
    report = runs.RunReporter(run)
    started = time.monotonic()
    try:
        results = _compute(workspace, run, report, max_sample)
    except NotClusterable as error:
        clustering_run_fail(run=run, error=str(error))
    except Exception as error:
        logger.exception("Clustering run %s of workspace %s failed", run.pk, run.workspace_id)
        clustering_run_fail(run=run, error=runs.readable(error, "The clustering"))
    else:
        _store(workspace, run, results, seconds=time.monotonic() - started)
    run.refresh_from_db()
    return run


def _compute(workspace: Workspace, run: ClusteringRun, report: runs.RunReporter, max_sample: int) -> dict[str, Any]:
    now = timezone.now()
    report(1, "Finding the people with events")
    sample = people_sample(workspace=workspace, now=now, seed=run.seed, max_sample=max_sample)
    report(5, f"Reading the behaviour of {len(sample.people):,} people")
    # Orders and revenue are read as the workspace's computed traits read them (Settings of insights).
    config = settings_for(workspace)
    people = people_features(
        workspace=workspace,
        sample=sample,
        now=now,
        purchase_event=config.rfm_event,
        revenue_key=config.rfm_revenue_property,
    )
    report(30, "Clustering")
    found = cluster(people, seed=run.seed, progress=report.span(30, 70))
    ids = people.person_ids
    with connection.cursor() as cursor:
        execute_scoped(cursor, _IDENTIFIED_SQL, {"people": ids.tolist()}, workspace_id=workspace.pk)
        identified = np.isin(ids, np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64))
    clusters = []
    for summary in found.clusters:
        report(70 + 29 * summary.index / found.k, f"Finding a rule for cluster {summary.index + 1} of {found.k}")
        members = found.labels == summary.index
        clusters.append(
            {
                "index": summary.index,
                "size": summary.size,
                "share": summary.share,
                "identified": int(identified[members].sum()),
                "centroid": summary.centroid,
                "z": summary.z,
                "mean": summary.mean,
                "description": summary.description,
                "rule": _rule(workspace, people, members, now=now, seed=run.seed, sampled=sample.sampled),
            }
        )
    return {
        "computed_at": now,
        "population": sample.population,
        "sample_size": len(people),
        "k": found.k,
        "silhouette": [{"k": k, "score": round(score, 4)} for k, score in found.silhouette],
        "stability_ari": found.stability_ari,
        "features": [feature.as_json() for feature in found.features],
        "typical": found.typical,
        "mean": found.mean,
        "constant": found.constant,
        "clusters": clusters,
        "people": ids,
        "labels": found.labels,
    }


def _rule(
    workspace: Workspace, people: PeopleFeatures, members: np.ndarray, *, now: datetime, seed: int, sampled: bool
) -> dict[str, Any] | None:
    """The cluster's rule with its precision and recall, measured by evaluating it with the segment
    engine over the same people at the same instant; None when no rule separates the cluster.

    A sampled run asks the engine for the members among the sample; otherwise for all of them (the
    plain evaluation, which plans best), and only those clustered count.
    """
    definition = rule_definition(people, members, seed=seed)
    if definition is None:
        return None
    clustered = set(people.person_ids.tolist())
    try:
        held = segment_services.definition_members(
            workspace=workspace, definition=definition, now=now, people=sorted(clustered) if sampled else None
        )
    except segment_services.SegmentQueryTimeout as error:
        return {"definition": definition, "precision": None, "recall": None, "matched": None, "error": str(error)}
    held &= clustered
    precision, recall = precision_recall(held, set(people.person_ids[members].tolist()))
    return {"definition": definition, "precision": precision, "recall": recall, "matched": len(held)}


def _store(workspace: Workspace, run: ClusteringRun, results: dict[str, Any], *, seconds: float) -> None:
    """The results, the sample's clusters, and the runs beyond ``KEEP_RUNS`` gone, in one transaction."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            execute_scoped(
                cursor,
                _MEMBERS_DELETE_SQL,
                {"runs": [run.pk]},
                workspace_id=workspace.pk,
            )
            execute_scoped(
                cursor,
                _MEMBERS_INSERT_SQL,
                {"run": run.pk, "people": results["people"].tolist(), "clusters": results["labels"].tolist()},
                workspace_id=workspace.pk,
            )
        features = results["features"]
        for feature in features:
            feature["typical"] = results["typical"][feature["key"]]
            feature["mean"] = results["mean"][feature["key"]]
            feature["constant"] = feature["key"] in results["constant"]
        stored = ClusteringRun.objects.filter(workspace=workspace, pk=run.pk, status=ClusteringStatus.RUNNING).update(
            status=ClusteringStatus.DONE,
            progress=100,
            stage="Done",
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            computed_at=results["computed_at"],
            population=results["population"],
            sample_size=results["sample_size"],
            k=results["k"],
            silhouette=results["silhouette"],
            stability_ari=results["stability_ari"],
            features=features,
            clusters=results["clusters"],
            seconds=round(seconds, 2),
        )
        if not stored:  # failed meanwhile (taken for lost): its results are not shown
            transaction.set_rollback(True)
            return
        _old_runs_delete(workspace)


def _old_runs_delete(workspace: Workspace) -> None:
    """Keep the ``KEEP_RUNS`` latest completed runs and whatever came after the oldest of them."""
    keep = list(
        ClusteringRun.objects.filter(workspace=workspace, status=ClusteringStatus.DONE)
        .order_by("-finished_at", "-pk")
        .values_list("pk", "created_at")[:KEEP_RUNS]
    )
    if len(keep) < KEEP_RUNS:
        return
    oldest = min(created for _, created in keep)
    old = list(
        ClusteringRun.objects.filter(workspace=workspace, created_at__lt=oldest)
        .exclude(status__in=ACTIVE_STATUSES)
        .exclude(pk__in=[pk for pk, _ in keep])
        .values_list("pk", flat=True)
    )
    if not old:
        return
    with connection.cursor() as cursor:
        execute_scoped(cursor, _MEMBERS_DELETE_SQL, {"runs": old}, workspace_id=workspace.pk)
    ClusteringRun.objects.filter(workspace=workspace, pk__in=old).delete()


# --- segments from a cluster -------------------------------------------------------------------


def _cluster(run: ClusteringRun, index: int) -> dict[str, Any]:
    if run.status != ClusteringStatus.DONE:
        raise ValidationError({"run": ["This run has no clusters yet."]})
    for item in run.clusters:
        if item["index"] == index:
            return item
    raise ValidationError({"cluster": [f"Run {run.pk} has clusters 1 to {len(run.clusters)}, not {index + 1}."]})


def _free_name(workspace: Workspace, wanted: str) -> str:
    wanted = wanted[:MAX_SEGMENT_NAME].strip()
    taken = set(
        Segment.objects.filter(workspace=workspace, name__startswith=wanted[:150]).values_list("name", flat=True)
    )
    candidate, number = wanted, 2
    while candidate in taken:
        suffix = f" ({number})"
        candidate = wanted[: MAX_SEGMENT_NAME - len(suffix)] + suffix
        number += 1
    return candidate


def _default_name(item: dict[str, Any], kind: str) -> str:
    return f"Cluster {item['index'] + 1}{' (rule)' if kind == 'rule' else ''}: {item['description']}"


def _segment_description(run: ClusteringRun, item: dict[str, Any], kind: str) -> str:
    when = run.finished_at.strftime("%Y-%m-%d %H:%M UTC") if run.finished_at else ""
    rule = item.get("rule") or {}
    if kind == "static":
        what = f"the cluster's {item['identified']:,} identified people"
    elif rule.get("precision") is not None:
        what = f"a rule approximating the cluster (precision {rule['precision']:.0%}, recall {rule['recall']:.0%})"
    else:
        what = "a rule approximating the cluster"
    return (
        f"Suggested segment: cluster {item['index'] + 1} of {run.k} of clustering run {run.pk} ({when}): "
        f"{item['description']}. Holds {what}."
    )[:2000]


def cluster_static_segment_create(
    *, workspace: Workspace, run: ClusteringRun, cluster_index: int, actor: User | None, name: str | None = None
) -> Segment:
    """A static segment of the cluster's people who have a user id (a static list names people by
    user id; anonymous ones cannot be on it). Refused when none has one. Nothing is written on a refusal."""
    item = _cluster(run, cluster_index)
    user_ids = selectors.cluster_user_ids(workspace, run, cluster_index)
    if not user_ids:
        raise ValidationError(
            {
                "cluster": [
                    "None of this cluster's people has a user id, and a static segment lists identified "
                    "people only: make the rule-based segment instead."
                ]
            }
        )
    with transaction.atomic():
        segment = segment_services.segment_create(
            workspace=workspace,
            actor=actor,
            name=name if name is not None else _free_name(workspace, _default_name(item, "static")),
            definition=None,
            static=True,
            description=_segment_description(run, item, "static"),
        )
        for start in range(0, len(user_ids), segment_services.MAX_STATIC_CHANGE):
            segment_services.segment_static_change(
                segment=segment,
                actor=actor,
                add=user_ids[start : start + segment_services.MAX_STATIC_CHANGE],
                remove=[],
            )
    segment.refresh_from_db()
    return segment


def cluster_rule_segment_create(
    *, workspace: Workspace, run: ClusteringRun, cluster_index: int, actor: User | None, name: str | None = None
) -> Segment:
    """A dynamic segment whose definition is the cluster's rule; refreshed once created, like any other."""
    item = _cluster(run, cluster_index)
    rule = item.get("rule")
    if not rule:
        raise ValidationError({"cluster": ["No simple rule describes this cluster; make a static segment instead."]})
    return segment_services.segment_create(
        workspace=workspace,
        actor=actor,
        name=name if name is not None else _free_name(workspace, _default_name(item, "rule")),
        definition=rule["definition"],
        description=_segment_description(run, item, "rule"),
    )
