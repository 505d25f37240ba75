"""Production headers: the pages' Content-Security-Policy, HTTPS behind a proxy, ``check --deploy``."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Role
from tests import factories
from tests.accounts.support import body_text, logged_in_client
from tests.tracking.conftest import basic_auth
from tracking.models import Event

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def directives(header: str) -> dict[str, str]:
    """A Content-Security-Policy header as {directive: sources}."""
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


ROOT = Path(__file__).resolve().parents[2]
# What the proxy sends: the scheme the client used, and the Host header the client sent.
HTTPS = {"X-Forwarded-Proto": "https", "Host": "testserver"}
# The production settings README.md's "Production" section gives.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "cohortly.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://cohortly.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
}


@pytest.fixture
def behind_proxy(settings):
    """The production settings: https as the proxy reports it, redirects to https, HSTS."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``manage.py`` in a process of its own, with the test's database and Redis and ``env`` on top."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SECURE_", "DJANGO_"))}
    environment.update(env)
    # Without a private one the embedded services' platformdirs warns on stderr, which the checks below read.
    environment.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="cohortly-runtime-"))
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


# --- Content-Security-Policy ------------------------------------------------------------------


def test_pages_carry_the_policy_with_the_other_browser_headers(db):
    response = Client().get(reverse("login"))

    assert response.status_code == 200
    assert directives(response["Content-Security-Policy"]) == POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_tracking_endpoints_and_the_snippet_carry_no_policy(client, workspace):
    tracked = client.post(
        "/v1/track",
        {"userId": "u-1", "event": "Signed Up"},
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )
    snippet = client.get(reverse("snippet"))

    assert (tracked.status_code, snippet.status_code) == (200, 200)
    assert "Content-Security-Policy" not in tracked
    assert "Content-Security-Policy" not in snippet


TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
INLINE = {
    "an inline <script>": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
    "a style attribute": re.compile(r"\sstyle\s*=", re.I),
    "a <style> element": re.compile(r"<style\b", re.I),
    "an inline event handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "an hx-on attribute": re.compile(r"\shx-on\b", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT / "templates")))
def test_templates_hold_nothing_the_policy_blocks(template):
    text = template.read_text()

    assert [name for name, pattern in INLINE.items() if pattern.search(text)] == []


# --- HTTPS behind a proxy ---------------------------------------------------------------------


def test_behind_the_proxy_plain_http_is_redirected_and_https_gets_hsts(db, behind_proxy):
    plain = Client().get(reverse("login"))
    secure = Client().get(reverse("login"), headers=HTTPS)

    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/login/")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_behind_the_proxy_the_tracking_api_answers_https_requests(client, workspace, behind_proxy):
    response = client.post(
        "/v1/track",
        {"userId": "u-1", "event": "Signed Up"},
        content_type="application/json",
        headers=HTTPS,
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert Event.objects.unscoped().filter(workspace=workspace, name="Signed Up").count() == 1


def test_invitation_links_are_https_behind_the_proxy(workspace, owner, behind_proxy):
    _, secret = factories.api_key(workspace)

    by_api = Client().post(
        reverse("invitation-list"),
        {"email": "api@example.com", "role": "viewer"},
        content_type="application/json",
        headers={**HTTPS, "Authorization": f"Bearer {secret}"},
    )
    by_page = logged_in_client(owner).post(
        reverse("settings_invitations"), {"email": "page@example.com", "role": Role.VIEWER}, headers=HTTPS, follow=True
    )

    assert by_api.status_code == 201
    assert by_api.json()["link"].startswith("https://testserver/invite/")
    assert by_page.status_code == 200
    assert by_page.context["created_link"].startswith("https://testserver/invite/")


def test_a_forwarded_proto_is_not_trusted_without_the_proxy_setting(workspace, settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    _, secret = factories.api_key(workspace)

    response = Client().post(
        reverse("invitation-list"),
        {"email": "api@example.com", "role": "viewer"},
        content_type="application/json",
        headers={**HTTPS, "Authorization": f"Bearer {secret}"},
    )

    assert response.status_code == 201
    assert response.json()["link"].startswith("http://testserver/invite/")
    assert Invitation.objects.unscoped().filter(workspace=workspace).count() == 1


def test_password_reset_links_are_https_behind_the_proxy(smtp, owner, behind_proxy):
    response = Client().post(reverse("password_reset"), {"email": owner.email}, headers=HTTPS)

    assert response.status_code == 302
    [message] = smtp.wait_for(1)
    [link] = re.findall(r"\bhttps?://\S+", body_text(message))
    assert re.fullmatch(r"https://testserver/password-reset/[^/]+/[^/]+/", link)


# --- Settings from the environment --------------------------------------------------------------


def test_the_production_settings_pass_check_deploy():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_check_deploy_names_each_https_setting_left_out():
    env = {key: value for key, value in PRODUCTION_ENV.items() if not key.startswith(("SECURE_", "SESSION_"))}

    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 1
    assert re.findall(r"security\.W\d+", result.stderr) == [
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
    ]


def test_a_proxy_header_setting_without_its_value_is_refused():
    result = _manage("check", env={**PRODUCTION_ENV, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"})

    assert result.returncode == 1
    assert "SECURE_PROXY_SSL_HEADER must read HEADER,VALUE" in result.stderr
