"""The accounts REST API (accounts/api_urls.py), by secret key and by session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts import selectors, services
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, Role
from accounts.tenancy import workspace_scope
from tests import factories
from tests.accounts.support import api, logged_in_client, state


@dataclass
class Caller:
    """Who calls the API: a secret key or a signed-in owner's session."""

    kind: str
    client: Client
    secret: str | None
    label: str

    def __call__(self, method: str, url: str, body: Any = None, *, raw: str | None = None) -> Any:
        return api(self.client, method, url, body, key=self.secret, raw=raw)


@pytest.fixture(params=["key", "session"])
def caller(request, workspace, owner):
    if request.param == "key":
        key, secret = factories.api_key(workspace, name="caller key", creator=owner)
        return Caller("key", Client(), secret, f"API key {key.display_prefix} (#{key.pk}) of {owner.email}")
    return Caller("session", logged_in_client(owner), None, owner.email)


def _audit(workspace) -> list[tuple[str, str, str]]:
    with workspace_scope(workspace):
        return list(AuditLogEntry.objects.order_by("id").values_list("actor_label", "action", "target"))


# --- Workspace ----------------------------------------------------------------------------


def test_workspace_get(caller, workspace):
    response = caller("GET", reverse("api-workspace"))

    assert response.status_code == 200
    assert response.json() == {
        "id": workspace.pk,
        "name": workspace.name,
        "write_key": workspace.write_key,
        "created_at": workspace.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_workspace_patch_renames_and_is_audited(caller, workspace):
    response = caller("PATCH", reverse("api-workspace"), {"name": "Acme Retail"})

    assert response.status_code == 200
    assert response.json()["name"] == "Acme Retail"
    workspace.refresh_from_db()
    assert workspace.name == "Acme Retail"
    assert _audit(workspace)[-1] == (caller.label, "workspace.renamed", "Acme Retail")


def test_workspace_names_are_stored_normalised_and_never_empty(caller, workspace):
    renamed = caller("PATCH", reverse("api-workspace"), {"name": " Acme\u202e  Retail\u200b"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Acme Retail"

    before = state()
    refused = caller("PATCH", reverse("api-workspace"), {"name": "\u200b\u202e"})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"name": ["A workspace needs a name."]}
    assert state() == before


def test_rotate_write_key_retires_the_old_key(caller, workspace):
    old = workspace.write_key
    assert selectors.workspace_by_write_key(old) == workspace

    response = caller("POST", reverse("api-workspace-rotate-write-key"))

    assert response.status_code == 200
    new = response.json()["write_key"]
    assert new.startswith("cly_wk_")
    assert new != old
    assert selectors.workspace_by_write_key(old) is None
    assert selectors.workspace_by_write_key(new) == workspace
    assert _audit(workspace)[-1] == (caller.label, "write_key.rotated", "")
    # The retired key is now just an unknown token to the REST API.
    refused = api(Client(), "GET", reverse("api-workspace"), key=old)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Invalid or revoked API key."


# --- API keys -------------------------------------------------------------------------------


def test_api_key_create_shows_the_secret_once_and_it_works_at_once(caller, workspace, owner):
    response = caller("POST", reverse("api-key-list"), {"name": "CRM sync"})

    assert response.status_code == 201
    body = response.json()
    secret = body["key"]
    assert secret.startswith("cly_sk_")
    assert body["name"] == "CRM sync"
    assert body["display_prefix"] == secret[:13]
    assert body["revoked_at"] is None
    # A key made by a key belongs to the same creator: it acts with their role and dies with their membership.
    assert body["created_by"] == owner.email
    assert _audit(workspace)[-1] == (caller.label, "api_key.created", "CRM sync")

    # The secret is a working Bearer key right away, for this workspace
    me = api(Client(), "GET", reverse("api-workspace"), key=secret)
    assert me.status_code == 200
    assert me.json()["id"] == workspace.pk

    # and is never shown again
    listing = caller("GET", reverse("api-key-list"))
    detail = caller("GET", reverse("api-key-detail", kwargs={"pk": body["id"]}))
    for answer in (listing, detail):
        assert answer.status_code == 200
        assert secret not in answer.content.decode()
        assert "key" not in (answer.json()["results"][0] if "results" in answer.json() else answer.json())


def test_api_key_list_and_retrieve(caller, workspace, owner):
    key, _ = factories.api_key(workspace, name="Warehouse")

    listing = caller("GET", reverse("api-key-list"))
    detail = caller("GET", reverse("api-key-detail", kwargs={"pk": key.pk}))

    assert listing.status_code == 200
    names = [row["name"] for row in listing.json()["results"]]
    assert names == (["Warehouse", "caller key"] if caller.kind == "key" else ["Warehouse"])
    assert detail.status_code == 200
    assert detail.json() == {
        "id": key.pk,
        "name": "Warehouse",
        "display_prefix": key.display_prefix,
        "created_by": owner.email,
        "created_at": key.created_at.isoformat().replace("+00:00", "Z"),
        "last_used_at": None,
        "revoked_at": None,
    }


def test_api_key_revoke(caller, workspace):
    key, secret = factories.api_key(workspace, name="Old laptop")
    assert api(Client(), "GET", reverse("api-workspace"), key=secret).status_code == 200

    response = caller("DELETE", reverse("api-key-detail", kwargs={"pk": key.pk}))

    assert response.status_code == 204
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api(Client(), "GET", reverse("api-workspace"), key=secret).status_code == 401
    assert _audit(workspace)[-1] == (caller.label, "api_key.revoked", "Old laptop")
    # Revoking twice is harmless and writes nothing more.
    before = state()
    assert caller("DELETE", reverse("api-key-detail", kwargs={"pk": key.pk})).status_code == 204
    assert state() == before


@pytest.mark.parametrize("look_alike", ["crm sync", "CRM  sync", "CRM sync\u200b", "\u202eCRM SYNC"])
def test_an_active_keys_name_in_another_form_is_refused_and_nothing_written(caller, workspace, look_alike):
    factories.api_key(workspace, name="CRM sync")
    before = state()

    response = caller("POST", reverse("api-key-list"), {"name": look_alike})

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "name": [
            "An API key named 'CRM sync' already exists in this workspace."
            " Names that differ only in case, spacing or invisible characters count as the same."
        ]
    }
    assert state() == before


def test_a_revoked_keys_name_may_be_given_again_and_names_are_stored_normalised(caller, workspace):
    old, _ = factories.api_key(workspace, name="CRM sync")
    with workspace_scope(workspace):
        services.api_key_revoke(workspace=workspace, key=old, actor=None)

    response = caller("POST", reverse("api-key-list"), {"name": " crm\u00a0 SYNC\u200b"})

    assert response.status_code == 201
    assert response.json()["name"] == "crm SYNC"


@pytest.mark.parametrize(
    ("name", "message"), [("\u200b\u2066", "An API key needs a name."), ("  ", "This field may not be blank.")]
)
def test_a_key_name_that_is_nothing_once_normalised_is_refused(caller, workspace, name, message):
    before = state()

    response = caller("POST", reverse("api-key-list"), {"name": name})

    assert response.status_code == 400
    assert response.json()["errors"] == {"name": [message]}
    assert state() == before


def test_key_last_used_is_recorded(workspace):
    key, secret = factories.api_key(workspace)
    assert key.last_used_at is None

    api(Client(), "GET", reverse("api-workspace"), key=secret)

    key.refresh_from_db()
    assert key.last_used_at is not None


# --- Members -----------------------------------------------------------------------------------


def test_members_list_and_retrieve(caller, workspace, owner):
    viewer = factories.member(workspace, role=Role.VIEWER, user=factories.UserFactory(email="zed@example.com"))
    with workspace_scope(workspace):
        membership = Membership.objects.get(user=viewer)

    listing = caller("GET", reverse("member-list"))
    detail = caller("GET", reverse("member-detail", kwargs={"pk": membership.pk}))

    assert listing.status_code == 200
    assert [(m["email"], m["role"]) for m in listing.json()["results"]] == [
        (owner.email, "owner"),
        ("zed@example.com", "viewer"),
    ]
    assert detail.json() == {
        "id": membership.pk,
        "email": "zed@example.com",
        "name": viewer.name,
        "role": "viewer",
        "created_at": membership.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_member_role_change(caller, workspace):
    user = factories.member(workspace, role=Role.MEMBER)
    with workspace_scope(workspace):
        membership = Membership.objects.get(user=user)

    response = caller("PATCH", reverse("member-detail", kwargs={"pk": membership.pk}), {"role": "admin"})

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert _audit(workspace)[-1] == (caller.label, "member.role_changed", user.email)


def test_member_remove(caller, workspace):
    user = factories.member(workspace, role=Role.MEMBER)
    with workspace_scope(workspace):
        membership = Membership.objects.get(user=user)

    response = caller("DELETE", reverse("member-detail", kwargs={"pk": membership.pk}))

    assert response.status_code == 204
    with workspace_scope(workspace):
        assert not Membership.objects.filter(user=user).exists()
    assert _audit(workspace)[-1] == (caller.label, "member.removed", user.email)


# --- Invitations -------------------------------------------------------------------------------


def test_invitation_create_list_retrieve_revoke(caller, workspace):
    created = caller("POST", reverse("invitation-list"), {"email": "New.Person@Example.com", "role": "viewer"})

    assert created.status_code == 201
    body = created.json()
    assert body["email"] == "new.person@example.com"
    assert body["role"] == "viewer"
    assert body["link"].startswith("http://testserver/invite/")
    assert _audit(workspace)[-1] == (caller.label, "invitation.created", "new.person@example.com")

    listing = caller("GET", reverse("invitation-list"))
    assert [i["email"] for i in listing.json()["results"]] == ["new.person@example.com"]
    detail = caller("GET", reverse("invitation-detail", kwargs={"pk": body["id"]}))
    assert detail.status_code == 200
    assert "link" not in detail.json()
    assert body["link"] not in listing.content.decode() + detail.content.decode()

    revoked = caller("DELETE", reverse("invitation-detail", kwargs={"pk": body["id"]}))
    assert revoked.status_code == 204
    assert caller("GET", reverse("invitation-list")).json()["count"] == 0
    assert _audit(workspace)[-1] == (caller.label, "invitation.revoked", "new.person@example.com")
    link_path = body["link"].removeprefix("http://testserver")
    assert Client().get(link_path).status_code == 404


def test_invitation_default_role_is_member(caller):
    response = caller("POST", reverse("invitation-list"), {"email": "someone@example.com"})

    assert response.status_code == 201
    assert response.json()["role"] == "member"


def test_inviting_an_existing_member_is_a_400_naming_email(caller, owner):
    before = state()

    response = caller("POST", reverse("invitation-list"), {"email": owner.email.upper()})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["email"]
    assert "already a member" in response.json()["detail"]
    assert state() == before


# --- Audit log ---------------------------------------------------------------------------------


def test_audit_log_records_who_did_what_newest_first(caller, workspace, owner):
    original_name = workspace.name
    caller("PATCH", reverse("api-workspace"), {"name": "Renamed"})
    caller("POST", reverse("api-key-list"), {"name": "Nightly export"})

    response = caller("GET", reverse("audit-log-list"))

    assert response.status_code == 200
    rows = [(e["actor"], e["action"], e["target"]) for e in response.json()["results"]]
    assert rows[:2] == [
        (caller.label, "api_key.created", "Nightly export"),
        (caller.label, "workspace.renamed", "Renamed"),
    ]
    details = response.json()["results"][1]["details"]
    if caller.kind == "key":
        key = ApiKey.objects.unscoped().get(name="caller key")
        assert details == {
            "from": original_name,
            "api_key": {"id": key.pk, "prefix": key.display_prefix, "creator": owner.email},
        }
    else:
        assert details == {"from": original_name}


# --- Pagination and query counts ---------------------------------------------------------------


def test_pagination_shape(caller, workspace):
    for index in range(3):
        factories.api_key(workspace, name=f"key {index}")
    url = reverse("api-key-list")

    first = caller("GET", f"{url}?page_size=2")
    second = caller("GET", f"{url}?page_size=2&page=2")

    total = 4 if caller.kind == "key" else 3
    assert first.status_code == 200
    assert set(first.json()) == {"count", "next", "previous", "results"}
    assert first.json()["count"] == total
    assert first.json()["previous"] is None
    assert first.json()["next"] == f"http://testserver{url}?page=2&page_size=2"
    assert len(first.json()["results"]) == 2
    assert second.json()["next"] is None
    assert second.json()["previous"] == f"http://testserver{url}?page_size=2"
    assert len(second.json()["results"]) == total - 2
    out_of_range = caller("GET", f"{url}?page=9")
    assert out_of_range.status_code == 404
    assert out_of_range.json()["code"] == "not_found"


def _fill(workspace, rows: int) -> None:
    """``rows`` more of everything a list endpoint shows, each with its related user."""
    for index in range(rows):
        user = factories.member(workspace, role=Role.MEMBER)
        with workspace_scope(workspace):
            services.api_key_create(workspace=workspace, name=f"key of {user.email}", actor=user)
            services.invitation_create(
                workspace=workspace, email=f"i{index}@example.com", role="member", actor=user, accept_url_base="/"
            )


# Queries per list call: (key auth: key lookup) or (session: session, user, membership), then count + page.
LIST_QUERIES = {"key": 3, "session": 5}


@pytest.mark.parametrize("name", ["api-key-list", "member-list", "invitation-list", "audit-log-list"])
def test_list_endpoints_pin_their_query_count(name, caller, workspace, django_assert_num_queries):
    _fill(workspace, 2)
    caller("GET", reverse(name))  # the key's last use is recorded on first use, once a minute

    with django_assert_num_queries(LIST_QUERIES[caller.kind]):
        small = caller("GET", reverse(name))
    _fill(workspace, 5)
    with django_assert_num_queries(LIST_QUERIES[caller.kind]):
        large = caller("GET", reverse(name))

    assert small.status_code == large.status_code == 200
    assert large.json()["count"] > small.json()["count"]


def test_detail_and_workspace_answers_are_json_only(caller):
    response = caller("GET", reverse("api-workspace"))

    assert response["Content-Type"] == "application/json"
    json.loads(response.content)


# --- Bad input -------------------------------------------------------------------------------------


def _membership_url(workspace, owner) -> str:
    target = factories.member(workspace, role=Role.MEMBER)
    with workspace_scope(workspace):
        pk = Membership.objects.get(user=target).pk
    return reverse("member-detail", kwargs={"pk": pk})


ENDPOINTS = {
    "api-keys": ("POST", lambda ws, owner: reverse("api-key-list"), "name"),
    "invitations": ("POST", lambda ws, owner: reverse("invitation-list"), "email"),
    "workspace": ("PATCH", lambda ws, owner: reverse("api-workspace"), "name"),
    "member": ("PATCH", _membership_url, "role"),
}

# (endpoint, body, field the error must name, words the message must contain)
BAD_BODIES = [
    ("api-keys", {"name": 12}, "name", "Expected a string, got int"),
    ("api-keys", {"name": ["a"]}, "name", "Expected a string, got list"),
    ("api-keys", {"name": "x", "scopes": ["all"]}, "scopes", "Unknown field"),
    ("api-keys", {"name": "x" * 101}, "name", "no more than 100 characters"),
    ("api-keys", {"name": ""}, "name", "may not be blank"),
    ("api-keys", {}, "name", "required"),
    ("api-keys", {"name": None}, "name", "may not be null"),
    ("invitations", {"email": 5}, "email", "Expected a string, got int"),
    ("invitations", {"email": "a@example.com", "workspace": 1}, "workspace", "Unknown field"),
    ("invitations", {"email": "a" * 288 + "@example.com"}, "email", "no more than 254 characters"),
    ("invitations", {"email": "not an email"}, "email", "valid email"),
    ("invitations", {"email": "a@example.com", "role": "superuser"}, "role", "not a valid choice"),
    ("invitations", {"email": "a@example.com", "role": 1}, "role", "Expected a string, got int"),
    ("workspace", {"name": 3.5}, "name", "Expected a string, got float"),
    ("workspace", {"name": "x" * 101}, "name", "no more than 100 characters"),
    ("workspace", {"name": "ok", "write_key": "cly_wk_mine"}, "write_key", "Unknown field"),
    ("workspace", {"name": True}, "name", "Expected a string, got bool"),
    ("member", {"role": "god"}, "role", "not a valid choice"),
    ("member", {"role": 2}, "role", "Expected a string, got int"),
    ("member", {"role": "viewer", "email": "x@example.com"}, "email", "Unknown field"),
    ("member", {}, "role", "required"),
]


@pytest.mark.parametrize(("endpoint", "body", "field", "words"), BAD_BODIES)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(endpoint, body, field, words, caller, workspace, owner):
    method, url_for, _ = ENDPOINTS[endpoint]
    url = url_for(workspace, owner)
    before = state()

    response = caller(method, url, body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid"
    assert field in answer["errors"]
    assert any(words in message for message in answer["errors"][field])
    assert f"{field}:" in answer["detail"]
    assert words in answer["detail"]
    assert state() == before


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_malformed_json_is_a_400(endpoint, caller, workspace, owner):
    method, url_for, _ = ENDPOINTS[endpoint]
    url = url_for(workspace, owner)
    before = state()

    response = caller(method, url, raw='{"name": "unterminated')

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert response.json()["detail"].startswith("JSON parse error")
    assert state() == before


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_json_nested_too_deeply_is_a_400(endpoint, caller, workspace, owner):
    method, url_for, _ = ENDPOINTS[endpoint]
    url = url_for(workspace, owner)
    before = state()

    response = caller(method, url, raw="[" * 100_000 + "]" * 100_000)

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the body is nested too deeply.", "code": "parse_error"}
    assert state() == before


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_form_encoded_body_is_a_415(endpoint, caller, workspace, owner):
    method, url_for, _ = ENDPOINTS[endpoint]
    url = url_for(workspace, owner)
    before = state()
    headers = {"Authorization": f"Bearer {caller.secret}"} if caller.secret else {}

    response = getattr(caller.client, method.lower())(
        url, data="name=x&role=admin", content_type="application/x-www-form-urlencoded", headers=headers
    )

    assert response.status_code == 415
    assert response.json() == {
        "detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.',
        "code": "unsupported_media_type",
    }
    assert state() == before


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("body", [[{"name": "x", "email": "a@example.com", "role": "admin"}], "text", 42])
def test_a_body_that_is_not_an_object_is_a_400(endpoint, body, caller, workspace, owner):
    method, url_for, _ = ENDPOINTS[endpoint]
    url = url_for(workspace, owner)
    before = state()

    response = caller(method, url, body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid"
    assert f"Expected a dictionary, but got {type(body).__name__}" in answer["detail"]
    assert state() == before


def test_admin_cannot_invite_an_owner(workspace):
    admin = factories.member(workspace, role=Role.ADMIN)
    client = logged_in_client(admin)
    before = state()

    response = api(client, "POST", reverse("invitation-list"), {"email": "boss@example.com", "role": "owner"})

    assert response.status_code == 400
    assert response.json()["errors"] == {"role": ["Only an owner can invite another owner."]}
    assert state() == before
    with workspace_scope(workspace):
        assert not Invitation.objects.exists()
