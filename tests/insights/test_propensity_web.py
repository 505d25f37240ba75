"""/api/v1/insights/propensity/ and /insights/propensity/: shapes, strict refusals that write nothing,
roles, another workspace's runs, the page's figures and its "not enough data" explanation."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.tenancy import workspace_scope
from insights import propensity_services, tasks
from insights.models import PropensityRun
from tests import factories
from tests.insights.propensity_data import propensity_people
from tracking.models import Person

pytestmark = pytest.mark.django_db

BASE = "/api/v1/insights/propensity/"
PAGE = "/insights/propensity/"


def _api(workspace, role: str = "owner") -> Client:
    creator = factories.member(workspace, role=role)
    _, secret = factories.api_key(workspace, creator=creator)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def _web(workspace, role: str = "member") -> Client:
    client = Client()
    client.force_login(factories.member(workspace, role=role))
    return client


def _run(workspace, target: str = "purchase") -> PropensityRun:
    with workspace_scope(workspace):
        run, _ = propensity_services.propensity_run_request(
            workspace=workspace, actor=None, target=target, horizon_days=30
        )
        return propensity_services.propensity_run_execute(run=run)


def _count(workspace) -> int:
    with workspace_scope(workspace):
        return PropensityRun.objects.count()


def test_before_any_run_each_target_is_null(workspace):
    response = _api(workspace, role="viewer").get(BASE)

    assert response.status_code == 200
    assert response.json() == {"purchase": None, "churn": None}


def test_run_answers_202_queues_once_and_a_second_request_joins(workspace, django_capture_on_commit_callbacks):
    client = _api(workspace, role="member")

    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = client.post(f"{BASE}run/", {"target": "churn", "horizon_days": 14}, content_type="application/json")
        second = client.post(f"{BASE}run/", {"target": "churn"}, content_type="application/json")

    assert first.status_code == second.status_code == 202
    assert first.json() == {
        "id": first.json()["id"],
        "target": "churn",
        "horizon_days": 14,
        "status": "queued",
        "progress": 0,
        "stage": "Waiting for a worker",
        "created": True,
    }
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["created"] is False
    assert len(queued) == 1
    latest = client.get(BASE).json()
    assert latest["purchase"] is None
    assert latest["churn"]["status"] == "queued"
    assert latest["churn"]["trait"] == "$churn_propensity"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"target": ["This field is required."]}),
        ({"target": "upsell"}, {"target": ['"upsell" is not a valid choice.']}),
        (
            {"target": "purchase", "horizon_days": 6},
            {"horizon_days": ["Ensure this value is greater than or equal to 7."]},
        ),
        (
            {"target": "purchase", "horizon_days": 91},
            {"horizon_days": ["Ensure this value is less than or equal to 90."]},
        ),
        ({"target": "purchase", "horizon_days": "30"}, {"horizon_days": ["Expected a whole number of days, got str."]}),
        (
            {"target": "purchase", "horizon_days": 30.0},
            {"horizon_days": ["Expected a whole number of days, got float."]},
        ),
        ({"target": "purchase", "horizon_days": True}, {"horizon_days": ["Expected a number, got a boolean."]}),
        ({"target": "purchase", "seed": 3}, {"seed": ["Unknown field."]}),
        ({"target": 1}, {"target": ["Expected a string, got int."]}),
    ],
)
def test_bad_run_requests_are_400_naming_the_field_and_write_nothing(
    workspace, body, errors, django_capture_on_commit_callbacks
):
    client = _api(workspace, role="member")

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"{BASE}run/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == errors
    assert _count(workspace) == 0
    assert queued == []


def test_viewers_cannot_run_and_another_workspace_s_run_is_a_404(workspace):
    other = factories.WorkspaceFactory()
    theirs = _run(other)

    refused = _api(workspace, role="viewer").post(
        f"{BASE}run/", {"target": "purchase"}, content_type="application/json"
    )
    missing = _api(workspace).get(f"{BASE}runs/{theirs.pk}/")

    assert refused.status_code == 403
    assert _count(workspace) == 0
    assert missing.status_code == 404
    assert _api(other).get(f"{BASE}runs/{theirs.pk}/").json()["id"] == theirs.pk


def test_a_scored_run_in_the_api_the_page_the_pickers_and_the_person_page(workspace):
    propensity_people(workspace)
    run = _run(workspace)
    tasks.catalogue_recount_task(workspace.pk)

    body = _api(workspace, role="viewer").get(BASE).json()["purchase"]
    page = _web(workspace, role="viewer").get(PAGE)
    member = _web(workspace)
    picker = member.get(reverse("segment_catalogue"), {"kind": "keys", "source": "trait", "q": "$purchase"})
    with workspace_scope(workspace):
        person = Person.objects.order_by("pk").first()
    person_page = member.get(reverse("person_detail", args=[person.pk]))

    assert body["id"] == run.pk
    assert body["verdict"] == "scored"
    assert body["auc"] == run.auc > 0.8
    assert body["validation"]["sample_size"] == 600
    assert len(body["groups"]) == 10
    assert body["scored"] == 600
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{run.auc:.2f}" in html
    assert "Written on 600 people" in html
    assert "<svg" in html
    assert "Train again" not in html
    assert "$purchase_propensity" in {item["value"] for item in picker.json()["results"]}
    assert "$purchase_propensity" in person_page.content.decode()


def test_the_page_explains_the_threshold_when_data_is_short(workspace, django_capture_on_commit_callbacks):
    propensity_people(workspace, people=100)
    _run(workspace)
    client = _web(workspace)

    page = client.get(PAGE)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        started = client.post(f"{PAGE}run/", {"target": "churn", "horizon_days": "30"})
        refused = client.post(f"{PAGE}run/", {"target": "churn", "horizon_days": "500"})

    html = page.content.decode()
    assert "Not enough data: the training window has 100 people with events before it" in html
    assert "at least 500 people with events, at least 50 who did it and 50 who did not" in html
    assert "No churn model yet." in html
    assert started.status_code == refused.status_code == 302
    assert len(queued) == 1
    assert _count(workspace) == 2
    polled = client.get(PAGE, headers={"HX-Request": "true", "HX-Target": "propensity-progress"})
    assert "Training in progress" in polled.content.decode()
