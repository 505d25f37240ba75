"""Real-time segment membership: dependencies, the ingestion notifier, the subset apply, the drain.

Real PostgreSQL and Redis throughout; the last test runs a real Celery worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts.tenancy import workspace_scope
from core import signing
from core.dburl import database_url
from segmentation import feed, realtime, services
from segmentation.definition import parse
from segmentation.dependencies import Change, decode, dependencies, encode
from segmentation.models import (
    Membership,
    MembershipChange,
    Segment,
    SegmentStatus,
    WebhookDelivery,
    WebhookSubscription,
)
from tests import factories
from tests.accounts.support import logged_in_client
from tests.segmentation.support import members
from tests.tracking import builders
from tests.tracking.conftest import basic_auth
from tracking.bulk_import import events_import
from tracking.group_commit import GroupCommitter
from tracking.ingest import Submission
from tracking.messages import Message, parse_message
from tracking.models import Event, Identity, IdentityKind, Person

ORDER = {"type": "event", "event": "Order Completed"}


@pytest.fixture(autouse=True)
def _notifier():
    """Every test starts with a closed circuit breaker and a fresh Redis connection."""
    realtime.notifier.reset()
    yield
    realtime.notifier.reset()


@pytest.fixture(autouse=True)
def queue(settings):
    """A drain queue of the test's own, emptied after: no kick of these tests outlives them."""
    name, url = f"test-realtime-{uuid.uuid4().hex}", settings.REDIS_URL
    settings.SEGMENTS_REALTIME_QUEUE = name
    yield name
    redis.Redis.from_url(url).delete(name)


def _segment(workspace, name, definition, *, status=SegmentStatus.FRESH, size=0, static=False) -> Segment:
    with workspace_scope(workspace):
        return Segment.objects.create(
            workspace=workspace,
            name=name,
            definition=None if static else definition,
            is_static=static,
            status=status,
            refreshed_at=None if status == SegmentStatus.PENDING else timezone.now(),
            size=size,
        )


def _member(segment, person, entered_at) -> None:
    with workspace_scope(segment.workspace_id):
        Membership.objects.create(
            workspace_id=segment.workspace_id, segment=segment, person=person, entered_at=entered_at
        )


def _state(*segments) -> dict:
    """Members (with entry times), history and sizes of the segments, read across workspaces on purpose."""
    ids = [s.pk for s in segments]
    # unscoped: the tests look at several workspaces' segments at once.
    members = Membership.objects.unscoped().filter(segment_id__in=ids)
    changes = MembershipChange.objects.unscoped().filter(segment_id__in=ids)
    return {
        "members": {(m.segment_id, m.person_id): m.entered_at for m in members},
        "changes": sorted((c.segment_id, c.person_id, c.kind, c.at) for c in changes),
        "sizes": dict(Segment.objects.unscoped().filter(pk__in=ids).values_list("pk", "size")),
    }


def _subscription(workspace) -> WebhookSubscription:
    salt = signing.new_secret_salt()
    with workspace_scope(workspace):
        return WebhookSubscription.objects.create(
            workspace=workspace,
            url="https://hooks.example.com/in",
            secret_salt=salt,
            secret_hint=signing.subscription_secret(salt)[:10],
        )


def _reevaluate(segment, people):
    with workspace_scope(segment.workspace_id):
        return realtime.segment_people_reevaluate(segment=segment, person_ids=[p.pk for p in people])


# --- Dependencies ---------------------------------------------------------------------


def test_dependencies_include_events_under_not_and_in_count_eq_zero_sequences_and_traits():
    tree = parse(
        {
            "type": "and",
            "conditions": [
                {"type": "event", "event": "Order Completed", "window": {"since": "30d"}},
                {"type": "not", "condition": {"type": "event", "event": "Unsubscribed"}},
                {"type": "event", "event": "Refund", "count": {"operator": "eq", "value": 0}},
                {"type": "sequence", "within": "1h", "steps": [{"event": "Added"}, {"event": "Paid"}]},
                {"type": "trait", "key": "plan", "operator": "eq", "value": "pro"},
            ],
        }
    )

    found = dependencies(tree)

    assert found.event_names == {"Order Completed", "Unsubscribed", "Refund", "Added", "Paid"}
    assert (found.any_event, found.traits, found.segments) == (False, True, frozenset())


def test_dependencies_of_any_event_and_segment_references():
    tree = parse(
        {
            "type": "or",
            "conditions": [
                {"type": "first_performed", "event": "$any", "window": {"since": "7d"}},
                {"type": "segment", "segment": 7},
                {"type": "not", "condition": {"type": "segment", "segment": 9}},
            ],
        }
    )

    found = dependencies(tree)

    assert (found.event_names, found.any_event, found.traits) == (frozenset(), True, False)
    assert found.segments == {7, 9}


@pytest.mark.parametrize(
    ("definition", "change", "affected"),
    [
        (ORDER, Change(events={"Order Completed"}), True),
        (ORDER, Change(events={"Page Viewed"}), False),
        (ORDER, Change(traits=True), False),
        (ORDER, Change(everything=True), True),
        (ORDER, Change(), False),
        ({"type": "not", "condition": ORDER}, Change(events={"Order Completed", "Other"}), True),
        ({"type": "trait", "key": "plan", "operator": "is_set"}, Change(traits=True), True),
        ({"type": "trait", "key": "plan", "operator": "is_set"}, Change(events={"Order Completed"}), False),
        ({"type": "event", "event": "$any", "count": {"operator": "eq", "value": 0}}, Change(events={"X"}), True),
        ({"type": "event", "event": "$any"}, Change(traits=True), False),
        ({"type": "segment", "segment": 3}, Change(events={"Order Completed"}), False),
    ],
)
def test_which_changes_affect_a_definition(definition, change, affected):
    assert dependencies(parse(definition)).affected_by(change) is affected


def test_changes_travel_as_set_members_and_come_back_merged_per_person():
    members = [
        *encode(5, Change(events={"Order Completed", "a|b"}, traits=True)),
        *encode(5, Change(events={"Login"})),
        *encode(8, Change(events={"ignored"}, everything=True)),
        "not-a-person|e|x",
    ]

    changes = decode(member.encode() for member in members)

    assert members[:3] == ["5|e|Order Completed", "5|e|a|b", "5|t"]
    assert changes == {
        5: Change(events={"Order Completed", "a|b", "Login"}, traits=True),
        8: Change(everything=True),
    }


# --- Subset apply -----------------------------------------------------------------------


def test_a_person_who_now_matches_enters_with_history_size_and_webhook(workspace, django_capture_on_commit_callbacks):
    # Given a fresh segment of buyers, a person who just bought and one who did not
    segment = _segment(workspace, "Buyers", ORDER)
    buyer, browser = builders.person(workspace, user_id="buyer"), builders.person(workspace, user_id="browser")
    builders.event(workspace, buyer, "Order Completed")
    builders.event(workspace, browser, "Page Viewed")
    subscription = _subscription(workspace)

    # When both are re-evaluated
    with django_capture_on_commit_callbacks(execute=True):
        outcome = _reevaluate(segment, [buyer, browser])

    # Then only the buyer entered, at the transaction's time, and it is recorded everywhere
    assert (outcome.entered, outcome.exited) == ([buyer.pk], [])
    assert _state(segment) == {
        "members": {(segment.pk, buyer.pk): outcome.at},
        "changes": [(segment.pk, buyer.pk, "entered", outcome.at)],
        "sizes": {segment.pk: 1},
    }
    # And the change feed turns it into the subscription's delivery
    with workspace_scope(workspace):
        feed.feed_drain(workspace=workspace)
        deliveries = list(WebhookDelivery.objects.values_list("subscription_id", "event", "segment_id", "person_id"))
    assert deliveries == [(subscription.pk, "segment.entered", segment.pk, buyer.pk)]


def test_a_new_event_can_make_a_member_leave_and_others_keep_their_rows(workspace):
    # Given "never unsubscribed" with two members
    segment = _segment(
        workspace, "Reachable", {"type": "not", "condition": {"type": "event", "event": "Unsub"}}, size=2
    )
    leaver, stayer = builders.person(workspace, user_id="leaver"), builders.person(workspace, user_id="stayer")
    since = timezone.now() - timedelta(days=2)
    _member(segment, leaver, since)
    _member(segment, stayer, since)
    # When one of them unsubscribes and both are re-evaluated
    builders.event(workspace, leaver, "Unsub")
    outcome = _reevaluate(segment, [leaver, stayer])

    # Then the leaver exited; the stayer kept their row and entry time
    assert (outcome.entered, outcome.exited) == ([], [leaver.pk])
    assert _state(segment) == {
        "members": {(segment.pk, stayer.pk): since},
        "changes": [(segment.pk, leaver.pk, "exited", outcome.at)],
        "sizes": {segment.pk: 1},
    }


def test_re_evaluating_again_changes_nothing(workspace):
    segment = _segment(workspace, "Buyers", ORDER)
    buyer = builders.person(workspace, user_id="buyer")
    builders.event(workspace, buyer, "Order Completed")
    _reevaluate(segment, [buyer])
    before = _state(segment)

    again = _reevaluate(segment, [buyer])

    assert (again.entered, again.exited) == ([], [])
    assert _state(segment) == before
    assert before["sizes"] == {segment.pk: 1}


def test_people_of_another_workspace_and_other_segments_are_untouched(workspace):
    # Given the same segment in two workspaces, and a second segment of ours
    other = factories.WorkspaceFactory()
    ours, theirs = _segment(workspace, "Buyers", ORDER), _segment(other, "Buyers", ORDER)
    unrelated = _segment(workspace, "Plan", {"type": "trait", "key": "plan", "operator": "eq", "value": "pro"})
    stranger = builders.person(other, user_id="buyer", traits={"plan": "pro"})
    builders.event(other, stranger, "Order Completed")
    mine = builders.person(workspace, user_id="mine", traits={"plan": "pro"})
    builders.event(workspace, mine, "Order Completed")

    # When our segment is re-evaluated for their person and ours
    outcome = _reevaluate(ours, [stranger, mine])

    # Then only our person entered, only our segment changed
    assert outcome.entered == [mine.pk]
    after = _state(ours, theirs, unrelated)
    assert after["members"] == {(ours.pk, mine.pk): outcome.at}
    assert after["sizes"] == {ours.pk: 1, theirs.pk: 0, unrelated.pk: 0}


@pytest.mark.parametrize("kind", ["pending", "static"])
def test_pending_and_static_segments_are_left_alone(workspace, kind):
    segment = (
        _segment(workspace, "Buyers", ORDER, status=SegmentStatus.PENDING)
        if kind == "pending"
        else _segment(workspace, "List", None, static=True)
    )
    buyer = builders.person(workspace, user_id="buyer")
    builders.event(workspace, buyer, "Order Completed")

    outcome = _reevaluate(segment, [buyer])

    assert (outcome.entered, outcome.exited) == ([], [])
    assert _state(segment) == {"members": {}, "changes": [], "sizes": {segment.pk: 0}}


def test_a_change_cascades_to_segments_that_reference_the_changed_one(workspace):
    # Given buyers, "pro buyers" = buyers AND plan pro, and an unrelated segment
    buyers = _segment(workspace, "Buyers", ORDER)
    pro_buyers = _segment(
        workspace,
        "Pro buyers",
        {
            "type": "and",
            "conditions": [
                {"type": "segment", "segment": buyers.pk},
                {"type": "trait", "key": "plan", "operator": "eq", "value": "pro"},
            ],
        },
    )
    logins = _segment(workspace, "Logged in", {"type": "event", "event": "Login"})
    person = builders.person(workspace, user_id="pro", traits={"plan": "pro"})
    builders.event(workspace, person, "Order Completed")
    builders.event(workspace, person, "Login")

    # When the person's new "Order Completed" is applied
    with workspace_scope(workspace):
        changed = realtime.people_changes_apply(
            workspace=workspace, changes={person.pk: Change(events={"Order Completed"})}
        )

    # Then they entered buyers, and through it pro buyers; "Logged in" was not looked at
    assert {pk: (r.entered, r.exited) for pk, r in changed.items()} == {
        buyers.pk: ([person.pk], []),
        pro_buyers.pk: ([person.pk], []),
    }
    assert _state(logins) == {"members": {}, "changes": [], "sizes": {logins.pk: 0}}


# --- Ingestion notification -------------------------------------------------------------


def _batch(client, workspace, messages):
    return client.post(
        "/v1/batch",
        orjson.dumps({"batch": messages}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )


def _person_id(workspace, kind, value) -> int:
    with workspace_scope(workspace):
        return Identity.objects.get(kind=kind, value=value).person_id


def test_ingestion_records_what_changed_for_each_person_after_commit(
    client, workspace, queue, django_capture_on_commit_callbacks
):
    # Given two known users and a known anonymous visitor
    with django_capture_on_commit_callbacks(execute=True):
        given = _batch(
            client,
            workspace,
            [
                {"type": "identify", "userId": "u1", "traits": {"plan": "free"}},
                {"type": "identify", "userId": "u5"},
                {"type": "track", "anonymousId": "a2", "event": "Viewed"},
            ],
        )
    assert given.status_code == 200
    keys = realtime.keys(workspace.pk)
    redis.Redis.from_url(settings.REDIS_URL).delete(keys.pending, keys.kick, queue)
    u1, u5 = (_person_id(workspace, IdentityKind.USER_ID, user) for user in ("u1", "u5"))

    # When u1 buys and upgrades, u5 signs in on the visitor's device (a merge), a new visitor arrives
    with django_capture_on_commit_callbacks(execute=True):
        response = _batch(
            client,
            workspace,
            [
                {"type": "track", "userId": "u1", "event": "Order Completed"},
                {"type": "track", "userId": "u1", "event": "Viewed"},
                {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
                {"type": "identify", "userId": "u5", "anonymousId": "a2"},
                {"type": "page", "anonymousId": "a4"},
            ],
        )
    assert response.status_code == 200

    # Then Redis holds each person's change: events and traits, or everything for a merge's survivor and a
    # new person
    a4 = _person_id(workspace, IdentityKind.ANONYMOUS_ID, "a4")
    assert _person_id(workspace, IdentityKind.ANONYMOUS_ID, "a2") == u5
    assert realtime.facts_pending(workspace.pk) == {
        f"{u1}|e|Order Completed",
        f"{u1}|e|Viewed",
        f"{u1}|t",
        f"{u5}|*",
        f"{a4}|*",
    }
    # and the workspace is dirty, with one drain kicked
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    assert client_redis.sismember(realtime.keys(workspace.pk).dirty, workspace.pk)
    assert client_redis.llen(queue) == 1


def test_a_kick_moments_ago_debounces_the_next_one(client, workspace, queue, django_capture_on_commit_callbacks):
    # Given a drain was kicked moments ago
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    client_redis.set(realtime.keys(workspace.pk).kick, "1", px=60_000)

    # When events arrive
    with django_capture_on_commit_callbacks(execute=True):
        assert _batch(client, workspace, [{"type": "track", "userId": "u1", "event": "A"}]).status_code == 200

    # Then they are recorded (a new person: everything), and no second drain is queued
    assert realtime.facts_pending(workspace.pk) == {f"{_person_id(workspace, IdentityKind.USER_ID, 'u1')}|*"}
    assert client_redis.llen(queue) == 0


def test_merges_mark_the_surviving_person(client, workspace, django_capture_on_commit_callbacks):
    # Given two identified people
    with django_capture_on_commit_callbacks(execute=True):
        _batch(
            client,
            workspace,
            [
                {"type": "identify", "userId": "old"},
                {"type": "identify", "userId": "new"},
            ],
        )
    redis.Redis.from_url(settings.REDIS_URL).delete(realtime.keys(workspace.pk).pending)

    # When an alias merges one into the other
    with django_capture_on_commit_callbacks(execute=True):
        _batch(client, workspace, [{"type": "alias", "previousId": "old", "userId": "new"}])

    # Then only the survivor is pending, for every segment
    survivor = _person_id(workspace, IdentityKind.USER_ID, "new")
    assert _person_id(workspace, IdentityKind.USER_ID, "old") == survivor
    assert realtime.facts_pending(workspace.pk) == {f"{survivor}|*"}


def test_ingestion_answers_and_stores_with_redis_down(client, workspace, settings, django_capture_on_commit_callbacks):
    # Given Redis at a closed port
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    # When two requests arrive
    with django_capture_on_commit_callbacks(execute=True):
        first = _batch(client, workspace, [{"type": "track", "userId": "u1", "event": "A"}])
    with django_capture_on_commit_callbacks(execute=True):
        second = _batch(client, workspace, [{"type": "track", "userId": "u1", "event": "B"}])

    # Then both are answered and stored
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["stored"], second.json()["stored"]) == (1, 1)
    with workspace_scope(workspace):
        assert sorted(Event.objects.values_list("name", flat=True)) == ["A", "B"]
    # and after the first failure the notifier left Redis alone for the second
    assert realtime.notifier.failing_until > time.monotonic()
    assert realtime.notifier.skipped == 1


def test_bulk_import_marks_segments_due_instead_of_notifying(workspace):
    # Given a dynamic and a static segment
    dynamic = _segment(workspace, "Buyers", ORDER)
    static = _segment(workspace, "List", None, static=True)
    before = timezone.now()

    # When events are imported
    with workspace_scope(workspace):
        totals = events_import(
            workspace=workspace,
            items=[{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m1"}],
        )

    # Then nothing is pending in real time, and the dynamic segment is due for its full refresh now
    assert totals.accepted == 1
    assert realtime.facts_pending(workspace.pk) == set()
    with workspace_scope(workspace):
        due = dict(Segment.objects.values_list("pk", "next_refresh_at"))
    assert due[static.pk] is None
    assert before <= due[dynamic.pk] <= timezone.now()


# --- Draining ----------------------------------------------------------------------------


def test_the_drain_applies_pending_changes_in_batches_and_empties_the_set(workspace, monkeypatch):
    # Given three buyers pending, with batches of two facts
    monkeypatch.setattr(realtime, "BATCH_SIZE", 2)
    segment = _segment(workspace, "Buyers", ORDER)
    buyers = [builders.person(workspace, user_id=f"b{i}") for i in range(3)]
    for buyer in buyers:
        builders.event(workspace, buyer, "Order Completed")
    realtime.people_touched(workspace.pk, {b.pk: Change(events={"Order Completed"}) for b in buyers})

    # When the workspace is drained
    with workspace_scope(workspace):
        result = realtime.workspace_drain(workspace=workspace)

    # Then all three entered in two batches, and nothing is left pending
    assert (result.batches, result.people, result.entered, result.exited, result.more) == (2, 3, 3, 0, False)
    assert set(_state(segment)["members"]) == {(segment.pk, b.pk) for b in buyers}
    assert realtime.facts_pending(workspace.pk) == set()
    assert workspace.pk not in realtime.dirty_workspaces()


def test_more_pending_than_the_cap_marks_the_segments_due(workspace, monkeypatch):
    # Given room for one pending fact, and two people touched
    monkeypatch.setattr(realtime, "MAX_PENDING", 1)
    segment = _segment(workspace, "Buyers", ORDER)
    realtime.people_touched(workspace.pk, {1: Change(events={"A"})})
    realtime.people_touched(workspace.pk, {2: Change(events={"B"})})
    assert realtime.facts_pending(workspace.pk) == {"1|e|A"}

    # When the workspace is drained
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
        # Then its segments are due for a full refresh, which catches the dropped one up
        assert Segment.objects.get(pk=segment.pk).next_refresh_at is not None


def _arrives(workspace, person, name="Order Completed") -> None:
    """An event stored and notified as ingestion does (after its commit)."""
    builders.event(workspace, person, name)
    realtime.people_touched(workspace.pk, {person.pk: Change(events={name})})


def test_a_failing_segment_is_marked_failed_and_the_others_still_update(workspace, owner, caplog):
    # Given two real-time segments; the definition of one was written around the validation with a
    # count no evaluation can handle (as a row saved under older rules would be)
    broken_definition = {"type": "event", "event": "Order Completed", "count": {"operator": "gte", "value": 10**20}}
    broken = _segment(workspace, "Broken", broken_definition)
    buyers = _segment(workspace, "Buyers", ORDER)
    ann, bob = builders.person(workspace, user_id="ann"), builders.person(workspace, user_id="bob")

    # When an event arrives and the workspace is drained
    _arrives(workspace, ann)
    with workspace_scope(workspace), caplog.at_level("WARNING", logger="segmentation.realtime"):
        result = realtime.workspace_drain(workspace=workspace)

    # Then the healthy segment recorded the entry, the broken one is failed with its reason, logged once
    assert (result.batches, result.entered) == (1, 1)
    assert set(_state(buyers)["members"]) == {(buyers.pk, ann.pk)}
    assert _state(broken)["members"] == {}
    failed = Segment.objects.unscoped().get(pk=broken.pk)
    assert failed.status == SegmentStatus.FAILED
    assert failed.error.startswith("The real-time update failed: ")
    assert len(failed.error) > len("The real-time update failed: ")
    assert [r.getMessage() for r in caplog.records] == [
        f"Real-time segments: segment {broken.pk} of workspace {workspace.pk} failed: {failed.error}"
    ]
    assert Segment.objects.unscoped().get(pk=buyers.pk).status == SegmentStatus.FRESH

    # And the list and the segment's page show the failure with its reason
    client = logged_in_client(owner)
    for page in (reverse("segments"), reverse("segment_detail", args=[broken.pk])):
        html = client.get(page).content.decode()
        assert "Failed" in html
        assert escape(failed.error[:100]) in html

    # When another event arrives: the broken one fails again (not logged again), the healthy one goes on
    caplog.clear()
    _arrives(workspace, bob)
    with workspace_scope(workspace), caplog.at_level("WARNING", logger="segmentation.realtime"):
        realtime.workspace_drain(workspace=workspace)
    assert set(_state(buyers)["members"]) == {(buyers.pk, ann.pk), (buyers.pk, bob.pk)}
    assert caplog.records == []

    # When its definition is fixed, the next batch that touches it re-evaluates it and clears the failure
    Segment.objects.unscoped().filter(pk=broken.pk).update(definition=ORDER)
    _arrives(workspace, ann)
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
    fixed = Segment.objects.unscoped().get(pk=broken.pk)
    assert (fixed.status, fixed.error) == (SegmentStatus.FRESH, "")
    assert set(_state(broken)["members"]) == {(broken.pk, ann.pk)}


@pytest.mark.django_db(transaction=True)
def test_a_statement_timeout_in_one_segment_rolls_back_that_segment_alone_inside_the_callers_transaction(
    monkeypatch,
):
    # Given two real-time segments, one over events and one over traits, and ann matching both
    monkeypatch.setattr(realtime, "REEVALUATE_TIMEOUT_MS", 300)
    workspace = factories.WorkspaceFactory()
    buyers = _segment(workspace, "Buyers", ORDER)
    vips = _segment(workspace, "VIPs", {"type": "trait", "key": "plan", "operator": "eq", "value": "vip"})
    ann = builders.person(workspace, user_id="ann", traits={"plan": "vip"})
    builders.event(workspace, ann, "Order Completed")
    realtime.people_touched(workspace.pk, {ann.pk: Change(events={"Order Completed"}, traits=True)})

    # When the events table is locked by another connection, so that reading events waits past the
    # statement timeout, and the workspace is drained inside one transaction of the caller
    with psycopg.connect(database_url(connection.settings_dict)) as other:
        other.execute("LOCK TABLE tracking_event IN ACCESS EXCLUSIVE MODE")
        with transaction.atomic(), workspace_scope(workspace):
            result = realtime.workspace_drain(workspace=workspace)
        other.rollback()

    # Then the events segment failed with the timeout (its savepoint rolled back), and the traits
    # segment, evaluated after it in the same transaction, recorded ann's entry
    assert (result.batches, result.entered) == (1, 1)
    assert set(_state(vips)["members"]) == {(vips.pk, ann.pk)}
    assert _state(buyers)["members"] == {}
    failed = Segment.objects.unscoped().get(pk=buyers.pk)
    assert (failed.status, failed.error) == (
        SegmentStatus.FAILED,
        "The real-time update took longer than 0.3 s and was stopped.",
    )
    assert realtime.facts_pending(workspace.pk) == set()


# --- In a real worker ----------------------------------------------------------------------


def _wait(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the worker did not record the entry in time")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_event_sent_to_the_api_makes_the_person_enter_through_a_real_worker(live_server, queue, tmp_path):
    # Given a fresh "signed up" segment and a Celery worker on the drain queue
    workspace = factories.WorkspaceFactory()
    segment = _segment(workspace, "Signed up", {"type": "event", "event": "Signed Up"})
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # When an event arrives through the tracking API
        request = urllib.request.Request(
            f"{live_server.url}/v1/track",
            data=orjson.dumps({"userId": "u-1", "event": "Signed Up"}),
            headers={"Content-Type": "application/json", "Authorization": basic_auth(workspace.write_key)},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

        # Then the person's entry is recorded by the worker
        def entered():
            # unscoped: the test reads what the worker wrote, from outside any request.
            return MembershipChange.objects.unscoped().filter(segment=segment, kind="entered").first()

        change = _wait(entered)
        person = Person.objects.unscoped().get(workspace=workspace, user_id="u-1")
        assert change.person_id == person.pk
        assert Segment.objects.unscoped().get(pk=segment.pk).size == 1
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        # The events table is not managed by Django, so the transactional test's flush leaves its rows:
        # delete them, for the tests that count every workspace's rows. unscoped: a cleanup outside any request.
        Event.objects.unscoped().filter(workspace=workspace).delete()


def test_the_sweep_kicks_a_drain_per_dirty_workspace_and_the_drain_applies(workspace, queue):
    # Given a buyer pending in a dirty workspace whose kick was lost
    from segmentation.tasks import segment_realtime_drain, segment_realtime_sweep

    segment = _segment(workspace, "Buyers", ORDER)
    buyer = builders.person(workspace, user_id="buyer")
    builders.event(workspace, buyer, "Order Completed")
    realtime.people_touched(workspace.pk, {buyer.pk: Change(events={"Order Completed"})})
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    client_redis.delete(queue)

    # When the beat's sweep runs
    assert segment_realtime_sweep.apply().get() == 1

    # Then one drain is queued for the workspace, and running it applies the change
    [message] = client_redis.lrange(queue, 0, -1)
    assert orjson.loads(message)["headers"]["argsrepr"] == f"({workspace.pk},)"
    assert segment_realtime_drain.apply(args=(workspace.pk,)).get() == 1
    assert set(_state(segment)["members"]) == {(segment.pk, buyer.pk)}
    assert realtime.dirty_workspaces() == []


def test_a_drain_for_a_deleted_workspace_forgets_its_pending_work(db):
    from segmentation.tasks import segment_realtime_drain

    realtime.people_touched(987_654, {1: Change(events={"A"})})
    assert realtime.dirty_workspaces() == [987_654]

    assert segment_realtime_drain.apply(args=(987_654,)).get() == 0

    assert realtime.dirty_workspaces() == []
    assert realtime.facts_pending(987_654) == set()


def test_a_definition_is_read_as_of_its_last_edit_so_a_window_that_emptied_since_still_applies(workspace):
    # Given "ordered in the 30 days before 2026-01-10", saved on 2026-01-01, with a member;
    # today that window starts after it ends, which a save now would refuse
    definition = {"type": "event", "event": "Order Completed", "window": {"since": "30d", "until": "2026-01-10"}}
    segment = _segment(workspace, "January buyers", definition, size=1)
    with workspace_scope(workspace):
        Segment.objects.filter(pk=segment.pk).update(updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    buyer = builders.person(workspace, user_id="buyer")
    builders.event(workspace, buyer, "Order Completed", at=datetime(2026, 1, 5, tzinfo=UTC))
    _member(segment, buyer, datetime(2026, 1, 5, tzinfo=UTC))

    # When the member is re-evaluated now
    outcome = _reevaluate(segment, [buyer])

    # Then the empty window holds for nobody: they leave
    assert (outcome.entered, outcome.exited) == ([], [buyer.pk])
    assert _state(segment)["sizes"] == {segment.pk: 0}


@pytest.mark.django_db(transaction=True)
def test_the_production_path_commits_and_answers_with_redis_down(settings):
    # Given Redis at a closed port and the group committer of the production server
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    workspace = factories.WorkspaceFactory()
    committer = GroupCommitter()

    def submission(event: str) -> Submission:
        now = timezone.now()
        message = parse_message(
            {"type": "track", "userId": "u1", "event": event}, kind=None, batch_sent_at=None, received_at=now
        )
        assert isinstance(message, Message)
        return Submission(workspace.write_key, [message], [], now)

    try:
        # When two requests are committed one after the other
        first, second = committer.submit(submission("A")), committer.submit(submission("B"))

        # Then both are stored and answered; the second did not even try Redis
        assert (first.stored, second.stored) == (1, 1)
        with workspace_scope(workspace):
            assert sorted(Event.objects.values_list("name", flat=True)) == ["A", "B"]
        assert realtime.notifier.skipped == 1
    finally:
        # The events table is not flushed after a transactional test (unmanaged): remove its rows.
        Event.objects.unscoped().filter(workspace=workspace).delete()


# --- With the full refresh ----------------------------------------------------------------


def test_a_full_refresh_after_real_time_updates_finds_nothing_left_to_change(workspace):
    # Given buyers and leavers applied in real time
    buyers = _segment(workspace, "Buyers", ORDER)
    reachable = _segment(workspace, "Reachable", {"type": "not", "condition": {"type": "event", "event": "Unsub"}})
    people = [builders.person(workspace, user_id=f"p{i}") for i in range(4)]
    builders.event(workspace, people[0], "Order Completed")
    builders.event(workspace, people[1], "Unsub")
    with workspace_scope(workspace):
        realtime.people_changes_apply(workspace=workspace, changes={p.pk: Change(everything=True) for p in people})
    before = _state(buyers, reachable)

    # When both segments are refreshed in full
    with workspace_scope(workspace):
        results = [services.segment_refresh(segment=s) for s in (buyers, reachable)]

    # Then the full refresh agrees with what real time stored
    assert [(r.size, r.entered, r.exited, r.skipped) for r in results] == [(1, 0, 0, False), (3, 0, 0, False)]
    assert _state(buyers, reachable) == before


def test_dropped_off_after_a_step_in_real_time_agrees_with_the_full_refresh(workspace):
    # Given "viewed, added, did not order within 3 days" and "viewed, never added", refreshed in full
    steps = [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}]
    funnel = {"type": "sequence", "steps": steps, "within": "3d", "window": {"since": "30d"}, "completed": False}
    added = _segment(workspace, "Added, no order", {**funnel, "dropped_after": 2})
    viewed = _segment(workspace, "Viewed, never added", {**funnel, "dropped_after": 1})
    start = timezone.now() - timedelta(days=5)
    viewer, adder, buyer = (builders.person(workspace, user_id=name) for name in ("viewer", "adder", "buyer"))
    for person in (viewer, adder, buyer):
        builders.event(workspace, person, "Product Viewed", at=start)
    for person in (adder, buyer):
        builders.event(workspace, person, "Product Added", at=start + timedelta(hours=1))
    builders.event(workspace, buyer, "Order Completed", at=start + timedelta(hours=2))
    with workspace_scope(workspace):
        for segment in (added, viewed):
            services.segment_refresh(segment=segment)
    assert (members(added), members(viewed)) == ({"adder"}, {"viewer"})

    # When the viewer's add and the adder's order arrive late, stamped inside the 3 days
    builders.event(workspace, viewer, "Product Added", at=start + timedelta(hours=1))
    builders.event(workspace, adder, "Order Completed", at=start + timedelta(hours=3))
    with workspace_scope(workspace):
        changed = realtime.people_changes_apply(
            workspace=workspace,
            changes={viewer.pk: Change(events={"Product Added"}), adder.pk: Change(events={"Order Completed"})},
        )

    # Then real time moves them at once: the viewer now dropped off after step 2, the adder completed
    assert (changed[added.pk].entered, changed[added.pk].exited) == ([viewer.pk], [adder.pk])
    assert (changed[viewed.pk].entered, changed[viewed.pk].exited) == ([], [viewer.pk])
    assert (members(added), members(viewed)) == ({"viewer"}, set())
    # And the full refresh finds nothing left to change
    before = _state(added, viewed)
    with workspace_scope(workspace):
        results = [services.segment_refresh(segment=segment) for segment in (added, viewed)]
    assert [(r.size, r.entered, r.exited, r.skipped) for r in results] == [(1, 0, 0, False), (0, 0, 0, False)]
    assert _state(added, viewed) == before


def test_a_real_time_update_waits_for_the_lock_another_writer_holds(workspace):
    # Given another session holding the segment's membership lock
    segment = _segment(workspace, "Buyers", ORDER)
    buyer = builders.person(workspace, user_id="buyer")
    builders.event(workspace, buyer, "Order Completed")
    released = {}
    with psycopg.connect(database_url(connection.settings_dict)) as other:
        other.execute("SELECT pg_advisory_xact_lock(1510, %s)", [segment.pk])

        def release() -> None:
            time.sleep(0.3)
            released["at"] = timezone.now()
            other.rollback()

        releaser = threading.Thread(target=release)
        releaser.start()
        # When a real-time update of the segment runs
        outcome = _reevaluate(segment, [buyer])
        releaser.join()

    # Then it applied only once the other session let go
    assert outcome.entered == [buyer.pk]
    assert outcome.at >= released["at"]


def test_beat_sweeps_for_pending_real_time_work_every_two_seconds():
    assert settings.CELERY_BEAT_SCHEDULE["segments-realtime-sweep"] == {
        "task": "segmentation.tasks.segment_realtime_sweep",
        "schedule": 2.0,
    }
