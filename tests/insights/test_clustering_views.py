"""/insights/clusters/: the empty state, progress while a run works, the results, segments from a cluster."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tenancy import workspace_scope
from insights import clustering_services
from insights.models import ClusteringRun, ClusteringStatus
from segmentation.models import Segment
from tests import factories
from tests.insights.clustering_data import planted_people

pytestmark = pytest.mark.django_db

PAGE = "/insights/clusters/"


def _client(workspace, role: str = "member") -> Client:
    client = Client()
    client.force_login(factories.member(workspace, role=role))
    return client


def _done_run(workspace) -> ClusteringRun:
    planted_people(workspace, per_group=15)
    with workspace_scope(workspace):
        run, _ = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        return clustering_services.clustering_run_execute(run=run)


def _counts(workspace) -> tuple[int, int]:
    with workspace_scope(workspace):
        return ClusteringRun.objects.count(), Segment.objects.count()


def test_the_empty_state_offers_a_run_to_members_only(workspace):
    member = _client(workspace).get(PAGE)
    viewer = _client(workspace, role="viewer").get(PAGE)

    assert member.status_code == viewer.status_code == 200
    assert "No suggested segments yet" in member.text
    assert "Run clustering" in member.text
    assert "Run clustering" not in viewer.text
    assert "A member of the workspace can run it." in viewer.text


def test_run_queues_one_task_and_the_page_then_shows_progress(workspace, django_capture_on_commit_callbacks):
    client = _client(workspace)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"{PAGE}run/")

    assert response.status_code == 302
    assert response["Location"] == PAGE
    assert len(queued) == 1
    page = client.get(PAGE)
    assert 'id="cluster-progress"' in page.text
    assert 'hx-trigger="every 2s"' in page.text
    assert "Waiting for a worker" in page.text


def test_the_progress_poll_answers_the_card_then_a_refresh_when_the_run_ends(workspace):
    client = _client(workspace)
    with workspace_scope(workspace):
        run, _ = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        ClusteringRun.objects.filter(pk=run.pk).update(status="running", progress=42, stage="Trying 4 clusters")
    poll = {"HX-Request": "true", "HX-Target": "cluster-progress"}

    during = client.get(PAGE, headers=poll)
    with workspace_scope(workspace):
        ClusteringRun.objects.filter(pk=run.pk).update(status=ClusteringStatus.FAILED, error="stopped")
    after = client.get(PAGE, headers=poll)

    assert during.status_code == 200
    assert during.text.lstrip().startswith('<section id="cluster-progress"')
    assert 'value="42"' in during.text
    assert "Trying 4 clusters · 42%" in during.text
    assert "<html" not in during.text
    assert after["HX-Refresh"] == "true"


def test_a_failed_run_says_why(workspace):
    with workspace_scope(workspace):
        run, _ = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        clustering_services.clustering_run_execute(run=run)

    page = _client(workspace).get(PAGE)

    assert "The last clustering did not finish: Suggested segments need at least 20 people with events" in page.text


def test_viewers_cannot_run_or_make_segments(workspace):
    run = _done_run(workspace)
    viewer = _client(workspace, role="viewer")
    before = _counts(workspace)

    assert viewer.post(f"{PAGE}run/").status_code == 403
    assert viewer.post(f"{PAGE}runs/{run.pk}/segments/", {"cluster": 0, "kind": "rule"}).status_code == 403
    assert _counts(workspace) == before
    page = viewer.get(PAGE)
    assert "Make rule-based segment" not in page.text
    assert "Run again" not in page.text


def test_the_results_show_chart_stability_sample_and_a_card_per_cluster(workspace):
    run = _done_run(workspace)

    page = _client(workspace).get(PAGE)

    assert page.status_code == 200
    text = page.text
    assert text.count('class="card cluster-card"') == run.k == 3
    assert text.count('class="sil-bar') == 7
    assert text.count("sil-chosen") == 1
    assert f'<span class="big-number" data-stability>{run.stability_ari:.2f}</span>' in text
    assert '<span class="big-number" data-sample>45</span>' in text
    assert "everyone with events" in text
    for cluster in run.clusters:
        description = cluster["description"]
        assert description[0].upper() + description[1:] in text
        assert f"{cluster['rule']['precision']:.0%}" in text
    assert text.count("Make rule-based segment") == 3


def test_a_cluster_becomes_a_segment_and_the_segment_page_opens(workspace):
    run = _done_run(workspace)
    client = _client(workspace)

    response = client.post(f"{PAGE}runs/{run.pk}/segments/", {"cluster": 1, "kind": "rule"})

    with workspace_scope(workspace):
        segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/segments/{segment.pk}/"
    assert segment.definition == run.clusters[1]["rule"]["definition"]
    assert client.get(response["Location"]).status_code == 200


def test_a_refused_segment_is_said_on_the_page_and_writes_nothing(workspace):
    run = _done_run(workspace)
    client = _client(workspace)
    before = _counts(workspace)

    response = client.post(f"{PAGE}runs/{run.pk}/segments/", {"cluster": 7, "kind": "static"}, follow=True)

    assert f"Run {run.pk} has clusters 1 to 3, not 8." in response.text
    assert _counts(workspace) == before
    bad = client.post(f"{PAGE}runs/{run.pk}/segments/", {"cluster": "x", "kind": "rule"}, follow=True)
    assert "Choose a cluster and the kind of segment to make of it." in bad.text
    assert _counts(workspace) == before


def test_another_workspaces_run_is_a_404(workspace):
    run = _done_run(workspace)
    other = factories.WorkspaceFactory()

    response = _client(other).post(f"{PAGE}runs/{run.pk}/segments/", {"cluster": 0, "kind": "rule"})

    assert response.status_code == 404
    assert _counts(other) == (0, 0)
    assert _counts(workspace) == (1, 0)
