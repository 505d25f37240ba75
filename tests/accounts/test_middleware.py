"""accounts.middleware: each request runs inside its workspace's scope, reset afterwards."""

from __future__ import annotations

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import include, path

from accounts.models import ApiKey
from accounts.tenancy import current_workspace_id
from tests import factories
from tests.accounts.support import api, logged_in_client


def _scope_probe(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"scope": current_workspace_id(), "keys": sorted(k.name for k in ApiKey.objects.all())})


def _raise_in_scope(request: HttpRequest) -> JsonResponse:
    assert current_workspace_id() is not None
    raise RuntimeError("failed inside the scope")


urlpatterns = [
    path("api/probe/", _scope_probe),
    path("probe/", _scope_probe),
    path("api/raise/", _raise_in_scope),
    path("", include("config.urls")),
]
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"


def test_key_request_is_scoped_to_the_keys_workspace_and_reset(settings, workspace):
    settings.ROOT_URLCONF = __name__
    other = factories.WorkspaceFactory()
    _, secret = factories.api_key(workspace, name="mine")
    factories.api_key(other, name="theirs")

    response = api(Client(), "GET", "/api/probe/", key=secret)

    assert response.json() == {"scope": workspace.pk, "keys": ["mine"]}
    assert current_workspace_id() is None


def test_session_request_is_scoped_to_the_chosen_workspace(settings, workspace, owner):
    settings.ROOT_URLCONF = __name__
    second = factories.WorkspaceFactory()
    factories.member(second, role="viewer", user=owner)
    factories.api_key(workspace, name="first")
    factories.api_key(second, name="second")

    response = logged_in_client(owner, workspace=second).get("/probe/")

    assert response.json() == {"scope": second.pk, "keys": ["second"]}
    assert current_workspace_id() is None


def test_bearer_header_outside_api_is_ignored(settings, workspace):
    settings.ROOT_URLCONF = __name__
    _, secret = factories.api_key(workspace)

    response = Client(raise_request_exception=False).get("/probe/", headers={"Authorization": f"Bearer {secret}"})

    # No scope: the tenant query refuses, and the error page says nothing about why.
    assert response.status_code == 500
    assert b"NoWorkspaceScope" not in response.content


def test_scope_is_reset_when_the_view_raises(settings, workspace):
    settings.ROOT_URLCONF = __name__
    _, secret = factories.api_key(workspace)

    response = api(Client(raise_request_exception=False), "GET", "/api/raise/", key=secret)

    assert response.status_code == 500
    assert current_workspace_id() is None


@pytest.mark.parametrize("path", ["/sdk/cohortly.js", "/v1/config"])
def test_public_write_key_endpoints_do_not_vary_on_the_session_cookie(client, owner, path):
    client.force_login(owner)
    response = client.get(path)
    assert "Cookie" not in response.get("Vary", "")
