"""The public endpoints a website calls: /sdk/cohortly.js and /v1/config."""

from __future__ import annotations

import json

import pytest

from accounts.tenancy import workspace_scope
from tests import factories
from tracking import services


@pytest.fixture
def triggers(workspace):
    with workspace_scope(workspace):
        services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#product-image")
        services.trigger_create(workspace=workspace, actor=None, kind="scroll")
        services.trigger_create(workspace=workspace, actor=None, kind="engaged_time", thresholds=[30, 180])
        services.trigger_create(
            workspace=workspace, actor=None, kind="click", selector=".paused", event_name="Paused", enabled=False
        )


def test_config_lists_the_enabled_triggers_of_the_write_keys_workspace(client, workspace, triggers):
    other = factories.WorkspaceFactory()
    with workspace_scope(other):
        services.trigger_create(workspace=other, actor=None, kind="click", selector="#theirs")

    response = client.get("/v1/config", {"writeKey": workspace.write_key}, HTTP_ORIGIN="https://shop.example")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=300"
    assert json.loads(response.content) == {
        "triggers": [
            {"kind": "click", "event": "Product Image Clicked", "selector": "#product-image"},
            {"kind": "engaged_time", "event": "Page Engaged", "thresholds": [30, 180]},
            {"kind": "scroll", "event": "Page Scrolled", "thresholds": [25, 50, 75, 100]},
        ],
        "ttl": 300,
    }


def test_config_answers_304_to_its_etag_and_changes_etag_with_the_triggers(client, workspace, triggers):
    first = client.get("/v1/config", {"writeKey": workspace.write_key})
    again = client.get("/v1/config", {"writeKey": workspace.write_key}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]

    with workspace_scope(workspace):
        services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#new")
    changed = client.get("/v1/config", {"writeKey": workspace.write_key}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200
    assert changed["ETag"] != first["ETag"]


def test_config_of_a_workspace_without_triggers_is_empty(client, workspace):
    response = client.get("/v1/config", {"writeKey": workspace.write_key})
    assert json.loads(response.content) == {"triggers": [], "ttl": 300}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"writeKey": "cly_wk_nope"}, "Unknown write key."),
        ({"writeKey": "cly_sk_secret"}, "Unknown write key."),
        ({}, "Missing writeKey query parameter."),
    ],
)
def test_config_refuses_unknown_or_missing_write_keys_with_401_json(client, workspace, params, detail):
    response = client.get("/v1/config", params)
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == "*"
    assert json.loads(response.content) == {"detail": detail, "code": "invalid_write_key"}


def test_config_refuses_a_secret_api_key(client, workspace):
    _, secret = factories.api_key(workspace)
    response = client.get("/v1/config", {"writeKey": secret})
    assert response.status_code == 401


def test_config_answers_a_cors_preflight_and_refuses_writes(client, workspace):
    preflight = client.options(
        "/v1/config",
        HTTP_ORIGIN="https://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert preflight["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert preflight["Access-Control-Allow-Headers"] == "content-type"

    post = client.post("/v1/config", {"writeKey": workspace.write_key})
    assert post.status_code == 405
    assert json.loads(post.content) == {"detail": "Method not allowed.", "code": "method_not_allowed"}


def test_signed_in_session_does_not_choose_the_config_workspace(client, workspace, owner, triggers):
    """The write key decides, even for a visitor signed in to another workspace."""
    other = factories.WorkspaceFactory()
    client.force_login(factories.member(other, role="owner"))
    response = client.get("/v1/config", {"writeKey": other.write_key})
    assert json.loads(response.content)["triggers"] == []
