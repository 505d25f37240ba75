"""What a secret API key may do: at most what the member who created it may do now, never touch the
owner role or its creator, and nothing once that member is gone. Ownership moves only by a signed-in
owner who types their password again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.authentication import ORPHAN_KEY_MESSAGE
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, Role, User
from accounts.tenancy import workspace_scope
from tests import factories
from tests.accounts.support import JSON, api, logged_in_client, state

KEY_OWNER_REFUSAL = {"detail": services.KEY_CANNOT_TOUCH_OWNERS, "code": "permission_denied"}


def _membership(workspace, user) -> Membership:
    with workspace_scope(workspace):
        return Membership.objects.get(user=user)


def _member_url(workspace, user) -> str:
    return reverse("member-detail", kwargs={"pk": _membership(workspace, user).pk})


def _roles(workspace) -> dict[str, str]:
    with workspace_scope(workspace):
        return dict(Membership.objects.values_list("user__email", "role"))


def _audit(workspace, action: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    with workspace_scope(workspace):
        return list(
            AuditLogEntry.objects.filter(action=action).order_by("id").values_list("actor_label", "actor", "details")
        )


def _delete(client: Client, url: str, body: dict[str, Any] | None = None, *, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is None:
        return client.delete(url, headers=headers)
    return client.delete(url, data=json.dumps(body), content_type=JSON, headers=headers)


@pytest.fixture
def team(workspace):
    return {
        "owner": factories.member(workspace, role=Role.OWNER),
        "admin": factories.member(workspace, role=Role.ADMIN),
        "member": factories.member(workspace, role=Role.MEMBER),
    }


# --- A key acts with at most its creator's role -----------------------------------------------


def test_an_admins_key_cannot_make_its_creator_owner_nor_demote_or_remove_the_owner(workspace, team):
    # Given an admin refused the owner role in their session
    admin, owner = team["admin"], team["owner"]
    session = logged_in_client(admin)
    refused = api(session, "PATCH", _member_url(workspace, admin), {"role": "owner"})
    assert refused.status_code == 403
    # who then makes an API key
    created = api(session, "POST", reverse("api-key-list"), {"name": "side door"})
    assert created.status_code == 201
    secret = created.json()["key"]
    before = state()

    # When the key tries to make them owner, demote or remove the owner, or invite a new owner
    make_owner = api(Client(), "PATCH", _member_url(workspace, admin), {"role": "owner"}, key=secret)
    demote = api(Client(), "PATCH", _member_url(workspace, owner), {"role": "admin"}, key=secret)
    remove = api(Client(), "DELETE", _member_url(workspace, owner), key=secret)
    invite = api(
        Client(), "POST", reverse("invitation-list"), {"email": "accomplice@example.com", "role": "owner"}, key=secret
    )
    with_a_password = api(
        Client(), "PATCH", _member_url(workspace, admin), {"role": "owner", "password": factories.PASSWORD}, key=secret
    )

    # Then every call is refused, the owner is still the owner and nothing changed
    for response in (make_owner, demote, remove, invite, with_a_password):
        assert response.status_code == 403, response.content
        assert response.json() == KEY_OWNER_REFUSAL
    assert _roles(workspace)[owner.email] == Role.OWNER
    assert _roles(workspace)[admin.email] == Role.ADMIN
    assert state() == before


def test_an_owners_key_cannot_grant_or_take_the_owner_role_either(workspace, team):
    _, secret = factories.api_key(workspace, creator=team["owner"])
    second_owner = factories.member(workspace, role=Role.OWNER)
    before = state()

    grant = api(Client(), "PATCH", _member_url(workspace, team["member"]), {"role": "owner"}, key=secret)
    take = api(Client(), "PATCH", _member_url(workspace, second_owner), {"role": "viewer"}, key=secret)
    remove = api(Client(), "DELETE", _member_url(workspace, second_owner), key=secret)

    for response in (grant, take, remove):
        assert response.status_code == 403
        assert response.json() == KEY_OWNER_REFUSAL
    assert state() == before


def test_a_key_cannot_change_or_remove_the_member_who_created_it(workspace, team):
    _, secret = factories.api_key(workspace, creator=team["admin"])
    before = state()

    demote = api(Client(), "PATCH", _member_url(workspace, team["admin"]), {"role": "viewer"}, key=secret)
    remove = api(Client(), "DELETE", _member_url(workspace, team["admin"]), key=secret)

    assert demote.status_code == remove.status_code == 403
    assert demote.json()["detail"] == "An API key cannot change the role of the member who created it."
    assert remove.json()["detail"] == "An API key cannot remove the member who created it."
    assert state() == before

    # while the same key still manages other non-owners, as its admin creator may
    response = api(Client(), "PATCH", _member_url(workspace, team["member"]), {"role": "viewer"}, key=secret)
    assert response.status_code == 200
    assert _roles(workspace)[team["member"].email] == Role.VIEWER


def test_a_key_follows_its_creators_role_at_each_request(workspace, team):
    # Given an admin's key that can create keys
    admin, owner = team["admin"], team["owner"]
    _, secret = factories.api_key(workspace, creator=admin)
    assert api(Client(), "POST", reverse("api-key-list"), {"name": "first"}, key=secret).status_code == 201

    # When the owner lowers the admin to viewer
    changed = api(logged_in_client(owner), "PATCH", _member_url(workspace, admin), {"role": "viewer"})
    assert changed.status_code == 200
    before = state()

    # Then the key reads but writes nothing, with a viewer's refusal
    assert api(Client(), "GET", reverse("member-list"), key=secret).status_code == 200
    refused = api(Client(), "POST", reverse("api-key-list"), {"name": "second"}, key=secret)
    segment = api(Client(), "POST", reverse("segment-list"), {"name": "Mine", "static": True}, key=secret)
    assert refused.status_code == segment.status_code == 403
    assert refused.json() == {
        "detail": "Your role in this workspace does not allow this change.",
        "code": "permission_denied",
    }
    assert state() == before
    # and the audit entry of the change says the key follows the role
    (label, actor, details), *_ = _audit(workspace, "member.role_changed")
    assert (label, actor) == (owner.email, owner.pk)
    key_ids = list(ApiKey.objects.unscoped().filter(created_by=admin).order_by("pk").values_list("pk", flat=True))
    assert details == {"from": "admin", "to": "viewer", "api_keys_now_act_as": {"role": "viewer", "ids": key_ids}}

    # And raised to member, the key may build segments but still not manage keys
    api(logged_in_client(owner), "PATCH", _member_url(workspace, admin), {"role": "member"})
    assert (
        api(Client(), "POST", reverse("segment-list"), {"name": "Mine", "static": True}, key=secret).status_code == 201
    )
    assert api(Client(), "POST", reverse("api-key-list"), {"name": "second"}, key=secret).status_code == 403


# --- A removed member's keys do nothing -------------------------------------------------------------


def test_removing_an_admin_revokes_their_keys_in_the_same_change(workspace, team):
    # Given an admin with two keys (one made by the other) and the owner's own key
    admin, owner = team["admin"], team["owner"]
    first, secret = factories.api_key(workspace, creator=admin, name="laptop")
    made = api(Client(), "POST", reverse("api-key-list"), {"name": "made by a key"}, key=secret).json()
    owners_key, owners_secret = factories.api_key(workspace, creator=owner, name="owner's")

    # When the owner removes the admin
    removed = api(logged_in_client(owner), "DELETE", _member_url(workspace, admin))
    assert removed.status_code == 204
    before = state()

    # Then the admin's keys are revoked and do nothing, not even list members or invite an owner
    for used in (secret, made["key"]):
        listing = api(Client(), "GET", reverse("member-list"), key=used)
        invite = api(
            Client(), "POST", reverse("invitation-list"), {"email": "me-again@example.com", "role": "owner"}, key=used
        )
        assert listing.status_code == invite.status_code == 401
        assert invite.json() == {"detail": "Invalid or revoked API key.", "code": "authentication_failed"}
    assert state() == before
    with workspace_scope(workspace):
        assert not Invitation.objects.filter(email="me-again@example.com").exists()
        revoked = dict(ApiKey.objects.values_list("pk", "revoked_at"))
    assert revoked[first.pk] is not None
    assert revoked[made["id"]] is not None
    assert revoked[owners_key.pk] is None
    assert api(Client(), "GET", reverse("member-list"), key=owners_secret).status_code == 200
    # and the removal's audit entry lists them
    [(label, _, details)] = _audit(workspace, "member.removed")
    assert label == owner.email
    assert details == {"role": "admin", "api_keys_revoked": sorted([first.pk, made["id"]]), "invitations_revoked": []}


def test_removing_a_member_revokes_the_invitations_they_sent(workspace, team):
    # Given an admin who invited two people, one of whom already joined
    admin, owner = team["admin"], team["owner"]
    admin_client = logged_in_client(admin)
    pending = api(admin_client, "POST", reverse("invitation-list"), {"email": "friend@example.com", "role": "admin"})
    joined = api(admin_client, "POST", reverse("invitation-list"), {"email": "joined@example.com", "role": "member"})
    by_owner = api(logged_in_client(owner), "POST", reverse("invitation-list"), {"email": "other@example.com"})
    assert pending.status_code == joined.status_code == by_owner.status_code == 201
    with workspace_scope(workspace):
        accepted = Invitation.objects.get(pk=joined.json()["id"])
        services.invitation_accept(invitation=accepted, user=factories.UserFactory(email="joined@example.com"))

    # When the owner removes the admin
    assert api(logged_in_client(owner), "DELETE", _member_url(workspace, admin)).status_code == 204

    # Then the admin's pending invitation no longer works, the accepted one and the owner's stay as they were
    with workspace_scope(workspace):
        revoked = dict(Invitation.objects.values_list("pk", "revoked_at"))
    assert revoked[pending.json()["id"]] is not None
    assert revoked[joined.json()["id"]] is None
    assert revoked[by_owner.json()["id"]] is None
    [(_, _, details)] = _audit(workspace, "member.removed")
    assert details["invitations_revoked"] == [pending.json()["id"]]


def test_wrong_owner_passwords_wait_like_failed_sign_ins(workspace, team, settings):
    # Given an owner whose session someone else holds, and a limit of 2 failures
    settings.LOGIN_FAILURE_LIMIT = 2
    settings.LOGIN_BACKOFF_FIRST_SECONDS = 60
    client = logged_in_client(team["owner"])
    url = _member_url(workspace, team["admin"])

    # When they guess the password twice
    answers = [api(client, "PATCH", url, {"role": "owner", "password": f"guess-{n}"}) for n in range(2)]
    before = state()

    # Then the guesses are refused, and after them even the right password waits, naming the wait
    assert [a.json()["errors"] for a in answers] == [{"password": [services.OWNER_PASSWORD_WRONG]}] * 2
    right = api(client, "PATCH", url, {"role": "owner", "password": factories.PASSWORD})
    assert right.status_code == 400
    assert right.json()["errors"] == {"password": [services.owner_password_wait(60)]}
    assert state() == before


@pytest.mark.parametrize("how", ["membership deleted", "user deleted", "user deactivated"])
def test_a_key_whose_creator_is_gone_does_nothing(how, workspace, team):
    # Given an admin's key, and the admin gone in a way that did not revoke it
    admin = team["admin"]
    _, secret = factories.api_key(workspace, creator=admin)
    if how == "membership deleted":
        with workspace_scope(workspace):
            Membership.objects.filter(user=admin).delete()
    elif how == "user deleted":
        User.objects.filter(pk=admin.pk).delete()
    else:
        User.objects.filter(pk=admin.pk).update(is_active=False)
    before = state()

    # When the key lists members or invites an owner
    listing = api(Client(), "GET", reverse("member-list"), key=secret)
    invite = api(Client(), "POST", reverse("invitation-list"), {"email": "x@example.com", "role": "owner"}, key=secret)

    # Then it is refused with a message saying why, and nothing changed
    for response in (listing, invite):
        assert response.status_code == 401
        assert response.json() == {"detail": ORPHAN_KEY_MESSAGE, "code": "authentication_failed"}
    assert state() == before


def test_removing_a_member_in_the_settings_says_how_many_keys_were_revoked(workspace, team):
    factories.api_key(workspace, creator=team["admin"], name="one")
    factories.api_key(workspace, creator=team["admin"], name="two")
    client = logged_in_client(team["owner"])

    page = client.post(reverse("settings_member_remove", kwargs={"pk": _membership(workspace, team["admin"]).pk}))
    quiet = client.post(reverse("settings_member_remove", kwargs={"pk": _membership(workspace, team["member"]).pk}))

    assert page.status_code == quiet.status_code == 302
    shown = client.get(reverse("settings_members")).content.decode()
    assert f"Removed {team['admin'].email}; 2 API keys they created were revoked." in shown
    assert f"Removed {team['member'].email}; 0 API keys they created were revoked." in shown
    with workspace_scope(workspace):
        assert not ApiKey.objects.filter(revoked_at__isnull=True).exists()


# --- The audit log names the key -----------------------------------------------------------------------


def test_a_keys_actions_are_audited_with_the_key_and_its_creator(workspace, team):
    key, secret = factories.api_key(workspace, creator=team["admin"])

    api(Client(), "PATCH", _member_url(workspace, team["member"]), {"role": "viewer"}, key=secret)

    [(label, actor, details)] = _audit(workspace, "member.role_changed")
    assert label == f"API key {key.display_prefix} (#{key.pk}) of {team['admin'].email}"
    assert actor == team["admin"].pk
    assert details == {
        "from": "member",
        "to": "viewer",
        "api_key": {"id": key.pk, "prefix": key.display_prefix, "creator": team["admin"].email},
    }


# --- Ownership moves only by a signed-in owner with their password ------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (None, services.OWNER_PASSWORD_REQUIRED),
        ("", services.OWNER_PASSWORD_REQUIRED),
        ("wrong", services.OWNER_PASSWORD_WRONG),
    ],
)
def test_moving_ownership_needs_the_owners_password(password, message, workspace, team, settings):
    # Given the owner, signed in, and a second owner (six wrong passwords below stay under the wait)
    settings.LOGIN_FAILURE_LIMIT = 10
    client = logged_in_client(team["owner"])
    second_owner = factories.member(workspace, role=Role.OWNER)
    typed = {} if password is None else {"password": password}
    before = state()

    # When they grant, take or remove the owner role, or invite an owner, without their password
    grant = api(client, "PATCH", _member_url(workspace, team["member"]), {"role": "owner", **typed})
    take = api(client, "PATCH", _member_url(workspace, second_owner), {"role": "admin", **typed})
    remove = _delete(client, _member_url(workspace, second_owner), typed)
    invite = api(client, "POST", reverse("invitation-list"), {"email": "boss@example.com", "role": "owner", **typed})
    page = client.post(
        reverse("settings_member_role", kwargs={"pk": _membership(workspace, team["member"]).pk}),
        {"role": "owner", **typed},
        follow=True,
    )
    invite_page = client.post(reverse("settings_invitations"), {"email": "boss@example.com", "role": "owner", **typed})

    # Then each is refused naming the password, and nothing changed
    for response in (grant, take, remove, invite):
        assert response.status_code == 400, response.content
        assert response.json()["errors"] == {"password": [message]}
    assert message in page.content.decode()
    assert invite_page.status_code == 200
    assert invite_page.context["form"].errors["password"] == [message]
    assert state() == before


def test_owner_makes_another_owner_with_their_password(workspace, team):
    client = logged_in_client(team["owner"])

    granted = api(
        client, "PATCH", _member_url(workspace, team["member"]), {"role": "owner", "password": factories.PASSWORD}
    )
    page = client.post(
        reverse("settings_member_role", kwargs={"pk": _membership(workspace, team["admin"]).pk}),
        {"role": "owner", "password": factories.PASSWORD},
    )
    invite = api(
        client,
        "POST",
        reverse("invitation-list"),
        {"email": "boss@example.com", "role": "owner", "password": factories.PASSWORD},
    )

    assert granted.status_code == 200
    assert granted.json()["role"] == "owner"
    assert "password" not in granted.json()
    assert page.status_code == 302
    assert invite.status_code == 201
    roles = _roles(workspace)
    assert (roles[team["member"].email], roles[team["admin"].email]) == (Role.OWNER, Role.OWNER)


def test_members_page_offers_owners_the_password_form_and_admins_no_owner_option(workspace, team):
    owner_page = logged_in_client(team["owner"]).get(reverse("settings_members")).content.decode()
    admin_page = logged_in_client(team["admin"]).get(reverse("settings_members")).content.decode()

    assert 'name="password"' in owner_page
    assert f"Make {team['member'].email} an owner" in owner_page
    assert 'value="owner"' not in admin_page
    assert 'name="password"' not in admin_page
