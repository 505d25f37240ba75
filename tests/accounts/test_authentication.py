"""REST authentication by secret key: requests per key and failed authentications per address are limited."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from tests import factories
from tests.accounts.support import api, logged_in_client, state


def test_requests_over_the_key_rate_are_429_with_retry_after_and_change_nothing(settings, workspace, owner):
    settings.API_KEY_RATE = "3/min"
    _, secret = factories.api_key(workspace, name="busy")
    _, other_secret = factories.api_key(workspace, name="other")
    client = Client()
    for _ in range(3):
        assert api(client, "GET", reverse("api-workspace"), key=secret).status_code == 200
    before = state()

    response = api(client, "PATCH", reverse("api-workspace"), {"name": "Renamed"}, key=secret)

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.json()
    assert body["code"] == "throttled"
    assert body["detail"].startswith("Request was throttled.")
    assert state() == before
    # Another key of the workspace, and a signed-in session, are not held back
    assert api(client, "GET", reverse("api-workspace"), key=other_secret).status_code == 200
    assert api(logged_in_client(owner), "GET", reverse("api-workspace")).status_code == 200


def test_failed_bearer_authentications_from_one_address_are_429_after_the_rate(settings, workspace):
    settings.API_AUTH_FAILURE_RATE = "3/min"
    _, secret = factories.api_key(workspace, name="good")
    guesser = Client(REMOTE_ADDR="198.51.100.9")
    for index in range(3):
        answer = api(guesser, "PATCH", reverse("api-workspace"), {"name": "X"}, key=f"cly_sk_guess{index}")
        assert answer.status_code == 401
        assert answer.json()["code"] == "authentication_failed"
    before = state()

    response = api(guesser, "PATCH", reverse("api-workspace"), {"name": "X"}, key="cly_sk_guess3")

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json() == {
        "detail": f"Too many failed API key authentications from this address. "
        f"Expected available in {response['Retry-After']} seconds.",
        "code": "throttled",
    }
    assert state() == before
    # A write key counts as a failure too; a valid key from that address still works
    assert api(guesser, "GET", reverse("api-workspace"), key=workspace.write_key).status_code == 429
    assert api(guesser, "GET", reverse("api-workspace"), key=secret).status_code == 200
    # Another address is not held back
    other = api(Client(REMOTE_ADDR="198.51.100.10"), "GET", reverse("api-workspace"), key="cly_sk_guess4")
    assert other.status_code == 401
