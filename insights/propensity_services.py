"""Predictive propensity, the writes: requesting a run, running it, writing its score as a trait.

A run is requested by a member (``propensity_run_request``: one at a time per workspace and target,
a second request joins the one under way) and computed by a Celery task
(``insights.propensity_tasks``) through ``propensity_run_execute``, which reports its progress on
the run's row as it goes:

1. the people with an event as of ``now - 2N`` and as of ``now - N`` (sampled down to
   ``propensity.MAX_SAMPLE`` each), their features as of that instant (clustering's, through
   ``insights.clustering_features``, with the event mix of the first window in both), and whether
   the target happened in the N days after (``_outcomes``);
2. the model trained on the first window and validated on the second (``insights.propensity``);
3. when the holdout AUC reaches ``propensity.AUC_FLOOR``: the model fitted again on the second
   window scores everyone with an event as of ``now``, ``SCORE_BATCH`` people at a time (their
   features read, scored and their patches stored before the next batch is read, so that memory
   does not grow with the workspace), and the score is written as the target's computed trait
   through ``insights.traits.patches_write`` (only the people whose value changed,
   told to tracking's subscribers so that segments record entries and exits). A run that ends
   without a usable model takes the trait off everyone: the trait always comes from the latest
   completed run of its target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.sql import execute_scoped, execute_session, with_tables
from insights import propensity, runs
from insights.clustering_features import (
    SAMPLED_EVENTS,
    Sample,
    mix_prior,
    people_batches,
    people_features,
    people_sample,
)
from insights.models import ClusteringStatus, ComputedTraitSettings, PropensityRun, PropensityVerdict
from insights.propensity import Insufficient, Labelled, Windows
from insights.traits import catalogue_catch_up, patches_write, settings_for
from tracking.models import Event, Person

logger = logging.getLogger(__name__)

DEFAULT_SEED = 0
# Everyone as of now is scored this many people at a time (the features of one batch in memory).
SCORE_BATCH = 50_000
# The temporary table of the new scores (named as text in the statements below).
_SCORES = "insights_propensity_scores"

# Who did anything in (since, until], and whether it was the purchase event.
_OUTCOMES_SQL = with_tables(
    "SELECT e.person_id, bool_or(e.name = %(purchase)s) FROM {event} e "
    'WHERE e.workspace_id = %(workspace_id)s AND e."timestamp" > %(since)s AND e."timestamp" <= %(until)s{only} '
    "GROUP BY e.person_id",
    event=Event,
)
_SCORES_INSERT_SQL = (
    "INSERT INTO insights_propensity_scores (person_id, patch) "
    "SELECT t.person_id, jsonb_build_object(%(key)s::text, t.score) "
    "FROM unnest(%(people)s::bigint[], %(scores)s::numeric[]) AS t(person_id, score)"
)
# People who hold the trait from an earlier run but have no score now lose it.
_SCORES_REMOVE_SQL = with_tables(
    "INSERT INTO insights_propensity_scores (person_id, patch) "
    "SELECT p.id, '{}'::jsonb FROM {person} p WHERE p.workspace_id = %(workspace_id)s AND p.traits ? %(key)s "
    "ON CONFLICT (person_id) DO NOTHING",
    person=Person,
)


# --- requesting a run ---------------------------------------------------------------------------


def propensity_run_request(
    *, workspace: Workspace, actor: User | None, target: str, horizon_days: int, seed: int = DEFAULT_SEED
) -> tuple[PropensityRun, bool]:
    """A queued run of ``target``, or the one of that target already queued or under way (whatever
    its horizon); ``True`` when it is new. The caller has validated ``target`` and ``horizon_days``,
    and queues the task for a new run once the transaction commits
    (``insights.propensity_tasks.propensity_run_enqueue``)."""
    return runs.run_request(
        PropensityRun,
        workspace=workspace,
        actor=actor,
        among={"target": target},
        horizon_days=horizon_days,
        seed=seed,
    )


def propensity_run_fail(*, run: PropensityRun, error: str) -> None:
    """Mark a run failed (its task could not be queued, or it raised); the trait is left as it was."""
    runs.run_fail(run, error)


# --- running it ---------------------------------------------------------------------------------


def propensity_run_execute(
    *,
    run: PropensityRun,
    max_sample: int = propensity.MAX_SAMPLE,
    batch_size: int = SCORE_BATCH,
    now: datetime | None = None,
) -> PropensityRun:
    """Train, validate and (when good enough) score; answers the run as stored.

    The windows end at ``now`` (the current time unless given, as two runs compared at one instant
    need). Idempotent for a task delivered twice: a run already done or failed is left alone.
    """
    if not runs.run_claim(run):
        return run
    workspace = Workspace.objects.get(pk=run.workspace_id)
    report = runs.RunReporter(run)
    started = time.monotonic()
    try:
        results = _compute(workspace, run, report, max_sample, batch_size, now or timezone.now())
    except Exception as error:
        logger.exception("Propensity run %s of workspace %s failed", run.pk, run.workspace_id)
        propensity_run_fail(run=run, error=runs.readable(error, "The propensity model"))
    else:
        PropensityRun.objects.filter(workspace=workspace, pk=run.pk, status=ClusteringStatus.RUNNING).update(
            status=ClusteringStatus.DONE,
            progress=100,
            stage="Done",
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            seconds=round(time.monotonic() - started, 2),
            **results,
        )
    run.refresh_from_db()
    return run


def _compute(
    workspace: Workspace,
    run: PropensityRun,
    report: runs.RunReporter,
    max_sample: int,
    batch_size: int,
    now: datetime,
) -> dict[str, Any]:
    windows = Windows.ending(now, run.horizon_days)
    config = settings_for(workspace)
    results: dict[str, Any] = {"computed_at": windows.now}
    report(2, "Reading the training window")
    train = _labelled(workspace, run, config, windows.train_at, windows.validation_at, max_sample, names=None)
    names = train.people.mix_names
    results.update({"train": train.summary(), "features": propensity.feature_names(train.people)})
    report(25, "Reading the validation window")
    validation = _labelled(workspace, run, config, windows.validation_at, windows.now, max_sample, names=names)
    results["validation"] = validation.summary()
    try:
        propensity.sufficiency("training", train, run.target)
        propensity.sufficiency("validation", validation, run.target)
    except Insufficient as refusal:
        report(90, "Not enough data: taking the score off")
        results.update(_trait_remove(workspace, run, report))
        return {**results, "verdict": PropensityVerdict.INSUFFICIENT, "message": str(refusal)}
    report(50, "Training on the first window, validating on the next")
    checked = propensity.validate(train, validation, seed=run.seed)
    results.update({"auc": round(checked.auc, 4), "groups": checked.groups})
    if checked.auc < propensity.AUC_FLOOR:
        report(90, "The model is too weak: taking the score off")
        results.update(_trait_remove(workspace, run, report))
        message = (
            f"The model ranks people too close to chance: its holdout AUC is {checked.auc:.2f}, under the "
            f"{propensity.AUC_FLOOR:.2f} a score needs to be written."
        )
        return {**results, "verdict": PropensityVerdict.WEAK, "message": message}
    report(60, "Training on the latest window")
    model = propensity.fit(validation, seed=run.seed)
    batches = people_batches(workspace=workspace, now=windows.now, size=batch_size)
    prior = mix_prior(workspace=workspace, now=windows.now, names=names)
    report(65, f"Scoring {batches.population:,} people")

    def scored() -> Iterator[tuple[list[int], list[float]]]:
        done = 0
        for id_range in batches.ranges:
            people = people_features(
                workspace=workspace,
                sample=None,
                now=windows.now,
                purchase_event=config.rfm_event,
                revenue_key=config.rfm_revenue_property,
                names=names,
                id_range=id_range,
                mix_prior=prior,
            )
            yield people.person_ids.tolist(), [propensity.as_trait(p) for p in propensity.predict(model, people)]
            done += len(people)
            report(65 + 15 * done / max(batches.population, 1), f"Scoring people: {done:,} of {batches.population:,}")

    changed = _trait_write(workspace, run, scored(), report)
    return {**results, "verdict": PropensityVerdict.SCORED, "message": "", **changed}


def _labelled(
    workspace: Workspace,
    run: PropensityRun,
    config: ComputedTraitSettings,
    at: Any,
    until: Any,
    max_sample: int,
    *,
    names: tuple[str, ...] | None,
) -> Labelled:
    """The people with an event at or before ``at`` (sampled), their features from those events only,
    and whether the target happened in (``at``, ``until``]."""
    sample = people_sample(workspace=workspace, now=at, seed=run.seed, max_sample=max_sample)
    people = people_features(
        workspace=workspace,
        sample=sample,
        now=at,
        purchase_event=config.rfm_event,
        revenue_key=config.rfm_revenue_property,
        names=names,
    )
    active, purchased = _outcomes(workspace, sample, config.rfm_event, since=at, until=until)
    ids = people.person_ids
    labels = np.isin(ids, purchased) if run.target == propensity.PURCHASE else ~np.isin(ids, active)
    return Labelled(people=people, labels=labels, population=sample.population)


def _outcomes(
    workspace: Workspace, sample: Sample, purchase_event: str, *, since: Any, until: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the sample's people with any event in (``since``, ``until``], and of those of
    them with the purchase event."""
    params: dict[str, Any] = {"purchase": purchase_event, "since": since, "until": until}
    sql = _OUTCOMES_SQL.replace("{only}", SAMPLED_EVENTS if sample.sampled else "")
    if sample.sampled:
        params.update({"seed": sample.seed, "cutoff": sample.cutoff})
    with transaction.atomic(), connection.cursor() as cursor:
        execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
        rows = cursor.fetchall()
    active = np.array([row[0] for row in rows], dtype=np.int64)
    purchased = np.array([row[0] for row in rows if row[1]], dtype=np.int64)
    return active, purchased


def _trait_write(
    workspace: Workspace, run: PropensityRun, batches: Iterable[tuple[list[int], list[float]]], report: runs.RunReporter
) -> dict[str, Any]:
    """The target's trait set to the scores of ``batches`` (people and their scores, stored one
    batch at a time), and taken off everyone else who has it."""
    key = propensity.TRAIT_KEYS[run.target]
    scored = 0
    with connection.cursor() as cursor:
        execute_session(cursor, f"DROP TABLE IF EXISTS {_SCORES}")
        execute_session(cursor, f"CREATE TEMP TABLE {_SCORES} (person_id bigint PRIMARY KEY, patch jsonb NOT NULL)")
        try:
            for people, scores in batches:
                execute_session(cursor, _SCORES_INSERT_SQL, {"key": key, "people": people, "scores": scores})
                scored += len(people)
            execute_scoped(cursor, _SCORES_REMOVE_SQL, {"key": key}, workspace_id=workspace.pk)
            execute_session(cursor, f"ANALYZE {_SCORES}")
            changed = patches_write(
                workspace=workspace,
                table=_SCORES,
                keys=[key],
                report=lambda stage, percent: report(percent, stage),
                start=80,
                end=99,
            )
        finally:
            execute_session(cursor, f"DROP TABLE IF EXISTS {_SCORES}")
    if scored:
        catalogue_catch_up(workspace, key)
    return {"people_changed": changed, "scored": scored}


def _trait_remove(workspace: Workspace, run: PropensityRun, report: runs.RunReporter) -> dict[str, Any]:
    return _trait_write(workspace, run, [], report)
