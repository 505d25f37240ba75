"""Security basics: login throttling, sessions, CSRF on every form, no secrets at rest, key kinds."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from psycopg import sql

from accounts import services, throttle
from accounts import signup as signup_flow
from accounts.models import ApiKey, Role, User
from accounts.tenancy import workspace_scope
from tests import factories
from tests.accounts.support import api, logged_in_client, state
from tests.accounts.test_cross_workspace import REGISTRY, ROUTES, Side, build_side

# --- Login throttling ----------------------------------------------------------


def _login(client: Client, email: str, password: str) -> Any:
    return client.post(reverse("login"), {"username": email, "password": password})


def _waits_over(*keys: str) -> None:
    """Time passes: the running waits end (the failure counts stay)."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in keys:
        client.hdel(key, "until")


@pytest.fixture
def backoff(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 100
    settings.LOGIN_BACKOFF_FIRST_SECONDS = 60
    settings.LOGIN_BACKOFF_MAX_SECONDS = 150
    return settings


def test_login_waits_after_repeated_failures_even_with_the_right_password(backoff, owner):
    client = Client()

    # Given failures below the limit: no wait
    for _ in range(backoff.LOGIN_FAILURE_LIMIT - 1):
        response = _login(client, owner.email, "wrong password")
        assert response.status_code == 200
        assert "Wait" not in response.content.decode()
    # The failure that reaches it says how long to wait
    response = _login(client, owner.email, "wrong password")
    assert response.status_code == 200
    assert "Wait 1 minute before trying again" in response.content.decode()

    # When the right password comes during the wait
    response = _login(client, owner.email, factories.PASSWORD)

    # Then it is refused with 429, Retry-After and the wait, and nobody is signed in
    assert response.status_code == 429
    assert 58 <= int(response["Retry-After"]) <= 60
    assert "Too many failed sign-in attempts. Wait 1 minute before trying again" in response.content.decode()
    assert response.context["form"]["username"].value() == owner.email
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("dashboard")).status_code == 302


def test_login_waits_double_with_each_failure_up_to_the_cap(backoff, owner):
    client = Client()
    account = throttle._account_key(owner.email)
    for _ in range(backoff.LOGIN_FAILURE_LIMIT - 1):
        _login(client, owner.email, "wrong password")

    waits = []
    for _ in range(4):
        assert _login(client, owner.email, "wrong password").status_code == 200
        refused = _login(client, owner.email, "wrong password")
        assert refused.status_code == 429
        waits.append(int(refused["Retry-After"]))
        _waits_over(account)

    # 60 s, 120 s, then the cap of 150 s (refused attempts did not count as failures)
    assert [round(wait, -1) for wait in waits] == [60, 120, 150, 150]
    assert _login(client, owner.email, factories.PASSWORD).status_code == 302


def test_login_is_not_throttled_below_the_limit(backoff, owner):
    client = Client()
    for _ in range(backoff.LOGIN_FAILURE_LIMIT - 1):
        assert _login(client, owner.email, "wrong password").status_code == 200

    response = _login(client, owner.email, factories.PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_a_successful_sign_in_clears_the_account_count(backoff, owner):
    for _ in range(backoff.LOGIN_FAILURE_LIMIT - 1):
        _login(Client(), owner.email, "wrong password")
    assert _login(Client(), owner.email, factories.PASSWORD).status_code == 302

    # As many failures again start no wait
    for _ in range(backoff.LOGIN_FAILURE_LIMIT - 1):
        assert "Wait" not in _login(Client(), owner.email, "wrong password").content.decode()
    assert _login(Client(), owner.email, factories.PASSWORD).status_code == 302


def test_login_email_is_case_insensitive(owner):
    client = Client()

    response = _login(client, f"  {owner.email.upper()} ", factories.PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_throttle_counts_per_email(backoff, workspace):
    victim = factories.member(workspace)
    bystander = factories.member(workspace)
    client = Client()
    for _ in range(backoff.LOGIN_FAILURE_LIMIT):
        _login(client, victim.email, "wrong password")

    assert _login(client, victim.email.upper(), factories.PASSWORD).status_code == 429
    assert _login(client, bystander.email, factories.PASSWORD).status_code == 302


def test_failures_over_many_accounts_from_one_address_make_that_address_wait(backoff, workspace):
    backoff.LOGIN_ADDRESS_FAILURE_LIMIT = 4
    sprayer = Client(REMOTE_ADDR="198.51.100.9")
    for index in range(backoff.LOGIN_ADDRESS_FAILURE_LIMIT):
        assert _login(sprayer, f"guess-{index}@example.com", "wrong password").status_code == 200
    user = factories.member(workspace)

    refused = _login(sprayer, user.email, factories.PASSWORD)

    assert refused.status_code == 429
    assert 58 <= int(refused["Retry-After"]) <= 60
    assert "_auth_user_id" not in sprayer.session
    # Another address signs in to the same account
    assert _login(Client(REMOTE_ADDR="198.51.100.10"), user.email, factories.PASSWORD).status_code == 302


def test_behind_a_trusted_proxy_each_client_is_counted_apart_and_cannot_forge_its_address(backoff, workspace):
    backoff.TRUSTED_PROXIES = ["10.0.0.0/8"]
    backoff.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    user = factories.member(workspace)

    def via_proxy(forwarded: str) -> Client:
        return Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    # An attacker behind the proxy fails, writing a new X-Forwarded-For of their own each time
    for index in range(backoff.LOGIN_ADDRESS_FAILURE_LIMIT):
        _login(via_proxy(f"192.0.2.{index}, 203.0.113.66"), f"guess-{index}@example.com", "wrong password")

    # Their address waits, whatever they write in front of it...
    assert _login(via_proxy("192.0.2.200, 203.0.113.66"), user.email, factories.PASSWORD).status_code == 429
    # ...and other clients of the same proxy do not
    assert _login(via_proxy("203.0.113.67"), user.email, factories.PASSWORD).status_code == 302


def test_without_trusted_proxies_x_forwarded_for_is_ignored(backoff, workspace):
    backoff.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    user = factories.member(workspace)
    for index in range(backoff.LOGIN_ADDRESS_FAILURE_LIMIT):
        client = Client(REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{index}")
        _login(client, f"guess-{index}@example.com", "wrong password")

    client = Client(REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert _login(client, user.email, factories.PASSWORD).status_code == 429


def test_choosing_a_new_password_by_the_reset_link_ends_the_wait(backoff, owner):
    for _ in range(backoff.LOGIN_FAILURE_LIMIT):
        _login(Client(), owner.email, "wrong password")
    assert _login(Client(), owner.email, factories.PASSWORD).status_code == 429
    client = Client()
    uid = urlsafe_base64_encode(force_bytes(owner.pk))
    token = default_token_generator.make_token(owner)
    set_url = client.get(reverse("password_reset_confirm", args=[uid, token]), follow=True).redirect_chain[-1][0]

    client.post(set_url, {"new_password1": "brand-new-long-pass-91", "new_password2": "brand-new-long-pass-91"})

    assert _login(Client(), owner.email, "brand-new-long-pass-91").status_code == 302


# --- Sessions ----------------------------------------------------------------------


def test_session_key_rotates_at_login(owner):
    client = Client()
    session = client.session
    session["before_login"] = True
    session.save()
    key_before = session.session_key

    response = _login(client, owner.email, factories.PASSWORD)

    assert response.status_code == 302
    key_after = client.cookies["sessionid"].value
    assert key_after != key_before
    assert client.session["_auth_user_id"] == str(owner.pk)
    # The pre-login key no longer opens anything.
    stale = Client()
    stale.cookies["sessionid"] = key_before
    assert stale.get(reverse("dashboard")).status_code == 302


def test_old_session_cookie_is_dead_after_logout(owner, workspace):
    client = Client()
    assert _login(client, owner.email, factories.PASSWORD).status_code == 302
    old_cookie = client.cookies["sessionid"].value
    assert client.get(reverse("dashboard")).status_code == 200

    response = client.post(reverse("logout"))
    assert response.status_code == 302

    replay = Client()
    replay.cookies["sessionid"] = old_cookie
    page = replay.get(reverse("settings_workspace"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("login"))
    answer = replay.get(reverse("api-workspace"))
    assert answer.status_code == 401
    assert answer.json()["code"] == "not_authenticated"


def test_pages_carry_protective_headers_and_an_http_only_session_cookie(owner):
    client = Client()
    _login(client, owner.email, factories.PASSWORD)

    response = client.get(reverse("dashboard"))

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert client.cookies["sessionid"]["httponly"] is True


# --- CSRF ----------------------------------------------------------------------------

# For each web route: whether the POST comes from a signed-in owner, and a body that
# would change something if the CSRF check let it through.
CsrfCase = tuple[bool, Callable[[Side], dict[str, Any]]]

CSRF_BODIES: dict[str, CsrfCase] = {
    "signup": (
        False,
        lambda s: {
            "email": "new@example.com",
            "password": factories.PASSWORD,
            "workspace_name": "New",
            "name": "",
        },
    ),
    "signup_confirm": (False, lambda s: {}),
    "login": (False, lambda s: {"username": s.owner.email, "password": factories.PASSWORD}),
    "logout": (True, lambda s: {}),
    "password_reset": (False, lambda s: {"email": s.owner.email}),
    "password_reset_confirm": (
        False,
        lambda s: {"new_password1": "another-long-pass-77", "new_password2": "another-long-pass-77"},
    ),
    "invite_accept": (False, lambda s: {"name": "Joiner", "password": "another-long-pass-77"}),
    "workspace_new": (True, lambda s: {"name": "Second"}),
    "workspace_switch": (True, lambda s: {"workspace": s.workspace.pk}),
    "settings_workspace": (True, lambda s: {"name": "Renamed"}),
    "settings_member_role": (True, lambda s: {"role": Role.VIEWER}),
    "settings_invitations": (True, lambda s: {"email": "x@example.com", "role": Role.MEMBER}),
    "settings_api_keys": (True, lambda s: {"name": "Sneaky"}),
    "settings_write_key": (True, lambda s: {}),
    "settings_webhooks": (True, lambda s: {"url": "https://93.184.215.14/hooks", "events": "both", "scope": "all"}),
    "settings_data_import": (True, lambda s: {"text": '{"events": {}}'}),
    "settings_data_settings": (True, lambda s: {"block_unplanned_events": "on"}),
    "settings_data_event_add": (True, lambda s: {"name": "Sneaky"}),
    "settings_data_event_update": (True, lambda s: {"event": s.plan_event, "description": "Sneaky"}),
    "settings_data_event_remove": (True, lambda s: {"event": s.plan_event}),
    "settings_data_property_set": (True, lambda s: {"event": s.plan_event, "name": "sneaky", "type": "list"}),
    "settings_data_property_change": (True, lambda s: {"event": s.plan_event, "name": "total", "type": "list"}),
    "settings_data_property_remove": (True, lambda s: {"event": s.plan_event, "name": "total"}),
    "campaign_results_segment": (True, lambda s: {"kind": "converted"}),
    "settings_campaigns": (
        True,
        lambda s: {"timezone": "Europe/Paris", "emails_per_second": "10", "webhooks_per_second": "10"},
    ),
    "settings_campaign_cap_add": (True, lambda s: {"channel": "email", "max": "1", "per": "1d"}),
    "settings_campaign_cap_delete": (True, lambda s: {}),
    "campaign_new": (
        True,
        lambda s: {
            "name": "Sneaky",
            "channel": "email",
            "kind": "broadcast",
            "include": [s.static_segment.pk],
            "variant_count": "1",
            "v0-name": "A",
            "v0-weight": "1",
            "v0-subject": "Hi",
            "v0-body": "<p>Hi</p>",
        },
    ),
    "campaign_edit": (True, lambda s: {"name": "Sneaky"}),
    "campaign_launch": (True, lambda s: {"confirmed": "yes"}),
    "campaign_test": (True, lambda s: {"test_email": "qa@example.com"}),
}


def _csrf_url(name: str, side: Side, tokens: dict[str, str]) -> str:
    if name == "invite_accept":
        return reverse(name, kwargs={"token": tokens["invitation"]})
    if name == "signup_confirm":
        return reverse(name, kwargs={"token": tokens["signup"]})
    if name == "password_reset_confirm":
        uid = urlsafe_base64_encode(force_bytes(side.owner.pk))
        return reverse(name, kwargs={"uidb64": uid, "token": default_token_generator.make_token(side.owner)})
    if name == "campaign_from_playbook":
        return reverse(name, kwargs={"slug": "welcome"})
    spec = REGISTRY[name]
    return reverse(name, kwargs=spec.kwargs(side)) if spec.kwargs else reverse(name)


# The tracking API (/v1/) is no web form: it is authenticated by the public write key, takes
# no session and must accept cross-site posts from customers' sites (tests/tracking/test_ingest.py); so
# are the snippet's on-site messages under /v1/messages (tests/campaigns/test_onsite.py).
# The snippet's files (/sdk/) are public GETs for any site. Campaign emails' links (/e/) are
# authenticated by their signed token, and one-click unsubscribes are posted by mailbox providers
# without a session (RFC 8058); ESPs' webhooks (/anymail/) by their secret.
WEB_ROUTES = [
    route
    for route in ROUTES
    if not route.is_api and not route.pattern.startswith(("v1/", "sdk/", "^sdk/", "e/", "anymail/"))
]


@pytest.mark.django_db
@pytest.mark.parametrize("route", WEB_ROUTES, ids=[route.name for route in WEB_ROUTES])
def test_every_web_post_without_csrf_token_is_refused(route):
    # Given a workspace, its owner and an invitation (an anonymous client for public forms)
    side = build_side("Alpha")
    with workspace_scope(side.workspace):
        _, link = services.invitation_create(
            workspace=side.workspace, email="joiner@example.com", role=Role.MEMBER, actor=None, accept_url_base="/"
        )
    tokens = {"invitation": link.rstrip("/").rsplit("/", 1)[1]}
    if route.name == "signup_confirm":
        signup_flow.signup_request(
            email="pending@example.com", password=factories.PASSWORD, name="", workspace_name="P", site_url="/"
        )
        tokens["signup"] = re.findall(r"/signup/confirm/([^/\s]+)/", mail.outbox[-1].body)[0]
    signed_in, body = CSRF_BODIES.get(route.name, (True, lambda s: {}))
    client = Client(enforce_csrf_checks=True)
    if signed_in:
        client.force_login(side.owner)
    before = state()
    url = _csrf_url(route.name, side, tokens)

    # When a form is posted without its CSRF token
    response = client.post(url, body(side))

    # Then it is a 403 page and nothing changed; a signed-in user is still signed in
    assert response.status_code == 403
    assert "CSRF check failed" in response.content.decode()
    assert state() == before
    if signed_in:
        assert client.session["_auth_user_id"] == str(side.owner.pk)
    else:
        assert "_auth_user_id" not in client.session


def test_csrf_cases_name_real_routes():
    assert set(CSRF_BODIES) <= {route.name for route in WEB_ROUTES}


def test_a_web_post_with_its_csrf_token_passes(owner, workspace):
    """The control: the same kind of POST with the token gets through."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    page = client.get(reverse("settings_api_keys"))
    token = page.context["csrf_token"]

    response = client.post(reverse("settings_api_keys"), {"name": "Legit", "csrfmiddlewaretoken": str(token)})

    assert response.status_code == 302
    with workspace_scope(workspace):
        assert list(ApiKey.objects.values_list("name", flat=True)) == ["Legit"]


def test_api_with_session_but_no_csrf_token_is_refused(owner, workspace):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    before = state()

    response = api(client, "POST", reverse("api-key-list"), {"name": "Sneaky"})

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "CSRF" in response.json()["detail"]
    assert state() == before

    # With the token (as the page's hx-headers send it) the same call is accepted.
    client.get(reverse("settings_api_keys"))
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        reverse("api-key-list"), data={"name": "Legit"}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 201


# --- Secrets at rest -------------------------------------------------------------------


def _dump_database() -> str:
    """Every table of the public schema as COPY text, the way pg_dump would write it."""
    chunks: list[bytes] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        tables = [row[0] for row in cursor.fetchall()]
        assert "accounts_apikey" in tables
        for table in tables:
            # COPY (SELECT ...) also reads partitioned tables (the events table).
            with cursor.copy(sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(sql.Identifier(table))) as copy:
                chunks.extend(bytes(data) for data in copy)
    return b"".join(chunks).decode()


def test_database_dump_holds_no_plaintext_api_key_or_invitation_token(client, owner, workspace):
    # Given keys and invitations made through the service, the web UI and the REST API
    _, service_secret = factories.api_key(workspace, name="service")
    web = logged_in_client(owner)
    web_secret = web.post(reverse("settings_api_keys"), {"name": "web"}, follow=True).context["created_secret"]
    api_secret = api(web, "POST", reverse("api-key-list"), {"name": "rest"}, key=service_secret).json()["key"]
    web_link = web.post(
        reverse("settings_invitations"), {"email": "a@example.com", "role": "member"}, follow=True
    ).context["created_link"]
    api_link = api(web, "POST", reverse("invitation-list"), {"email": "b@example.com"}, key=api_secret).json()["link"]
    # Used once, so the key's bookkeeping columns are written too
    assert api(client, "GET", reverse("api-workspace"), key=web_secret).status_code == 200

    # When the whole database is dumped
    dump = _dump_database()

    # Then no secret is in it, though the display prefixes are
    for secret in (service_secret, web_secret, api_secret):
        assert secret.startswith("cly_sk_")
        assert secret not in dump
        assert secret[len("cly_sk_") :] not in dump
        assert secret[:13] in dump
    for link in (web_link, api_link):
        token = link.rstrip("/").rsplit("/", 1)[1]
        assert len(token) >= 32
        assert token not in dump
    assert "a@example.com" in dump  # the dump is real: it holds the rows


def test_write_key_is_refused_by_the_rest_api_with_a_message_saying_so(client, workspace):
    before = state()

    response = api(client, "GET", reverse("api-workspace"), key=workspace.write_key)

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "authentication_failed"
    assert "public write key" in body["detail"]
    assert "secret API key" in body["detail"]
    assert state() == before


def test_session_user_without_a_bearer_gets_their_own_workspace_only(owner, workspace):
    stranger = User.objects.create_user(email="stranger@example.com", password=factories.PASSWORD)
    client = logged_in_client(stranger, workspace=workspace)

    response = api(client, "GET", reverse("api-workspace"))

    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a member of any workspace.", "code": "permission_denied"}
