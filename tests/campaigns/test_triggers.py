"""Triggered campaigns: segment entries (the change feed) and events (ingestion's inbox) become pending sends.

Real PostgreSQL and Redis; changes come from segmentation's own writers, events from POST /v1/track.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_session
from accounts.tenancy import workspace_scope
from campaigns import triggers
from campaigns.assignment import variant_for
from campaigns.models import Campaign, CampaignStatus, Send, SendState, TriggerInbox, Variant
from config.celery import app as celery_app
from segmentation import feed
from segmentation.models import ChangeFeedCursor, MembershipChange, MembershipChangeKind
from segmentation.services import segment_static_change
from tests import factories
from tests.campaigns.trigger_support import sends, static_segment, triggered
from tests.tracking import builders
from tests.tracking.conftest import basic_auth
from tracking.models import Event, Person

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_event_names():
    """Every test reads the listening campaigns' event names afresh (the cache is per process)."""
    triggers.trigger_events_forget()
    yield
    triggers.trigger_events_forget()


def _people(workspace, *user_ids: str) -> list[Person]:
    return [
        builders.person(workspace, user_id=user_id, traits={"email": f"{user_id}@example.com"}) for user_id in user_ids
    ]


def _drain_feed(workspace) -> feed.DrainResult:
    with workspace_scope(workspace):
        return feed.feed_drain(workspace=workspace)


def _changes(workspace, segment, people, *, at, kind=MembershipChangeKind.ENTERED) -> list[int]:
    """Changes recorded as membership writers record them (at a chosen time); their ids."""
    with workspace_scope(workspace):
        rows = MembershipChange.objects.bulk_create(
            MembershipChange(workspace=workspace, segment=segment, person_id=p.pk, kind=kind, at=at) for p in people
        )
    return [row.pk for row in rows]


def _rows(found: list[Send]) -> list[tuple]:
    return [
        (s.person_id, s.occurrence, s.state, s.variant_id, s.channel, s.triggered_at, s.due_at, s.context)
        for s in found
    ]


# --- Segment entry ----------------------------------------------------------------------


def test_entering_the_trigger_segment_writes_one_pending_send_per_person(workspace):
    # Given a campaign listening to entries into a static segment, with a 10 minute delay
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, delay_seconds=600)
    ann, bob, _cy = _people(workspace, "ann", "bob", "cy")
    [variant] = list(Variant.objects.unscoped().filter(campaign=campaign))

    # When two people are added to the segment and the feed is drained
    with workspace_scope(workspace):
        segment_static_change(segment=segment, actor=None, add=["ann", "bob"], remove=[])
        entered = list(MembershipChange.objects.filter(segment=segment).order_by("person_id"))
    result = _drain_feed(workspace)

    # Then each has one pending send, keyed by their change, due ten minutes after it
    assert result.read["campaigns"] == 2
    assert sorted(_rows(sends(workspace, campaign))) == [
        (ann.pk, f"change:{entered[0].pk}", SendState.PENDING, variant.pk, "email", entered[0].at,
         entered[0].at + timedelta(minutes=10), None),
        (bob.pk, f"change:{entered[1].pk}", SendState.PENDING, variant.pk, "email", entered[1].at,
         entered[1].at + timedelta(minutes=10), None),
    ]  # fmt: skip


def test_a_batch_read_again_writes_nothing_twice(workspace):
    # Given entries drained once into sends
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, once_per_person=False)
    _people(workspace, "ann", "bob")
    with workspace_scope(workspace):
        segment_static_change(segment=segment, actor=None, add=["ann", "bob"], remove=[])
    _drain_feed(workspace)
    first = _rows(sends(workspace, campaign))

    # When the feed is drained again, then read again from its start (a crash before the cursor's commit)
    again = _drain_feed(workspace)
    with workspace_scope(workspace):
        ChangeFeedCursor.objects.filter(consumer="campaigns").update(last_txid=0, last_id=0)
    reread = _drain_feed(workspace)

    # Then the second drain had nothing to read, the re-read found its sends there, and nothing is doubled
    assert (again.read["campaigns"], reread.read["campaigns"]) == (0, 2)
    assert len(first) == 2
    assert _rows(sends(workspace, campaign)) == first


def test_exits_other_segments_and_campaigns_not_listening_write_nothing(workspace):
    # Given campaigns on a segment: one listening, one paused, one a draft, one listening to another segment
    segment, other = static_segment(workspace, "Trial started"), static_segment(workspace, "Churned")
    listening = triggered(workspace, name="Listening", segment=segment)
    triggered(workspace, name="Paused", segment=segment, status=CampaignStatus.PAUSED)
    triggered(workspace, name="Draft", segment=segment, status=CampaignStatus.DRAFT)
    triggered(workspace, name="Elsewhere", segment=other)
    ann, bob = _people(workspace, "ann", "bob")

    # When ann enters the segment and bob leaves it
    entered = _changes(workspace, segment, [ann], at=timezone.now())
    _changes(workspace, segment, [bob], at=timezone.now(), kind=MembershipChangeKind.EXITED)
    _drain_feed(workspace)

    # Then only the listening campaign writes, for ann's entry only
    assert [(s.campaign_id, s.person_id, s.occurrence) for s in sends(workspace)] == [
        (listening.pk, ann.pk, f"change:{entered[0]}")
    ]


def test_entries_before_the_launch_or_while_paused_write_nothing_and_resuming_listens_from_then(workspace):
    # Given a campaign launched at 10:00 and entries at 9:59 (before it) and 10:05
    segment = static_segment(workspace, "Trial started")
    launch = AT.replace(hour=10, minute=0)
    campaign = triggered(workspace, segment=segment, once_per_person=False, launched_at=launch)
    ann, bob, cy = _people(workspace, "ann", "bob", "cy")
    _changes(workspace, segment, [ann], at=launch - timedelta(minutes=1))
    [bob_entry] = _changes(workspace, segment, [bob], at=launch + timedelta(minutes=5))
    _drain_feed(workspace)
    assert [s.occurrence for s in sends(workspace, campaign)] == [f"change:{bob_entry}"]

    # When it is paused at 10:10, cy enters at 10:30, and it is launched again at 11:00 (its launch kept)
    paused = launch + timedelta(minutes=10)
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED, paused_at=paused)
    # ... the feed read only after it resumed (a backlog)
    [paused_entry] = _changes(workspace, segment, [cy], at=launch + timedelta(minutes=30))
    resumed = launch + timedelta(hours=1)
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(
        status=CampaignStatus.LISTENING, paused_at=None, listening_since=resumed
    )
    [after] = _changes(workspace, segment, [ann], at=resumed + timedelta(minutes=1))
    _drain_feed(workspace)

    # Then the entry while paused is skipped, not queued; the one after resuming is sent
    occurrences = [s.occurrence for s in sends(workspace, campaign)]
    assert occurrences == [f"change:{bob_entry}", f"change:{after}"]
    assert f"change:{paused_entry}" not in occurrences


def test_people_in_an_excluded_segment_get_nothing(workspace):
    # Given a campaign on "Trial started" that leaves out the "Customers" segment, where bob is
    segment, customers = static_segment(workspace, "Trial started"), static_segment(workspace, "Customers")
    campaign = triggered(workspace, segment=segment, exclude=[customers])
    ann, _bob = _people(workspace, "ann", "bob")
    with workspace_scope(workspace):
        segment_static_change(segment=customers, actor=None, add=["bob"], remove=[])

    # When both enter the trigger segment
    with workspace_scope(workspace):
        segment_static_change(segment=segment, actor=None, add=["ann", "bob"], remove=[])
    _drain_feed(workspace)

    # Then only ann gets a send
    assert [s.person_id for s in sends(workspace, campaign)] == [ann.pk]


def test_once_per_person_sends_once_however_often_they_enter(workspace):
    # Given a once-per-person campaign and ann entering, leaving and entering again, in two batches
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, once_per_person=True)
    [ann] = _people(workspace, "ann")
    now = timezone.now()
    [first] = _changes(workspace, segment, [ann], at=now)
    _changes(workspace, segment, [ann], at=now + timedelta(minutes=1), kind=MembershipChangeKind.EXITED)
    _changes(workspace, segment, [ann], at=now + timedelta(minutes=2))
    _drain_feed(workspace)
    _changes(workspace, segment, [ann], at=now + timedelta(days=30))
    _drain_feed(workspace)

    # Then she has one send, for her first entry
    assert [s.occurrence for s in sends(workspace, campaign)] == [f"change:{first}"]


def test_a_cancelled_send_leaves_the_person_eligible(workspace):
    # Given a once-per-person campaign whose send to ann was cancelled (she did the exit event)
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, once_per_person=True)
    [ann] = _people(workspace, "ann")
    _changes(workspace, segment, [ann], at=timezone.now())
    _drain_feed(workspace)
    Send.objects.unscoped().filter(campaign=campaign).update(state=SendState.CANCELLED, reason="exit event")

    # When she enters again
    [again] = _changes(workspace, segment, [ann], at=timezone.now() + timedelta(minutes=5))
    _drain_feed(workspace)

    # Then she gets a new send
    assert [(s.occurrence, s.state) for s in sends(workspace, campaign)][1:] == [(f"change:{again}", SendState.PENDING)]


def test_reeligible_after_a_day_sends_again_only_a_day_after_the_last(workspace):
    # Given a campaign re-eligible after a day, and ann entering at 0h, 12h, 25h (in one batch) and 36h, 49h after
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(
        workspace, segment=segment, once_per_person=False, reeligible_after_seconds=86400, launched_at=AT
    )
    [ann] = _people(workspace, "ann")
    ids = {hours: _changes(workspace, segment, [ann], at=AT + timedelta(hours=hours))[0] for hours in (0, 12, 25)}
    _drain_feed(workspace)
    ids |= {hours: _changes(workspace, segment, [ann], at=AT + timedelta(hours=hours))[0] for hours in (36, 49)}
    _drain_feed(workspace)

    # Then she is sent at 0h, 25h and 49h: each a day or more after the one before
    assert [s.occurrence for s in sends(workspace, campaign)] == [f"change:{ids[h]}" for h in (0, 25, 49)]


def test_every_occurrence_without_a_rule(workspace):
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, once_per_person=False, launched_at=AT)
    [ann] = _people(workspace, "ann")
    ids = [_changes(workspace, segment, [ann], at=AT + timedelta(minutes=m))[0] for m in (1, 2, 3)]

    _drain_feed(workspace)

    assert [s.occurrence for s in sends(workspace, campaign)] == [f"change:{i}" for i in ids]


def test_the_holdout_gets_a_holdout_row_and_the_rest_a_variant_as_assignment_says(workspace):
    # Given a 50/50 split with a 30 % holdout and forty people entering
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, holdout_percent=30, variants=[("A", 1), ("B", 1)])
    people = _people(workspace, *(f"p{i}" for i in range(40)))
    _changes(workspace, segment, people, at=timezone.now())

    _drain_feed(workspace)

    # Then each person's row is what campaigns.assignment says, pending or holdout
    with workspace_scope(workspace):
        variants = list(Variant.objects.filter(campaign=campaign).order_by("position"))
    expected = {}
    for person in people:
        variant = variant_for(campaign=campaign, variants=variants, person_id=person.pk)
        expected[person.pk] = (variant.pk, SendState.PENDING) if variant is not None else (None, SendState.HOLDOUT)
    got = {s.person_id: (s.variant_id, s.state) for s in sends(workspace, campaign)}
    assert got == expected
    assert {state for _, state in got.values()} == {SendState.PENDING, SendState.HOLDOUT}


def test_a_holdout_person_is_not_triggered_again_once_per_person(workspace):
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, holdout_percent=90)
    people = _people(workspace, *(f"p{i}" for i in range(10)))
    _changes(workspace, segment, people, at=timezone.now())
    _drain_feed(workspace)
    _changes(workspace, segment, people, at=timezone.now() + timedelta(hours=1))
    _drain_feed(workspace)

    assert sorted(s.person_id for s in sends(workspace, campaign)) == sorted(p.pk for p in people)


# --- Concurrency: two writers racing for one person ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_writers_racing_for_one_person_write_one_send_once_per_person():
    # Given a once-per-person campaign and two triggers of ann (two occurrences) written by two transactions
    workspace = cast(Workspace, factories.WorkspaceFactory())
    segment = static_segment(workspace, "Trial started")
    campaign = triggered(workspace, segment=segment, once_per_person=True)
    [ann] = _people(workspace, "ann")
    now = timezone.now()
    first_written = threading.Event()
    release = threading.Event()
    outcome: dict[str, int] = {}

    def write(label: str, occurrence: str, hold: bool) -> None:
        try:
            with workspace_scope(workspace), transaction.atomic():
                with connection.cursor() as cursor:
                    execute_session(cursor, "SELECT pg_backend_pid()")
                    outcome[f"{label}_pid"] = cursor.fetchone()[0]
                candidate = triggers.Candidate(person_id=ann.pk, occurrence=occurrence, triggered_at=now)
                result = triggers._sends_write(workspace=workspace, wanted=[(campaign, [candidate])], now=now)
                outcome[label] = result.written
                if hold:
                    first_written.set()
                    release.wait(30)
        finally:
            connections.close_all()

    # When the first writes and holds its transaction open, and the second starts meanwhile
    first = threading.Thread(target=write, args=("first", "event:1", True))
    first.start()
    assert first_written.wait(30)
    second = threading.Thread(target=write, args=("second", "event:2", False))
    second.start()
    # ... the second waits for the first's lock on (campaign, ann) (seen in pg_locks, not timed)
    while not _waits_for_advisory_lock(outcome.get("second_pid")):
        assert second.is_alive()
    release.set()
    first.join(30)
    second.join(30)

    # Then only the first wrote a send; the second saw it once the first committed
    assert (outcome["first"], outcome["second"]) == (1, 0)
    assert [s.occurrence for s in sends(workspace, campaign)] == ["event:1"]


def _waits_for_advisory_lock(pid: int | None) -> bool:
    if pid is None:
        return False
    with connection.cursor() as cursor:
        execute_session(
            cursor, "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted", [pid]
        )
        return cursor.fetchone()[0] > 0


# --- Event triggers: ingestion's inbox and its drain --------------------------------------


def _track(client, workspace, *messages: dict) -> None:
    response = client.post(
        "/v1/batch",
        {"batch": list(messages)},
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )
    assert response.status_code == 200, response.content
    assert response.json()["stored"] == len(messages)


def _message(user_id: str, event: str, at: datetime, message_id: str, **properties) -> dict:
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "properties": properties,
        "timestamp": at.isoformat(),
        "messageId": message_id,
    }


def _inbox(workspace) -> list[tuple[int, str]]:
    with workspace_scope(workspace):
        return sorted(TriggerInbox.objects.values_list("person_id", "event"))


def _drain_inbox(workspace) -> triggers.InboxDrain:
    with workspace_scope(workspace):
        return triggers.trigger_inbox_drain(workspace=workspace)


def _person(workspace, user_id: str) -> Person:
    with workspace_scope(workspace):
        return Person.objects.get(user_id=user_id)


def _event(workspace, message_id: str) -> Event:
    with workspace_scope(workspace):
        return Event.objects.get(message_id=message_id)


def test_an_event_through_ingestion_becomes_a_send_with_its_properties(
    workspace, client, django_capture_on_commit_callbacks
):
    # Given a campaign listening to "Product Added", delayed 30 minutes
    campaign = triggered(workspace, event="Product Added", delay_seconds=1800)
    now = timezone.now().replace(microsecond=0)

    # When ann adds to cart (and views a page) through the tracking API
    with django_capture_on_commit_callbacks() as callbacks:
        _track(
            client,
            workspace,
            _message("ann", "Product Added", now, "m-1", sku="B-42", price=19.5),
            _message("ann", "Page Viewed", now, "m-2"),
        )
    ann = _person(workspace, "ann")

    # Then ingestion noted her for that name only, and queued the drain
    assert _inbox(workspace) == [(ann.pk, "Product Added")]
    assert len(callbacks) >= 1

    # When the inbox is drained
    result = _drain_inbox(workspace)

    # Then she has one pending send due 30 minutes after the event, with its properties; the inbox is empty
    added = _event(workspace, "m-1")
    [variant] = list(Variant.objects.unscoped().filter(campaign=campaign))
    assert (result.rows, result.written) == (1, 1)
    assert _rows(sends(workspace, campaign)) == [
        (ann.pk, f"event:{added.pk}", SendState.PENDING, variant.pk, "email", now, now + timedelta(minutes=30),
         {"event": {"properties": {"sku": "B-42", "price": 19.5}}}),
    ]  # fmt: skip
    assert _inbox(workspace) == []


def test_ingestion_notes_nothing_when_no_campaign_listens_to_the_event(workspace, client):
    triggered(workspace, event="Product Added", status=CampaignStatus.PAUSED)
    triggered(workspace, name="Other", event="Order Completed")

    _track(client, workspace, _message("ann", "Product Added", timezone.now(), "m-1"))

    assert _inbox(workspace) == []


def test_an_inbox_drained_twice_or_noted_twice_writes_one_send_per_event(workspace, client):
    # Given ann's two add-to-carts arriving in two requests (two inbox rows), every occurrence counted
    campaign = triggered(workspace, event="Product Added", once_per_person=False)
    now = timezone.now().replace(microsecond=0)
    _track(client, workspace, _message("ann", "Product Added", now, "m-1", sku="A"))
    _track(client, workspace, _message("ann", "Product Added", now + timedelta(seconds=1), "m-2", sku="B"))
    assert len(_inbox(workspace)) == 2

    # When the inbox is drained, and drained again
    first = _drain_inbox(workspace)
    second = _drain_inbox(workspace)

    # Then each event has one send (the second row found the sends there), and the second drain had nothing
    assert (first.rows, first.written, second.rows) == (2, 2, 0)
    assert [s.occurrence for s in sends(workspace, campaign)] == [
        f"event:{_event(workspace, 'm-1').pk}",
        f"event:{_event(workspace, 'm-2').pk}",
    ]


def test_events_once_per_person_and_reeligible_after_a_day(workspace, client):
    # Given two campaigns on "Product Added", listening for two days: once per person, and again after a day
    now = timezone.now().replace(microsecond=0)
    launched = now - timedelta(days=2)
    once = triggered(workspace, name="Once", event="Product Added", once_per_person=True, launched_at=launched)
    daily = triggered(
        workspace,
        name="Daily",
        event="Product Added",
        once_per_person=False,
        reeligible_after_seconds=86400,
        launched_at=launched,
    )

    # When ann adds to cart 23 hours ago, 10 hours ago and 2 hours from now (the client's clock)
    for message_id, hours in (("m-1", -23), ("m-2", -10), ("m-3", 2)):
        _track(client, workspace, _message("ann", "Product Added", now + timedelta(hours=hours), message_id))
        _drain_inbox(workspace)

    # Then the once-per-person campaign sent for the first only, the daily one for the first and the third
    ids = {m: _event(workspace, m).pk for m in ("m-1", "m-2", "m-3")}
    assert [s.occurrence for s in sends(workspace, once)] == [f"event:{ids['m-1']}"]
    assert [s.occurrence for s in sends(workspace, daily)] == [f"event:{ids['m-1']}", f"event:{ids['m-3']}"]


def test_history_and_events_of_a_paused_campaign_trigger_nothing(workspace, client):
    # Given a campaign launched just now
    launched = timezone.now().replace(microsecond=0)
    campaign = triggered(workspace, event="Product Added", once_per_person=False, launched_at=launched)

    # When events arrive dated before the launch and more than a day ago
    _track(
        client,
        workspace,
        _message("ann", "Product Added", launched - timedelta(minutes=5), "m-old"),
        _message("bob", "Product Added", launched - timedelta(days=2), "m-older"),
    )
    _drain_inbox(workspace)

    # ... and one arrives (noted) but the campaign is paused before the drain
    _track(client, workspace, _message("cy", "Product Added", launched + timedelta(seconds=1), "m-paused"))
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED)
    paused = _drain_inbox(workspace)

    # Then nothing was written, and the paused campaign's inbox rows are gone (skipped, not queued)
    assert sends(workspace, campaign) == []
    assert (paused.rows, paused.written) == (1, 0)
    assert _inbox(workspace) == []


def test_an_event_while_paused_is_not_sent_after_resuming_and_a_later_one_is(workspace, client):
    # Given a listening campaign on every "Product Added", then paused
    campaign = triggered(workspace, event="Product Added", once_per_person=False)
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED, paused_at=timezone.now())

    # When dan adds to cart while it is paused (nothing noted), it is launched again, and he adds to cart again
    _track(client, workspace, _message("dan", "Product Added", timezone.now(), "m-paused"))
    assert _inbox(workspace) == []
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(
        status=CampaignStatus.LISTENING, paused_at=None, listening_since=timezone.now()
    )
    triggers.trigger_events_forget()
    _track(client, workspace, _message("dan", "Product Added", timezone.now(), "m-resumed"))
    _drain_inbox(workspace)

    # Then only the event after resuming has a send (the drain read both of his events)
    assert [s.occurrence for s in sends(workspace, campaign)] == [f"event:{_event(workspace, 'm-resumed').pk}"]


def test_resuming_through_the_service_listens_from_the_resume(workspace):
    # Given a triggered campaign launched an hour ago, then paused
    from campaigns.services import campaign_launch, campaign_pause

    campaign = triggered(workspace, event="Product Added")
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.DRAFT, launched_at=None)
    campaign.refresh_from_db()
    launched = timezone.now() - timedelta(hours=1)
    with workspace_scope(workspace):
        campaign = campaign_launch(campaign=campaign, actor=None, now=launched)
        campaign_pause(campaign=campaign, actor=None)

        # When it is launched again
        resumed = timezone.now()
        campaign = campaign_launch(campaign=campaign, actor=None, now=resumed)

    # Then it was first launched an hour ago and listens from the resume
    assert (campaign.status, campaign.launched_at, campaign.listening_since) == (
        CampaignStatus.LISTENING,
        launched,
        resumed,
    )


def test_excluded_people_get_nothing_from_an_event(workspace, client):
    customers = static_segment(workspace, "Customers")
    campaign = triggered(workspace, event="Product Added", exclude=[customers])
    now = timezone.now()
    _track(
        client, workspace, _message("ann", "Product Added", now, "m-1"), _message("bob", "Product Added", now, "m-2")
    )
    with workspace_scope(workspace):
        segment_static_change(segment=customers, actor=None, add=["bob"], remove=[])

    _drain_inbox(workspace)

    assert [s.person_id for s in sends(workspace, campaign)] == [_person(workspace, "ann").pk]


def test_the_sweep_lists_workspaces_with_inbox_rows(workspace):
    other = cast(Workspace, factories.WorkspaceFactory())
    with workspace_scope(workspace):
        TriggerInbox.objects.create(workspace=workspace, person_id=1, event="Product Added", noted_at=timezone.now())

    assert workspace.pk in triggers.trigger_inbox_workspaces()
    assert other.pk not in triggers.trigger_inbox_workspaces()


def test_kicks_never_raise_with_redis_down(settings, workspace):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    triggers.trigger_drain_kick(workspace.pk)
    triggers.trigger_drain_kick_clear(workspace.pk)


def test_the_tasks_are_registered_by_name_and_the_sweep_is_on_the_beat(settings):
    celery_app.loader.import_default_modules()
    assert {"campaigns.triggers_drain", "campaigns.triggers_sweep"} <= set(celery_app.tasks)
    entry = settings.CELERY_BEAT_SCHEDULE["campaigns-triggers-sweep"]
    assert (entry["task"], entry["schedule"]) == ("campaigns.triggers_sweep", 5.0)
    assert settings.SEGMENT_FEED_CONSUMERS["campaigns"] == "campaigns.triggers.sends_from_changes"
