"""The events catalogue page: every event with its volume, last time seen and tracking-plan status."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from accounts.tenancy import workspace_scope
from segmentation.catalogue import selectors
from segmentation.catalogue.services import catalogue_update
from tests import factories
from tests.tracking import builders
from tests.tracking.builders import NOW
from tests.tracking.conftest import basic_auth
from tracking import plan, plan_services

pytestmark = pytest.mark.django_db
PLAN = {
    "events": {
        "Order Completed": {"properties": {"revenue": {"type": "number", "required": True}}},
        "Signed Up": {"quarantine_violations": True},
    }
}


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def _save(workspace, document) -> None:
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(workspace=workspace, actor=None, document=plan.parse(document))


def _track(client, workspace, event, properties=None) -> None:
    response = client.post(
        "/v1/track",
        json.dumps({"userId": "u-1", "event": event, "properties": properties or {}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )
    assert response.status_code == 200


def _shop(workspace, client) -> None:
    """Order Completed x3 (one breaking the plan), Cart Viewed x2 (unplanned), a page view; Signed Up never."""
    _save(workspace, PLAN)
    ada = builders.person(workspace, user_id="ada")
    builders.event(workspace, ada, "Order Completed", at=NOW - timedelta(hours=3), properties={"revenue": 1})
    builders.event(workspace, ada, "Order Completed", at=NOW - timedelta(hours=2), properties={"revenue": 2})
    builders.event(workspace, ada, "$pageview", properties={"path": "/"})
    _track(client, workspace, "Order Completed", {"revenue": "3"})
    _track(client, workspace, "Cart Viewed")
    _track(client, workspace, "Cart Viewed")
    with workspace_scope(workspace):
        catalogue_update(workspace=workspace, settle_seconds=0)


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-event="([^"]*)">', html)


def test_every_event_is_listed_with_volume_last_seen_and_plan_status(signed_in, client, workspace):
    _shop(workspace, client)

    with workspace_scope(workspace):
        catalogue = selectors.event_catalogue(workspace)

    assert [(row.name, row.count, row.status, row.violations) for row in catalogue.rows] == [
        ("Order Completed", 3, "planned", 1),
        ("Cart Viewed", 2, "unplanned", 2),
        ("$pageview", 1, "not_checked", 0),
        ("Signed Up", 0, "planned", 0),
    ]
    assert catalogue.rows[3].last_seen is None
    assert catalogue.rows[0].plan_anchor == "event-1"
    assert catalogue.rows[1].plan_anchor == ""
    html = signed_in.get("/events/catalogue/").content.decode()
    assert _rows(html) == ["Order Completed", "Cart Viewed", "$pageview", "Signed Up"]
    assert '<a href="/events/catalogue/" aria-current="page">Catalogue</a>' in html
    assert '<a class="badge ok" href="/settings/data/#event-1">Planned</a>' in html
    assert '<a class="badge warn" href="/settings/data/#unplanned">Unplanned</a>' in html
    assert '<a href="/settings/data/#event-1-violations">1</a>' in html
    assert '<span class="muted">never</span>' in html


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=planned", ["Order Completed", "Signed Up"]),
        ("status=unplanned", ["Cart Viewed"]),
        ("status=violations", ["Order Completed", "Cart Viewed"]),
        ("status=not_seen", ["Signed Up"]),
        ("q=cart", ["Cart Viewed"]),
        ("sort=name", ["$pageview", "Cart Viewed", "Order Completed", "Signed Up"]),
        ("sort=violations&status=violations", ["Cart Viewed", "Order Completed"]),
        ("status=bogus&sort=bogus", ["Order Completed", "Cart Viewed", "$pageview", "Signed Up"]),
    ],
)
def test_the_catalogue_filters_and_sorts(signed_in, client, workspace, query, names):
    _shop(workspace, client)

    html = signed_in.get(f"/events/catalogue/?{query}").content.decode()

    assert _rows(html) == names


def test_without_a_plan_nothing_is_checked(signed_in, workspace):
    ada = builders.person(workspace, user_id="ada")
    builders.event(workspace, ada, "Order Completed")
    with workspace_scope(workspace):
        catalogue_update(workspace=workspace, settle_seconds=0)

    html = signed_in.get("/events/catalogue/").content.decode()

    assert _rows(html) == ["Order Completed"]
    assert 'title="No tracking plan: nothing is checked">Not checked</span>' in html


def test_blocked_unplanned_events_say_so(signed_in, client, workspace):
    _save(workspace, {**PLAN, "block_unplanned_events": True})
    _track(client, workspace, "Cart Viewed")

    html = signed_in.get("/events/catalogue/").content.decode()

    assert _rows(html) == ["Cart Viewed", "Order Completed", "Signed Up"], "kept out, never stored, still listed"
    assert "Unplanned · blocked" in html
    assert '<span class="muted">(1 quarantined)</span>' in html


def test_another_workspaces_events_and_plan_are_not_listed(signed_in, client, workspace):
    other = factories.WorkspaceFactory()
    _save(other, {"events": {"Their Plan": {}}})
    theirs = builders.person(other, user_id="x")
    builders.event(other, theirs, "Their Event")
    with workspace_scope(other):
        catalogue_update(workspace=other, settle_seconds=0)

    html = signed_in.get("/events/catalogue/").content.decode()

    assert _rows(html) == []
    assert "Their" not in html


def test_the_page_reads_a_fixed_number_of_queries(signed_in, client, workspace, django_assert_max_num_queries):
    _shop(workspace, client)
    for index in range(30):
        _track(client, workspace, f"Extra {index}")
    with workspace_scope(workspace):
        catalogue_update(workspace=workspace, settle_seconds=0)

    with django_assert_max_num_queries(12):
        response = signed_in.get("/events/catalogue/")

    assert len(_rows(response.content.decode())) == 34
