"""Tracking pages: live events, people, a person, quarantine; settings pages: Install and Triggers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking import builders
from tests.tracking.builders import NOW
from tracking import services
from tracking.models import Event, Person, QuarantinedMessage, QuarantineKind, SuppressedId, TrackingTrigger

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def signed_in(client, workspace, owner):
    client.force_login(owner)
    return client


def _event_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-event-id="(\d+)"', html)]


def test_live_events_empty_state_points_to_the_write_key(signed_in, workspace):
    response = signed_in.get("/events/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Waiting for your first event" in html
    assert "/settings/write-key/" in html
    assert workspace.write_key in html
    assert 'hx-trigger="every 2s"' in html


def test_live_events_lists_newest_first_and_polls_after_the_last_id(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    older = builders.event(workspace, ada, "Login", at=NOW - timedelta(minutes=5))
    newer = builders.event(workspace, ada, "Order Completed", at=NOW - timedelta(minutes=1))

    html = signed_in.get("/events/").content.decode()

    assert _event_ids(html) == [newer.pk, older.pk]
    assert f"after={newer.pk}" in html
    assert 'hx-trigger="every 2s"' in html


def test_live_partial_returns_only_newer_events(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    seen = builders.event(workspace, ada, "Login")
    first_new = builders.event(workspace, ada, "Product Viewed")
    second_new = builders.event(workspace, ada, "Product Added")

    response = signed_in.get("/events/", {"after": seen.pk}, **HTMX)
    html = response.content.decode()

    assert response.status_code == 200
    assert "<html" not in html
    assert _event_ids(html) == [second_new.pk, first_new.pk]
    assert f"after={second_new.pk}" in html  # the next poll starts after the newest row


def test_live_partial_with_nothing_new_is_204(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    last = builders.event(workspace, ada, "Login")

    response = signed_in.get("/events/", {"after": last.pk}, **HTMX)

    assert response.status_code == 204
    assert response.content == b""


def test_live_events_filter_by_name_and_person(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada", anonymous_ids=("anon-ada",))
    bob = builders.person(workspace, user_id="u-bob")
    ada_login = builders.event(workspace, ada, "Login")
    ada_order = builders.event(workspace, ada, "Order Completed")
    bob_login = builders.event(workspace, bob, "Login")

    by_name = signed_in.get("/events/", {"event": "Login"}).content.decode()
    by_person = signed_in.get("/events/", {"person": "anon-ada"}).content.decode()
    both = signed_in.get("/events/", {"person": "u-bob", "event": "Login"}).content.decode()
    unknown = signed_in.get("/events/", {"person": "nobody"}).content.decode()
    newer = signed_in.get("/events/", {"event": "Login", "after": ada_login.pk}, **HTMX).content.decode()

    assert sorted(_event_ids(by_name)) == sorted([ada_login.pk, bob_login.pk])
    assert sorted(_event_ids(by_person)) == sorted([ada_login.pk, ada_order.pk])
    assert _event_ids(both) == [bob_login.pk]
    assert _event_ids(unknown) == []
    assert "No events match these filters yet" in unknown
    assert _event_ids(newer) == [bob_login.pk]


def test_event_names_and_properties_are_escaped(signed_in, workspace):
    ada = builders.person(workspace, user_id="<b>ada</b>")
    builders.event(workspace, ada, "<script>alert(1)</script>", properties={"x": "<img src=x onerror=alert(2)>"})

    live = signed_in.get("/events/").content.decode()
    person = signed_in.get(f"/people/{ada.pk}/").content.decode()

    for html in (live, person):
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html
    assert "<b>ada</b>" not in live


def test_properties_named_like_dict_methods_are_shown(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Order Completed", properties={"items": 2, "keys": ["a"], "values": {"x": 1}})

    for path in ("/events/", f"/people/{ada.pk}/"):
        response = signed_in.get(path)
        html = response.content.decode()
        assert response.status_code == 200
        assert "<b>items</b>2<" in html
        assert "<b>keys</b>[&quot;a&quot;]<" in html


def test_people_list_and_search(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada", traits={"name": "Ada Lovelace", "email": "ada@math.example"})
    bob = builders.person(workspace, anonymous_ids=("anon-bob",), traits={"plan": "Pro"})

    everyone = signed_in.get("/people/").content.decode()
    by_email = signed_in.get("/people/", {"q": "math.example"}).content.decode()
    by_trait = signed_in.get("/people/", {"q": "plan=pro"}).content.decode()
    by_anon = signed_in.get("/people/", {"q": "anon-b"}).content.decode()
    nobody = signed_in.get("/people/", {"q": "zzz"}).content.decode()

    assert f"/people/{ada.pk}/" in everyone
    assert f"/people/{bob.pk}/" in everyone
    assert f"/people/{ada.pk}/" in by_email
    assert f"/people/{bob.pk}/" not in by_email
    assert f"/people/{bob.pk}/" in by_trait
    assert f"/people/{ada.pk}/" not in by_trait
    assert f"/people/{bob.pk}/" in by_anon
    assert f"/people/{ada.pk}/" not in by_anon
    assert "Nobody matches" in nobody


def test_anonymous_people_are_named_by_a_short_anonymous_id_never_their_row_id(signed_in, workspace):
    visitor = builders.person(workspace, anonymous_ids=("3f2a9c1e-77aa-4c1b-9d0e-5b1f1c2a7e10", "z-later"))
    builders.event(workspace, visitor, "Page Viewed", anonymous_id="3f2a9c1e-77aa-4c1b-9d0e-5b1f1c2a7e10")

    listed = signed_in.get("/people/").content.decode()
    page = signed_in.get(f"/people/{visitor.pk}/").content.decode()
    live = signed_in.get(reverse("live_events")).content.decode()

    for html in (listed, page, live):
        assert "Anonymous 3f2a9c…" in html
        assert "Anonymous #" not in html
    assert 'title="3f2a9c1e-77aa-4c1b-9d0e-5b1f1c2a7e10">Anonymous 3f2a9c…</span>' in listed
    assert "<title>Anonymous 3f2a9c…" in page


def test_people_list_paginates(signed_in, workspace):
    for n in range(51):
        builders.person(workspace, user_id=f"u-{n:02d}", last_seen=NOW - timedelta(minutes=n))

    first = signed_in.get("/people/").content.decode()
    second = signed_in.get("/people/", {"page": 2}).content.decode()

    assert "Page 1 of 2" in first
    assert "u-00" in first
    assert "u-50" not in first
    assert "u-50" in second
    assert "u-00" not in second


def test_person_page_shows_traits_identities_first_touch_and_timeline(signed_in, workspace):
    ada = builders.person(
        workspace,
        user_id="u-ada",
        anonymous_ids=("anon-ada",),
        traits={"name": "Ada", "plan": "Enterprise", "$initial_referring_domain": "www.google.com"},
    )
    builders.event(workspace, ada, "Order Completed", properties={"revenue": 120})

    html = signed_in.get(f"/people/{ada.pk}/").content.decode()

    assert "Enterprise" in html
    assert "anon-ada" in html
    assert "$initial_referring_domain" in html
    assert "www.google.com" in html
    assert "Order Completed" in html
    assert "revenue" in html
    assert "Erase person" in html


def test_person_timeline_pages_by_cursor(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    events = [builders.event(workspace, ada, f"Step {n}", at=NOW - timedelta(minutes=n)) for n in range(52)]

    first = signed_in.get(f"/people/{ada.pk}/").content.decode()
    older = re.search(r'href="(\?before=[^"#]+)#timeline"', first)
    assert older is not None
    second = signed_in.get(f"/people/{ada.pk}/{older.group(1).replace('&amp;', '&')}").content.decode()

    assert "Step 0<" in first
    assert "Step 49<" in first
    assert "Step 50<" not in first
    assert "Step 50<" in second
    assert "Step 51<" in second
    assert "Step 49<" not in second
    assert len(events) == 52


@pytest.mark.parametrize("before", ["2026-12-01T05:05:00+17:05_1", "0001-01-01T00:00:00+05:00_1", "garbage"])
def test_person_timeline_reads_any_cursor_without_error(signed_in, workspace, before):
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Login", at=NOW - timedelta(minutes=5))

    response = signed_in.get(f"/people/{ada.pk}/", {"before": before})

    assert response.status_code == 200


def test_erase_from_the_person_page(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Login")

    response = signed_in.post(f"/people/{ada.pk}/erase/")

    assert response.status_code == 302
    with workspace_scope(workspace):
        assert not Person.objects.filter(pk=ada.pk).exists()
        assert Event.objects.count() == 0
        assert SuppressedId.objects.filter(value="u-ada").exists()


def test_member_cannot_erase(client, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    client.force_login(factories.member(workspace, role="member"))

    assert "Erase person" not in client.get(f"/people/{ada.pk}/").content.decode()
    response = client.post(f"/people/{ada.pk}/erase/")

    assert response.status_code == 403
    with workspace_scope(workspace):
        assert Person.objects.filter(pk=ada.pk).exists()


def test_quarantine_groups_by_reason(signed_in, workspace):
    with workspace_scope(workspace):
        for _ in range(3):
            QuarantinedMessage.objects.create(
                workspace=workspace, raw={"type": "track"}, reason="userId or anonymousId is required", received_at=NOW
            )
        QuarantinedMessage.objects.create(
            workspace=workspace, raw={"event": "<b>x</b>"}, reason="event must be a string", received_at=NOW
        )

    html = signed_in.get("/events/quarantine/").content.decode()
    only_one = signed_in.get("/events/quarantine/", {"reason": "event must be a string"}).content.decode()

    assert re.search(r"userId or anonymousId is required</td><td[^>]*>3<", html)
    assert re.search(r"event must be a string</td><td[^>]*>1<", html)
    assert "<b>x</b>" not in html
    assert only_one.count('class="raw"') == 1


def test_quarantine_lists_rejected_and_accepted_with_warnings_apart(signed_in, workspace):
    with workspace_scope(workspace):
        QuarantinedMessage.objects.create(
            workspace=workspace, raw={"type": "track"}, reason="userId or anonymousId is required", received_at=NOW
        )
        for _ in range(2):
            QuarantinedMessage.objects.create(
                workspace=workspace,
                kind=QuarantineKind.WARNED,
                raw={"event": "<i>y</i>"},
                reason="timestamp was before 2000-01-01; the received time was used",
                message_id="m-warned",
                received_at=NOW,
            )

    rejected = signed_in.get("/events/quarantine/").content.decode()
    warned = signed_in.get("/events/quarantine/", {"kind": "warned"}).content.decode()

    assert "userId or anonymousId is required" in rejected
    assert "before 2000-01-01" not in rejected
    assert re.search(r"before 2000-01-01; the received time was used</td><td[^>]*>2<", warned)
    assert "userId or anonymousId is required" not in warned
    assert warned.count("m-warned") == 2
    assert "<i>y</i>" not in warned
    assert 'href="/events/quarantine/?kind=warned" aria-current="page"' in warned


def test_quarantine_is_linked_from_live_events(signed_in):
    assert 'href="/events/quarantine/"' in signed_in.get("/events/").content.decode()


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/people/{id}/"), ("post", "/people/{id}/erase/")],
)
def test_another_workspaces_person_is_404(signed_in, workspace, method, path):
    other = factories.WorkspaceFactory()
    theirs = builders.person(other, user_id="u-theirs")
    builders.event(other, theirs, "Login")

    foreign = getattr(signed_in, method)(path.format(id=theirs.pk))
    missing = getattr(signed_in, method)(path.format(id=999999999))

    assert foreign.status_code == missing.status_code == 404
    with workspace_scope(other):
        assert Person.objects.filter(pk=theirs.pk).exists()
        assert Event.objects.count() == 1


def test_lists_never_show_another_workspaces_rows(signed_in, workspace):
    other = factories.WorkspaceFactory()
    theirs = builders.person(other, user_id="u-theirs", traits={"name": "Theirs"})
    their_event = builders.event(other, theirs, "Secret Event")
    with workspace_scope(other):
        QuarantinedMessage.objects.create(workspace=other, raw={}, reason="their reason", received_at=NOW)

    live = signed_in.get("/events/").content.decode()
    poll = signed_in.get("/events/", {"after": 0}, **HTMX)
    people = signed_in.get("/people/", {"q": "Theirs"}).content.decode()
    quarantine = signed_in.get("/events/quarantine/").content.decode()

    assert "Secret Event" not in live
    assert poll.status_code == 204
    assert f"/people/{theirs.pk}/" not in people
    assert "their reason" not in quarantine
    assert their_event.pk


@pytest.mark.parametrize("path", ["/events/", "/events/quarantine/", "/people/"])
def test_pages_need_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def _queries(client, path, **params):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(path, params).status_code == 200
    return len(captured.captured_queries)


def test_list_pages_query_counts_do_not_grow_with_rows(signed_in, workspace):
    ada = builders.person(workspace, user_id="u-0", anonymous_ids=("a-0",))
    builders.event(workspace, ada, "Login")
    few = {path: _queries(signed_in, path) for path in ("/people/", "/events/", f"/people/{ada.pk}/")}

    for n in range(1, 30):
        someone = builders.person(workspace, user_id=f"u-{n}", anonymous_ids=(f"a-{n}",))
        builders.event(workspace, someone, "Login")
        builders.event(workspace, ada, "Product Viewed", properties={"n": n})
    many = {path: _queries(signed_in, path) for path in ("/people/", "/events/", f"/people/{ada.pk}/")}

    assert many == few
    # 4 for every page (session, user, membership, switcher list), then the page's own:
    # people: count, page, identities, the segments to filter by; live: events, names;
    # person: person, identities, events, groups, segmentation's section (memberships, changes, segments)
    # and campaigns' (active hours)
    assert few == {"/people/": 8, "/events/": 6, f"/people/{ada.pk}/": 12}


# --- Settings pages: Install and Triggers ---------------------------------------------


def _triggers(workspace):
    with workspace_scope(workspace):
        return list(
            TrackingTrigger.objects.order_by("pk").values_list(
                "kind", "selector", "event_name", "thresholds", "enabled"
            )
        )


def test_install_page_shows_embed_code_with_write_key_and_host(signed_in, workspace):
    response = signed_in.get(reverse("settings_install"))

    assert response.status_code == 200
    page = response.content.decode()
    assert f"c.writeKey=&quot;{workspace.write_key}&quot;;c.host=&quot;http://testserver&quot;" in page
    assert 'data-copy="#embed-code"' in page
    assert f'analytics.write_key = "{workspace.write_key}"' in page
    assert 'analytics.host = "http://testserver"' in page
    assert "/sdk/cohortly." in page
    assert 'aria-current="page">Install</a>' in page


def test_viewer_reads_triggers_but_cannot_change_them(client, workspace):
    with workspace_scope(workspace):
        trigger = services.trigger_create(workspace=workspace, actor=None, kind="click", selector="#buy")
    client.force_login(factories.member(workspace, role="viewer"))

    page = client.get(reverse("settings_triggers"))
    assert page.status_code == 200
    assert "Buy Clicked" in page.content.decode()
    assert "Add a trigger" not in page.content.decode()
    assert reverse("settings_trigger_delete", args=[trigger.pk]) not in page.content.decode()

    edit_page = client.get(reverse("settings_trigger_edit", args=[trigger.pk])).content.decode()
    assert '<fieldset class="plain" disabled>' in edit_page
    assert "Save trigger" not in edit_page

    before = _triggers(workspace)
    create = client.post(reverse("settings_triggers"), {"kind": "click", "selector": "#x", "enabled": "on"})
    edit = client.post(reverse("settings_trigger_edit", args=[trigger.pk]), {"kind": "click", "selector": "#y"})
    delete = client.post(reverse("settings_trigger_delete", args=[trigger.pk]))
    assert (create.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    assert _triggers(workspace) == before


def test_member_creates_a_click_trigger_named_from_its_selector(client, workspace):
    user = factories.member(workspace, role="member")
    client.force_login(user)

    response = client.post(
        reverse("settings_triggers"),
        {"kind": "click", "selector": " #product-image ", "event_name": "", "enabled": "on"},
    )

    assert response.status_code == 302
    assert _triggers(workspace) == [("click", "#product-image", "Product Image Clicked", [], True)]
    with workspace_scope(workspace):
        entry = AuditLogEntry.objects.get(action="trigger.created")
    assert (entry.actor, entry.target) == (user, "Product Image Clicked")


def test_scroll_trigger_gets_default_thresholds_and_name(signed_in, workspace):
    signed_in.post(reverse("settings_triggers"), {"kind": "scroll", "selector": "", "thresholds": "", "enabled": "on"})
    signed_in.post(
        reverse("settings_triggers"), {"kind": "engaged_time", "thresholds": "180, 30", "event_name": "Read"}
    )
    assert _triggers(workspace) == [
        ("scroll", "", "Page Scrolled", [25, 50, 75, 100], True),
        ("engaged_time", "", "Read", [30, 180], False),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "click", "selector": ""}, "Enter the CSS selector of the elements to track, e.g. #product-image."),
        ({"kind": "click", "selector": "a" * 301}, "Ensure this value has at most 300 characters (it has 301)."),
        ({"kind": "click", "selector": "a{}"}, "A selector cannot contain braces, semicolons, “&lt;” or line breaks."),
        ({"kind": "click", "selector": "#a", "event_name": "$pageview"}, "Names starting with $ are reserved"),
        ({"kind": "click", "selector": "#a", "event_name": "e" * 201}, "at most 200 characters (it has 201)."),
        ({"kind": "scroll", "thresholds": "10, 150"}, "Thresholds are percentages from 1 to 100."),
        ({"kind": "scroll", "thresholds": "ten"}, "“ten” is not a whole number."),
        ({"kind": "hover", "selector": "#a"}, "Select a valid choice. hover is not one of the available choices."),
    ],
)
def test_invalid_trigger_is_refused_with_the_fields_message_and_nothing_stored(signed_in, workspace, data, message):
    response = signed_in.post(reverse("settings_triggers"), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert _triggers(workspace) == []


def test_an_invalid_selector_is_refused_on_the_selector_field(signed_in, workspace):
    response = signed_in.post(reverse("settings_triggers"), {"kind": "click", "selector": "###", "event_name": ""})

    html = response.content.decode()
    selector_field = html[html.index('<label for="id_selector"') : html.index('<label for="id_thresholds"')]
    assert response.status_code == 200
    assert "This is not a valid CSS selector: “#” at character 1 must be followed by a name" in selector_field
    assert "Enter the name of the event to send" not in html
    assert _triggers(workspace) == []


def test_duplicate_event_name_is_refused_on_its_field(signed_in, workspace):
    signed_in.post(reverse("settings_triggers"), {"kind": "click", "selector": "#buy"})
    response = signed_in.post(
        reverse("settings_triggers"), {"kind": "click", "selector": ".buy", "event_name": "Buy Clicked"}
    )

    assert response.status_code == 200
    assert "Another trigger already sends “Buy Clicked”. Choose another name." in response.content.decode()
    assert _triggers(workspace) == [("click", "#buy", "Buy Clicked", [], False)]


def test_edit_then_delete_a_trigger(signed_in, workspace):
    with workspace_scope(workspace):
        trigger = services.trigger_create(workspace=workspace, actor=None, kind="scroll")
    url = reverse("settings_trigger_edit", args=[trigger.pk])
    assert 'value="25, 50, 75, 100"' in signed_in.get(url).content.decode()

    response = signed_in.post(url, {"kind": "scroll", "thresholds": "90", "event_name": "Read To End"})
    assert response.status_code == 302
    assert _triggers(workspace) == [("scroll", "", "Read To End", [90], False)]

    refused = signed_in.post(url, {"kind": "scroll", "thresholds": "", "event_name": "Read To End", "enabled": "on"})
    assert "Enter at least one threshold." in refused.content.decode()
    assert _triggers(workspace) == [("scroll", "", "Read To End", [90], False)]

    page = signed_in.get(reverse("settings_triggers")).content.decode()
    assert 'data-confirm="Delete the trigger “Read To End”?' in page
    response = signed_in.post(reverse("settings_trigger_delete", args=[trigger.pk]))
    assert response.status_code == 302
    assert _triggers(workspace) == []


def test_another_workspaces_trigger_answers_404_and_is_untouched(signed_in, workspace):
    other = factories.WorkspaceFactory()
    with workspace_scope(other):
        theirs = services.trigger_create(workspace=other, actor=None, kind="click", selector="#theirs")
    before = _triggers(other)

    edit_get = signed_in.get(reverse("settings_trigger_edit", args=[theirs.pk]))
    edit_post = signed_in.post(reverse("settings_trigger_edit", args=[theirs.pk]), {"kind": "click", "selector": "#x"})
    delete = signed_in.post(reverse("settings_trigger_delete", args=[theirs.pk]))

    assert (edit_get.status_code, edit_post.status_code, delete.status_code) == (404, 404, 404)
    assert _triggers(other) == before
    assert "Theirs Clicked" not in signed_in.get(reverse("settings_triggers")).content.decode()


def test_trigger_list_query_count_does_not_grow_with_triggers(signed_in, workspace, django_assert_num_queries):
    with workspace_scope(workspace):
        for n in range(5):
            services.trigger_create(workspace=workspace, actor=None, kind="click", selector=f"#b{n}")
    with django_assert_num_queries(5):
        response = signed_in.get(reverse("settings_triggers"))
    assert response.content.decode().count("/delete/") == 5
