"""GET/PUT /api/v1/tracking-plan/ (docs/tracking-plan.md)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from tests import factories
from tracking import plan
from tracking.models import TrackingPlan
from tracking.plan_api import EVENTS_SCHEMA, MAX_VERSION

URL = "/api/v1/tracking-plan/"
PLAN = {
    "block_unplanned_events": True,
    "events": {
        "Order Completed": {
            "description": "A customer paid.",
            "quarantine_violations": True,
            "properties": {"revenue": {"type": "number", "required": True}, "coupon": {"type": "string"}},
        },
        "Signed Up": {},
    },
}
WRITTEN = {
    "block_unplanned_events": True,
    "events": {
        "Order Completed": {
            "description": "A customer paid.",
            "quarantine_violations": True,
            "properties": {
                "coupon": {"type": "string", "required": False, "description": ""},
                "revenue": {"type": "number", "required": True, "description": ""},
            },
        },
        "Signed Up": {"description": "", "quarantine_violations": False, "properties": {}},
    },
}


def _client(workspace, role: str = "owner") -> APIClient:
    creator = factories.member(workspace, role=role)
    _, secret = factories.api_key(workspace, creator=creator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api(workspace):
    return _client(workspace)


def _stored(workspace) -> tuple[int, dict] | None:
    with workspace_scope(workspace):
        row = TrackingPlan.objects.filter(workspace=workspace).first()
        return (row.version, row.document) if row else None


def _audits(workspace) -> int:
    with workspace_scope(workspace):
        return AuditLogEntry.objects.filter(action="tracking_plan.changed").count()


def test_a_workspace_without_a_plan_answers_an_empty_one(api):
    response = api.get(URL)

    assert response.status_code == 200
    assert response.json() == {"version": 0, "updated_at": None, "block_unplanned_events": False, "events": {}}


def test_put_replaces_the_plan_and_get_answers_it(api, workspace):
    response = api.put(URL, PLAN, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert body["updated_at"] is not None
    assert {key: body[key] for key in ("block_unplanned_events", "events")} == WRITTEN
    assert api.get(URL).json() == body
    assert _stored(workspace) == (1, WRITTEN)
    with workspace_scope(workspace):
        entry = AuditLogEntry.objects.get(action="tracking_plan.changed")
    assert entry.target == "replaced through the API"
    assert entry.details["version"] == 1
    assert entry.details["changed_events"] == ["Order Completed", "Signed Up"]


def test_what_get_answers_can_be_put_back_with_its_version(api, workspace):
    first = api.put(URL, PLAN, format="json").json()
    changed = {**first, "block_unplanned_events": False}
    changed.pop("updated_at")

    response = api.put(URL, changed, format="json")

    assert response.status_code == 200
    assert (response.json()["version"], response.json()["block_unplanned_events"]) == (2, False)


def test_putting_the_same_plan_again_changes_nothing(api, workspace):
    api.put(URL, PLAN, format="json")

    response = api.put(URL, PLAN, format="json")

    assert response.json()["version"] == 1
    assert _audits(workspace) == 1


def test_a_stale_version_is_a_conflict_and_nothing_changes(api, workspace):
    api.put(URL, PLAN, format="json")
    api.put(URL, {"events": {}}, format="json")

    response = api.put(URL, {**PLAN, "version": 1}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The plan is at version 2 now, not 1: someone saved it since you read it. "
        "Read it again and apply your change to that.",
        "code": "conflict",
    }
    assert _stored(workspace) == (2, {"block_unplanned_events": False, "events": {}})
    assert _audits(workspace) == 2


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"events": {"A": {"properties": {"p": {"type": "int"}}}}},
            {'events["A"].properties["p"].type': ['One of string, number, boolean, object, list, not "int".']},
        ),
        (
            {"events": {}, "block_unplanned_events": 1},
            {"block_unplanned_events": ["Must be true or false, not number."]},
        ),
        (
            {"events": {}, "extra": True},
            {"extra": ["Unknown field; one of block_unplanned_events, events is expected."]},
        ),
        (
            {"block_unplanned_events": True},
            {"events": ["Required: an object of events by name ({} for an empty plan)."]},
        ),
        (
            {"events": {}, "version": True},
            {"version": [f"A whole number from 0 to {MAX_VERSION}: the version you read."]},
        ),
        (
            {"events": {}, "version": -1},
            {"version": [f"A whole number from 0 to {MAX_VERSION}: the version you read."]},
        ),
        (["not", "an", "object"], {"": ["The body must be a JSON object: the plan."]}),
    ],
)
def test_an_invalid_plan_is_refused_naming_the_path_and_nothing_changes(api, workspace, body, errors):
    api.put(URL, PLAN, format="json")

    response = api.put(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == errors
    assert _stored(workspace) == (1, WRITTEN)
    assert _audits(workspace) == 1


def test_only_owners_and_admins_change_the_plan_every_member_reads_it(workspace):
    _client(workspace, "owner").put(URL, PLAN, format="json")

    for role in ("member", "viewer"):
        client = _client(workspace, role)
        assert client.get(URL).json()["events"].keys() == {"Order Completed", "Signed Up"}
        refused = client.put(URL, {"events": {}}, format="json")
        assert refused.status_code == 403
    assert _client(workspace, "admin").put(URL, {"events": {}}, format="json").status_code == 200
    assert _stored(workspace) == (2, {"block_unplanned_events": False, "events": {}})


def test_another_workspaces_plan_is_neither_read_nor_changed(workspace, api):
    other = factories.WorkspaceFactory()
    api.put(URL, PLAN, format="json")
    theirs = _client(other)

    assert theirs.get(URL).json()["events"] == {}
    assert theirs.put(URL, {"events": {"Theirs": {}}}, format="json").status_code == 200
    assert _stored(workspace) == (1, WRITTEN)


def test_the_signed_in_ui_may_use_it_with_its_session_and_csrf(workspace, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    refused = client.put(URL, PLAN, content_type="application/json")
    assert refused.status_code == 403
    assert _stored(workspace) is None


def test_the_schema_states_the_parsers_bounds(workspace):
    schema = Client().get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    events = components["TrackingPlanEvents"]
    event = events["additionalProperties"]
    prop = event["properties"]["properties"]["additionalProperties"]

    assert events == EVENTS_SCHEMA
    assert events["maxProperties"] == plan.MAX_EVENTS
    assert set(events["properties"]) == {"", *plan.UNCHECKED_EVENTS}, "names refused"
    assert event["properties"]["properties"]["maxProperties"] == plan.MAX_PROPERTIES
    assert event["properties"]["description"]["maxLength"] == plan.MAX_DESCRIPTION_LENGTH
    assert prop["properties"]["type"]["enum"] == list(plan.PROPERTY_TYPES)
    assert prop["required"] == ["type"]
    assert components["TrackingPlanUpdate"]["additionalProperties"] is False
    assert components["TrackingPlanUpdate"]["required"] == ["events"]
    assert "409" in schema["paths"][URL]["put"]["responses"]
    # and the parser takes what the schema allows at each bound, and refuses one past it
    biggest = {
        "events": {
            f"E{i}": {
                "description": "d" * plan.MAX_DESCRIPTION_LENGTH,
                "properties": {f"p{j}": {"type": "list"} for j in range(plan.MAX_PROPERTIES if i == 0 else 1)},
            }
            for i in range(plan.MAX_EVENTS)
        }
    }
    assert len(plan.parse(biggest).events) == plan.MAX_EVENTS
    long_name = {"events": {"x" * 500: {"properties": {"y" * 500: {"type": "string"}}}}}
    assert plan.parse(long_name).events[0].name == "x" * 500, "no length is stated for names: none is refused"
