"""Error answers: JSON under /api/, HTML pages elsewhere, never a stack trace.

This module is also the URLconf of the 500 tests: config.urls plus views that raise.
"""

from __future__ import annotations

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path, reverse
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from tests import factories
from tests.accounts.support import api, logged_in_client


def _raise_plain(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("database on fire: secret detail")


class _RaisingApiView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> HttpResponse:
        raise RuntimeError("database on fire: secret detail")


urlpatterns = [
    path("api/v1/boom/", _RaisingApiView.as_view()),
    path("api/plain-boom/", _raise_plain),
    path("boom/", _raise_plain),
    path("", include("config.urls")),
]
handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"

SERVER_ERROR = {"detail": "Something went wrong on our side. It has been logged.", "code": "server_error"}


@pytest.fixture
def failing_urls(settings):
    settings.ROOT_URLCONF = __name__
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("url", ["/api/v1/boom/", "/api/plain-boom/"])
def test_500_under_api_is_json_without_the_exception(failing_urls, url, db):
    response = failing_urls.get(url)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == SERVER_ERROR
    assert b"secret detail" not in response.content
    assert b"Traceback" not in response.content


def test_500_elsewhere_is_an_html_page_without_the_exception(failing_urls, db):
    response = failing_urls.get("/boom/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"Something went wrong" in response.content
    assert b"secret detail" not in response.content


def test_test_urlconf_still_serves_the_app(failing_urls, workspace):
    _, secret = factories.api_key(workspace)

    assert api(failing_urls, "GET", "/api/v1/workspace/", key=secret).status_code == 200


@pytest.mark.parametrize("url", ["/api/v1/nope/", "/api/nothing-here", "/api/v1/api-keys/abc/"])
@pytest.mark.parametrize("authenticated", [False, True])
def test_unknown_api_url_is_a_json_404(url, authenticated, workspace):
    key = factories.api_key(workspace)[1] if authenticated else None

    response = api(Client(), "GET", url, key=key)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("PUT", "api-workspace"),
        ("DELETE", "api-workspace"),
        ("GET", "api-workspace-rotate-write-key"),
        ("DELETE", "api-key-list"),
        ("POST", "member-list"),
        ("PUT", "audit-log-list"),
    ],
)
def test_wrong_method_is_a_json_405(method, name, workspace):
    _, secret = factories.api_key(workspace)

    response = api(Client(), method, reverse(name), {}, key=secret)

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method}" not allowed.', "code": "method_not_allowed"}


def test_unauthenticated_api_call_is_a_json_401(db):
    response = Client().get(reverse("api-workspace"))

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("url", ["/no-such-page/", "/settings/members/999999/nothing/"])
def test_404_outside_api_is_an_html_page(url, owner):
    for client in (Client(), logged_in_client(owner)):
        response = client.get(url)

        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")
        assert "<h1>Not found</h1>" in response.content.decode()
        assert b'"code"' not in response.content


def test_403_outside_api_is_an_html_page(workspace):
    viewer = factories.member(workspace, role="viewer")

    response = logged_in_client(viewer).post(reverse("settings_api_keys"), {"name": "x"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "<h1>Not allowed</h1>" in response.content.decode()
    assert b"Your role in this workspace does not allow this change." in response.content


def test_disallowed_host_under_api_is_a_json_400(db):
    response = Client(HTTP_HOST="evil.example").get("/api/v1/workspace/")

    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request.", "code": "bad_request"}


def test_disallowed_host_elsewhere_is_an_html_400(db):
    response = Client(HTTP_HOST="evil.example").get("/login/")

    assert response.status_code == 400
    assert b"<h1>Bad request</h1>" in response.content


@pytest.mark.parametrize(
    "url",
    ["/api/v1/segments/?search=a%00b", "/api/v1/events/?event=%00", "/api/v1/people/?search=x&%00=1"],
)
def test_nul_in_a_query_parameter_is_a_json_400_under_api(url, workspace):
    response = api(Client(), "GET", url, key=factories.api_key(workspace)[1])

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "NUL" in body["detail"]


@pytest.mark.parametrize("url", ["/people/?q=a%00b", "/events/?event=%00", "/segments/?q=%00"])
def test_nul_in_a_query_parameter_is_an_html_400_elsewhere(url, owner):
    response = logged_in_client(owner).get(url)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "must not contain the NUL character" in response.content.decode()
