"""Each person's first time per event name (``PersonEventFirst``), kept by the events table's triggers
for every writer: ingestion (INSERT and COPY), merges, erasure, plain SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection

from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking import builders
from tracking import ingest
from tracking.models import Person, PersonEventFirst
from tracking.people_services import person_erase

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
WEDNESDAY = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)


def _firsts(workspace) -> dict[tuple[int, str], datetime]:
    with workspace_scope(workspace):
        return {(row.person_id, row.name): row.first_at for row in PersonEventFirst.objects.all()}


def _row_version(workspace, person_id: int, name: str) -> tuple[str, str]:
    """The row's physical version (ctid) and the transaction that last wrote or locked it (xmax)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ctid::text, xmax::text FROM tracking_personeventfirst "
            "WHERE workspace_id = %s AND person_id = %s AND name = %s",
            [workspace.pk, person_id, name],
        )
        return cursor.fetchone()


def test_ingestion_records_each_names_first_time_and_only_an_earlier_event_lowers_it(workspace, send):
    key = workspace.write_key
    response = send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "ada", "event": "A", "timestamp": WEDNESDAY.isoformat()},
                {"type": "track", "userId": "ada", "event": "A", "timestamp": TUESDAY.isoformat()},
                {"type": "page", "userId": "ada", "timestamp": WEDNESDAY.isoformat()},
                {"type": "identify", "userId": "ada", "timestamp": MONDAY.isoformat()},
            ]
        },
        write_key=key,
    )
    assert response.status_code == 200, response.content
    with workspace_scope(workspace):
        ada = Person.objects.get(user_id="ada")
    assert _firsts(workspace) == {(ada.pk, "A"): TUESDAY, (ada.pk, "$pageview"): WEDNESDAY}

    # A later event of a known name leaves the row as it was: not rewritten, not even locked.
    before = _row_version(workspace, ada.pk, "A")
    send("track", {"userId": "ada", "event": "A", "timestamp": WEDNESDAY.isoformat()}, write_key=key)
    assert _row_version(workspace, ada.pk, "A") == before

    # A late event from before lowers it.
    send("track", {"userId": "ada", "event": "A", "timestamp": MONDAY.isoformat()}, write_key=key)
    assert _firsts(workspace)[(ada.pk, "A")] == MONDAY


def test_a_large_group_written_by_copy_is_kept_too(workspace, send):
    """Groups of ``COPY_MIN_EVENTS`` events or more are written by COPY, which fires the same triggers."""
    messages = [
        {
            "type": "track",
            "userId": f"u{n % 7}",
            "event": f"E{n % 3}",
            "messageId": f"m-{n}",
            "timestamp": (MONDAY + timedelta(minutes=n)).isoformat(),
        }
        for n in range(ingest.COPY_MIN_EVENTS + 10)
    ]
    response = send("batch", {"batch": messages}, write_key=workspace.write_key)
    assert response.status_code == 200, response.content
    with workspace_scope(workspace):
        people = {p.user_id: p.pk for p in Person.objects.all()}
    expected = {}
    for n in range(ingest.COPY_MIN_EVENTS + 10):
        pair = (people[f"u{n % 7}"], f"E{n % 3}")
        expected.setdefault(pair, MONDAY + timedelta(minutes=n))
    assert _firsts(workspace) == expected


def test_a_merge_moves_the_losers_firsts_to_the_survivor(workspace, send):
    key = workspace.write_key
    send("track", {"anonymousId": "visitor", "event": "A", "timestamp": MONDAY.isoformat()}, write_key=key)
    send("track", {"anonymousId": "visitor", "event": "B", "timestamp": WEDNESDAY.isoformat()}, write_key=key)
    send("track", {"userId": "ada", "event": "A", "timestamp": TUESDAY.isoformat()}, write_key=key)
    send("track", {"userId": "ada", "event": "B", "timestamp": TUESDAY.isoformat()}, write_key=key)

    send("alias", {"previousId": "visitor", "userId": "ada"}, write_key=key)

    with workspace_scope(workspace):
        ada = Person.objects.get()
    assert _firsts(workspace) == {(ada.pk, "A"): MONDAY, (ada.pk, "B"): TUESDAY}


def test_deleting_or_moving_events_recomputes_the_pairs_they_left(workspace):
    ann = builders.person(workspace, user_id="ann")
    bob = builders.person(workspace, user_id="bob")
    builders.event(workspace, ann, "A", at=MONDAY)
    builders.event(workspace, ann, "A", at=WEDNESDAY)
    builders.event(workspace, ann, "B", at=TUESDAY)
    builders.event(workspace, bob, "A", at=TUESDAY)
    assert _firsts(workspace) == {(ann.pk, "A"): MONDAY, (ann.pk, "B"): TUESDAY, (bob.pk, "A"): TUESDAY}

    with connection.cursor() as cursor:
        cursor.execute(
            'DELETE FROM tracking_event WHERE workspace_id = %s AND "timestamp" = %s', [workspace.pk, MONDAY]
        )
        assert _firsts(workspace)[(ann.pk, "A")] == WEDNESDAY
        cursor.execute("DELETE FROM tracking_event WHERE workspace_id = %s AND name = 'B'", [workspace.pk])
        assert (ann.pk, "B") not in _firsts(workspace)
        cursor.execute(
            "UPDATE tracking_event SET person_id = %s WHERE workspace_id = %s AND person_id = %s",
            [bob.pk, workspace.pk, ann.pk],
        )
    assert _firsts(workspace) == {(bob.pk, "A"): TUESDAY}


def test_erasing_a_person_removes_their_firsts_and_no_one_elses(workspace):
    ann = builders.person(workspace, user_id="ann")
    bob = builders.person(workspace, user_id="bob")
    builders.event(workspace, ann, "A", at=MONDAY)
    builders.event(workspace, bob, "A", at=TUESDAY)

    with workspace_scope(workspace):
        person_erase(workspace=workspace, person=ann, actor=None)

    assert _firsts(workspace) == {(bob.pk, "A"): TUESDAY}


def test_events_of_another_workspace_keep_to_their_own_workspace(workspace):
    other = factories.WorkspaceFactory()
    ann = builders.person(workspace, user_id="ann")
    builders.event(workspace, ann, "A", at=TUESDAY)
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO tracking_event (workspace_id, person_id, name, "timestamp", received_at, message_id) '
            "VALUES (%s, %s, 'A', %s, %s, 'x')",
            [other.pk, ann.pk, MONDAY, MONDAY],
        )
    assert _firsts(workspace) == {(ann.pk, "A"): TUESDAY}
    assert _firsts(other) == {(ann.pk, "A"): MONDAY}


def _sequential_scans_of_firsts() -> int:
    """This transaction's sequential scans of the table so far (PostgreSQL's own counter)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'tracking_personeventfirst'")
        return int(cursor.fetchone()[0])


def test_the_triggers_probe_the_index_and_never_scan_the_table(workspace, send):
    """A trigger's plan is made once per connection and kept: one made while the table was small (a
    scan of it per pair) would stay as it grows. The triggers plan without sequential scans."""
    before = _sequential_scans_of_firsts()
    key = workspace.write_key
    for n in range(3):
        batch = [
            {
                "type": "track",
                "userId": f"u{k}",
                "event": f"E{k % 4}",
                "timestamp": (MONDAY - timedelta(days=n)).isoformat(),
            }
            for k in range(40)
        ]
        assert send("batch", {"batch": batch}, write_key=key).status_code == 200
    send("alias", {"previousId": "u1", "userId": "u2"}, write_key=key)
    with workspace_scope(workspace):
        person_erase(workspace=workspace, person=Person.objects.get(user_id="u3"), actor=None)

    assert _sequential_scans_of_firsts() == before
    assert len(_firsts(workspace)) == 39  # 40 people, one name each; one erased
