"""config.schema: the error answers of every operation, the pagination parameters, the tracking API."""

from __future__ import annotations

import pytest
from django.test import Client

ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def schema(db):
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations(schema, prefix="/api/v1/"):
    for path, item in schema["paths"].items():
        if path.startswith(prefix):
            for method, operation in item.items():
                yield path, method, operation


def test_every_rest_operation_documents_its_error_answers_with_the_one_error_shape(schema):
    seen = 0
    for path, method, operation in _operations(schema):
        seen += 1
        responses = operation["responses"]
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        expected = {"401", "403", "429"}
        if "requestBody" in operation:
            expected |= {"400", "415"}
        if "query" in locations:
            expected.add("400")
        if "{id}" in path:
            expected.add("404")
        assert expected <= set(responses), (method, path, sorted(responses))
        for code, response in responses.items():
            if code[0] in "45":
                assert response["content"]["application/json"]["schema"] == ERROR, (method, path, code)
    assert seen >= 30


def test_the_error_component_is_detail_code_and_errors(schema):
    error = schema["components"]["schemas"]["Error"]

    assert error["required"] == ["code", "detail"]
    assert set(error["properties"]) == {"detail", "code", "errors"}
    assert error["properties"]["errors"]["additionalProperties"]["items"]["type"] == "string"


def test_request_bodies_say_what_is_refused(schema):
    components = schema["components"]["schemas"]
    create = components["SegmentCreate"]
    update = components["SegmentUpdate"]

    assert create["additionalProperties"] is False, "unknown fields are refused"
    assert create["properties"]["name"]["minLength"] == 1
    assert create["properties"]["name"]["pattern"] == r"\S", "white space only is blank"
    assert "static" not in update["properties"], "a segment cannot change between static and dynamic"
    assert "required" not in update, "PATCH takes any of the fields"
    assert components["MemberUpdate"]["required"] == ["role"]


def test_page_numbers_and_sizes_are_documented_with_their_bounds(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/segments/"]["get"]["parameters"]}
    cursor = {p["name"]: p for p in schema["paths"]["/api/v1/events/"]["get"]["parameters"]}

    assert parameters["page"]["schema"] == {"type": "integer", "minimum": 1}
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert cursor["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert "404" in schema["paths"]["/api/v1/segments/"]["get"]["responses"], "a page past the last one"


def test_who_created_a_key_or_sent_an_invitation_may_be_null(schema, workspace):
    from accounts.api import ApiKeySerializer, InvitationSerializer
    from accounts.models import ApiKey, Invitation

    components = schema["components"]["schemas"]
    key = ApiKey(workspace=workspace, name="orphan", created_by=None)
    invitation = Invitation(workspace=workspace, email="new@example.com", role="member", invited_by=None)

    assert ApiKeySerializer(key).data["created_by"] is None
    assert InvitationSerializer(invitation).data["invited_by"] is None
    assert components["ApiKey"]["properties"]["created_by"]["nullable"] is True
    assert components["Invitation"]["properties"]["invited_by"]["nullable"] is True


def test_the_tracking_api_is_documented_with_write_key_auth(schema):
    kinds = ["batch", "track", "identify", "page", "screen", "group", "alias"]

    assert [path for path in schema["paths"] if path.startswith("/v1/")] == [f"/v1/{kind}" for kind in kinds]
    assert schema["components"]["securitySchemes"]["writeKey"]["scheme"] == "basic"
    for kind in kinds:
        operation = schema["paths"][f"/v1/{kind}"]["post"]
        assert operation["security"] == [{"writeKey": []}]
        assert {"200", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])
        assert "application/json" in operation["requestBody"]["content"]
    batch = schema["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["batch"]["maxItems"] == 2500


def test_nothing_is_documented_that_is_not_built(schema):
    assert not [path for path in schema["paths"] if "{format}" in path]


def test_the_campaigns_api_is_documented(schema):
    paths = set(schema["paths"])

    assert {
        "/api/v1/campaigns/",
        "/api/v1/campaigns/{id}/",
        "/api/v1/campaigns/{id}/launch/",
        "/api/v1/campaigns/{id}/pause/",
        "/api/v1/campaigns/{id}/results/",
        "/api/v1/frequency-caps/",
    } <= paths
