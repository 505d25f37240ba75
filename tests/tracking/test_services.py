"""Storage upkeep: event partitions ahead of time, the dedupe window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from accounts.tenancy import workspace_scope
from tests import factories
from tracking import services
from tracking.models import Event, Identity, Person, PersonGroup, ProcessedMessage
from tracking.tasks import tracking_maintenance


def _partitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'tracking_event'::regclass"
        )
        return dict(cursor.fetchall())


def test_migration_created_this_and_next_month_and_a_default(db):
    now = datetime.now(UTC)
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1)

    partitions = _partitions()

    assert f"tracking_event_{now:%Y_%m}" in partitions
    assert f"tracking_event_{next_month:%Y_%m}" in partitions
    assert partitions["tracking_event_default"] == "DEFAULT"


def test_partitions_are_created_ahead_idempotently_and_take_rows_from_default(workspace, send):
    far = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)
    send("track", {"userId": "u", "event": "Now"}, write_key=workspace.write_key)
    # An event in a month with no partition yet (ingestion refuses such future times, so write it directly).
    with workspace_scope(workspace):
        person_id = Event.objects.get().person_id
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tracking_event (workspace_id, person_id, name, timestamp, received_at, message_id) "
            "VALUES (%s, %s, 'In default', %s, now(), 'd-1')",
            [workspace.pk, person_id, far],
        )
        cursor.execute("SELECT tableoid::regclass::text FROM tracking_event WHERE message_id = 'd-1'")
        assert cursor.fetchone()[0] == "tracking_event_default"

    created = services.event_partitions_ensure(now=far - timedelta(days=40), months=3)
    again = services.event_partitions_ensure(now=far - timedelta(days=40), months=3)

    assert created == ["tracking_event_2031_04", "tracking_event_2031_05", "tracking_event_2031_06"]
    assert again == []
    assert _partitions()["tracking_event_2031_05"] == (
        "FOR VALUES FROM ('2031-05-01 00:00:00+00') TO ('2031-06-01 00:00:00+00')"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM tracking_event WHERE message_id = 'd-1'")
        assert cursor.fetchone()[0] == "tracking_event_2031_05"
    with workspace_scope(workspace):
        assert Event.objects.filter(name="In default").count() == 1


def test_maintenance_forgets_message_ids_older_than_seven_days(workspace, send):
    send("track", {"userId": "u", "event": "E", "messageId": "old"}, write_key=workspace.write_key)
    send("track", {"userId": "u", "event": "E", "messageId": "recent"}, write_key=workspace.write_key)
    with workspace_scope(workspace):
        ProcessedMessage.objects.filter(message_id="old").update(received_at=datetime.now(UTC) - timedelta(days=8))

    result = tracking_maintenance.apply().get()

    assert result["message_ids_purged"] == 1
    with workspace_scope(workspace):
        assert list(ProcessedMessage.objects.values_list("message_id", flat=True)) == ["recent"]
    # Past the window, the same id is stored again; within it, still refused.
    send("track", {"userId": "u", "event": "E", "messageId": "old"}, write_key=workspace.write_key)
    send("track", {"userId": "u", "event": "E", "messageId": "recent"}, write_key=workspace.write_key)
    with workspace_scope(workspace):
        assert Event.objects.filter(message_id="old").count() == 2
        assert Event.objects.filter(message_id="recent").count() == 1


def test_person_merge_moves_identities_events_and_groups(workspace, send):
    send("track", {"userId": "keep", "event": "A"}, write_key=workspace.write_key)
    send("group", {"anonymousId": "gone", "groupId": "acme"}, write_key=workspace.write_key)
    send("track", {"anonymousId": "gone", "event": "B"}, write_key=workspace.write_key)
    with workspace_scope(workspace):
        survivor = Person.objects.get(user_id="keep")
        loser = Person.objects.get(identities__value="gone")

        services.person_merge(workspace=workspace, loser=loser, survivor=survivor)

        assert list(Person.objects.values_list("id", flat=True)) == [survivor.pk]
        assert sorted(Identity.objects.values_list("value", "person_id")) == [
            ("gone", survivor.pk),
            ("keep", survivor.pk),
        ]
        assert set(Event.objects.values_list("person_id", flat=True)) == {survivor.pk}
        assert list(PersonGroup.objects.values_list("person_id", flat=True)) == [survivor.pk]


def test_person_merge_refuses_people_of_another_workspace(workspace, send):
    other = factories.WorkspaceFactory()
    send("track", {"userId": "mine", "event": "A"}, write_key=workspace.write_key)
    send("track", {"userId": "theirs", "event": "A"}, write_key=other.write_key)
    with workspace_scope(workspace):
        mine = Person.objects.get()
    with workspace_scope(other):
        theirs = Person.objects.get()

    with pytest.raises(ValueError), workspace_scope(workspace):
        services.person_merge(workspace=workspace, loser=theirs, survivor=mine)

    assert Person.objects.unscoped().count() == 2
