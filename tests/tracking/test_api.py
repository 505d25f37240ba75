from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from segmentation.models import Membership, MembershipChange, Segment, WebhookDelivery, WebhookSubscription
from tests import factories
from tests.tracking import builders
from tests.tracking.builders import NOW
from tracking import exports
from tracking.api import PersonViewSet
from tracking.models import (
    Event,
    Group,
    Identity,
    Person,
    PersonGroup,
    QuarantinedMessage,
    QuarantineKind,
    SuppressedId,
)


@pytest.fixture
def api(workspace):
    _, secret = factories.api_key(workspace)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _event_count(workspace) -> int:
    with workspace_scope(workspace):
        return Event.objects.count()


def test_person_shape(api, workspace):
    # Given an identified person with two anonymous ids and traits
    ada = builders.person(
        workspace, user_id="u-ada", anonymous_ids=("anon-1", "anon-2"), traits={"email": "ada@example.com"}
    )

    # When the API is asked for them
    response = api.get(f"/api/v1/people/{ada.pk}/")

    # Then every field of the contract is there
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": ada.pk,
        "user_id": "u-ada",
        "anonymous_ids": ["anon-1", "anon-2"],
        "user_ids": ["u-ada"],
        "traits": {"email": "ada@example.com"},
        "first_seen": body["first_seen"],
        "last_seen": body["last_seen"],
        "segments": [],
        "active_hours": {
            "best_hour": 34,
            "in_words": "Tuesday 10:00-11:00",
            "confidence": None,
            "events": 0,
            "own": False,
        },
    }
    assert body["first_seen"].startswith((NOW - timedelta(days=3)).date().isoformat())


def test_anonymous_person_has_null_user_id(api, workspace):
    anon = builders.person(workspace, anonymous_ids=("a-1",))
    body = api.get(f"/api/v1/people/{anon.pk}/").json()
    assert body["user_id"] is None
    assert body["anonymous_ids"] == ["a-1"]


def test_people_filtered_by_user_id_and_anonymous_id(api, workspace):
    ada = builders.person(workspace, user_id="u-ada", anonymous_ids=("anon-ada",))
    builders.person(workspace, user_id="u-bob", anonymous_ids=("anon-bob",))

    by_user = api.get("/api/v1/people/", {"user_id": "u-ada"}).json()
    by_anon = api.get("/api/v1/people/", {"anonymous_id": "anon-ada"}).json()
    nobody = api.get("/api/v1/people/", {"user_id": "u-nobody"}).json()

    assert by_user["count"] == 1
    assert [p["id"] for p in by_user["results"]] == [ada.pk]
    assert [p["id"] for p in by_anon["results"]] == [ada.pk]
    assert nobody == {"count": 0, "next": None, "previous": None, "results": []}


def test_people_search_over_ids_email_and_traits(api, workspace):
    ada = builders.person(
        workspace, user_id="u-ada", traits={"email": "ada@lovelace.example", "plan": "Pro", "age": 36}
    )
    bob = builders.person(workspace, anonymous_ids=("visitor-bob",), traits={"plan": "Free"})

    def ids(search):
        return [p["id"] for p in api.get("/api/v1/people/", {"search": search}).json()["results"]]

    assert ids("LOVELACE") == [ada.pk]
    assert ids("visitor-b") == [bob.pk]
    assert ids("u-ad") == [ada.pk]
    assert ids("plan=pro") == [ada.pk]
    assert ids("age=36") == [ada.pk]
    assert ids("plan=Enterprise") == []


def test_people_list_is_paginated_newest_seen_first(api, workspace):
    people = [builders.person(workspace, user_id=f"u-{n}", last_seen=NOW - timedelta(hours=n)) for n in range(3)]

    first = api.get("/api/v1/people/", {"page_size": 2}).json()
    second = api.get("/api/v1/people/", {"page_size": 2, "page": 2}).json()

    assert first["count"] == 3
    assert [p["id"] for p in first["results"]] == [people[0].pk, people[1].pk]
    assert [p["id"] for p in second["results"]] == [people[2].pk]


def test_people_list_query_count_does_not_grow_with_people(api, workspace, django_assert_num_queries):
    for n in range(5):
        builders.person(workspace, user_id=f"u-{n}", anonymous_ids=(f"a-{n}", f"b-{n}"))
    # key lookup, key touch (first use), count, page, identities prefetch
    with django_assert_num_queries(5):
        assert len(api.get("/api/v1/people/").json()["results"]) == 5
    for n in range(5, 20):
        builders.person(workspace, user_id=f"u-{n}", anonymous_ids=(f"a-{n}",))
    # key lookup, count, page, identities prefetch (the key was touched within the minute)
    with django_assert_num_queries(4):
        assert len(api.get("/api/v1/people/").json()["results"]) == 20


def test_person_events_newest_first_with_cursor_pages(api, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    bob = builders.person(workspace, user_id="u-bob")
    events = [
        builders.event(workspace, ada, "$pageview", at=NOW - timedelta(minutes=n), properties={"path": f"/p{n}"})
        for n in range(5)
    ]
    builders.event(workspace, bob, "Order Completed")

    first = api.get(f"/api/v1/people/{ada.pk}/events/", {"page_size": 3}).json()
    second = api.get(first["next"]).json()

    assert "count" not in first
    assert [e["id"] for e in first["results"]] == [e.pk for e in events[:3]]
    assert [e["id"] for e in second["results"]] == [e.pk for e in events[3:]]
    assert second["next"] is None
    assert first["results"][0] == {
        "id": events[0].pk,
        "event": "$pageview",
        "timestamp": first["results"][0]["timestamp"],
        "received_at": first["results"][0]["received_at"],
        "person": ada.pk,
        "user_id": "u-ada",
        "anonymous_id": None,
        "message_id": events[0].message_id,
        "properties": {"path": "/p0"},
    }


def test_person_events_paginate_ties_on_timestamp_by_id(api, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    same = NOW - timedelta(minutes=5)
    events = [builders.event(workspace, ada, "Login", at=same) for _ in range(4)]

    seen = []
    url = f"/api/v1/people/{ada.pk}/events/?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [e["id"] for e in page["results"]]
        url = page["next"]

    assert seen == sorted((e.pk for e in events), reverse=True)


def test_events_filtered_by_person_name_and_time(api, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    bob = builders.person(workspace, user_id="u-bob")
    old = builders.event(workspace, ada, "Order Completed", at=NOW - timedelta(days=2))
    recent = builders.event(workspace, ada, "Order Completed", at=NOW - timedelta(hours=1))
    builders.event(workspace, ada, "Login", at=NOW - timedelta(hours=1))
    theirs = builders.event(workspace, bob, "Order Completed", at=NOW - timedelta(hours=1))

    def ids(**params):
        response = api.get("/api/v1/events/", params)
        assert response.status_code == 200, response.json()
        return [e["id"] for e in response.json()["results"]]

    assert ids(person=ada.pk, event="Order Completed") == [recent.pk, old.pk]
    assert ids(event="Order Completed", since=(NOW - timedelta(days=1)).isoformat()) == [theirs.pk, recent.pk]
    assert ids(person=ada.pk, event="Order Completed", until=(NOW - timedelta(days=1)).isoformat()) == [old.pk]
    assert len(ids()) == 4


def test_events_list_query_count_is_fixed(api, workspace, django_assert_num_queries):
    ada = builders.person(workspace, user_id="u-ada")
    for n in range(30):
        builders.event(workspace, ada, "Login", at=NOW - timedelta(minutes=n))
    api.get("/api/v1/events/")  # the key's first use is recorded once a minute
    # key lookup, person exists, one page (no count)
    with django_assert_num_queries(3):
        assert len(api.get("/api/v1/events/", {"person": ada.pk}).json()["results"]) == 30


def test_events_pagination_never_counts_the_table(api, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Login")
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        api.get("/api/v1/events/", {"page_size": 1})
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45T00:00:00Z"}, "until"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"person": "abc"}, "person"),
        ({"event": ""}, "event"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"until": "9999-12-31T23:00:00-05:00"}, "until"),
    ],
)
def test_events_bad_params_are_400_naming_the_param(api, workspace, params, field):
    response = api.get("/api/v1/events/", params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    assert field in body["detail"]


def test_events_time_filters_take_any_offset_python_reads(api, workspace):
    # PostgreSQL refuses offsets beyond +/-15:59 in a timestamp; the API reads the instant itself.
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Early", at=datetime(2026, 11, 30, 11, 0, tzinfo=UTC))
    builders.event(workspace, ada, "Late", at=datetime(2026, 11, 30, 13, 0, tzinfo=UTC))

    # 2026-12-01T05:05:00+17:05 is 2026-11-30T12:00:00Z
    response = api.get("/api/v1/events/", {"since": "2026-12-01T05:05:00+17:05"})

    assert response.status_code == 200
    assert [e["event"] for e in response.json()["results"]] == ["Late"]


def test_events_person_of_another_workspace_is_refused_like_a_missing_one(api, workspace):
    other = factories.WorkspaceFactory()
    theirs = builders.person(other, user_id="u-theirs")
    builders.event(other, theirs, "Login")

    foreign = api.get("/api/v1/events/", {"person": theirs.pk})
    missing = api.get("/api/v1/events/", {"person": 999999999})

    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["errors"] == {"person": [f"No person with id {theirs.pk}."]}


def test_erase_removes_everything_suppresses_ids_and_is_audited(api, workspace):
    # Given a person with events, identities, traits and a quarantined message carrying their id
    ada = builders.person(workspace, user_id="u-ada", anonymous_ids=("anon-ada",), traits={"email": "a@x.example"})
    bob = builders.person(workspace, user_id="u-bob")
    for n in range(3):
        builders.event(workspace, ada, "Login", at=NOW - timedelta(minutes=n))
    bobs = builders.event(workspace, bob, "Login")
    with workspace_scope(workspace):
        QuarantinedMessage.objects.create(
            workspace=workspace,
            raw={"anonymousId": "anon-ada", "event": 5},
            reason="event: not a string",
            received_at=NOW,
        )
        QuarantinedMessage.objects.create(
            workspace=workspace, raw={"anonymousId": "someone-else"}, reason="no event", received_at=NOW
        )
        # Their ids as an alias's previousId, and as a number (SDKs may send ids as numbers)
        QuarantinedMessage.objects.create(
            workspace=workspace,
            kind=QuarantineKind.WARNED,
            raw={"type": "alias", "previousId": "u-ada", "userId": "x"},
            reason="timestamp could not be parsed; the received time was used",
            received_at=NOW,
        )
        Identity.objects.create(workspace=workspace, person=ada, kind="anonymous_id", value="12345")
        QuarantinedMessage.objects.create(
            workspace=workspace, raw={"anonymousId": 12345}, reason="event is required", received_at=NOW
        )
        acme = Group.objects.create(workspace=workspace, group_id="acme", traits={"name": "Acme"})
        PersonGroup.objects.create(workspace=workspace, person=ada, group=acme)
        PersonGroup.objects.create(workspace=workspace, person=bob, group=acme)
        # Segment webhooks sent about them, with their traits in the payload, and one about bob
        hook = WebhookSubscription.objects.create(
            workspace=workspace, url="https://hooks.example.com/in", secret_salt="s", secret_hint="h"
        )
        for who in (ada, bob):
            WebhookDelivery.objects.create(
                workspace=workspace,
                subscription=hook,
                event="segment.entered",
                person_id=who.pk,
                at=NOW,
                payload={"person": {"id": who.pk, "user_id": who.user_id, "traits": who.traits}},
                next_attempt_at=NOW,
            )
        # ... and one about a person merged into ada since, found by the user id it names
        WebhookDelivery.objects.create(
            workspace=workspace,
            subscription=hook,
            event="segment.exited",
            person_id=999999999,
            at=NOW,
            payload={"person": {"id": 999999999, "user_id": "u-ada", "traits": {}}},
            next_attempt_at=NOW,
        )

    # When the person is erased
    response = api.delete(f"/api/v1/people/{ada.pk}/")

    # Then nothing of them is left but the suppressed ids, and the erasure is in the audit log
    assert response.status_code == 204
    with workspace_scope(workspace):
        assert not Person.objects.filter(pk=ada.pk).exists()
        assert not Identity.objects.filter(person_id=ada.pk).exists()
        assert list(Event.objects.values_list("id", flat=True)) == [bobs.pk]
        assert list(QuarantinedMessage.objects.values_list("raw", flat=True)) == [{"anonymousId": "someone-else"}]
        assert list(PersonGroup.objects.values_list("person_id", flat=True)) == [bob.pk]
        assert Group.objects.filter(group_id="acme").exists()
        # Each id as both kinds: a message carrying it in either field is dropped
        assert sorted(SuppressedId.objects.values_list("kind", "value")) == [
            ("anonymous_id", "12345"),
            ("anonymous_id", "anon-ada"),
            ("anonymous_id", "u-ada"),
            ("user_id", "12345"),
            ("user_id", "anon-ada"),
            ("user_id", "u-ada"),
        ]
        assert list(WebhookDelivery.objects.values_list("person_id", flat=True)) == [bob.pk]
        entry = AuditLogEntry.objects.get(action="person.erased")
    assert entry.target == f"person {ada.pk}"
    acting_key = entry.details.pop("api_key")  # the entry names the key that acted
    assert acting_key["prefix"].startswith("cly_sk_")
    assert entry.details == {
        "events": 3,
        "identities": 3,
        "quarantined": 3,
        "memberships": 0,
        "membership_changes": 0,
        "webhook_deliveries": 2,
        "catalogue_values": 0,
        "cluster_assignments": 0,
        "insight_results": 0,
        "campaign_sends": 0,
        "campaign_triggers": 0,
        "email_suppressions": 0,
        "active_hours": 0,
    }
    assert api.get(f"/api/v1/people/{ada.pk}/").status_code == 404


def test_erasing_a_person_erased_meanwhile_is_a_404_that_writes_nothing(api, workspace, monkeypatch):
    # Given a person that a concurrent erasure removes right after this request found them
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Login")
    found = PersonViewSet.get_object

    def found_then_erased_elsewhere(view):
        person = found(view)
        with workspace_scope(workspace):
            Person.objects.filter(pk=person.pk).delete()
        return person

    monkeypatch.setattr(PersonViewSet, "get_object", found_then_erased_elsewhere)

    # When this request erases them too
    response = api.delete(f"/api/v1/people/{ada.pk}/")

    # Then it is told they are gone, and it wrote nothing (no suppressed ids, no audit entry)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    with workspace_scope(workspace):
        assert not SuppressedId.objects.exists()
        assert not AuditLogEntry.objects.filter(action="person.erased").exists()


def test_viewer_session_cannot_erase(client, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    builders.event(workspace, ada, "Login")
    viewer = factories.member(workspace, role="viewer")
    client.force_login(viewer)

    assert client.get(f"/api/v1/people/{ada.pk}/").status_code == 200
    response = client.delete(f"/api/v1/people/{ada.pk}/")

    assert response.status_code == 403
    assert _event_count(workspace) == 1
    with workspace_scope(workspace):
        assert Person.objects.filter(pk=ada.pk).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/people/{id}/"),
        ("get", "/api/v1/people/{id}/events/"),
        ("delete", "/api/v1/people/{id}/"),
    ],
)
def test_another_workspaces_person_is_404(api, workspace, method, path):
    other = factories.WorkspaceFactory()
    theirs = builders.person(other, user_id="u-theirs")
    builders.event(other, theirs, "Login")

    foreign = getattr(api, method)(path.format(id=theirs.pk))
    missing = getattr(api, method)(path.format(id=999999999))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Not found.", "code": "not_found"}
    assert _event_count(other) == 1
    with workspace_scope(other):
        assert Person.objects.filter(pk=theirs.pk).exists()


def test_lists_never_show_another_workspaces_rows(api, workspace):
    other = factories.WorkspaceFactory()
    theirs = builders.person(other, user_id="u-shared")
    builders.event(other, theirs, "Login")

    assert api.get("/api/v1/people/", {"user_id": "u-shared"}).json()["results"] == []
    assert api.get("/api/v1/people/").json()["results"] == []
    assert api.get("/api/v1/events/").json()["results"] == []


def test_write_key_is_refused_by_people_api(workspace):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {workspace.write_key}")
    response = client.get("/api/v1/people/")
    assert response.status_code == 401


def test_after_erasure_later_events_for_the_ids_are_dropped_and_counted(api, workspace, send):
    # Given a person created by ingestion, then erased through the API
    first = send(
        "track", {"userId": "u-ada", "anonymousId": "anon-ada", "event": "Login"}, write_key=workspace.write_key
    )
    assert first.json()["stored"] == 1
    with workspace_scope(workspace):
        ada = Person.objects.get(user_id="u-ada")
    assert api.delete(f"/api/v1/people/{ada.pk}/").status_code == 204

    # When events arrive again for either of their ids
    later = send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "u-ada", "event": "Login"},
                {"type": "page", "anonymousId": "anon-ada", "name": "Home"},
                {"type": "identify", "userId": "u-bob", "traits": {"plan": "Pro"}},
            ]
        },
        write_key=workspace.write_key,
    )

    # Then they are dropped and counted, and nobody comes back but the unrelated person
    assert later.status_code == 200
    assert later.json()["suppressed"] == 2
    assert later.json()["stored"] == 1
    with workspace_scope(workspace):
        assert list(Person.objects.values_list("user_id", flat=True)) == ["u-bob"]
        assert Event.objects.count() == 0
        counts = {
            (kind, value): n for kind, value, n in SuppressedId.objects.values_list("kind", "value", "dropped_count")
        }
    assert counts == {
        ("user_id", "u-ada"): 1,
        ("anonymous_id", "anon-ada"): 1,
        ("anonymous_id", "u-ada"): 0,
        ("user_id", "anon-ada"): 0,
    }


def test_format_suffix_routes_answer_too(api, workspace):
    ada = builders.person(workspace, user_id="u-ada")
    event = builders.event(workspace, ada, "Login")

    response = api.get(f"/api/v1/people/{ada.pk}/events.json")

    assert response.status_code == 200
    assert [e["id"] for e in response.json()["results"]] == [event.pk]


# --- the quarantine -------------------------------------------------------------------------


def _quarantined(workspace, reason, *, minutes_ago, kind=QuarantineKind.REJECTED, raw=None, message_id=None):
    with workspace_scope(workspace):
        return QuarantinedMessage.objects.create(
            workspace=workspace,
            kind=kind,
            raw=raw if raw is not None else {"reason": reason},
            reason=reason,
            message_id=message_id,
            received_at=NOW - timedelta(minutes=minutes_ago),
        )


def test_quarantine_lists_rejected_messages_newest_first_in_pages(api, workspace):
    # Given rejected messages received at different times, one accepted with warnings, and another workspace's
    oldest = _quarantined(workspace, "userId or anonymousId is required", minutes_ago=30, message_id="m-old")
    newest = _quarantined(
        workspace, "event is required and must be a string", minutes_ago=1, raw={"type": "track", "event": 5}
    )
    middle = _quarantined(workspace, "userId must be a string", minutes_ago=10)
    _quarantined(workspace, "timestamp could not be parsed", minutes_ago=0, kind=QuarantineKind.WARNED)
    _quarantined(factories.WorkspaceFactory(), "their reason", minutes_ago=0)

    # When the first page of two is read, then the next
    with CaptureQueriesContext(connection) as queries:
        first = api.get("/api/v1/quarantine/", {"page_size": 2})
    # One query for the page, and no count: the cursor holds a position.
    assert [q["sql"] for q in queries if "tracking_quarantinedmessage" in q["sql"]] == [queries[-1]["sql"]]
    assert "COUNT(" not in queries[-1]["sql"]
    second = api.get(first.json()["next"])

    # Then the rejected messages come newest first, as received, with their reasons
    assert first.status_code == second.status_code == 200
    assert first.json()["results"] == [
        {
            "id": newest.pk,
            "received_at": (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            "reason": "event is required and must be a string",
            "message_id": None,
            "message": {"type": "track", "event": 5},
        },
        {
            "id": middle.pk,
            "received_at": (NOW - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
            "reason": "userId must be a string",
            "message_id": None,
            "message": {"reason": "userId must be a string"},
        },
    ]
    assert [(m["id"], m["message_id"]) for m in second.json()["results"]] == [(oldest.pk, "m-old")]
    assert second.json()["next"] is None


def test_quarantine_lists_the_messages_accepted_with_warnings_and_filters_by_reason(api, workspace):
    _quarantined(workspace, "userId must be a string", minutes_ago=1)
    warned = _quarantined(workspace, "timestamp could not be parsed", minutes_ago=2, kind=QuarantineKind.WARNED)
    _quarantined(workspace, "other warning", minutes_ago=3, kind=QuarantineKind.WARNED)

    response = api.get("/api/v1/quarantine/", {"kind": "warned", "reason": "timestamp could not be parsed"})

    assert [m["id"] for m in response.json()["results"]] == [warned.pk]


def test_quarantine_refuses_an_unknown_kind_naming_the_parameter(api, workspace):
    response = api.get("/api/v1/quarantine/", {"kind": "everything"})

    assert response.status_code == 400
    assert response.json()["errors"] == {"kind": ["One of rejected, warned, plan, not 'everything'."]}


def test_a_viewer_may_read_the_quarantine(client, workspace):
    _quarantined(workspace, "userId must be a string", minutes_ago=1)
    client.force_login(factories.member(workspace, role="viewer"))

    response = client.get("/api/v1/quarantine/")

    assert response.status_code == 200
    assert [m["reason"] for m in response.json()["results"]] == ["userId must be a string"]


# --- a person's export ----------------------------------------------------------------------


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_export_holds_everything_stored_about_the_person(api, workspace):
    # Given a person with traits, identities, a group, events, segments and a webhook sent about them
    ada = builders.person(workspace, user_id="u-ada", anonymous_ids=("anon-ada",), traits={"email": "a@x.example"})
    bob = builders.person(workspace, user_id="u-bob")
    login = builders.event(workspace, ada, "Login", at=NOW - timedelta(hours=2), properties={"via": "sso"})
    page = builders.event(workspace, ada, "$pageview", at=NOW - timedelta(hours=1))
    builders.event(workspace, bob, "Login")
    with workspace_scope(workspace):
        acme = Group.objects.create(workspace=workspace, group_id="acme", traits={"name": "Acme"})
        PersonGroup.objects.create(workspace=workspace, person=ada, group=acme)
        buyers = Segment.objects.create(workspace=workspace, name="Buyers", is_static=True)
        Membership.objects.create(workspace=workspace, segment=buyers, person=ada, entered_at=NOW)
        MembershipChange.objects.create(workspace=workspace, segment=buyers, person=ada, kind="entered", at=NOW)
        hook = WebhookSubscription.objects.create(
            workspace=workspace, url="https://hooks.example.com/in", secret_salt="s", secret_hint="h"
        )
        delivery = WebhookDelivery.objects.create(
            workspace=workspace,
            subscription=hook,
            event="segment.entered",
            segment_id=buyers.pk,
            person_id=ada.pk,
            at=NOW,
            payload={"person": {"id": ada.pk, "user_id": "u-ada"}},
            status="delivered",
            next_attempt_at=NOW,
        )
        WebhookDelivery.objects.create(
            workspace=workspace,
            subscription=hook,
            event="segment.entered",
            person_id=bob.pk,
            at=NOW,
            next_attempt_at=NOW,
        )
        ids = {i.kind: i for i in Identity.objects.filter(person=ada)}

    # When the person is exported
    response = api.get(f"/api/v1/export/people/{ada.pk}/")

    # Then one JSON document holds all of it, and the export is in the audit log
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = orjson.loads(b"".join(response.streaming_content))
    assert document == {
        "exported_at": document["exported_at"],
        "person": {
            "id": ada.pk,
            "user_id": "u-ada",
            "anonymous_ids": ["anon-ada"],
            "user_ids": ["u-ada"],
            "first_seen": _z(NOW - timedelta(days=3)),
            "last_seen": _z(NOW - timedelta(hours=1)),
            "first_event_at": _z(NOW - timedelta(hours=2)),
            "last_event_at": _z(NOW - timedelta(hours=1)),
        },
        "traits": {"email": "a@x.example"},
        "identities": [
            {"kind": "user_id", "value": "u-ada", "created_at": _z(ids["user_id"].created_at)},
            {"kind": "anonymous_id", "value": "anon-ada", "created_at": _z(ids["anonymous_id"].created_at)},
        ],
        "groups": [{"group_id": "acme", "traits": {"name": "Acme"}}],
        "memberships": {
            "current": [{"segment": {"id": buyers.pk, "name": "Buyers"}, "entered_at": _z(NOW)}],
            "history": [{"segment": {"id": buyers.pk, "name": "Buyers"}, "kind": "entered", "at": _z(NOW)}],
        },
        "messages": [
            {
                "channel": "webhook",
                "id": delivery.pk,
                "event": "segment.entered",
                "segment_id": buyers.pk,
                "url": "https://hooks.example.com/in",
                "at": _z(NOW),
                "status": "delivered",
                "created_at": _z(delivery.created_at),
                "delivered_at": None,
                "payload": {"person": {"id": ada.pk, "user_id": "u-ada"}},
            }
        ],
        "suggested_segment_clusters": [],
        "active_hours": None,
        "campaign_messages": [],
        "email_suppressions": [],
        "events": [
            {
                "id": page.pk,
                "event": "$pageview",
                "timestamp": _z(NOW - timedelta(hours=1)),
                "received_at": _z(NOW - timedelta(hours=1)),
                "message_id": page.message_id,
                "user_id": "u-ada",
                "anonymous_id": None,
                "session_id": None,
                "properties": {},
                "context": {},
                "warnings": [],
            },
            {
                "id": login.pk,
                "event": "Login",
                "timestamp": _z(NOW - timedelta(hours=2)),
                "received_at": _z(NOW - timedelta(hours=2)),
                "message_id": login.message_id,
                "user_id": "u-ada",
                "anonymous_id": None,
                "session_id": None,
                "properties": {"via": "sso"},
                "context": {},
                "warnings": [],
            },
        ],
    }
    with workspace_scope(workspace):
        assert AuditLogEntry.objects.filter(action="person.exported", target=f"person {ada.pk}").count() == 1


def test_export_streams_every_event_of_a_big_person_page_by_page(api, workspace, monkeypatch):
    monkeypatch.setattr(exports, "EVENT_PAGE", 3)
    ada = builders.person(workspace, user_id="u-ada")
    events = [builders.event(workspace, ada, f"E{n}", at=NOW - timedelta(minutes=n)) for n in range(7)]
    with workspace_scope(workspace):  # two events at the same instant: the page edge is on (timestamp, id)
        twin = Event.objects.create(**{**_event_fields(events[3]), "message_id": "twin"})

    response = api.get(f"/api/v1/export/people/{ada.pk}/")
    chunks = list(response.streaming_content)

    document = orjson.loads(b"".join(chunks))
    names = [e["event"] for e in document["events"]]
    assert names == ["E0", "E1", "E2", "E3", "E3", "E4", "E5", "E6"]
    assert {e["id"] for e in document["events"]} == {e.pk for e in events} | {twin.pk}
    assert len(chunks) == 1 + 3 + 1  # the head, three pages, the end
    assert document["memberships"] == {"current": [], "history": []}
    assert document["messages"] == []


def _event_fields(event: Event) -> dict:
    return {
        field: getattr(event, field)
        for field in ("workspace_id", "person_id", "name", "properties", "context", "timestamp", "received_at")
    } | {"user_id": event.user_id, "anonymous_id": None, "warnings": []}


def test_another_workspaces_person_cannot_be_exported(api, workspace):
    theirs = builders.person(factories.WorkspaceFactory(), user_id="u-theirs")

    foreign = api.get(f"/api/v1/export/people/{theirs.pk}/")
    missing = api.get("/api/v1/export/people/999999999/")

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert not AuditLogEntry.objects.unscoped().filter(action="person.exported").exists()


@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("admin", 200), ("member", 403), ("viewer", 403)])
def test_only_owners_and_admins_may_export_a_person(client, workspace, role, status):
    ada = builders.person(workspace, user_id="u-ada")
    client.force_login(factories.member(workspace, role=role))

    response = client.get(f"/api/v1/export/people/{ada.pk}/")

    assert response.status_code == status
    if status == 403:
        assert response.json()["detail"] == "Only an owner or admin of the workspace may export a person's data."
        assert not AuditLogEntry.objects.unscoped().filter(action="person.exported").exists()


def test_the_schema_describes_the_quarantine_and_the_export(api):
    schema = yaml.safe_load(api.get("/api/schema/").content)

    quarantine = schema["paths"]["/api/v1/quarantine/"]["get"]
    export = schema["paths"]["/api/v1/export/people/{id}/"]["get"]
    page = quarantine["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    document = export["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    components = schema["components"]["schemas"]
    message = components[page]["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]
    assert sorted(components[message]["properties"]) == ["id", "message", "message_id", "reason", "received_at"]
    assert {p["name"] for p in quarantine["parameters"]} >= {"kind", "reason", "cursor", "page_size"}
    assert sorted(components[document]["properties"]) == [
        "active_hours",
        "campaign_messages",
        "email_suppressions",
        "events",
        "exported_at",
        "groups",
        "identities",
        "memberships",
        "messages",
        "person",
        "suggested_segment_clusters",
        "traits",
    ]
    assert set(export["responses"]) == {"200", "401", "403", "404", "429"}
