"""accounts.services: the rules that hold whatever the entry point."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.utils import timezone

from accounts import selectors, services
from accounts.keys import hash_token
from accounts.models import AuditLogEntry, Invitation, Membership, Role, User
from accounts.tenancy import workspace_scope
from tests import factories
from tests.accounts.support import state


@pytest.fixture
def scoped(workspace):
    with workspace_scope(workspace):
        yield workspace


def _membership(user) -> Membership:
    return Membership.objects.get(user=user)


def test_user_signup_is_all_or_nothing(db):
    services.user_signup(email="a@example.com", password=factories.PASSWORD, workspace_name="First")
    before = state()

    with pytest.raises(IntegrityError):
        services.user_signup(email="a@example.com", password=factories.PASSWORD, workspace_name="Second")

    assert state() == before


def test_api_key_create_stores_only_the_hash(scoped):
    key, secret = services.api_key_create(workspace=scoped, name="k", actor=None)

    key.refresh_from_db()
    assert key.key_hash == hash_token(secret)
    assert key.display_prefix == secret[:13]
    assert secret not in {key.key_hash, key.display_prefix, key.name}
    assert selectors.api_key_by_secret(secret) == key
    assert selectors.api_key_by_secret(secret + "x") is None
    assert selectors.api_key_by_secret(scoped.write_key) is None


def test_api_key_revoke_is_idempotent(scoped):
    key, secret = services.api_key_create(workspace=scoped, name="k", actor=None)

    services.api_key_revoke(workspace=scoped, key=key, actor=None)
    first = key.revoked_at
    services.api_key_revoke(workspace=scoped, key=key, actor=None)

    assert key.revoked_at == first
    assert selectors.api_key_by_secret(secret) is None
    assert list(AuditLogEntry.objects.values_list("action", flat=True)) == ["api_key.revoked", "api_key.created"]


def test_invitation_accept_once(scoped, owner):
    invitation, link = services.invitation_create(
        workspace=scoped, email="x@example.com", role=Role.ADMIN, actor=owner, accept_url_base="http://h/"
    )
    token = link.rstrip("/").rsplit("/", 1)[1]
    joiner = factories.UserFactory(email="x@example.com")
    assert selectors.invitation_by_token(token) == invitation

    membership = services.invitation_accept(invitation=invitation, user=joiner)

    assert membership.role == Role.ADMIN
    assert selectors.invitation_by_token(token) is None
    with pytest.raises(ValidationError):
        services.invitation_accept(invitation=invitation, user=factories.UserFactory())
    assert Membership.objects.count() == 2


def test_invitation_for_a_member_of_the_workspace_keeps_their_role(scoped, owner):
    invitation, _ = services.invitation_create(
        workspace=scoped, email="late@example.com", role=Role.VIEWER, actor=owner, accept_url_base="/"
    )
    late = factories.member(scoped, role=Role.ADMIN, user=factories.UserFactory(email="late@example.com"))

    membership = services.invitation_accept(invitation=invitation, user=late)

    assert membership.role == Role.ADMIN
    assert not AuditLogEntry.objects.filter(action="member.joined").exists()


def test_expired_invitation_is_not_found(scoped, owner):
    invitation, link = services.invitation_create(
        workspace=scoped, email="x@example.com", role=Role.MEMBER, actor=owner, accept_url_base="/"
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert selectors.invitation_by_token(link.rstrip("/").rsplit("/", 1)[1]) is None


def test_change_role_rules(scoped, owner):
    admin = factories.member(scoped, role=Role.ADMIN)
    member = factories.member(scoped, role=Role.MEMBER)

    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            workspace=scoped, membership=_membership(member), role=Role.OWNER, actor=admin, actor_role=Role.ADMIN
        )
    with pytest.raises(ValidationError) as error:
        services.membership_change_role(
            workspace=scoped, membership=_membership(owner), role=Role.ADMIN, actor=owner, actor_role=Role.OWNER
        )
    assert error.value.message_dict == {"role": ["A workspace needs at least one owner."]}
    with pytest.raises(ValidationError):
        services.membership_change_role(
            workspace=scoped, membership=_membership(member), role="root", actor=owner, actor_role=Role.OWNER
        )
    for password, message in ((None, services.OWNER_PASSWORD_REQUIRED), ("guess", services.OWNER_PASSWORD_WRONG)):
        with pytest.raises(ValidationError) as error:
            services.membership_change_role(
                workspace=scoped,
                membership=_membership(member),
                role=Role.OWNER,
                actor=owner,
                actor_role=Role.OWNER,
                password=password,
            )
        assert error.value.message_dict == {"password": [message]}
    assert _membership(member).role == Role.MEMBER

    services.membership_change_role(
        workspace=scoped,
        membership=_membership(member),
        role=Role.OWNER,
        actor=owner,
        actor_role=Role.OWNER,
        password=factories.PASSWORD,
    )
    services.membership_change_role(
        workspace=scoped,
        membership=_membership(owner),
        role=Role.VIEWER,
        actor=owner,
        actor_role=Role.OWNER,
        password=factories.PASSWORD,
    )
    assert (_membership(member).role, _membership(owner).role) == (Role.OWNER, Role.VIEWER)
    assert list(AuditLogEntry.objects.filter(action="member.role_changed").values_list("details", flat=True)) == [
        {"from": "owner", "to": "viewer"},
        {"from": "member", "to": "owner"},
    ]


def test_remove_rules(scoped, owner):
    admin = factories.member(scoped, role=Role.ADMIN)

    with pytest.raises(PermissionDenied):
        services.membership_remove(workspace=scoped, membership=_membership(owner), actor=admin, actor_role=Role.ADMIN)
    with pytest.raises(ValidationError):
        services.membership_remove(workspace=scoped, membership=_membership(owner), actor=owner, actor_role=Role.OWNER)
    assert Membership.objects.count() == 2

    services.membership_remove(workspace=scoped, membership=_membership(admin), actor=owner, actor_role=Role.OWNER)

    assert list(Membership.objects.values_list("user", flat=True)) == [owner.pk]
    assert User.objects.filter(pk=admin.pk).exists()


def test_write_key_rotate(scoped):
    old = scoped.write_key

    new = services.write_key_rotate(workspace=scoped, actor=None)

    assert new != old
    assert selectors.workspace_by_write_key(old) is None
    assert selectors.workspace_by_write_key(new) == scoped
    assert selectors.is_write_key(new)
    assert not selectors.is_write_key("cly_sk_" + new[7:])


def test_audit_record_without_actor_names_the_key(scoped):
    entry = services.audit_record(workspace=scoped, actor=None, action="x.done")

    assert (entry.actor, entry.actor_label) == (None, "API key")
