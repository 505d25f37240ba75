"""/api/v1/insights/clusters/: shapes per rest-api.md ("Insights"), roles, another workspace's runs."""

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

BASE = "/api/v1/insights/clusters/"


def _client(workspace, role: str = "owner") -> Client:
    creator = factories.member(workspace, role=role)
    _, secret = factories.api_key(workspace, creator=creator)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def _done_run(workspace) -> ClusteringRun:
    planted_people(workspace, per_group=15)
    with workspace_scope(workspace):
        run, _ = clustering_services.clustering_run_request(workspace=workspace, actor=None)
        return clustering_services.clustering_run_execute(run=run)


@pytest.fixture
def done(workspace) -> ClusteringRun:
    run = _done_run(workspace)
    assert run.status == ClusteringStatus.DONE, run.error
    return run


def _counts(workspace) -> tuple[int, int]:
    with workspace_scope(workspace):
        return ClusteringRun.objects.count(), Segment.objects.count()


def test_before_any_run_the_latest_is_a_404_saying_how_to_start_one(workspace):
    response = _client(workspace).get(BASE)

    assert response.status_code == 404
    assert response.json() == {
        "detail": "No clustering has completed in this workspace yet: POST /api/v1/insights/clusters/run/ starts one.",
        "code": "not_found",
    }


def test_run_answers_202_with_the_run_and_a_second_request_joins_it(workspace, django_capture_on_commit_callbacks):
    client = _client(workspace, role="member")

    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = client.post(f"{BASE}run/")
        second = client.post(f"{BASE}run/")

    assert first.status_code == second.status_code == 202
    body = first.json()
    assert set(body) == {"id", "status", "progress", "stage", "created"}
    assert (body["status"], body["progress"], body["created"]) == ("queued", 0, True)
    assert second.json()["id"] == body["id"]
    assert second.json()["created"] is False
    assert len(queued) == 1  # one task, for the new run only
    with workspace_scope(workspace):
        run = ClusteringRun.objects.get()
    assert run.pk == body["id"]
    detail = client.get(f"{BASE}runs/{run.pk}/")
    assert detail.status_code == 200
    assert (detail.json()["status"], detail.json()["clusters"]) == ("queued", [])


def test_the_latest_completed_run_has_the_fixed_shape(workspace, done):
    response = _client(workspace, role="viewer").get(BASE)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == done.pk
    assert body["status"] == "done"
    assert body["k"] == 3
    assert [item["k"] for item in body["silhouette"]] == list(range(2, 9))
    assert all(-1 <= item["score"] <= 1 for item in body["silhouette"])
    assert body["stability_ari"] == done.stability_ari
    assert (body["sample_size"], body["population"], body["sampled"]) == (45, 45, False)
    keys = {feature["key"] for feature in body["features"]}
    assert {"recency_days", "events", "orders", "revenue", "sessions"} <= keys
    assert len(body["clusters"]) == 3
    for cluster in body["clusters"]:
        assert set(cluster) == {"index", "size", "share", "identified", "centroid", "z", "mean", "description", "rule"}
        assert set(cluster["centroid"]) == keys
        assert isinstance(cluster["description"], str)
        assert cluster["description"]
        assert set(cluster["rule"]) == {"definition", "precision", "recall", "matched"}
    assert sum(cluster["size"] for cluster in body["clusters"]) == 45


def test_a_segment_is_made_of_a_cluster_by_rule_or_as_a_static_list(workspace, done):
    client = _client(workspace, role="member")

    rule = client.post(
        f"{BASE}runs/{done.pk}/segments/", {"cluster": 0, "kind": "rule"}, content_type="application/json"
    )
    static = client.post(
        f"{BASE}runs/{done.pk}/segments/",
        {"cluster": 0, "kind": "static", "name": "Cluster one, listed"},
        content_type="application/json",
    )

    assert rule.status_code == 201, rule.content
    assert rule.json()["static"] is False
    assert rule.json()["definition"] == done.clusters[0]["rule"]["definition"]
    assert rule.json()["status"] == "pending"
    assert static.status_code == 201, static.content
    assert static.json()["name"] == "Cluster one, listed"
    assert static.json()["static"] is True
    assert static.json()["size"] == done.clusters[0]["identified"]
    with workspace_scope(workspace):
        assert set(Segment.objects.values_list("pk", flat=True)) == {rule.json()["id"], static.json()["id"]}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"cluster": 3, "kind": "rule"}, {"cluster": ["Run {run} has clusters 1 to 3, not 4."]}),
        ({"cluster": 0, "kind": "list"}, {"kind": ['"list" is not a valid choice.']}),
        ({"cluster": -1, "kind": "rule"}, {"cluster": ["Ensure this value is greater than or equal to 0."]}),
        ({"cluster": 0, "kind": "rule", "colour": "red"}, {"colour": ["Unknown field."]}),
        ({"kind": "rule"}, {"cluster": ["This field is required."]}),
    ],
)
def test_bad_segment_requests_are_400_naming_the_field_and_write_nothing(workspace, done, body, errors):
    client = _client(workspace)
    before = _counts(workspace)

    response = client.post(f"{BASE}runs/{done.pk}/segments/", body, content_type="application/json")

    assert response.status_code == 400
    expected = {key: [message.replace("{run}", str(done.pk)) for message in value] for key, value in errors.items()}
    assert response.json()["errors"] == expected
    assert _counts(workspace) == before


def test_a_taken_name_is_refused(workspace, done):
    client = _client(workspace)
    path = f"{BASE}runs/{done.pk}/segments/"
    assert (
        client.post(path, {"cluster": 0, "kind": "rule", "name": "Mine"}, content_type="application/json").status_code
        == 201
    )

    response = client.post(path, {"cluster": 1, "kind": "rule", "name": "Mine"}, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["A segment named 'Mine' already exists in this workspace."]}
    assert _counts(workspace)[1] == 1


def test_viewers_read_but_neither_run_nor_make_segments(workspace, done):
    client = _client(workspace, role="viewer")
    before = _counts(workspace)

    run = client.post(f"{BASE}run/")
    segment = client.post(
        f"{BASE}runs/{done.pk}/segments/", {"cluster": 0, "kind": "rule"}, content_type="application/json"
    )

    assert run.status_code == segment.status_code == 403
    assert run.json()["detail"] == "Your role in this workspace does not allow this change."
    assert _counts(workspace) == before
    assert client.get(f"{BASE}runs/{done.pk}/").status_code == 200


def test_another_workspaces_run_answers_404_like_a_missing_one(workspace, done):
    other = factories.WorkspaceFactory()
    client = _client(other)

    for path in (f"{BASE}runs/{done.pk}/", f"{BASE}runs/{done.pk + 1000}/"):
        assert client.get(path).json() == {"detail": "Not found.", "code": "not_found"}
    made = client.post(
        f"{BASE}runs/{done.pk}/segments/", {"cluster": 0, "kind": "rule"}, content_type="application/json"
    )
    assert made.status_code == 404
    assert client.get(BASE).status_code == 404  # its own latest: none, whatever this workspace has
    assert _counts(other) == (0, 0)
    assert _counts(workspace) == (1, 0)


def test_a_run_not_yet_done_has_no_clusters_to_make_segments_of(workspace):
    client = _client(workspace)
    with workspace_scope(workspace):
        run, _ = clustering_services.clustering_run_request(workspace=workspace, actor=None)

    response = client.post(
        f"{BASE}runs/{run.pk}/segments/", {"cluster": 0, "kind": "rule"}, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"cluster": ["This run has no clusters: it has not completed."]}
    assert _counts(workspace) == (1, 0)


def test_without_credentials_nothing_answers(workspace, done):
    client = Client()

    assert client.get(BASE).status_code == 401
    assert client.post(f"{BASE}run/").status_code == 401
    assert _counts(workspace) == (1, 0)
