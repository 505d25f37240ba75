"""Segments next to people: ``?segment=`` on the people list (API and page), ``segments`` of a person,
the Segments section of a person's page and its "why" (segmentation/person_views.py, provided to
tracking through tracking/people_extensions.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tenancy import workspace_scope
from segmentation import services
from segmentation.models import MembershipChange
from tests import factories
from tests.accounts.support import logged_in_client
from tests.segmentation.support import bought, reload, shopper
from tracking.models import Person

pytestmark = pytest.mark.django_db

BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}
HTMX = {"HX-Request": "true"}


def _segment(workspace, name, definition=None, *, static=False):
    with workspace_scope(workspace):
        segment = services.segment_create(
            workspace=workspace,
            actor=None,
            name=name,
            definition=None if static else (definition or BUYERS),
            static=static,
        )
        if not static:
            services.segment_refresh(segment=segment)
        return reload(segment)


@pytest.fixture
def people(workspace):
    now = timezone.now()
    ann = shopper(workspace, "ann", traits={"plan": "Pro", "email": "ann@example.com", "name": "Ann Lee"})
    bob = shopper(workspace, "bob", traits={"plan": "Free"})
    cy = shopper(workspace, "cy", traits={"plan": "Pro"})
    for who, days in ((ann, 1), (ann, 2), (cy, 3)):
        bought(workspace, who, now - timedelta(days=days), revenue=100)
    return {"ann": ann, "bob": bob, "cy": cy}


@pytest.fixture
def key_client(workspace):
    _, secret = factories.api_key(workspace)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _ids(response):
    assert response.status_code == 200, response.content
    return [person["id"] for person in response.json()["results"]]


# --- The API -----------------------------------------------------------------------------------


def test_people_filtered_by_segment_are_its_members_and_combine_with_other_filters(workspace, people, key_client):
    buyers = _segment(workspace, "Buyers")  # ann, cy
    pro = _segment(workspace, "Pro", {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"})

    assert sorted(_ids(key_client.get("/api/v1/people/", {"segment": buyers.pk}))) == sorted(
        [people["ann"].pk, people["cy"].pk]
    )
    assert _ids(key_client.get("/api/v1/people/", {"segment": buyers.pk, "user_id": "cy"})) == [people["cy"].pk]
    assert _ids(key_client.get("/api/v1/people/", {"segment": buyers.pk, "search": "ann@"})) == [people["ann"].pk]
    assert _ids(key_client.get("/api/v1/people/", {"segment": pro.pk, "user_id": "bob"})) == []
    assert key_client.get("/api/v1/people/", {"segment": buyers.pk}).json()["count"] == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("999999", "No segment with id 999999 in this workspace."),
        ("abc", "Not a segment id: 'abc'."),
        ("-3", "Not a segment id: '-3'."),
        ("0", "Not a segment id: '0'."),
        (" ", "Must not be empty."),
    ],
)
def test_a_segment_filter_naming_nothing_is_a_400_naming_segment(workspace, people, key_client, value, message):
    response = key_client.get("/api/v1/people/", {"segment": value})

    assert response.status_code == 400
    assert response.json()["errors"] == {"segment": [message]}


def test_another_workspaces_segment_is_refused_as_a_missing_one(workspace, people, key_client):
    other = factories.WorkspaceFactory()
    stranger = shopper(other, "ann")
    theirs = _segment(other, "Theirs", {"type": "trait", "key": "plan", "operator": "is_not_set"})
    assert theirs.size == 1
    assert stranger.pk

    response = key_client.get("/api/v1/people/", {"segment": theirs.pk})

    assert response.status_code == 400
    assert response.json()["errors"] == {"segment": [f"No segment with id {theirs.pk} in this workspace."]}


def test_the_filtered_list_pins_its_queries(workspace, people, key_client, django_assert_num_queries):
    buyers = _segment(workspace, "Buyers")
    key_client.get("/api/v1/people/")  # the key's first use is recorded once
    # key lookup, the segment, count, page, identities
    with django_assert_num_queries(5):
        assert len(_ids(key_client.get("/api/v1/people/", {"segment": buyers.pk}))) == 2
    for n in range(5):
        bought(workspace, shopper(workspace, f"extra-{n}"), timezone.now() - timedelta(days=1))
    with workspace_scope(workspace):
        services.segment_refresh(segment=buyers)
    with django_assert_num_queries(5):
        assert len(_ids(key_client.get("/api/v1/people/", {"segment": buyers.pk}))) == 7


def test_a_person_lists_the_segments_they_are_in_with_entered_at(workspace, people, key_client):
    buyers = _segment(workspace, "Buyers")
    vip = _segment(workspace, "VIP", static=True)
    with workspace_scope(workspace):
        services.segment_static_change(segment=vip, actor=None, add=["ann"], remove=[])
    _segment(workspace, "Free", {"type": "trait", "key": "plan", "operator": "eq", "value": "Free"})

    body = key_client.get(f"/api/v1/people/{people['ann'].pk}/").json()

    assert [(s["id"], s["name"]) for s in body["segments"]] == [(buyers.pk, "Buyers"), (vip.pk, "VIP")]
    assert set(body["segments"][0]) == {"id", "name", "entered_at"}
    assert body["segments"][0]["entered_at"] <= body["segments"][1]["entered_at"]
    assert key_client.get(f"/api/v1/people/{people['bob'].pk}/").json()["segments"][0]["name"] == "Free"
    listed = key_client.get("/api/v1/people/", {"user_id": "ann"}).json()["results"][0]
    assert "segments" not in listed, "the list keeps the person's common shape"


def test_the_schema_documents_the_filter_and_the_field(client):
    schema = client.get("/api/schema/?format=json").json()

    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/people/"]["get"]["parameters"]}
    detail = schema["paths"]["/api/v1/people/{id}/"]["get"]["responses"]["200"]["content"]["application/json"]
    component = schema["components"]["schemas"][detail["schema"]["$ref"].rsplit("/", 1)[1]]

    assert parameters["segment"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}
    assert "400" in schema["paths"]["/api/v1/people/"]["get"]["responses"]
    assert component["properties"]["segments"]["type"] == "array"
    item = schema["components"]["schemas"][component["properties"]["segments"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(item["properties"]) == {"id", "name", "entered_at"}


# --- The People page ----------------------------------------------------------------------------


def test_the_people_page_filters_by_segment_and_keeps_it_across_pages(workspace, people, owner, monkeypatch):
    buyers = _segment(workspace, "Buyers")
    client = logged_in_client(owner)

    response = client.get(reverse("people"), {"segment": buyers.pk})

    html = response.content.decode()
    listed = sorted(person.pk for person in response.context["page"].object_list)
    assert listed == sorted([people["ann"].pk, people["cy"].pk])
    assert f'<option value="{buyers.pk}" selected>Buyers (2)</option>' in html
    assert "2 people match" in html
    assert ">bob<" not in html

    monkeypatch.setattr("tracking.views.PEOPLE_PAGE_SIZE", 1)
    paged = client.get(reverse("people"), {"segment": buyers.pk, "q": "anon"}).content.decode()
    assert f"?q=anon&amp;segment={buyers.pk}&amp;page=2" in paged
    second = client.get(reverse("people"), {"segment": buyers.pk, "q": "anon", "page": 2})
    assert len(second.context["page"].object_list) == 1
    assert second.context["page"].paginator.count == 2


def test_a_stale_segment_link_says_so_and_lists_nobody(workspace, people, owner):
    response = logged_in_client(owner).get(reverse("people"), {"segment": "424242"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "No segment with id 424242 in this workspace." in html
    assert list(response.context["page"].object_list) == []
    assert "Nobody here" in html


# --- A person's page: the Segments section ------------------------------------------------------


def test_the_person_page_shows_segments_since_when_and_recent_changes(workspace, people, owner):
    buyers = _segment(workspace, "Buyers")
    gone = _segment(workspace, "Gone soon", {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"})
    with workspace_scope(workspace):
        services.segment_update(
            segment=gone, actor=None, definition={"type": "trait", "key": "plan", "operator": "eq", "value": "Free"}
        )
        services.segment_refresh(segment=gone)  # ann leaves
        changes = list(MembershipChange.objects.filter(person=people["ann"]).order_by("at", "id"))

    html = logged_in_client(owner).get(reverse("person_detail", args=[people["ann"].pk])).content.decode()

    section = html[html.index('id="segments"') : html.index('id="timeline"')]
    current = section[section.index("In now") : section.index("Recent entries and exits")]
    recent = section[section.index("Recent entries and exits") :]
    assert "Buyers" in current
    assert "Gone soon" not in current
    assert [c.kind for c in changes] == ["entered", "entered", "exited"]
    assert recent.index("Left") < recent.index("Gone soon") < recent.index("Entered")
    assert f"{timezone.localtime(changes[0].at):%-d %b %Y}" in current
    assert reverse("segment_detail", args=[buyers.pk]) in current


def test_why_a_member_is_in_and_a_non_member_is_not(workspace, people, owner):
    buyers = _segment(workspace, "Buyers")
    client = logged_in_client(owner)

    inside = client.get(reverse("segment_why"), {"person": people["ann"].pk, "why": buyers.pk}, headers=HTMX)
    outside = client.get(reverse("segment_why"), {"person": people["bob"].pk, "why": buyers.pk}, headers=HTMX)

    assert inside.status_code == 200
    inside_html = inside.content.decode()
    assert "Why this person is in" in inside_html
    assert "and meets its definition now" in inside_html
    assert "Performed Order Completed 2 times in the last 30 days; needs at least 1 time." in inside_html
    assert "<!DOCTYPE" not in inside_html, "htmx gets the fragment only"
    outside_html = outside.content.decode()
    assert "Why this person is not in" in outside_html
    assert "Performed Order Completed 0 times in the last 30 days; needs at least 1 time." in outside_html
    assert "Not met" in outside_html


def test_why_says_when_the_stored_membership_lags_the_definition(workspace, people, owner):
    buyers = _segment(workspace, "Buyers")
    bought(workspace, people["bob"], timezone.now() - timedelta(hours=1))  # no refresh since

    html = (
        logged_in_client(owner)
        .get(reverse("segment_why"), {"person": people["bob"].pk, "why": buyers.pk}, headers=HTMX)
        .content.decode()
    )

    assert "Not in this segment at its last refresh, but meets its definition now" in html


def test_why_without_htmx_opens_the_person_page_with_the_explanation_inline(workspace, people, owner):
    buyers = _segment(workspace, "Buyers")
    client = logged_in_client(owner)

    response = client.get(reverse("segment_why"), {"person": people["ann"].pk, "why": buyers.pk})

    target = reverse("person_detail", args=[people["ann"].pk]) + f"?why={buyers.pk}#why"
    assert (response.status_code, response["Location"]) == (302, target)
    page = client.get(reverse("person_detail", args=[people["ann"].pk]), {"why": buyers.pk}).content.decode()
    assert "Why this person is in" in page
    assert f'<option value="{buyers.pk}" selected>Buyers</option>' in page


def test_why_for_a_static_list_says_it_has_no_conditions(workspace, people, owner):
    vip = _segment(workspace, "VIP", static=True)
    with workspace_scope(workspace):
        services.segment_static_change(segment=vip, actor=None, add=["ann"], remove=[])

    html = (
        logged_in_client(owner)
        .get(reverse("segment_why"), {"person": people["ann"].pk, "why": vip.pk}, headers=HTMX)
        .content.decode()
    )

    assert "Added to this static list on" in html
    assert "A static list has no conditions" in html


def test_why_with_another_workspaces_person_or_segment_is_a_404(workspace, people, owner):
    other = factories.WorkspaceFactory()
    theirs = _segment(other, "Theirs", {"type": "trait", "key": "plan", "operator": "is_set"})
    stranger = shopper(other, "zed")
    mine = _segment(workspace, "Buyers")
    client = logged_in_client(owner)

    foreign_segment = client.get(reverse("segment_why"), {"person": people["ann"].pk, "why": theirs.pk}, headers=HTMX)
    foreign_person = client.get(reverse("segment_why"), {"person": stranger.pk, "why": mine.pk}, headers=HTMX)
    foreign_page = client.get(reverse("person_detail", args=[people["ann"].pk]), {"why": theirs.pk})

    assert foreign_segment.status_code == 404
    assert foreign_person.status_code == 404
    assert "Theirs" not in foreign_segment.content.decode()
    assert "No such segment in this workspace." in foreign_page.content.decode()
    assert "Theirs" not in foreign_page.content.decode()


def test_a_viewer_may_ask_why(workspace, people):
    buyers = _segment(workspace, "Buyers")
    viewer = factories.member(workspace, role=Role.VIEWER)

    response = logged_in_client(viewer).get(
        reverse("segment_why"), {"person": people["ann"].pk, "why": buyers.pk}, headers=HTMX
    )

    assert response.status_code == 200


def test_hostile_segment_names_and_trait_values_stay_text(workspace, owner):
    ann = shopper(workspace, "ann", traits={"plan": "<script>alert(1)</script>"})
    hostile = _segment(
        workspace,
        "<img src=x onerror=alert(1)>",
        {"type": "trait", "key": "plan", "operator": "contains", "value": "<script>"},
    )
    client = logged_in_client(owner)

    page = client.get(reverse("person_detail", args=[ann.pk]), {"why": hostile.pk}).content.decode()

    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert "plan is “&lt;script&gt;alert(1)&lt;/script&gt;”." in page


def test_the_people_port_refuses_a_module_that_adds_nothing_and_names_given_twice(settings):
    from tracking import people_extensions

    try:
        with pytest.raises(ValueError, match="defines none of"):
            people_extensions.extensions_load(["tracking.models"])
        with pytest.raises(ValueError, match="given twice"):
            people_extensions.extensions_load(["segmentation.person_views", "segmentation.person_views"])
    finally:
        people_extensions.extensions_load(settings.TRACKING_PEOPLE_EXTENSIONS)
    assert [f.name for f in people_extensions.people_filters()] == ["segment"]
    assert [f.name for f in people_extensions.person_fields()] == ["segments", "active_hours"]
    assert [p.name for p in people_extensions.person_panels()] == ["segments", "active_hours"]


def test_nobody_outside_the_workspace_is_listed_by_segment(workspace, people, key_client):
    """A membership row pointing at another workspace's person (a bug elsewhere) never lists them."""
    buyers = _segment(workspace, "Buyers")
    other = factories.WorkspaceFactory()
    stranger = shopper(other, "stranger")
    with workspace_scope(workspace):
        from segmentation.models import Membership

        Membership.objects.create(workspace=workspace, segment=buyers, person_id=stranger.pk, entered_at=timezone.now())
    assert Person.objects.unscoped().filter(pk=stranger.pk).exists()

    assert stranger.pk not in _ids(key_client.get("/api/v1/people/", {"segment": buyers.pk}))
