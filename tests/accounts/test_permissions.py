"""Roles: what viewers, members, admins and owners may change, in the REST API
(accounts.permissions.WorkspaceRole) and in the web settings (accounts.views.workspace_required)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from accounts.models import Membership, Role
from accounts.tenancy import workspace_scope
from campaigns.services import LAUNCH_REFUSED
from tests import factories
from tests.accounts.support import JSON, api, logged_in_client, state
from tests.accounts.test_cross_workspace import REGISTRY, ROUTES, Side, build_side

Body = Callable[[Side], dict[str, Any] | None]

# Every write the REST API offers: (route name, method) -> body.
API_WRITES: dict[tuple[str, str], Body] = {
    ("api-workspace", "PATCH"): lambda s: {"name": "Taken over"},
    ("api-workspace-rotate-write-key", "POST"): lambda s: None,
    ("api-key-list", "POST"): lambda s: {"name": "Mine now"},
    ("api-key-detail", "DELETE"): lambda s: None,
    ("member-detail", "PATCH"): lambda s: {"role": Role.ADMIN},
    ("member-detail", "DELETE"): lambda s: None,
    ("invitation-list", "POST"): lambda s: {"email": "friend@example.com", "role": Role.ADMIN},
    ("invitation-detail", "DELETE"): lambda s: None,
    ("person-detail", "DELETE"): lambda s: None,
    ("webhook-list", "POST"): lambda s: {"url": "https://93.184.215.14/hooks"},
    ("webhook-detail", "DELETE"): lambda s: None,
    ("segment-list", "POST"): lambda s: {"name": "Mine now", "static": True},
    ("segment-detail", "PATCH"): lambda s: {"name": "Taken over"},
    ("segment-detail", "DELETE"): lambda s: None,
    ("segment-preview", "POST"): lambda s: {"definition": {"type": "trait", "key": "plan", "operator": "is_set"}},
    ("segment-refresh", "POST"): lambda s: None,
    ("segment-members", "POST"): lambda s: {"add": [], "remove": [s.person.user_id]},
    ("api-tracking-plan", "PUT"): lambda s: {"events": {}},
    ("campaign-list", "POST"): lambda s: {
        "name": "Mine now",
        "channel": "email",
        "kind": "broadcast",
        "audience": {"segments": [s.segment.pk]},
        "variants": [{"name": "A", "subject": "Hi", "body": "<p>Hi</p>"}],
    },
    ("campaign-detail", "PATCH"): lambda s: {"name": "Taken over"},
    ("campaign-detail", "DELETE"): lambda s: None,
    ("campaign-launch", "POST"): lambda s: None,
    ("campaign-pause", "POST"): lambda s: None,
    ("campaign-preview", "POST"): lambda s: {"person": s.person.pk},
    ("campaign-test", "POST"): lambda s: {"email": "qa@example.com", "person": s.person.pk},
    ("campaign-estimate", "POST"): lambda s: {"channel": "email", "audience": {"segments": [s.segment.pk]}},
    ("frequency-cap-list", "POST"): lambda s: {"channel": "email", "max": 2, "per": "1w"},
    ("frequency-cap-detail", "DELETE"): lambda s: None,
    ("campaign-settings", "PATCH"): lambda s: {"timezone": "Europe/Paris"},
}
# Insights answer questions by POST (a funnel, a retention table: viewers may ask, nothing is written) and
# make segments (members): their roles are tested with them, in tests/insights (test_api.py,
# test_views.py, test_clustering_api.py, test_clustering_views.py), not in the matrices here.
INSIGHTS_ROUTES = {route.name for route in ROUTES if route.pattern.startswith(("api/v1/insights/", "insights/"))}

# REST writes members may make too (segments and campaigns are everyday work); viewers may not.
# Launching a campaign takes an admin, or a member when the workspace's campaign setting
# ``members_can_launch`` is set (off by default; both cases: tests/campaigns/test_views.py).
MEMBER_API_WRITES = {name for name, _ in API_WRITES if name.startswith(("segment-", "campaign-", "frequency-cap-"))} - {
    "campaign-launch"
}
# Refusals that say more than the role's.
REFUSALS = {("campaign-launch", Role.MEMBER): LAUNCH_REFUSED}

# Every settings page that takes a POST -> a body that would change something.
WEB_WRITES: dict[str, Body] = {
    "settings_workspace": lambda s: {"name": "Taken over"},
    "settings_member_role": lambda s: {"role": Role.ADMIN},
    "settings_member_remove": lambda s: {},
    "settings_invitations": lambda s: {"email": "friend@example.com", "role": Role.ADMIN},
    "settings_invitation_revoke": lambda s: {},
    "settings_api_keys": lambda s: {"name": "Mine now"},
    "settings_api_key_revoke": lambda s: {},
    "settings_write_key": lambda s: {},
    "settings_webhooks": lambda s: {"url": "https://93.184.215.14/hooks", "events": "both", "scope": "all"},
    "settings_webhook_test": lambda s: {},
    "settings_webhook_rotate": lambda s: {},
    "settings_webhook_delete": lambda s: {},
    # The tracking plan can keep data out: owners and admins only.
    "settings_data_import": lambda s: {"text": '{"events": {}}'},
    "settings_data_settings": lambda s: {"block_unplanned_events": "on"},
    "settings_data_event_add": lambda s: {"name": "Mine now"},
    "settings_data_event_update": lambda s: {"event": s.plan_event, "description": "Taken over"},
    "settings_data_event_remove": lambda s: {"event": s.plan_event},
    "settings_data_property_set": lambda s: {"event": s.plan_event, "name": "added", "type": "list"},
    "settings_data_property_change": lambda s: {"event": s.plan_event, "name": "total", "type": "list"},
    "settings_data_property_remove": lambda s: {"event": s.plan_event, "name": "total"},
    # Campaigns' caps and sending settings: owners and admins only (the page; tests/campaigns).
    "settings_campaigns": lambda s: {
        "timezone": "Europe/Paris",
        "emails_per_second": "10",
        "webhooks_per_second": "10",
    },
    "settings_campaign_cap_add": lambda s: {"channel": "email", "max": "1", "per": "1d"},
    "settings_campaign_cap_delete": lambda s: {},
}
# Settings pages that only show things (a POST is a 405; see test_views).
READ_ONLY_SETTINGS = {
    "settings_members",
    "settings_audit_log",
    "settings_install",
    "settings_webhook_detail",
    "settings_data",
    "settings_data_export",
    "settings_campaign_outbox",
}
# Settings pages members may change too (viewers may not: tests/tracking/test_views.py).
MEMBER_SETTINGS = {"settings_triggers", "settings_trigger_edit", "settings_trigger_delete"}


def _url(name: str, side: Side, route_kwargs: frozenset[str] = frozenset()) -> str:
    spec = REGISTRY[name]
    kwargs = spec.kwargs(side) if spec.kwargs else {}
    if "format" in route_kwargs:
        kwargs["format"] = "json"
    return reverse(name, kwargs=kwargs) if kwargs else reverse(name)


def test_the_write_lists_cover_every_route():
    api_writes = {
        (route.name, method)
        for route in ROUTES
        if route.is_api and route.name not in INSIGHTS_ROUTES
        for method in route.api_methods() - {"GET", "HEAD", "OPTIONS"}
    }
    settings_routes = {route.name for route in ROUTES if route.name.startswith("settings_")}
    assert api_writes == set(API_WRITES)
    assert settings_routes == set(WEB_WRITES) | READ_ONLY_SETTINGS | MEMBER_SETTINGS


def _actor(side: Side, role: str):
    return factories.member(side.workspace, role=role)


API_CASES = [
    pytest.param(route, method, role, id=f"{route.pattern}-{method}-{role}")
    for route in ROUTES
    if route.is_api and route.name not in INSIGHTS_ROUTES
    for method in sorted(route.api_methods() - {"GET"})
    for role in (Role.VIEWER, Role.MEMBER)
    if not (role == Role.MEMBER and route.name in MEMBER_API_WRITES)
]


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method", "role"), API_CASES)
def test_viewers_and_members_cannot_write_through_the_api(route, method, role):
    # Given a workspace and a viewer's or member's session
    side = build_side("Alpha")
    client = logged_in_client(_actor(side, role))
    before = state()

    # When they try a write
    response = api(client, method, _url(route.name, side, route.kwargs), API_WRITES[(route.name, method)](side))

    # Then it is refused and nothing changed
    assert response.status_code == 403
    assert response.json() == {
        "detail": REFUSALS.get((route.name, role), "Your role in this workspace does not allow this change."),
        "code": "permission_denied",
    }
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
@pytest.mark.parametrize("name", sorted(WEB_WRITES))
def test_viewers_and_members_cannot_post_settings(name, role):
    side = build_side("Alpha")
    client = logged_in_client(_actor(side, role))
    before = state()

    response = client.post(_url(name, side), WEB_WRITES[name](side))

    assert response.status_code == 403
    assert "does not allow this change" in response.content.decode()
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_viewers_and_members_can_read(role):
    side = build_side("Alpha")
    client = logged_in_client(_actor(side, role))

    for name in (
        "api-workspace",
        "member-list",
        "api-key-list",
        "invitation-list",
        "audit-log-list",
        "webhook-list",
        "segment-list",
    ):
        assert api(client, "GET", reverse(name)).status_code == 200, name
    for name in (
        "dashboard",
        "settings_members",
        "settings_api_keys",
        "settings_audit_log",
        "settings_workspace",
        "settings_webhooks",
    ):
        assert client.get(reverse(name)).status_code == 200, name
    assert client.get(reverse("settings_webhook_detail", args=[side.webhook.pk])).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), sorted(API_WRITES))
def test_admins_may_write(name, method):
    """The control for the refusals above: the same calls go through for an admin."""
    side = build_side("Alpha")
    client = logged_in_client(_actor(side, Role.ADMIN))

    response = api(client, method, _url(name, side), API_WRITES[(name, method)](side))

    assert response.status_code in (200, 201, 202, 204), response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), sorted(key for key in API_WRITES if key[0] in MEMBER_API_WRITES))
def test_members_may_write_segments(name, method):
    side = build_side("Alpha")
    client = logged_in_client(_actor(side, Role.MEMBER))

    response = api(client, method, _url(name, side), API_WRITES[(name, method)](side))

    assert response.status_code in (200, 201, 202, 204), response.content


# --- Ownership --------------------------------------------------------------------------


def _membership(workspace, user) -> Membership:
    with workspace_scope(workspace):
        return Membership.objects.get(user=user)


@pytest.fixture
def team(workspace):
    """An owner, an admin and a member of ``workspace``."""
    return {
        "owner": factories.member(workspace, role=Role.OWNER),
        "admin": factories.member(workspace, role=Role.ADMIN),
        "member": factories.member(workspace, role=Role.MEMBER),
    }


def test_admin_cannot_grant_owner(workspace, team):
    client = logged_in_client(team["admin"])
    target = _membership(workspace, team["member"])
    before = state()

    response = api(client, "PATCH", reverse("member-detail", kwargs={"pk": target.pk}), {"role": "owner"})
    page = client.post(reverse("settings_member_role", kwargs={"pk": target.pk}), {"role": "owner"})

    assert response.status_code == 403
    assert response.json()["detail"] == "Only an owner can grant or remove the owner role."
    assert page.status_code == 403
    assert state() == before


def test_admin_cannot_demote_or_remove_an_owner(workspace, team):
    client = logged_in_client(team["admin"])
    target = _membership(workspace, team["owner"])
    before = state()

    demote = api(client, "PATCH", reverse("member-detail", kwargs={"pk": target.pk}), {"role": "member"})
    remove = api(client, "DELETE", reverse("member-detail", kwargs={"pk": target.pk}))
    demote_page = client.post(reverse("settings_member_role", kwargs={"pk": target.pk}), {"role": "member"})
    remove_page = client.post(reverse("settings_member_remove", kwargs={"pk": target.pk}))

    assert demote.status_code == 403
    assert demote.json()["detail"] == "Only an owner can grant or remove the owner role."
    assert remove.status_code == 403
    assert remove.json()["detail"] == "Only an owner can remove an owner."
    assert demote_page.status_code == remove_page.status_code == 403
    assert state() == before


def test_admin_can_manage_non_owners(workspace, team):
    client = logged_in_client(team["admin"])
    target = _membership(workspace, team["member"])

    response = api(client, "PATCH", reverse("member-detail", kwargs={"pk": target.pk}), {"role": "admin"})

    assert response.status_code == 200
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_last_owner_cannot_be_demoted_or_removed(workspace, owner):
    client = logged_in_client(owner)
    target = _membership(workspace, owner)
    url = reverse("member-detail", kwargs={"pk": target.pk})
    before = state()

    demote = api(client, "PATCH", url, {"role": "admin", "password": factories.PASSWORD})
    remove = client.delete(url, data=json.dumps({"password": factories.PASSWORD}), content_type=JSON)

    assert demote.status_code == 400
    assert demote.json()["errors"] == {"role": ["A workspace needs at least one owner."]}
    assert remove.status_code == 400
    assert "A workspace needs at least one owner." in remove.json()["detail"]
    assert state() == before


def test_last_owner_cannot_be_demoted_or_removed_in_the_settings(workspace, owner):
    client = logged_in_client(owner)
    target = _membership(workspace, owner)
    before = state()

    demote = client.post(reverse("settings_member_role", kwargs={"pk": target.pk}), {"role": "admin"}, follow=True)
    remove = client.post(reverse("settings_member_remove", kwargs={"pk": target.pk}), follow=True)

    for page in (demote, remove):
        assert page.status_code == 200
        assert "A workspace needs at least one owner." in page.content.decode()
    assert state() == before


def test_owner_can_grant_and_take_ownership(workspace, team):
    client = logged_in_client(team["owner"])
    member = _membership(workspace, team["member"])
    first_owner = _membership(workspace, team["owner"])

    promoted = client.post(
        reverse("settings_member_role", kwargs={"pk": member.pk}), {"role": "owner", "password": factories.PASSWORD}
    )
    demoted = api(
        client,
        "PATCH",
        reverse("member-detail", kwargs={"pk": first_owner.pk}),
        {"role": "admin", "password": factories.PASSWORD},
    )

    assert promoted.status_code == 302
    assert demoted.status_code == 200
    member.refresh_from_db()
    first_owner.refresh_from_db()
    assert (member.role, first_owner.role) == (Role.OWNER, Role.ADMIN)
    # Now an admin, the former owner can no longer touch the new owner.
    refused = api(client, "DELETE", reverse("member-detail", kwargs={"pk": member.pk}))
    assert refused.status_code == 403


def test_owner_can_remove_another_owner(workspace, team):
    second = factories.member(workspace, role=Role.OWNER)
    client = logged_in_client(team["owner"])
    target = _membership(workspace, second)

    response = client.delete(
        reverse("member-detail", kwargs={"pk": target.pk}),
        data=json.dumps({"password": factories.PASSWORD}),
        content_type=JSON,
    )

    assert response.status_code == 204
    with workspace_scope(workspace):
        assert list(Membership.objects.filter(role=Role.OWNER).values_list("user", flat=True)) == [team["owner"].pk]
