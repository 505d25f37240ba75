"""Suggested segments against the real database: planted groups recovered, rules measured by the
segment engine, segments made from clusters, sampling, one run at a time, merges and erasures."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from sklearn.metrics import adjusted_rand_score

from accounts.tenancy import workspace_scope
from insights import clustering_features, clustering_services
from insights.clustering import HAS_ANY_EVENT, _kmeans, standardise
from insights.clustering_features import Sample, people_features
from insights.clustering_people import person_export
from insights.models import ClusteringRun, ClusteringStatus, ClusterMember
from segmentation import services as segment_services
from segmentation.models import Membership, Segment
from tests import factories
from tests.insights.clustering_data import GROUPS, planted_people
from tests.tracking import builders
from tracking.models import Event, Person
from tracking.people_services import person_erase
from tracking.services import person_merge

pytestmark = pytest.mark.django_db


def _run(workspace, **options):
    with workspace_scope(workspace):
        run, created = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        assert created
        return clustering_services.clustering_run_execute(run=run, **options)


def _labels(workspace, run) -> dict[int, int]:
    with workspace_scope(workspace):
        return dict(ClusterMember.objects.filter(workspace=workspace, run=run).values_list("person_id", "cluster"))


def _majority(planted: dict[int, str], labels: dict[int, int]) -> dict[str, int]:
    """Each planted group -> the cluster holding most of it."""
    found = {}
    for group in GROUPS:
        clusters = [labels[pk] for pk, g in planted.items() if g == group]
        found[group] = max(set(clusters), key=clusters.count)
    return found


@pytest.fixture
def planted(workspace):
    return planted_people(workspace)


def test_planted_groups_are_recovered_with_an_ari_of_at_least_0_8(workspace, planted):
    run = _run(workspace)

    assert run.status == ClusteringStatus.DONE, run.error
    labels = _labels(workspace, run)
    assert set(labels) == set(planted)
    ids = sorted(planted)
    ari = adjusted_rand_score([planted[pk] for pk in ids], [labels[pk] for pk in ids])
    assert ari >= 0.8
    assert run.k == 3
    assert [item["k"] for item in run.silhouette] == list(range(2, 9))
    assert max(run.silhouette, key=lambda item: item["score"])["k"] == 3
    assert run.population == run.sample_size == 120
    assert [c["size"] for c in run.clusters] == sorted((c["size"] for c in run.clusters), reverse=True)
    assert sum(c["size"] for c in run.clusters) == 120


def test_stability_is_the_ari_between_two_seeds_as_recomputed(workspace, planted):
    run = _run(workspace)

    with workspace_scope(workspace):
        people = people_features(
            workspace=workspace, sample=Sample(np.array(sorted(planted)), len(planted)), now=run.computed_at
        )
    matrix = standardise(people).matrix
    expected = adjusted_rand_score(_kmeans(matrix, run.k, run.seed), _kmeans(matrix, run.k, run.seed + 1))
    assert run.stability_ari == pytest.approx(expected, abs=1e-4)
    assert run.stability_ari >= 0.8


def test_each_cluster_is_described_by_what_sets_it_apart(workspace, planted):
    run = _run(workspace)

    found = _majority(planted, _labels(workspace, run))
    words = {group: run.clusters[index]["description"] for group, index in found.items()}
    assert "buy often" in words["buyers"]
    assert "spend a lot" in words["buyers"]
    assert "never buy" in words["browsers"]
    assert "lapsed" in words["lapsed"]
    buyers = run.clusters[found["buyers"]]
    assert buyers["centroid"]["orders"] > 2
    assert buyers["z"]["revenue"] > 0.5


def test_rule_precision_and_recall_match_a_recomputation_with_the_refreshed_segment(workspace, planted):
    run = _run(workspace)
    labels = _labels(workspace, run)

    with workspace_scope(workspace):
        for item in run.clusters:
            rule = item["rule"]
            assert rule is not None
            assert rule["precision"] is not None
            segment = clustering_services.cluster_rule_segment_create(
                workspace=workspace, run=run, cluster_index=item["index"], actor=None
            )
            assert segment.definition == rule["definition"]
            segment_services.segment_refresh(segment=segment)
            members = set(Membership.objects.filter(segment=segment).values_list("person_id", flat=True))
            cluster = {pk for pk, label in labels.items() if label == item["index"]}
            hits = len(members & cluster)
            assert rule["matched"] == len(members)
            assert rule["precision"] == round(hits / len(members), 4)
            assert rule["recall"] == round(hits / len(cluster), 4)
    # the planted groups are simple enough for a shallow tree to find them nearly exactly
    assert all(item["rule"]["precision"] >= 0.9 and item["rule"]["recall"] >= 0.9 for item in run.clusters)


def test_a_rule_is_a_valid_definition_of_at_most_three_conditions_per_path(workspace, planted):
    run = _run(workspace)

    for item in run.clusters:
        definition = item["rule"]["definition"]
        with workspace_scope(workspace):
            segment_services.definition_validate(workspace=workspace, definition=definition)
        paths = definition["conditions"] if definition["type"] == "or" else [definition]
        for path in paths:
            conditions = path["conditions"] if path["type"] == "and" else [path]
            # at most three splits, and "did any event" where none of them implies one
            assert 1 <= len([c for c in conditions if c != HAS_ANY_EVENT]) <= 3


def test_static_segment_lists_the_identified_people_of_the_cluster(workspace, planted):
    run = _run(workspace)
    labels = _labels(workspace, run)
    actor = factories.member(workspace)

    with workspace_scope(workspace):
        segment = clustering_services.cluster_static_segment_create(
            workspace=workspace, run=run, cluster_index=0, actor=actor
        )
        members = set(Membership.objects.filter(segment=segment).values_list("person_id", flat=True))
        identified = set(
            Person.objects.filter(pk__in=[pk for pk, c in labels.items() if c == 0], user_id__isnull=False).values_list(
                "pk", flat=True
            )
        )
    assert segment.is_static
    assert members == identified
    assert segment.size == len(identified) == run.clusters[0]["identified"]
    assert segment.name.startswith("Cluster 1: ")
    assert len(identified) < run.clusters[0]["size"]  # a quarter of the planted people are anonymous


def test_a_cluster_of_anonymous_people_only_refuses_a_static_segment_and_writes_nothing(workspace):
    planted_people(workspace, anonymous_share=1.0)
    run = _run(workspace)

    with workspace_scope(workspace), pytest.raises(ValidationError, match="user id"):
        clustering_services.cluster_static_segment_create(workspace=workspace, run=run, cluster_index=0, actor=None)
    with workspace_scope(workspace):
        assert not Segment.objects.exists()
        assert all(item["identified"] == 0 for item in run.clusters)


def test_a_second_segment_of_the_same_cluster_gets_a_free_name(workspace, planted):
    run = _run(workspace)

    with workspace_scope(workspace):
        first = clustering_services.cluster_rule_segment_create(
            workspace=workspace, run=run, cluster_index=1, actor=None
        )
        second = clustering_services.cluster_rule_segment_create(
            workspace=workspace, run=run, cluster_index=1, actor=None
        )
    assert second.name == f"{first.name} (2)"


def test_an_unknown_cluster_is_refused(workspace, planted):
    run = _run(workspace)

    with workspace_scope(workspace), pytest.raises(ValidationError, match="clusters 1 to 3, not 4"):
        clustering_services.cluster_rule_segment_create(workspace=workspace, run=run, cluster_index=3, actor=None)


def test_a_large_workspace_is_clustered_on_a_sample_of_the_asked_size(workspace, planted):
    run = _run(workspace, max_sample=60)

    assert run.status == ClusteringStatus.DONE, run.error
    assert (run.population, run.sample_size) == (120, 60)
    labels = _labels(workspace, run)
    assert len(labels) == 60
    assert set(labels) <= set(planted)
    assert sum(item["size"] for item in run.clusters) == 60


def test_too_few_people_fail_the_run_with_a_reason(workspace):
    for number in range(5):
        person = builders.person(workspace, user_id=f"u{number}")
        builders.event(workspace, person, "$pageview")

    run = _run(workspace)

    assert run.status == ClusteringStatus.FAILED
    assert run.error == "Suggested segments need at least 20 people with events; this workspace has 5."
    with workspace_scope(workspace):
        assert not ClusterMember.objects.exists()


def test_people_who_all_behave_the_same_fail_the_run_with_a_reason(workspace):
    at = timezone.now() - timedelta(days=2)
    for number in range(25):
        person = builders.person(workspace, user_id=f"u{number}")
        builders.event(workspace, person, "$pageview", at=at)

    run = _run(workspace)

    assert run.status == ClusteringStatus.FAILED
    assert "nothing to split" in run.error


def test_one_run_at_a_time_and_a_lost_one_makes_way(workspace):
    with workspace_scope(workspace):
        first, created = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        again, created_again = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        assert created
        assert not created_again
        assert again.pk == first.pk

        ClusteringRun.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
        third, created_third = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        first.refresh_from_db()
    assert created_third
    assert third.pk != first.pk
    assert first.status == ClusteringStatus.FAILED
    assert first.error == "No worker picked the run up."


@pytest.mark.django_db(transaction=True)
def test_a_request_racing_another_answers_the_run_the_other_queued(workspace):
    # Given another request that has inserted its queued run and not committed yet
    inserted = threading.Event()
    theirs: list[ClusteringRun] = []
    errors: list[BaseException] = []

    def other_request() -> None:
        try:
            with workspace_scope(workspace), transaction.atomic():
                theirs.append(ClusteringRun.objects.create(workspace=workspace, stage="Waiting for a worker"))
                inserted.set()
                time.sleep(0.5)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            inserted.set()
            connection.close()

    thread = threading.Thread(target=other_request)
    thread.start()
    assert inserted.wait(10)

    # When this request finds no run yet, and its insert waits on the other's until it commits
    with workspace_scope(workspace):
        run, created = clustering_services.clustering_run_request(workspace=workspace, actor=None)
    thread.join()

    # Then it answers the other's run instead of failing, and there is one run
    assert errors == []
    assert (run.pk, created) == (theirs[0].pk, False)
    with workspace_scope(workspace):
        assert ClusteringRun.objects.count() == 1


def test_a_run_delivered_twice_is_computed_once(workspace, planted):
    run = _run(workspace)
    finished = run.finished_at

    with workspace_scope(workspace):
        again = clustering_services.clustering_run_execute(run=run)
        assert ClusterMember.objects.filter(run=run).count() == 120
    assert again.finished_at == finished


def test_only_the_latest_runs_are_kept(workspace, planted):
    runs = [_run(workspace) for _ in range(clustering_services.KEEP_RUNS + 1)]

    with workspace_scope(workspace):
        kept = set(ClusteringRun.objects.values_list("pk", flat=True))
        assert kept == {run.pk for run in runs[1:]}
        assert set(ClusterMember.objects.values_list("run_id", flat=True)) == kept


def test_another_workspace_people_are_never_clustered_here(workspace, planted):
    other = factories.WorkspaceFactory()
    theirs = planted_people(other, per_group=10)

    run = _run(workspace)

    assert set(_labels(workspace, run)) == set(planted)
    assert not set(_labels(workspace, run)) & set(theirs)
    with workspace_scope(other):
        assert not ClusterMember.objects.exists()


# --- features -------------------------------------------------------------------------------


def test_features_read_revenue_numbers_and_numeric_strings_sessions_and_events_up_to_now(workspace):
    now = timezone.now()
    ada = builders.person(workspace, user_id="ada")
    for revenue in (10, "12.50", " 2e1 ", "ten", True, None):
        builders.event(workspace, ada, "Order Completed", at=now - timedelta(days=3), properties={"revenue": revenue})
    with workspace_scope(workspace):
        Event.objects.filter(person_id=ada.pk).update(session_id="s1")
        Event.objects.filter(person_id=ada.pk, properties__revenue="ten").update(session_id="s2")
    builders.event(workspace, ada, "Product Viewed", at=now - timedelta(days=1))
    builders.event(workspace, ada, "Product Viewed", at=now + timedelta(days=1))  # after now: not counted

    with workspace_scope(workspace):
        sample = clustering_features.people_sample(workspace=workspace, now=now, seed=0)
        people = people_features(workspace=workspace, sample=sample, now=now)

    assert people.person_ids.tolist() == [ada.pk]
    assert people.revenue.tolist() == [42.5]  # 10 + 12.5 + 20; "ten", true and null are skipped
    assert people.orders.tolist() == [6]
    assert people.events.tolist() == [7]
    assert people.sessions.tolist() == [2]  # s1, s2; the Product Viewed event has none
    assert people.recency_days[0] == pytest.approx(1.0, abs=1e-4)
    assert people.mix_names == ("Product Viewed",)  # the purchase event has its own columns
    assert people.mix_counts.tolist() == [[1]]


# --- merges, erasures, exports --------------------------------------------------------------


def test_erasure_and_merge_take_people_out_of_the_runs(workspace, planted):
    run = _run(workspace)
    erased, loser, survivor = sorted(planted)[:3]

    with workspace_scope(workspace):
        person = Person.objects.get(pk=erased)
        erasure = person_erase(workspace=workspace, person=person, actor=None)
        person_merge(workspace=workspace, loser=Person.objects.get(pk=loser), survivor=Person.objects.get(pk=survivor))
        left = set(ClusterMember.objects.filter(run=run).values_list("person_id", flat=True))
    assert erased not in left
    assert loser not in left
    assert survivor in left
    assert len(left) == 118
    assert erasure is not None


def test_the_export_lists_the_clusters_a_person_is_in(workspace, planted):
    run = _run(workspace)
    person_id = sorted(planted)[0]

    with workspace_scope(workspace):
        section = person_export(workspace, Person.objects.get(pk=person_id))
        cluster = ClusterMember.objects.get(run=run, person_id=person_id).cluster
    assert section == {
        "suggested_segment_clusters": [{"run": run.pk, "cluster": cluster + 1, "run_finished_at": run.finished_at}]
    }


def test_member_rows_are_held_to_the_workspace(workspace, planted):
    """The raw statements of the runs name their workspace: another workspace's rows stay untouched."""
    run = _run(workspace)
    other = factories.WorkspaceFactory()
    planted_people(other, per_group=10)
    theirs = _run(other)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM insights_clustermember WHERE run_id = %s", [theirs.pk])
        before = cursor.fetchone()[0]
    with workspace_scope(workspace):
        for _ in range(clustering_services.KEEP_RUNS):
            _run(workspace)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM insights_clustermember WHERE run_id = %s", [theirs.pk])
        assert cursor.fetchone()[0] == before == 30
        cursor.execute("SELECT count(*) FROM insights_clustermember WHERE run_id = %s", [run.pk])
        assert cursor.fetchone()[0] == 0


def test_orders_and_revenue_come_from_the_workspace_purchase_settings(workspace, planted):
    # Given a shop whose purchases are "Purchase" events with an "amount", set as its computed traits' settings
    from insights.traits import settings_update

    with workspace_scope(workspace):
        orders = Event.objects.filter(workspace=workspace, name="Order Completed")
        renamed = [(event.pk, event.properties["revenue"]) for event in orders]
        for pk, revenue in renamed:
            Event.objects.filter(pk=pk).update(name="Purchase", properties={"amount": revenue})
        settings_update(workspace=workspace, actor=None, rfm_event="Purchase", rfm_revenue_property="amount")

    # When the people are clustered
    run = _run(workspace)

    # Then the purchases count as orders and revenue, and the planted groups are still told apart
    assert renamed
    assert run.status == ClusteringStatus.DONE, run.error
    labels = _labels(workspace, run)
    ids = sorted(planted)
    assert adjusted_rand_score([planted[pk] for pk in ids], [labels[pk] for pk in ids]) >= 0.8
    buyers = {pk for pk, group in planted.items() if group == "buyers"}
    [buyers_cluster] = {labels[pk] for pk in buyers}
    [cluster] = [c for c in run.clusters if c["index"] == buyers_cluster]
    assert cluster["mean"]["orders"] >= 3  # 3 to 6 orders each
    assert cluster["mean"]["revenue"] >= 3 * 40
    features = {feature["key"]: feature["event"] for feature in run.features}
    assert (features["orders"], features["revenue"], "mix:Purchase" in features) == ("Purchase", "Purchase", False)


class _RefusingTask:
    """A task whose broker refuses it (as ``apply_async`` raises when Redis is down)."""

    def apply_async(self, args: object, **options: object) -> None:
        raise ConnectionError("broker unavailable")


def test_a_run_the_broker_refuses_is_failed_with_a_message(workspace, django_capture_on_commit_callbacks):
    from insights import runs
    from insights.models import ClusteringRun, ClusteringStatus

    with workspace_scope(workspace):
        run = ClusteringRun.objects.create(workspace=workspace)
        with django_capture_on_commit_callbacks(execute=True):
            runs.run_enqueue(_RefusingTask(), run, what="clustering")
        run.refresh_from_db()
    assert run.status == ClusteringStatus.FAILED
    assert "could not be queued" in run.error
    assert run.finished_at is not None
