"""Predictive propensity against the real database: a planted signal is found, random labels are
refused, small workspaces are refused, features as of a cut-off ignore later events, and the score
is a computed trait that segments follow."""

from __future__ import annotations

import base64
from datetime import timedelta
from itertools import pairwise

import numpy as np
import orjson
import pytest
from django.test import Client
from django.utils import timezone

from accounts.tenancy import workspace_scope
from insights import propensity, propensity_services
from insights.clustering_features import mix_prior, people_batches, people_features, people_sample
from insights.models import ClusteringStatus, PropensityRun, PropensityVerdict
from insights.propensity import Labelled, score_groups, sufficiency
from segmentation import realtime
from segmentation import services as segment_services
from segmentation.models import MembershipChange, Segment
from tests.insights.propensity_data import propensity_people
from tests.tracking import builders
from tracking.models import Person

pytestmark = pytest.mark.django_db

PURCHASE_KEY = "$purchase_propensity"


def _run(workspace, target: str = "purchase", horizon_days: int = 30) -> PropensityRun:
    with workspace_scope(workspace):
        run, created = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target=target, horizon_days=horizon_days
        )
        assert created
        return propensity_services.propensity_run_execute(run=run)


def _scores(workspace, key: str = PURCHASE_KEY) -> dict[int, float]:
    with workspace_scope(workspace):
        return {pk: traits[key] for pk, traits in Person.objects.values_list("pk", "traits") if key in traits}


def test_a_planted_signal_gives_a_high_holdout_auc_and_a_score_on_everyone(workspace):
    keen = propensity_people(workspace)

    run = _run(workspace)

    assert run.status == ClusteringStatus.DONE, run.error
    assert run.verdict == PropensityVerdict.SCORED
    assert run.auc > 0.8
    assert run.train["sample_size"] == run.validation["sample_size"] == 600
    assert 0.2 < run.validation["base_rate"] < 0.5
    assert [g["group"] for g in run.groups] == list(range(1, 11))
    assert sum(g["people"] for g in run.groups) == 600
    assert run.groups[0]["actual"] > 3 * run.groups[-1]["actual"]  # lift: the top tenth buys far more
    scores = _scores(workspace)
    assert set(scores) == set(keen)
    assert run.scored == run.people_changed == 600
    assert all(0 <= value <= 100 and round(value, 1) == value for value in scores.values())
    keen_mean = np.mean([scores[pk] for pk, is_keen in keen.items() if is_keen])
    other_mean = np.mean([scores[pk] for pk, is_keen in keen.items() if not is_keen])
    assert keen_mean > other_mean + 30


def test_random_labels_give_an_auc_near_chance_and_no_trait(workspace):
    propensity_people(workspace, signal=False)
    with workspace_scope(workspace):  # a score left by an earlier model is taken off
        first = Person.objects.order_by("pk").first()
        Person.objects.filter(pk=first.pk).update(traits={PURCHASE_KEY: 50.0, "plan": "pro"})

    run = _run(workspace)

    assert run.status == ClusteringStatus.DONE, run.error
    assert 0.35 < run.auc < propensity.AUC_FLOOR
    assert run.verdict == PropensityVerdict.WEAK
    assert f"under the {propensity.AUC_FLOOR:.2f}" in run.message
    assert _scores(workspace) == {}
    with workspace_scope(workspace):
        assert Person.objects.get(pk=first.pk).traits == {"plan": "pro"}
    assert run.scored == 0
    assert run.people_changed == 1


def test_too_few_people_is_refused_with_the_threshold_explained(workspace):
    propensity_people(workspace, people=120)

    run = _run(workspace)

    assert run.status == ClusteringStatus.DONE, run.error
    assert run.verdict == PropensityVerdict.INSUFFICIENT
    assert run.auc is None
    assert run.groups == []
    assert run.message == (
        "Not enough data: the training window has 120 people with events before it, and a model needs at "
        "least 500 in each window."
    )
    assert run.train["sample_size"] == 120
    assert _scores(workspace) == {}


def test_too_few_of_one_outcome_is_refused_naming_the_counts():
    people = np.arange(600)
    labelled = Labelled(people=None, labels=people < 30, population=600)  # type: ignore[arg-type]

    with pytest.raises(propensity.Insufficient) as refusal:
        sufficiency("validation", labelled, "churn")

    assert str(refusal.value) == (
        "Not enough data: in the validation window 30 of 600 people churned, and a model needs at least 50 who "
        "did and 50 who did not."
    )


def test_features_as_of_a_cut_off_ignore_later_events(workspace):
    propensity_people(workspace, people=40)
    cut_off = timezone.now() - timedelta(days=30)
    with workspace_scope(workspace):
        sample = people_sample(workspace=workspace, now=cut_off, seed=0)
        before = people_features(workspace=workspace, sample=sample, now=cut_off)
        somebody = Person.objects.order_by("pk").first()
    # Events after the cut-off: an order and views, one at the very next microsecond.
    for offset in (timedelta(microseconds=1), timedelta(days=3)):
        builders.event(workspace, somebody, "Order Completed", at=cut_off + offset, properties={"revenue": 500})
        builders.event(workspace, somebody, "Product Viewed", at=cut_off + offset)

    with workspace_scope(workspace):
        after = people_features(workspace=workspace, sample=sample, now=cut_off, names=before.mix_names)

    assert np.array_equal(propensity.matrix(before), propensity.matrix(after))
    assert np.array_equal(before.person_ids, after.person_ids)


def test_batches_of_people_cover_everyone_and_read_the_same_features_as_one_read(workspace):
    propensity_people(workspace, people=50)
    now = timezone.now()
    with workspace_scope(workspace):
        ids = sorted(Person.objects.values_list("pk", flat=True))
        Person.objects.filter(pk=ids[-1]).update(first_event_at=None)  # as a person whose events were just moved
        whole = people_features(workspace=workspace, sample=None, now=now)

        batches = people_batches(workspace=workspace, now=now, size=7)
        prior = mix_prior(workspace=workspace, now=now, names=whole.mix_names)
        parts = [
            people_features(
                workspace=workspace, sample=None, now=now, names=whole.mix_names, id_range=id_range, mix_prior=prior
            )
            for id_range in batches.ranges
        ]
        own_mix = people_features(
            workspace=workspace, sample=None, now=now, names=whole.mix_names, id_range=(0, ids[7])
        )

    assert batches.population == 49
    # 49 counted, in 7 ranges; the last range is open-ended, and holds the uncounted person too.
    assert [len(part) for part in parts] == [7, 7, 7, 7, 7, 7, 8]
    assert batches.ranges[0][0] < ids[0]
    assert batches.ranges[-1][1] > ids[-1]
    assert all(previous[1] == following[0] for previous, following in pairwise(batches.ranges))
    assert np.array_equal(np.concatenate([part.person_ids for part in parts]), whole.person_ids)
    assert np.array_equal(np.vstack([propensity.matrix(part) for part in parts]), propensity.matrix(whole))
    # Without everyone's mix, a batch's shares would be pulled toward its own people's mix instead.
    assert not np.array_equal(propensity.matrix(own_mix), propensity.matrix(whole)[:8])


def test_an_empty_workspace_is_one_batch_of_nobody(workspace):
    with workspace_scope(workspace):
        batches = people_batches(workspace=workspace, now=timezone.now(), size=7)

    assert batches.population == 0
    assert len(batches.ranges) == 1


def test_scoring_in_batches_of_7_writes_the_same_traits_as_one_batch(workspace):
    propensity_people(workspace)
    now = timezone.now()

    with workspace_scope(workspace):
        first, _ = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target="purchase", horizon_days=30
        )
        batched = propensity_services.propensity_run_execute(run=first, batch_size=7, now=now)
        in_batches = _scores(workspace)
        second, _ = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target="purchase", horizon_days=30
        )
        whole = propensity_services.propensity_run_execute(run=second, batch_size=10_000, now=now)

    assert batched.verdict == whole.verdict == PropensityVerdict.SCORED
    assert batched.scored == whole.scored == batched.people_changed == 600
    assert whole.people_changed == 0  # the one batch scored everyone exactly as the 86 batches had
    assert _scores(workspace) == in_batches
    assert len(set(in_batches.values())) > 2


def test_score_groups_rank_by_score_in_tenths():
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.05, 0.95])
    labels = scores > 0.5

    groups = score_groups(scores, labels, groups=5)

    assert [g["people"] for g in groups] == [3, 2, 2, 2, 2]
    assert groups[0] == {"group": 1, "people": 3, "predicted": round((0.95 + 0.9 + 0.8) / 3, 4), "actual": 1.0}
    assert [g["actual"] for g in groups] == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_the_windows_end_now_and_split_at_n_and_2n_days():
    now = timezone.now()

    windows = propensity.Windows.ending(now, 30)

    assert (windows.train_at, windows.validation_at, windows.now) == (
        now - timedelta(days=60),
        now - timedelta(days=30),
        now,
    )


def test_a_segment_over_the_score_records_entries_and_exits_as_it_is_recomputed(
    workspace, django_capture_on_commit_callbacks
):
    keen = propensity_people(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _run(workspace)
    scores = _scores(workspace)
    likely = {pk for pk, value in scores.items() if value >= 50}
    assert likely
    assert likely <= set(keen)
    with workspace_scope(workspace):
        segment = Segment.objects.create(
            workspace=workspace,
            name="Likely buyers",
            definition={"type": "trait", "key": PURCHASE_KEY, "operator": "gte", "value": 50},
        )
        segment_services.segment_refresh(segment=segment)
        assert Segment.objects.get(pk=segment.pk).size == len(likely)
    # Two people's scores moved by hand across the threshold; the segment follows them.
    sure = max(scores, key=lambda pk: (scores[pk], -pk))
    unlikely = min(scores, key=lambda pk: (scores[pk], pk))
    with workspace_scope(workspace):
        for pk, value in ((sure, 0.0), (unlikely, 99.0)):
            Person.objects.filter(pk=pk).update(traits={PURCHASE_KEY: value})
        segment_services.segment_refresh(segment=segment)
        MembershipChange.objects.filter(segment=segment).delete()

    with django_capture_on_commit_callbacks(execute=True):
        run = _run(workspace)

    assert run.verdict == PropensityVerdict.SCORED
    assert run.people_changed == 2
    assert _scores(workspace) == scores
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
        changes = set(MembershipChange.objects.filter(segment=segment).values_list("person_id", "kind"))
        assert changes == {(sure, "entered"), (unlikely, "exited")}
        assert Segment.objects.get(pk=segment.pk).size == len(likely)


def test_identify_cannot_set_the_score(workspace):
    client = Client()
    key = base64.b64encode(f"{workspace.write_key}:".encode()).decode()
    body = {"userId": "u", "messageId": "m-1", "traits": {"plan": "Pro", PURCHASE_KEY: 99, "$churn_propensity": 1}}

    response = client.post(
        "/v1/identify", orjson.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Basic {key}"
    )

    assert response.status_code == 200
    assert "$churn_propensity, $purchase_propensity" in response.json()["warnings"][0]["warnings"][0]
    with workspace_scope(workspace):
        assert Person.objects.get(user_id="u").traits == {"plan": "Pro"}


def test_another_run_of_the_same_target_joins_the_one_under_way(workspace):
    with workspace_scope(workspace):
        first, created = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target="purchase", horizon_days=30
        )
        again, created_again = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target="purchase", horizon_days=14
        )
        churn, created_churn = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target="churn", horizon_days=14
        )

    assert created
    assert not created_again
    assert again.pk == first.pk
    assert again.horizon_days == 30
    assert created_churn
    assert churn.pk != first.pk
