"""The insights REST API (/api/v1/insights/): answers on the fixed datasets, every refusal naming its field
with nothing written, roles, and other workspaces' ids."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import workspace_scope
from insights.models import ComputedTraitSettings, RunStatus
from segmentation import services
from segmentation.models import Segment
from tests import factories
from tests.accounts.support import api
from tests.insights import test_funnels as fixed
from tests.insights.support import NOW, load, static_segment
from tests.segmentation.support import members

VIEW, ADD, ORDER = fixed.VIEW, fixed.ADD, fixed.ORDER
FUNNEL = {"steps": [{"event": VIEW}, {"event": ADD}, {"event": ORDER}], "within": "48h", "since": "30d"}


@pytest.fixture
def shop(db):
    """The funnel tests' people and events, moved to end now (the API evaluates at the real now)."""
    workspace, other = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    shift = timezone.now().replace(microsecond=0) - NOW
    events = [(who, name, at + shift, props) for who, name, at, props in fixed.EVENTS]
    people = load(workspace, fixed.PEOPLE, events)
    load(other, fixed.PEOPLE, events)
    return workspace, people, other


@pytest.fixture
def key(shop):
    return factories.api_key(shop[0])[1]


@pytest.fixture
def client():
    return Client()


def segments_of(workspace) -> list[tuple]:
    with workspace_scope(workspace):
        return list(Segment.objects.values_list("pk", "name", "definition"))


def test_funnel_answers_the_counts(shop, client, key):
    answer = api(client, "POST", reverse("insights-funnel"), FUNNEL, key=key)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert [
        (s["event"], s["count"], s["conversion"], s["conversion_from_previous"], s["median_seconds_from_previous"])
        for s in body["steps"]
    ] == [(VIEW, 6, 1.0, 1.0, None), (ADD, 4, 0.6667, 0.6667, 7200.0), (ORDER, 2, 0.3333, 0.5, 5400.0)]
    assert body["conversion"] == 0.3333
    assert body["breakdown"] is None


def test_funnel_defaults_and_breakdown(shop, client, key):
    body = {"steps": FUNNEL["steps"], "within": "48h", "breakdown": {"type": "trait", "key": "plan"}}
    answer = api(client, "POST", reverse("insights-funnel"), body, key=key)
    assert answer.status_code == 200, answer.content
    groups = answer.json()["breakdown"]
    assert [(g["kind"], g["value"], g["label"], [s["count"] for s in g["steps"]]) for g in groups] == [
        ("value", "Free", "Free", [2, 1, 1]),
        ("value", "Pro", "Pro", [2, 2, 1]),
        ("value", "5", "5", [1, 1, 0]),
        ("none", None, "(not set)", [1, 0, 0]),
    ]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"steps": [{"event": VIEW}]}, "steps"),
        ({**FUNNEL, "within": "soon"}, "within"),
        (
            {**FUNNEL, "steps": [{"event": VIEW}, {"event": ADD, "filters": [{"key": "x", "operator": "gt"}]}]},
            "steps[1].filters[0].value",
        ),
        ({**FUNNEL, "breakdown": {"type": "segment", "segments": []}}, "breakdown.segments"),
        ({**FUNNEL, "nope": 1}, "nope"),
    ],
)
def test_funnel_refusals_name_the_field(shop, client, key, body, path):
    answer = api(client, "POST", reverse("insights-funnel"), body, key=key)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"
    assert list(answer.json()["errors"]) == [path]


def test_a_body_that_is_not_an_object_is_400(shop, client, key):
    answer = api(client, "POST", reverse("insights-funnel"), [1, 2], key=key)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"


def test_another_workspaces_segment_in_a_breakdown_is_refused(shop, client, key):
    _, _, other = shop
    theirs = static_segment(other, "Theirs", [])
    body = {**FUNNEL, "breakdown": {"type": "segment", "segments": [theirs.pk]}}
    answer = api(client, "POST", reverse("insights-funnel"), body, key=key)
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"breakdown.segments": [f"segment {theirs.pk} does not exist in this workspace"]}


def test_dropoff_segment_is_created_and_holds_who_dropped_off(shop, client, key):
    workspace = shop[0]
    body = {**FUNNEL, "dropped_after": 2, "name": "Added, never ordered"}
    answer = api(client, "POST", reverse("insights-funnel-segment"), body, key=key)
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["definition"] == {
        "type": "sequence",
        "steps": FUNNEL["steps"],
        "within": "48h",
        "window": {"since": "30d"},
        "completed": False,
        "dropped_after": 2,
    }
    # The same segment as the segments API answers it.
    again = api(client, "GET", reverse("segment-detail", kwargs={"pk": created["id"]}), key=key)
    assert again.json() == created
    with workspace_scope(workspace):
        segment = Segment.objects.get(pk=created["id"])
        services.segment_refresh(segment=segment)
    # p2 and p7 added and never ordered; p6's first run stopped after adding.
    assert members(segment) == {"p2", "p6", "p7"}
    one = api(
        client,
        "POST",
        reverse("insights-funnel-segment"),
        {**FUNNEL, "dropped_after": 1, "name": "Viewed only"},
        key=key,
    )
    with workspace_scope(workspace):
        viewed = Segment.objects.get(pk=one.json()["id"])
        services.segment_refresh(segment=viewed)
    assert members(viewed) == {"p3"}  # p4's view of yesterday is within the 48 h still


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"dropped_after": 3, "name": "Drop"}, "dropped_after"),
        ({"dropped_after": 0, "name": "Drop"}, "dropped_after"),
        ({"dropped_after": "2", "name": "Drop"}, "dropped_after"),
        ({"dropped_after": 1, "name": ""}, "name"),
        ({"dropped_after": 1}, "name"),
        ({"dropped_after": 1, "name": "Drop", "steps": [{"event": VIEW}]}, "steps"),
    ],
)
def test_dropoff_segment_refusals_write_nothing(shop, client, key, extra, path):
    workspace = shop[0]
    before = segments_of(workspace)
    answer = api(client, "POST", reverse("insights-funnel-segment"), {**FUNNEL, **extra}, key=key)
    assert answer.status_code == 400, answer.content
    assert path in answer.json()["errors"]
    assert segments_of(workspace) == before


def test_a_taken_name_is_refused(shop, client, key):
    workspace = shop[0]
    with workspace_scope(workspace):
        services.segment_create(
            workspace=workspace, actor=None, name="Drop", definition={"type": "event", "event": VIEW}
        )
    before = segments_of(workspace)
    answer = api(
        client, "POST", reverse("insights-funnel-segment"), {**FUNNEL, "dropped_after": 1, "name": "Drop"}, key=key
    )
    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["name"]
    assert segments_of(workspace) == before


def test_viewers_compute_but_do_not_create(shop, client):
    workspace = shop[0]
    viewer = factories.member(workspace, role="viewer")
    _, secret = factories.api_key(workspace, creator=viewer)
    assert api(client, "POST", reverse("insights-funnel"), FUNNEL, key=secret).status_code == 200
    retention_body = {"start_event": VIEW, "return_event": ORDER}
    assert api(client, "POST", reverse("insights-retention"), retention_body, key=secret).status_code == 200
    before = segments_of(workspace)
    refused = api(
        client, "POST", reverse("insights-funnel-segment"), {**FUNNEL, "dropped_after": 1, "name": "x"}, key=secret
    )
    assert refused.status_code == 403
    assert segments_of(workspace) == before
    assert (
        api(client, "PATCH", reverse("insights-computed-traits"), {"rfm_event": "Buy"}, key=secret).status_code == 403
    )
    assert api(client, "POST", reverse("insights-computed-traits-refresh"), key=secret).status_code == 403


def test_no_key_no_answer(shop, client):
    assert api(client, "POST", reverse("insights-funnel"), FUNNEL).status_code == 401


def test_retention_and_a_cell_as_a_segment(shop, client, key):
    workspace = shop[0]
    body = {"start_event": VIEW, "return_event": ADD, "period": "day", "periods": 12}
    answer = api(client, "POST", reverse("insights-retention"), body, key=key)
    assert answer.status_code == 200, answer.content
    cohorts = answer.json()["cohorts"]
    assert len(cohorts) == 12
    assert [len(c["returned"]) for c in cohorts] == list(range(12, 0, -1))
    assert sum(c["size"] for c in cohorts) == 4  # first views in the last 12 days: p1 p2 p3 p7
    with_people = [c for c in cohorts if c["size"]]
    cohort = with_people[0]
    made = api(
        client,
        "POST",
        reverse("insights-retention-segment"),
        {**body, "cohort_start": cohort["start"], "offset": 0, "name": "Viewed and added the same day"},
        key=key,
    )
    assert made.status_code == 201, made.content
    with workspace_scope(workspace):
        segment = Segment.objects.get(pk=made.json()["id"])
        services.segment_refresh(segment=segment)
        assert segment.size == cohort["returned"][0]
    refused = api(
        client,
        "POST",
        reverse("insights-retention-segment"),
        {**body, "cohort_start": "1999-01-01", "offset": 0, "name": "Old"},
        key=key,
    )
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["cohort_start"]


def test_a_computed_traits_patch_without_a_body_is_refused_and_changes_nothing(shop, client, key):
    url = reverse("insights-computed-traits")
    before = api(client, "GET", url, key=key).json()

    refused = api(client, "PATCH", url, key=key)

    assert refused.status_code == 400
    assert "needs a JSON object body" in refused.json()["detail"]
    assert api(client, "GET", url, key=key).json() == before


def test_computed_traits_settings_read_change_and_refresh(shop, client, key, django_capture_on_commit_callbacks):
    workspace = shop[0]
    answer = api(client, "GET", reverse("insights-computed-traits"), key=key)
    assert answer.status_code == 200
    assert answer.json()["rfm_event"] == "Order Completed"
    changed = api(
        client,
        "PATCH",
        reverse("insights-computed-traits"),
        {"rfm_event": "Checkout", "engagement_weights": {"Login": 2}, "engagement_half_life_days": 30},
        key=key,
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["rfm_event"], changed.json()["engagement_weights"]) == ("Checkout", {"Login": 2.0})
    with workspace_scope(workspace):
        row = ComputedTraitSettings.objects.get(workspace=workspace)
    assert row.settings_changed_at is not None
    refused = api(client, "PATCH", reverse("insights-computed-traits"), {"engagement_half_life_days": 0}, key=key)
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["engagement_half_life_days"]
    refused = api(client, "PATCH", reverse("insights-computed-traits"), {"engagement_weights": {"Login": -1}}, key=key)
    assert refused.status_code == 400
    with workspace_scope(workspace):
        assert ComputedTraitSettings.objects.get(workspace=workspace).engagement_half_life_days == 30
    with django_capture_on_commit_callbacks() as callbacks:
        queued = api(client, "POST", reverse("insights-computed-traits-refresh"), key=key)
    assert queued.status_code == 202
    assert len(callbacks) == 1
    with workspace_scope(workspace):
        assert ComputedTraitSettings.objects.get(workspace=workspace).status == RunStatus.QUEUED
