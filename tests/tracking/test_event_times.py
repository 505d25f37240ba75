"""Each person's first and last event time (``first_event_at`` / ``last_event_at``), kept by the
events table's triggers for every writer: ingestion, merges, erasure, plain SQL."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection

from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking import builders
from tracking.models import Person

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
WEDNESDAY = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)


def _times(workspace, **lookup):
    with workspace_scope(workspace):
        return Person.objects.values_list("first_event_at", "last_event_at").get(**lookup)


def test_ingested_events_set_the_times_and_identify_does_not(workspace, send):
    key = workspace.write_key
    send("identify", {"userId": "ada", "timestamp": "2026-11-01T09:00:00Z"}, write_key=key)
    assert _times(workspace, user_id="ada") == (None, None)

    response = send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "ada", "event": "A", "timestamp": TUESDAY.isoformat()},
                {"type": "page", "userId": "ada", "timestamp": WEDNESDAY.isoformat()},
                {"type": "identify", "userId": "ada", "timestamp": "2026-11-05T09:00:00Z"},
            ]
        },
        write_key=key,
    )
    assert response.status_code == 200, response.content
    assert _times(workspace, user_id="ada") == (TUESDAY, WEDNESDAY)

    # A late event from before widens the range; one inside it changes nothing.
    send("track", {"userId": "ada", "event": "B", "timestamp": MONDAY.isoformat()}, write_key=key)
    send("track", {"userId": "ada", "event": "C", "timestamp": TUESDAY.isoformat()}, write_key=key)
    assert _times(workspace, user_id="ada") == (MONDAY, WEDNESDAY)


def test_a_merge_gives_the_survivor_the_whole_range(workspace, send):
    key = workspace.write_key
    send("track", {"anonymousId": "visitor", "event": "A", "timestamp": MONDAY.isoformat()}, write_key=key)
    send("track", {"userId": "ada", "event": "B", "timestamp": WEDNESDAY.isoformat()}, write_key=key)

    send("alias", {"previousId": "visitor", "userId": "ada"}, write_key=key)

    with workspace_scope(workspace):
        assert Person.objects.count() == 1
    assert _times(workspace, user_id="ada") == (MONDAY, WEDNESDAY)


def test_deleting_events_recomputes_the_times_and_other_writers_are_covered_too(workspace):
    ann = builders.person(workspace, user_id="ann")
    bob = builders.person(workspace, user_id="bob")
    builders.event(workspace, ann, "A", at=MONDAY)
    builders.event(workspace, ann, "B", at=WEDNESDAY)
    builders.event(workspace, bob, "A", at=TUESDAY)
    assert (_times(workspace, pk=ann.pk), _times(workspace, pk=bob.pk)) == ((MONDAY, WEDNESDAY), (TUESDAY, TUESDAY))

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tracking_event WHERE workspace_id = %s AND name = 'B'", [workspace.pk])
        assert _times(workspace, pk=ann.pk) == (MONDAY, MONDAY)
        cursor.execute(
            "UPDATE tracking_event SET person_id = %s WHERE workspace_id = %s AND person_id = %s",
            [bob.pk, workspace.pk, ann.pk],
        )
    assert (_times(workspace, pk=ann.pk), _times(workspace, pk=bob.pk)) == ((None, None), (MONDAY, TUESDAY))


def test_events_of_another_workspace_never_move_a_persons_times(workspace):
    other = factories.WorkspaceFactory()
    ann = builders.person(workspace, user_id="ann")
    builders.event(workspace, ann, "A", at=TUESDAY)
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO tracking_event (workspace_id, person_id, name, "timestamp", received_at, message_id) '
            "VALUES (%s, %s, 'X', %s, %s, 'x')",
            [other.pk, ann.pk, MONDAY, MONDAY],
        )
    assert _times(workspace, pk=ann.pk) == (TUESDAY, TUESDAY)


def test_events_written_after_an_ingestion_in_the_same_transaction_are_kept_by_the_triggers(workspace, send):
    """Ingestion keeps the times itself and hands them back to the triggers when it is done (a test's
    transaction, like any caller's, goes on after the request)."""
    send("track", {"userId": "ada", "event": "A", "timestamp": TUESDAY.isoformat()}, write_key=workspace.write_key)
    with workspace_scope(workspace):
        ada = Person.objects.get(user_id="ada")
    builders.event(workspace, ada, "B", at=WEDNESDAY)
    assert _times(workspace, pk=ada.pk) == (TUESDAY, WEDNESDAY)
