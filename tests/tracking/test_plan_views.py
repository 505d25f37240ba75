"""Settings -> Data: the tracking plan edited on the page, imported and exported as JSON."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking import builders
from tests.tracking.builders import NOW
from tests.tracking.conftest import basic_auth
from tracking import plan, plan_services
from tracking.models import TrackingPlan

HTMX = {"HTTP_HX_REQUEST": "true"}
PAGE = "/settings/data/"
PLAN = {
    "events": {
        "Order Completed": {
            "properties": {"revenue": {"type": "number", "required": True}, "coupon": {"type": "string"}}
        },
        "Signed Up": {"quarantine_violations": True},
    }
}


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def _save(workspace, document=PLAN) -> None:
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(workspace=workspace, actor=None, document=plan.parse(document))


def _stored(workspace) -> tuple[int, dict] | None:
    with workspace_scope(workspace):
        row = TrackingPlan.objects.filter(workspace=workspace).first()
        return (row.version, row.document) if row else None


def _document(workspace) -> dict:
    stored = _stored(workspace)
    assert stored is not None
    return stored[1]


def test_the_data_tab_shows_an_empty_plan_with_its_forms(signed_in):
    response = signed_in.get(PAGE)
    html = response.content.decode()

    assert response.status_code == 200
    assert '<a href="/settings/data/" aria-current="page">Data</a>' in html
    assert "No plan yet: nothing is checked." in html
    assert 'action="/settings/data/events/add/"' in html
    assert 'action="/settings/data/import/"' in html


def test_adding_an_event_saves_it_and_goes_to_its_card(signed_in, workspace):
    response = signed_in.post(
        "/settings/data/events/add/",
        {"name": "Order Completed", "description": "A customer paid.", "quarantine_violations": "on"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/settings/data/#event-1"
    assert _document(workspace)["events"] == {
        "Order Completed": {"description": "A customer paid.", "quarantine_violations": True, "properties": {}}
    }
    page = signed_in.get(PAGE).content.decode()
    assert "“Order Completed” added to the plan." in page
    assert '<h2 id="event-1-name" class="plan-name">Order Completed</h2>' in page


def test_an_event_added_with_its_seen_properties_takes_their_usual_types(signed_in, workspace):
    ada = builders.person(workspace, user_id="ada")
    builders.event(workspace, ada, "Order Completed", properties={"revenue": 12.5, "coupon": "X", "items": [1]})
    builders.event(
        workspace, ada, "Order Completed", at=NOW - timedelta(hours=1), properties={"revenue": "9", "coupon": None}
    )
    builders.event(workspace, ada, "Order Completed", at=NOW - timedelta(minutes=5), properties={"revenue": 3})

    signed_in.post("/settings/data/events/add/", {"name": "Order Completed", "with_seen_properties": "on"})

    assert _document(workspace)["events"]["Order Completed"]["properties"] == {
        "revenue": {"type": "number", "required": False, "description": ""},
        "coupon": {"type": "string", "required": False, "description": ""},
        "items": {"type": "list", "required": False, "description": ""},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Order Completed"}, "“Order Completed” is already in the plan."),
        (
            {"name": "$pageview"},
            "$pageview is where page and screen calls are stored; the plan checks track calls only.",
        ),
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_a_refused_event_is_shown_inline_and_nothing_changes(signed_in, workspace, data, message):
    _save(workspace)
    before = _stored(workspace)

    response = signed_in.post("/settings/data/events/add/", data)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<div class="field has-error">' in html
    assert message.replace("“", "&ldquo;") in html or message in html
    assert _stored(workspace) == before


def test_properties_are_added_changed_and_removed_through_htmx(signed_in, workspace):
    _save(workspace)

    added = signed_in.post(
        "/settings/data/properties/add/",
        {"event": "Order Completed", "name": "items", "type": "list", "required": "on"},
        **HTMX,
    )
    assert added.status_code == 200
    html = added.content.decode()
    assert 'id="plan"' in html
    assert "Property “items” added to “Order Completed”." in html
    assert _document(workspace)["events"]["Order Completed"]["properties"]["items"] == {
        "type": "list",
        "required": True,
        "description": "",
    }

    changed = signed_in.post(
        "/settings/data/properties/change/", {"event": "Order Completed", "name": "revenue", "type": "string"}, **HTMX
    )
    assert "“revenue” of “Order Completed”: string, optional." in changed.content.decode()
    assert _document(workspace)["events"]["Order Completed"]["properties"]["revenue"]["type"] == "string"
    assert _document(workspace)["events"]["Order Completed"]["properties"]["revenue"]["required"] is False

    removed = signed_in.post(
        "/settings/data/properties/remove/", {"event": "Order Completed", "name": "coupon"}, **HTMX
    )
    assert "Property “coupon” removed from “Order Completed”." in removed.content.decode()
    assert set(_document(workspace)["events"]["Order Completed"]["properties"]) == {"items", "revenue"}
    assert _stored(workspace)[0] == 4


def test_a_property_that_is_already_planned_is_refused_on_its_card(signed_in, workspace):
    _save(workspace)
    before = _stored(workspace)

    response = signed_in.post(
        "/settings/data/properties/add/", {"event": "Order Completed", "name": "revenue", "type": "list"}, **HTMX
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "“revenue” is already a property of this event: change it in the list." in html
    assert '<input type="text" name="name" value="revenue"' in html, "what was typed stays"
    assert _stored(workspace) == before


def test_a_change_to_an_event_no_longer_planned_is_refused(signed_in, workspace):
    _save(workspace)
    before = _stored(workspace)

    response = signed_in.post("/settings/data/properties/remove/", {"event": "Gone", "name": "x"}, **HTMX)

    assert "“Gone” is not in the plan (any more): reload the page." in response.content.decode()
    assert _stored(workspace) == before


def test_an_event_is_edited_and_removed(signed_in, workspace):
    _save(workspace)

    signed_in.post(
        "/settings/data/events/update/",
        {"event": "Order Completed", "description": "Paid", "quarantine_violations": "on"},
    )
    assert _document(workspace)["events"]["Order Completed"]["quarantine_violations"] is True
    assert _document(workspace)["events"]["Order Completed"]["description"] == "Paid"

    response = signed_in.post("/settings/data/events/remove/", {"event": "Signed Up"})
    assert response.status_code == 302
    assert set(_document(workspace)["events"]) == {"Order Completed"}


def test_blocking_unplanned_events_is_a_switch(signed_in, workspace):
    _save(workspace)

    signed_in.post("/settings/data/settings/", {"block_unplanned_events": "on"})
    assert _document(workspace)["block_unplanned_events"] is True
    signed_in.post("/settings/data/settings/", {})
    assert _document(workspace)["block_unplanned_events"] is False


def test_a_pasted_plan_replaces_the_plan(signed_in, workspace):
    _save(workspace)

    response = signed_in.post(
        "/settings/data/import/",
        {"text": json.dumps({"events": {"Cart Viewed": {"properties": {"sku": {"type": "string"}}}}})},
    )

    assert response.status_code == 302
    assert _document(workspace)["events"] == {
        "Cart Viewed": {
            "description": "",
            "quarantine_violations": False,
            "properties": {"sku": {"type": "string", "required": False, "description": ""}},
        }
    }


def test_an_uploaded_file_replaces_the_plan(signed_in, workspace):
    upload = SimpleUploadedFile("plan.json", json.dumps(PLAN).encode("utf-8-sig"), content_type="application/json")

    response = signed_in.post("/settings/data/import/", {"file": upload})

    assert response.status_code == 302
    assert set(_document(workspace)["events"]) == {"Order Completed", "Signed Up"}


@pytest.mark.parametrize(
    ("data", "messages"),
    [
        (
            {"text": json.dumps({"events": {"A": {"properties": {"p": {"type": "int"}}}, "B": []}})},
            [
                "events[&quot;A&quot;].properties[&quot;p&quot;].type: "
                "One of string, number, boolean, object, list, not &quot;int&quot;.",
                "events[&quot;B&quot;]: Must be an object, not list.",
            ],
        ),
        ({"text": "{'events': {}}"}, ["Not valid JSON: "]),
        ({"text": ""}, ["Choose a JSON file or paste the plan."]),
        ({"file": SimpleUploadedFile("plan.json", b"\xff\xfe{}"), "text": ""}, ["The file is not UTF-8 text."]),
        (
            {"file": SimpleUploadedFile("plan.json", b"{}"), "text": "{}"},
            ["Choose a file or paste the JSON, not both."],
        ),
    ],
)
def test_a_refused_import_lists_each_problem_and_changes_nothing(signed_in, workspace, data, messages):
    _save(workspace)
    before = _stored(workspace)

    response = signed_in.post("/settings/data/import/", data)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Nothing was imported" in html
    for message in messages:
        assert message in html
    assert _stored(workspace) == before


def test_the_export_is_what_the_import_takes(signed_in, workspace):
    _save(workspace)

    response = signed_in.get("/settings/data/tracking-plan.json")

    assert response["Content-Disposition"] == 'attachment; filename="tracking-plan.json"'
    exported = json.loads(response.content)
    assert exported == _document(workspace)
    assert plan.parse(exported) == plan.parse(PLAN)


def test_counts_and_examples_are_shown_escaped(signed_in, client, workspace):
    _save(workspace)
    client.post(
        "/v1/track",
        json.dumps({"userId": "u-1", "event": "Order Completed", "properties": {"revenue": "<b>12</b>", "note": "x"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )
    client.post(
        "/v1/track",
        json.dumps({"userId": "u-1", "event": "Prodcut Viewed"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )

    html = signed_in.get(PAGE).content.decode()

    assert '<a class="badge warn" href="#event-1-violations">2 violations</a>' in html
    assert "property “revenue” should be a number, not a string" in html
    assert "&lt;b&gt;12&lt;/b&gt;" in html
    assert "<b>12</b>" not in html
    assert '<td class="primary plan-name">Prodcut Viewed</td>' in html, "an unplanned event, with Add to plan"


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_other_roles_read_the_plan_and_cannot_change_it(client, workspace, role):
    _save(workspace)
    before = _stored(workspace)
    client.force_login(factories.member(workspace, role=role))

    html = client.get(PAGE).content.decode()
    assert "Order Completed" in html
    assert 'action="/settings/data/events/add/"' not in html
    for url, data in [
        ("/settings/data/events/add/", {"name": "X"}),
        ("/settings/data/events/remove/", {"event": "Signed Up"}),
        ("/settings/data/properties/add/", {"event": "Signed Up", "name": "p", "type": "string"}),
        ("/settings/data/properties/remove/", {"event": "Order Completed", "name": "coupon"}),
        ("/settings/data/settings/", {"block_unplanned_events": "on"}),
        ("/settings/data/import/", {"text": '{"events": {}}'}),
    ]:
        assert client.post(url, data).status_code == 403, url
    assert _stored(workspace) == before


def test_another_workspaces_plan_is_not_shown_nor_changed(signed_in, workspace):
    other = factories.WorkspaceFactory()
    _save(other, {"events": {"Their Secret Event": {}}})
    before = _stored(other)

    page = signed_in.get(PAGE).content.decode()
    removed = signed_in.post("/settings/data/events/remove/", {"event": "Their Secret Event"})

    assert "Their Secret Event" not in page
    assert "“Their Secret Event” is not in the plan (any more)" in removed.content.decode()
    assert _stored(other) == before
    exported = json.loads(signed_in.get("/settings/data/tracking-plan.json").content)
    assert exported == {"block_unplanned_events": False, "events": {}}


def test_the_quarantine_lists_calls_the_plan_kept_out(signed_in, client, workspace):
    _save(workspace)
    client.post(
        "/v1/track",
        json.dumps({"userId": "u-1", "event": "Signed Up", "properties": {"x": 1}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )

    html = signed_in.get("/events/quarantine/?kind=plan").content.decode()

    assert '<a href="/events/quarantine/?kind=plan" aria-current="page">Blocked by the plan</a>' in html
    assert "Tracking plan: property “x” is not in the plan" in html
    api = signed_in.get("/api/v1/quarantine/?kind=plan").json()
    assert [item["reason"] for item in api["results"]] == ["Tracking plan: property “x” is not in the plan"]
