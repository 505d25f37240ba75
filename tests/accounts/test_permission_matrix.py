"""Who may call what: every REST route and method under /api/v1/ (read from the URL resolver, so a new
route is in the matrix the day it ships), for a session and a secret key of every role, and for the
keys of members who are gone; plus the calls that touch the owner role or the caller's own membership,
and the member and key management pages.

Allowed calls answer 2xx (or 400 when the only thing missing is the owner's password); refused ones
answer 403 (401 for a gone member's key) and change nothing. One workspace serves the whole module; a
case tries every caller in turn, each in a savepoint rolled back after it, and reports every caller
that got an unexpected answer. A route's format-suffix twin (``.json``) runs the same view with the
same permissions and is tried once per route name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client, override_settings
from django.urls import reverse

from accounts import services
from accounts.models import Membership, Role, User, Workspace
from accounts.tenancy import workspace_scope
from tests import factories
from tests.accounts.support import JSON, logged_in_client, state
from tests.accounts.test_cross_workspace import REGISTRY, ROUTES, Resolved, Side, build_side, url_for
from tests.accounts.test_permissions import API_WRITES, INSIGHTS_ROUTES, MEMBER_API_WRITES, REFUSALS, WEB_WRITES

ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER)
RANK = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3, Role.OWNER: 4}
# Keys whose creator is no longer a member: removed through the service (which revokes the key), or
# whose account was deleted (the key stays unrevoked, and must still do nothing).
GONE = ("removed", "deleted")
PRINCIPALS = [f"session:{role}" for role in ROLES] + [f"key:{role}" for role in ROLES] + [f"key:{g}" for g in GONE]


@dataclass
class World:
    side: Side
    co_owner: User
    users: dict[str, User]
    clients: dict[str, Client]
    secrets: dict[str, str]

    def own_membership(self, principal: str) -> Membership:
        with workspace_scope(self.side.workspace):
            return Membership.objects.get(user=self.users[principal.partition(":")[2]])


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """One workspace for the module: build_side's data, a second owner, a user and a key per role, and the
    keys of an admin removed from the workspace and of one whose account was deleted."""
    with (
        django_db_blocker.unblock(),
        override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]),
    ):
        side = build_side("Matrix")
        workspace = side.workspace
        users = {Role.OWNER.value: side.owner}
        for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
            users[role.value] = factories.member(workspace, role=role)
        co_owner = factories.member(workspace, role=Role.OWNER)
        secrets = {
            role: factories.api_key(workspace, name=f"{role} key", creator=user)[1] for role, user in users.items()
        }
        made = [*users.values(), co_owner, side.other]
        for gone in GONE:
            user = factories.member(workspace, role=Role.ADMIN)
            made.append(user)
            secrets[gone] = factories.api_key(workspace, name=f"{gone} admin's key", creator=user)[1]
            if gone == "removed":
                with workspace_scope(workspace):
                    membership = Membership.objects.get(user=user)
                    services.membership_remove(
                        workspace=workspace, membership=membership, actor=side.owner, actor_role=Role.OWNER
                    )
            else:
                user.delete()
        clients = {f"session:{role}": logged_in_client(user, workspace=workspace) for role, user in users.items()}
        clients.update({f"key:{name}": Client() for name in secrets})
        session_keys = [client.session.session_key for client in clients.values() if client.session.session_key]
    try:
        yield World(side, co_owner, users, clients, {f"key:{name}": secret for name, secret in secrets.items()})
    finally:
        with django_db_blocker.unblock():
            Session.objects.filter(session_key__in=session_keys).delete()
            Workspace.objects.filter(pk=workspace.pk).delete()
            User.objects.filter(pk__in=[user.pk for user in made]).delete()


def _each_in_a_savepoint(callers: list[str], check: Callable[[str], str | None]) -> list[str]:
    """``check(caller)`` for every caller, each rolled back after; the problems they report."""
    problems = []
    for caller in callers:
        with transaction.atomic():
            problem = check(caller)
            transaction.set_rollback(True)
        if problem:
            problems.append(f"{caller}: {problem}")
    return problems


def _call(world: World, principal: str, method: str, url: str, body: Any) -> Any:
    client = world.clients[principal]
    headers = {"Authorization": f"Bearer {world.secrets[principal]}"} if principal in world.secrets else {}
    call = getattr(client, method.lower())
    if body is None:
        return call(url, headers=headers)
    return call(url, data=json.dumps(body), content_type=JSON, headers=headers)


# --- Every route and method --------------------------------------------------------------------------

API_ROUTES = [
    route
    for route in ROUTES
    if route.pattern.startswith("api/v1/") and "format" not in route.kwargs and route.name not in INSIGHTS_ROUTES
]


# Reads of a whole person's data: owners' and admins' only.
ADMIN_READS = {"person-export-detail"}


def _needed(route: Resolved, method: str) -> Role:
    """The least role that may make this call: reads are everyone's (but ADMIN_READS), segments members', the rest
    admins'."""
    if method == "GET":
        return Role.ADMIN if route.name in ADMIN_READS else Role.VIEWER
    return Role.MEMBER if route.name in MEMBER_API_WRITES else Role.ADMIN


ROUTE_CASES = [
    pytest.param(route, method, id=f"{route.pattern}-{method}")
    for route in API_ROUTES
    for method in sorted(route.api_methods())
]
ROLE_REFUSAL = {"detail": "Your role in this workspace does not allow this change.", "code": "permission_denied"}


def test_the_matrix_covers_every_api_route():
    assert {route.name for route in API_ROUTES} == {
        route.name for route in ROUTES if route.pattern.startswith("api/v1/") and route.name not in INSIGHTS_ROUTES
    }
    assert len(API_ROUTES) >= 19
    missing = [
        (route.name, method)
        for route in API_ROUTES
        for method in route.api_methods() - {"GET"}
        if (route.name, method) not in API_WRITES
    ]
    assert missing == [], "give these writes a body in tests/accounts/test_permissions.py API_WRITES"


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), ROUTE_CASES)
def test_every_route_for_every_role(route, method, world):
    body = API_WRITES[(route.name, method)](world.side) if method != "GET" else None
    url = url_for(route, world.side)

    def check(principal: str) -> str | None:
        role = principal.partition(":")[2]
        if role in GONE:
            expected, answer = 401, {"code": "authentication_failed"}
        elif RANK[Role(role)] >= RANK[_needed(route, method)]:
            response = _call(world, principal, method, url, body)
            if response.status_code in (200, 201, 202, 204):
                return None
            return f"allowed, answered {response.status_code} {response.content[:200]!r}"
        else:
            expected, answer = 403, {"code": "permission_denied"} if route.name in ADMIN_READS else ROLE_REFUSAL
            if (route.name, role) in REFUSALS:  # a refusal that says more (launching: an admin's, or by setting)
                answer = {"detail": REFUSALS[(route.name, role)], "code": "permission_denied"}
        before = state(world.side.workspace)
        response = _call(world, principal, method, url, body)
        if response.status_code != expected:
            return f"expected {expected}, answered {response.status_code} {response.content[:200]!r}"
        if not answer.items() <= response.json().items():
            return f"answered {response.json()}"
        if state(world.side.workspace) != before:
            return "refused, yet something changed"
        return None

    assert _each_in_a_savepoint(PRINCIPALS, check) == []


# --- The owner role and the caller's own membership ----------------------------------------------------


@dataclass(frozen=True)
class Sensitive:
    """A call that touches the owner role (``owner``) or the caller's own membership (``self``)."""

    label: str
    method: str
    url: Callable[[World, str], str]
    body: dict[str, Any] | None
    touches: str


def _member_url(membership: Membership) -> str:
    return reverse("member-detail", kwargs={"pk": membership.pk})


def _co_owner(world: World, principal: str) -> str:
    with workspace_scope(world.side.workspace):
        return _member_url(Membership.objects.get(user=world.co_owner))


SENSITIVE = [
    Sensitive("make-owner", "PATCH", lambda w, p: _member_url(w.side.membership), {"role": "owner"}, "owner"),
    Sensitive("demote-owner", "PATCH", _co_owner, {"role": "admin"}, "owner"),
    Sensitive("remove-owner", "DELETE", _co_owner, None, "owner"),
    Sensitive(
        "invite-owner",
        "POST",
        lambda w, p: reverse("invitation-list"),
        {"email": "new-boss@example.com", "role": "owner"},
        "owner",
    ),
    Sensitive("lower-self", "PATCH", lambda w, p: _member_url(w.own_membership(p)), {"role": "viewer"}, "self"),
    Sensitive("remove-self", "DELETE", lambda w, p: _member_url(w.own_membership(p)), None, "self"),
]


def _sensitive_expectation(operation: Sensitive, principal: str) -> int:
    kind, _, role = principal.partition(":")
    if role in GONE:
        return 401
    if kind == "key":
        return 403  # no key touches the owner role or its own creator, whatever the creator's role
    if role == Role.OWNER:
        return 400  # an owner may, once their password is typed again (the message names it)
    if role == Role.ADMIN and operation.label == "invite-owner":
        return 400  # the invitation form's answer: the role field is refused
    if role == Role.ADMIN and operation.touches == "self":
        return 200 if operation.method == "PATCH" else 204
    return 403


KEY_REFUSALS = (
    services.KEY_CANNOT_TOUCH_OWNERS,
    "An API key cannot change the role of the member who created it.",
    "An API key cannot remove the member who created it.",
    ROLE_REFUSAL["detail"],
)


@pytest.mark.django_db
@pytest.mark.parametrize("operation", SENSITIVE, ids=[operation.label for operation in SENSITIVE])
def test_owner_role_and_own_membership_for_every_role(operation, world):
    def check(principal: str) -> str | None:
        url = operation.url(world, principal)
        before = state(world.side.workspace)
        response = _call(world, principal, operation.method, url, operation.body)
        expected = _sensitive_expectation(operation, principal)
        if response.status_code != expected:
            return f"expected {expected}, answered {response.status_code} {response.content[:200]!r}"
        if expected < 400:
            return None
        answer = response.json()
        if expected == 400 and principal == "session:admin":
            wanted = answer["errors"] == {"role": ["Only an owner can invite another owner."]}
        elif expected == 400:
            wanted = answer["errors"] == {"password": [services.OWNER_PASSWORD_REQUIRED]}
        elif expected == 403 and principal.startswith("key:"):
            wanted = answer["detail"] in KEY_REFUSALS
        else:
            wanted = answer["code"] in ("permission_denied", "authentication_failed")
        if not wanted:
            return f"answered {answer}"
        if state(world.side.workspace) != before:
            return "refused, yet something changed"
        return None

    callers = [p for p in PRINCIPALS if not (operation.touches == "self" and p.partition(":")[2] in GONE)]
    assert _each_in_a_savepoint(callers, check) == []


# --- The member and key management pages ----------------------------------------------------------------

MANAGEMENT_PAGES = [
    name
    for name in sorted(WEB_WRITES)
    if name.startswith(("settings_member", "settings_invitation", "settings_api_key"))
]
WEB_CASES = [
    pytest.param(name, body, id=f"{name}-{label}")
    for name in MANAGEMENT_PAGES
    for label, body in (("write", None), ("owner", {"role": Role.OWNER, "email": "new-boss@example.com"}))
    if label == "write" or name in ("settings_member_role", "settings_invitations")
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "body"), WEB_CASES)
def test_management_pages_for_every_role(name, body, world):
    spec = REGISTRY[name]
    url = reverse(name, kwargs=spec.kwargs(world.side)) if spec.kwargs else reverse(name)
    data = WEB_WRITES[name](world.side) if body is None else body

    def check(principal: str) -> str | None:
        role = principal.partition(":")[2]
        before = state(world.side.workspace)
        response = world.clients[principal].post(url, data)
        if role in (Role.MEMBER, Role.VIEWER):
            expected = 403
        elif body is None:
            return None if response.status_code == 302 else f"allowed, answered {response.status_code}"
        elif name == "settings_invitations":
            expected = 200
            field, message = (
                ("password", services.OWNER_PASSWORD_REQUIRED)
                if role == Role.OWNER
                else ("role", "Only an owner can invite another owner.")
            )
            errors = list(response.context["form"].errors.get(field, [])) if response.status_code == 200 else []
            if response.status_code == 200 and errors != [message]:
                return f"form errors {response.context['form'].errors}"
        else:
            # The owner, without their password: sent back to the page, which says so; an admin: refused.
            expected = 302 if role == Role.OWNER else 403
        if response.status_code != expected:
            return f"expected {expected}, answered {response.status_code}"
        if state(world.side.workspace) != before:
            return "refused, yet something changed"
        return None

    assert _each_in_a_savepoint([f"session:{role}" for role in ROLES], check) == []
