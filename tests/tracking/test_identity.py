"""Identity resolution: linking, merging, traits (tracking-api.md, Messages)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client

from accounts.tenancy import workspace_scope
from tests.tracking.conftest import basic_auth
from tracking.models import Event, Group, Identity, Person, PersonGroup, SuppressedId
from tracking.people_services import person_erase


def _people(workspace):
    with workspace_scope(workspace):
        return {
            p.pk: (p.user_id, sorted((i.kind, i.value) for i in p.identities.all()))
            for p in Person.objects.order_by("id")
        }


def _person(workspace, **lookup):
    with workspace_scope(workspace):
        return Person.objects.get(**lookup)


def _event_people(workspace):
    with workspace_scope(workspace):
        return {e.name: e.person_id for e in Event.objects.all()}


def test_a_first_visit_and_the_login_of_a_known_user_in_one_batch_merge(workspace, send):
    """The snippet's usual batch: a new visitor's page view, then identify of an existing user."""
    key = workspace.write_key
    send("identify", {"userId": "ada", "traits": {"plan": "pro"}}, write_key=key)
    ada = _person(workspace, user_id="ada")

    response = send(
        "batch",
        {
            "batch": [
                {"type": "page", "anonymousId": "new-visitor", "properties": {"path": "/pricing"}},
                {"type": "identify", "anonymousId": "new-visitor", "userId": "ada", "traits": {"seen": 1}},
            ]
        },
        write_key=key,
    )

    assert response.status_code == 200, response.content
    assert _people(workspace) == {ada.pk: ("ada", [("anonymous_id", "new-visitor"), ("user_id", "ada")])}
    assert _event_people(workspace) == {"$pageview": ada.pk}
    merged = _person(workspace, pk=ada.pk)
    assert merged.traits["plan"] == "pro"
    assert merged.traits["seen"] == 1
    assert merged.traits["$initial_path"] == "/pricing"
    assert merged.first_seen <= merged.last_seen


def test_identify_attributes_the_anonymous_history_to_the_new_user(workspace, send):
    key = workspace.write_key
    send("page", {"anonymousId": "anon", "properties": {"path": "/"}}, write_key=key)
    send("track", {"anonymousId": "anon", "event": "Product Viewed"}, write_key=key)

    send("identify", {"anonymousId": "anon", "userId": "ada", "traits": {"email": "ada@example.com"}}, write_key=key)
    send("track", {"userId": "ada", "event": "Order Completed"}, write_key=key)

    person = _person(workspace, user_id="ada")
    assert _people(workspace) == {person.pk: ("ada", [("anonymous_id", "anon"), ("user_id", "ada")])}
    assert _event_people(workspace) == {
        "$pageview": person.pk,
        "Product Viewed": person.pk,
        "Order Completed": person.pk,
    }
    assert person.traits["email"] == "ada@example.com"


def test_identify_merges_an_anonymous_person_into_an_existing_user(workspace, send):
    key = workspace.write_key
    send("identify", {"userId": "ada", "traits": {"plan": "pro"}}, write_key=key)
    send(
        "page",
        {"anonymousId": "laptop", "properties": {"path": "/landing", "referrer": "https://news.example/x"}},
        write_key=key,
    )
    send("track", {"anonymousId": "laptop", "event": "Signed Up"}, write_key=key)
    anonymous = _person(workspace, identities__value="laptop")

    send("identify", {"anonymousId": "laptop", "userId": "ada", "traits": {"name": "Ada"}}, write_key=key)

    person = _person(workspace, user_id="ada")
    assert _people(workspace) == {person.pk: ("ada", [("anonymous_id", "laptop"), ("user_id", "ada")])}
    assert not Person.objects.unscoped().filter(pk=anonymous.pk).exists()
    assert set(_event_people(workspace).values()) == {person.pk}
    assert person.traits == {
        "plan": "pro",
        "name": "Ada",
        "$initial_referrer": "https://news.example/x",
        "$initial_referring_domain": "news.example",
        "$initial_path": "/landing",
    }
    assert person.first_seen <= anonymous.first_seen


def test_track_carrying_both_ids_links_them(workspace, send):
    key = workspace.write_key
    send("track", {"anonymousId": "a", "event": "Browsed"}, write_key=key)

    send("track", {"anonymousId": "a", "userId": "u", "event": "Logged In"}, write_key=key)
    send("track", {"anonymousId": "a", "event": "Browsed Again"}, write_key=key)

    person = _person(workspace, user_id="u")
    assert _people(workspace) == {person.pk: ("u", [("anonymous_id", "a"), ("user_id", "u")])}
    assert set(_event_people(workspace).values()) == {person.pk}


def test_linking_never_merges_two_identified_people(workspace, send):
    key = workspace.write_key
    send("identify", {"anonymousId": "shared-device", "userId": "alice"}, write_key=key)
    send("identify", {"userId": "bob"}, write_key=key)

    send("track", {"anonymousId": "shared-device", "userId": "bob", "event": "Logged In"}, write_key=key)
    send("identify", {"anonymousId": "shared-device", "userId": "carol"}, write_key=key)

    alice, bob, carol = (_person(workspace, user_id=u) for u in ("alice", "bob", "carol"))
    assert _people(workspace) == {
        alice.pk: ("alice", [("anonymous_id", "shared-device"), ("user_id", "alice")]),
        bob.pk: ("bob", [("user_id", "bob")]),
        carol.pk: ("carol", [("user_id", "carol")]),
    }
    assert _event_people(workspace) == {"Logged In": bob.pk}


def test_alias_merges_the_previous_persons_history_even_when_both_are_identified(workspace, send):
    key = workspace.write_key
    send("track", {"userId": "old-id", "event": "Before"}, write_key=key)
    send("group", {"userId": "old-id", "groupId": "acme"}, write_key=key)
    send("identify", {"userId": "new-id", "traits": {"plan": "free"}}, write_key=key)
    send("identify", {"userId": "old-id", "traits": {"plan": "pro", "seats": 3}}, write_key=key)

    response = send("alias", {"previousId": "old-id", "userId": "new-id"}, write_key=key)
    send("track", {"userId": "old-id", "event": "After"}, write_key=key)

    assert response.status_code == 200
    person = _person(workspace, user_id="new-id")
    assert _people(workspace) == {person.pk: ("new-id", [("user_id", "new-id"), ("user_id", "old-id")])}
    assert _event_people(workspace) == {"Before": person.pk, "After": person.pk}
    # The survivor's traits win; the loser fills in what it lacks.
    assert person.traits == {"plan": "free", "seats": 3}
    with workspace_scope(workspace):
        assert list(PersonGroup.objects.values_list("person_id", "group__group_id")) == [(person.pk, "acme")]
        assert Group.objects.count() == 1


def test_alias_of_an_unknown_previous_id_adds_it_to_the_person(workspace, send):
    send("alias", {"previousId": "anon-1", "userId": "u"}, write_key=workspace.write_key)
    send("track", {"anonymousId": "anon-1", "event": "E"}, write_key=workspace.write_key)

    person = _person(workspace, user_id="u")
    assert _people(workspace) == {person.pk: ("u", [("anonymous_id", "anon-1"), ("user_id", "u")])}
    assert _event_people(workspace) == {"E": person.pk}


@pytest.mark.parametrize("field", ["userId", "anonymousId"])
@pytest.mark.parametrize("previous_known", [False, True], ids=["previous-id-unknown", "previous-id-a-user"])
def test_after_erasure_an_aliased_previous_id_is_dropped_in_either_field(workspace, send, field, previous_known):
    key = workspace.write_key
    if previous_known:  # a user id of its own, merged by the alias
        send("identify", {"userId": "old-login", "traits": {"plan": "pro"}}, write_key=key)
    send("alias", {"previousId": "old-login", "userId": "ada"}, write_key=key)
    ada = _person(workspace, identities__value="ada")
    with workspace_scope(workspace):
        person_erase(workspace=workspace, person=ada, actor=None)
        assert Person.objects.count() == 0

    other = {"userId": "someone-else"} if field == "anonymousId" else {}
    response = send("track", {field: "old-login", **other, "event": "Came back"}, write_key=key)

    assert (response.json()["stored"], response.json()["suppressed"]) == (0, 1)
    with workspace_scope(workspace):
        assert Person.objects.count() == 0
        assert Event.objects.count() == 0
        kind = "user_id" if field == "userId" else "anonymous_id"
        assert SuppressedId.objects.get(kind=kind, value="old-login").dropped_count == 1


def test_identify_sets_traits_per_key_in_processing_order(workspace, send):
    send(
        "batch",
        {
            "batch": [
                {"type": "identify", "userId": "u", "traits": {"plan": "free", "email": "a@x.test"}},
                {"type": "identify", "anonymousId": "a", "userId": "u", "traits": {"plan": "pro"}},
                {"type": "identify", "userId": "u", "traits": {"name": "U", "email": "b@x.test"}},
            ]
        },
        write_key=workspace.write_key,
    )
    send("identify", {"userId": "u", "traits": {"name": "Ursula"}}, write_key=workspace.write_key)

    assert _person(workspace, user_id="u").traits == {"plan": "pro", "email": "b@x.test", "name": "Ursula"}


def test_identify_in_one_batch_links_anonymous_events_before_and_after(workspace, send):
    send(
        "batch",
        {
            "batch": [
                {"type": "page", "anonymousId": "a", "properties": {"path": "/"}},
                {"type": "identify", "anonymousId": "a", "userId": "u"},
                {"type": "track", "anonymousId": "a", "event": "Clicked"},
                {"type": "track", "userId": "u", "event": "Paid"},
            ]
        },
        write_key=workspace.write_key,
    )

    person = _person(workspace, user_id="u")
    assert _people(workspace) == {person.pk: ("u", [("anonymous_id", "a"), ("user_id", "u")])}
    assert set(_event_people(workspace).values()) == {person.pk}


def test_first_touch_is_never_overwritten_by_an_earlier_page_arriving_later(workspace, send):
    now = datetime.now(UTC)
    send(
        "page",
        {
            "anonymousId": "a",
            "properties": {"path": "/second", "referrer": "https://b.example/"},
            "timestamp": now.isoformat(),
        },
        write_key=workspace.write_key,
    )

    send(
        "page",
        {
            "anonymousId": "a",
            "properties": {
                "path": "/first",
                "url": "https://shop.test/first?utm_source=x",
                "referrer": "https://a.example/",
            },
            "timestamp": (now - timedelta(hours=5)).isoformat(),
        },
        write_key=workspace.write_key,
    )

    person = _person(workspace, identities__value="a")
    assert person.traits == {
        "$initial_referrer": "https://b.example/",
        "$initial_referring_domain": "b.example",
        "$initial_path": "/second",
    }
    assert person.first_seen == now - timedelta(hours=5)


def test_first_touch_in_one_batch_comes_from_the_earliest_page_by_timestamp(workspace, send):
    now = datetime.now(UTC)
    send(
        "batch",
        {
            "batch": [
                {"type": "page", "anonymousId": "a", "properties": {"path": "/later"}, "timestamp": now.isoformat()},
                {
                    "type": "page",
                    "anonymousId": "a",
                    "properties": {"path": "/earliest"},
                    "timestamp": (now - timedelta(minutes=3)).isoformat(),
                },
            ]
        },
        write_key=workspace.write_key,
    )

    assert _person(workspace, identities__value="a").traits["$initial_path"] == "/earliest"


def test_merge_keeps_the_survivors_first_touch_whole(workspace, send):
    key = workspace.write_key
    send("page", {"userId": "u", "properties": {"path": "/u-first", "url": "https://s.test/u-first"}}, write_key=key)
    send(
        "page",
        {
            "anonymousId": "a",
            "properties": {"path": "/a-first", "url": "https://s.test/a?utm_source=ads&utm_medium=cpc"},
        },
        write_key=key,
    )

    send("identify", {"anonymousId": "a", "userId": "u"}, write_key=key)

    assert _person(workspace, user_id="u").traits == {
        "$initial_referrer": "$direct",
        "$initial_referring_domain": "$direct",
        "$initial_path": "/u-first",
    }


def _send_concurrently(write_key, bodies):
    barrier = threading.Barrier(len(bodies))
    answers = []
    errors = []

    def worker(body):
        try:
            client = Client()
            barrier.wait()
            answers.append(
                client.post(
                    "/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=basic_auth(write_key)
                )
            )
        except Exception as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_a_new_visitor_create_one_person(workspace):
    for round_number in range(5):
        anonymous_id = f"visitor-{round_number}"
        bodies = [
            {
                "batch": [
                    {"type": "track", "anonymousId": anonymous_id, "userId": f"user-{round_number}", "event": f"E{i}"}
                ]
            }
            for i in range(4)
        ]

        answers = _send_concurrently(workspace.write_key, bodies)

        assert [a.status_code for a in answers] == [200] * 4
        with workspace_scope(workspace):
            person = Person.objects.get(user_id=f"user-{round_number}")
            assert Identity.objects.filter(value=anonymous_id).get().person_id == person.pk
            assert set(Event.objects.filter(anonymous_id=anonymous_id).values_list("person_id", flat=True)) == {
                person.pk
            }
            assert Event.objects.filter(anonymous_id=anonymous_id).count() == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_identify_and_alias_leave_every_event_on_a_living_person(workspace):
    key = workspace.write_key
    for round_number in range(4):
        a, u, v = f"anon-{round_number}", f"u-{round_number}", f"v-{round_number}"
        bodies = [
            {"batch": [{"type": "track", "anonymousId": a, "event": "Browse"}]},
            {"batch": [{"type": "identify", "anonymousId": a, "userId": u}]},
            {"batch": [{"type": "alias", "previousId": u, "userId": v}]},
            {"batch": [{"type": "track", "userId": v, "anonymousId": a, "event": "Buy"}]},
        ]

        answers = _send_concurrently(key, bodies)

        assert [x.status_code for x in answers] == [200] * 4
    with workspace_scope(workspace):
        living = set(Person.objects.values_list("id", flat=True))
        assert set(Event.objects.values_list("person_id", flat=True)) <= living
        assert set(Identity.objects.values_list("person_id", flat=True)) <= living
        assert Event.objects.count() == 8
