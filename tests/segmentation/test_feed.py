"""The change feed: read forward by cursor, in an order that never steps over an open transaction,
at least once, consumers registered by name. Concurrent writers are real PostgreSQL connections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from accounts.tenancy import workspace_scope
from core.dburl import database_url
from segmentation import feed
from segmentation.models import ChangeFeedCursor, MembershipChange, MembershipChangeKind, Segment
from segmentation.tasks import segment_feed_sweep
from tests import factories

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
# What the test consumer was handed, by workspace: (change id, person id, kind).
SEEN: list[tuple[int, int, str]] = []


def record(*, workspace, changes) -> None:
    """A consumer as a higher app would register one."""
    SEEN.extend((change.id, change.person_id, change.kind) for change in changes)


@pytest.fixture
def recorder(settings):
    """Only the test consumer is registered."""
    settings.SEGMENT_FEED_CONSUMERS = {"recorder": "tests.segmentation.test_feed.record"}
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.fixture
def queue(settings):
    """A drain queue of the test's own, emptied after."""
    name = f"test-feed-{uuid.uuid4().hex}"
    settings.SEGMENT_FEED_QUEUE = name
    yield name
    redis.Redis.from_url(settings.REDIS_URL).delete(name)


def _segment(workspace) -> Segment:
    with workspace_scope(workspace):
        return Segment.objects.create(workspace=workspace, name="Static", is_static=True)


def _changes(workspace, segment, people, kind=MembershipChangeKind.ENTERED) -> list[int]:
    with workspace_scope(workspace):
        rows = MembershipChange.objects.bulk_create(
            MembershipChange(workspace=workspace, segment=segment, person_id=person, kind=kind, at=AT)
            for person in people
        )
    return [row.pk for row in rows]


def _read(workspace, consumer="recorder", limit=100) -> list[int]:
    """Read and advance in one transaction, as a consumer does; the ids read."""
    with workspace_scope(workspace), transaction.atomic():
        batch = feed.feed_read(workspace=workspace, consumer=consumer, limit=limit)
        feed.feed_advance(workspace=workspace, batch=batch)
    return [change.id for change in batch.changes]


def _connect() -> psycopg.Connection:
    return psycopg.connect(database_url(connection.settings_dict))


INSERT = (
    "INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at) "
    "VALUES (%s, %s, %s, 'entered', %s) RETURNING id"
)


def test_changes_are_read_in_order_in_batches_and_once(workspace, recorder):
    # Given five changes in two transactions
    segment = _segment(workspace)
    first = _changes(workspace, segment, [1, 2, 3])

    # When they are read two at a time
    assert _read(workspace, limit=2) == first[:2]
    second = _changes(workspace, segment, [4, 5])
    assert _read(workspace, limit=2) == [first[2], second[0]]
    assert _read(workspace, limit=2) == [second[1]]

    # Then nothing is read twice
    assert _read(workspace) == []
    with workspace_scope(workspace):
        cursor = ChangeFeedCursor.objects.get(consumer="recorder")
    assert cursor.last_id == second[1]


def test_a_read_whose_transaction_fails_is_read_again(workspace, recorder):
    # Given three changes
    segment = _segment(workspace)
    ids = _changes(workspace, segment, [1, 2, 3])

    # When a consumer reads them, advances, and its transaction then fails
    def consume_then_fail() -> None:
        with workspace_scope(workspace), transaction.atomic():
            batch = feed.feed_read(workspace=workspace, consumer="recorder", limit=100)
            feed.feed_advance(workspace=workspace, batch=batch)
            raise RuntimeError("the consumer's effects could not be written")

    with pytest.raises(RuntimeError):
        consume_then_fail()

    # Then the cursor did not move: the next read returns the same changes
    assert _read(workspace) == ids


@pytest.mark.django_db(transaction=True)
def test_reading_outside_a_transaction_is_refused(recorder):
    workspace = factories.WorkspaceFactory()
    with workspace_scope(workspace), pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        feed.feed_read(workspace=workspace, consumer="recorder", limit=10)
    with workspace_scope(workspace):
        assert ChangeFeedCursor.objects.count() == 0


def test_a_change_committed_while_an_older_transaction_is_open_waits_for_it(workspace, recorder):
    # Given a writer that drew a lower id and is still open, and a later writer that committed
    segment = _segment(workspace)
    with _connect() as slow, _connect() as quick:
        [early] = slow.execute(INSERT, [workspace.pk, segment.pk, 1, AT]).fetchone()
        [late] = quick.execute(INSERT, [workspace.pk, segment.pk, 2, AT]).fetchone()
        quick.commit()
        assert early < late

        # When the feed is read: the committed change is not handed out yet (a cursor past
        # its id would step over the open transaction's change for good)
        assert _read(workspace) == []

        # Then once the older transaction commits, both come, the older first, and nothing after
        slow.commit()
        assert _read(workspace) == [early, late]
        assert _read(workspace) == []
        slow.execute("DELETE FROM segmentation_membershipchange WHERE id = ANY(%s)", [[early, late]])
        slow.commit()


def test_a_transaction_open_in_another_database_does_not_hold_the_feed_back(workspace, recorder):
    # Given a transaction with an id open in another database of the same server
    segment = _segment(workspace)
    other = psycopg.connect(database_url({**connection.settings_dict, "NAME": "postgres"}))
    try:
        other.execute("SELECT pg_current_xact_id()")
        ids = _changes(workspace, segment, [1])

        # Then the change is read at once
        assert _read(workspace) == ids
    finally:
        other.rollback()
        other.close()


def test_rows_from_before_the_feed_are_history_and_never_read(workspace, recorder):
    segment = _segment(workspace)
    with workspace_scope(workspace):
        old = MembershipChange.objects.create(workspace=workspace, segment=segment, person_id=1, kind="entered", at=AT)
        MembershipChange.objects.filter(pk=old.pk).update(txid=None)
    new = _changes(workspace, segment, [2])

    assert _read(workspace) == new


def test_cursors_are_per_workspace_and_consumer(workspace, recorder):
    # Given changes in two workspaces
    other = factories.WorkspaceFactory()
    mine = _changes(workspace, _segment(workspace), [1, 2])
    theirs = _changes(other, _segment(other), [3])

    # Then each workspace's reader reads its own, and a second consumer starts from the start
    assert _read(workspace) == mine
    assert _read(other) == theirs
    assert _read(workspace, consumer="another") == mine


def test_the_drain_hands_changes_to_the_registered_consumers(workspace, recorder):
    segment = _segment(workspace)
    ids = _changes(workspace, segment, [7, 8])

    with workspace_scope(workspace):
        result = feed.feed_drain(workspace=workspace, batch_size=1, max_batches=5)

    seen = list(SEEN)
    assert seen == [(ids[0], 7, "entered"), (ids[1], 8, "entered")]
    assert (result.read, result.failed, result.more) == ({"recorder": 2}, [], False)


def test_the_sweep_kicks_a_drain_per_workspace_with_unread_changes(workspace, recorder, queue):
    # Given unread changes in one workspace, read ones in another, none in a third
    busy, done = workspace, factories.WorkspaceFactory()
    factories.WorkspaceFactory()
    _changes(busy, _segment(busy), [1])
    _changes(done, _segment(done), [2])
    _read(done)
    broker = redis.Redis.from_url(settings.REDIS_URL)

    # When the beat's sweep runs
    assert segment_feed_sweep.apply().get() == 1

    # Then one drain is queued, for the busy workspace
    [message] = broker.lrange(queue, 0, -1)
    assert orjson.loads(message)["headers"]["task"] == "segmentation.feed_drain"
    assert orjson.loads(message)["headers"]["argsrepr"] == f"({busy.pk},)"

    # And a second sweep before that drain ran queues nothing more
    assert segment_feed_sweep.apply().get() == 1
    assert broker.llen(queue) == 1


def test_the_beat_sweeps_the_feed_every_five_seconds_with_a_registered_task():
    from config.celery import app

    assert settings.CELERY_BEAT_SCHEDULE["segments-feed-sweep"] == {"task": "segmentation.feed_sweep", "schedule": 5.0}
    assert {"segmentation.feed_sweep", feed.DRAIN_TASK} <= set(app.tasks)
