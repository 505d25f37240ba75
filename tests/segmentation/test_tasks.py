"""Refresh tasks and the periodic fan-out; two refreshes at once; a refresh killed mid-transaction.

The concurrency and crash tests use real, separate PostgreSQL connections (threads, and a child
process), so their data is committed (``transaction=True``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from accounts.tenancy import workspace_scope
from config.celery import app as celery_app
from core.dburl import database_url
from segmentation import services
from segmentation.membership import MEMBERSHIP_LOCK_CLASS
from segmentation.models import MembershipChange, Segment, SegmentStatus
from segmentation.tasks import segment_refresh_task, segments_refresh_due
from tests import factories
from tests.segmentation.support import bought, changes, members, reload, shopper, snapshots

BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def eager():
    """Tasks run in the caller, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _segment(workspace, name="Buyers", definition=None):
    with workspace_scope(workspace):
        return services.segment_create(workspace=workspace, actor=None, name=name, definition=definition or BUYERS)


def test_the_task_refreshes_in_the_workspace_scope_and_is_idempotent(workspace):
    ann = shopper(workspace, "ann")
    bought(workspace, ann, timezone.now() - timedelta(days=1))
    segment = _segment(workspace)

    segment_refresh_task(workspace.pk, segment.pk)
    segment_refresh_task(workspace.pk, segment.pk)
    segment_refresh_task(workspace.pk, 999_999_999)  # deleted meanwhile: nothing to do

    assert members(segment) == {"ann"}
    assert changes(segment) == [("ann", "entered")]
    assert snapshots(segment) == [(1, 1, 0), (1, 0, 0)]


def test_the_fan_out_refreshes_due_segments_of_every_workspace_referenced_first(workspace, eager):
    now = timezone.now()
    other = factories.WorkspaceFactory()
    ann = shopper(workspace, "ann", traits={"plan": "vip"})
    bought(workspace, ann, now - timedelta(days=1))
    dee = shopper(other, "dee")
    bought(other, dee, now - timedelta(days=1))
    buyers = _segment(workspace)
    # Created first, so due first: the fan-out must still refresh what it refers to before it.
    vip_buyers = _segment(
        workspace,
        name="VIP buyers",
        definition={
            "type": "and",
            "conditions": [
                {"type": "trait", "key": "plan", "operator": "eq", "value": "vip"},
                {"type": "segment", "segment": buyers.pk},
            ],
        },
    )
    Segment.objects.unscoped().filter(pk=vip_buyers.pk).update(next_refresh_at=now - timedelta(hours=1))
    Segment.objects.unscoped().filter(pk=buyers.pk).update(next_refresh_at=now - timedelta(minutes=1))
    theirs = _segment(other, name="Their buyers")
    not_yet = _segment(workspace, name="Later")
    Segment.objects.unscoped().filter(pk=not_yet.pk).update(next_refresh_at=now + timedelta(minutes=5))

    enqueued = segments_refresh_due()

    assert enqueued == 3
    assert (members(buyers), members(vip_buyers), members(theirs)) == ({"ann"}, {"ann"}, {"dee"})
    assert reload(not_yet).status == SegmentStatus.PENDING
    assert segments_refresh_due() == 0  # each refreshed segment is next due after its interval


def test_a_time_based_exit_flips_through_the_periodic_refresh(workspace, eager, monkeypatch):
    """Nobody does anything; only the clock moves, and the next periodic refresh lets ann out."""
    now = timezone.now()
    ann = shopper(workspace, "ann")
    bought(workspace, ann, now - timedelta(days=29))
    segment = _segment(workspace)
    assert segments_refresh_due() == 1
    assert members(segment) == {"ann"}

    moved = now + timedelta(days=2)
    monkeypatch.setattr(timezone, "now", lambda: moved)
    assert segments_refresh_due() == 1

    assert members(segment) == set()
    assert changes(segment) == [("ann", "entered"), ("ann", "exited")]
    assert reload(segment).refreshed_at == moved


# --- two refreshes at once -----------------------------------------------------------------------


def _lock_holders(segment_id: int, *, using: str = "default") -> list[int]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND granted",
            [MEMBERSHIP_LOCK_CLASS, segment_id],
        )
        return [row[0] for row in cursor.fetchall()]


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _holder_activity(segment_id: int) -> list[tuple[str, str, str]]:
    """(state, wait event type, current query) of each backend holding the segment's lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.state, coalesce(a.wait_event_type, ''), a.query "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.granted",
            [MEMBERSHIP_LOCK_CLASS, segment_id],
        )
        return [tuple(row) for row in cursor.fetchall()]


def _database_url() -> str:
    # The test database, as the child process must reach it (unix socket of the embedded server included).
    return database_url(connection.settings_dict)


@contextmanager
def _snapshots_locked() -> Iterator[None]:
    """Hold a SHARE lock on the size history from another connection: a refresh then stops at its
    snapshot INSERT, after applying its difference, with its transaction and the segment's lock held."""
    with psycopg.connect(_database_url()) as other:
        other.execute("LOCK TABLE segmentation_segmentsizesnapshot IN SHARE MODE")
        yield
        other.rollback()


def _waiting_at_snapshot(segment_id: int) -> bool:
    """The holder of the segment's lock is waiting for the test's lock, at its snapshot INSERT."""
    return [(state, wait, query.split(" (")[0]) for state, wait, query in _holder_activity(segment_id)] == [
        ("active", "Lock", 'INSERT INTO "segmentation_segmentsizesnapshot"')
    ]


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_apply_once():
    workspace = factories.WorkspaceFactory()
    people = [shopper(workspace, f"p{n}") for n in range(5)]
    for who in people:
        bought(workspace, who, timezone.now() - timedelta(days=1))
    segment = _segment(workspace)
    results: dict[str, services.RefreshResult] = {}

    def refresh(label: str) -> None:
        try:
            with workspace_scope(workspace):
                results[label] = services.segment_refresh(segment=Segment.objects.get(pk=segment.pk))
        finally:
            connection.close()

    with _snapshots_locked():
        first = threading.Thread(target=refresh, args=("first",))
        first.start()
        # The first has applied its difference and holds the segment's lock, uncommitted
        _wait_for(lambda: _waiting_at_snapshot(segment.pk))
        # While the first holds the lock the segment shows "refreshing", and readers see no member yet
        assert reload(segment).status == SegmentStatus.REFRESHING
        assert members(segment) == set()
        second = threading.Thread(target=refresh, args=("second",))
        second.start()
        second.join(timeout=30)
        assert results["second"].skipped is True
    first.join(timeout=30)

    assert (results["first"].skipped, results["first"].size, results["first"].entered) == (False, 5, 5)
    assert snapshots(segment) == [(5, 5, 0)]
    with workspace_scope(workspace):
        assert MembershipChange.objects.filter(segment=segment).count() == 5
    assert members(segment) == {f"p{n}" for n in range(5)}


# --- a refresh killed with its transaction open ------------------------------------------------

CHILD = """
import sys
import django

django.setup()
from accounts.tenancy import workspace_scope
from segmentation.models import Segment
from segmentation.services import segment_refresh

with workspace_scope(int(sys.argv[1])):
    segment_refresh(segment=Segment.objects.get(pk=int(sys.argv[2])))
"""


@pytest.mark.django_db(transaction=True)
def test_a_refresh_killed_mid_transaction_leaves_the_old_membership_and_the_next_one_completes():
    # Given a refreshed segment of ann and bob; then bob stops qualifying and cy starts
    workspace = factories.WorkspaceFactory()
    now = timezone.now()
    ann, bob, cy = shopper(workspace, "ann"), shopper(workspace, "bob"), shopper(workspace, "cy")
    bought(workspace, ann, now - timedelta(days=1))
    bought(workspace, bob, now - timedelta(days=1))
    segment = _segment(workspace)
    with workspace_scope(workspace):
        services.segment_refresh(segment=segment)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM tracking_event WHERE workspace_id = %s AND person_id = %s", [workspace.pk, bob.pk]
            )
    bought(workspace, cy, now - timedelta(hours=1))

    # When a refresh in a child process has applied its difference and holds the lock, uncommitted, and is killed
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    with _snapshots_locked():
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(workspace.pk), str(segment.pk)], cwd=ROOT, env=env)
        try:
            # the holder of the lock has applied the difference and waits for the test's lock before COMMIT
            _wait_for(lambda: _waiting_at_snapshot(segment.pk))
            assert members(segment) == {"ann", "bob"}  # readers see the old set while the difference is uncommitted
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        # the server notices the client gone while its statement still waits, and ends the transaction
        _wait_for(lambda: _lock_holders(segment.pk) == [], timeout=15)

    # Then the membership is exactly the old one
    assert child.returncode == -signal.SIGKILL
    assert members(segment) == {"ann", "bob"}
    assert changes(segment) == [("ann", "entered"), ("bob", "entered")]
    assert snapshots(segment) == [(2, 2, 0)]

    # And the next refresh completes
    with workspace_scope(workspace):
        result = services.segment_refresh(segment=segment)
    assert (result.skipped, result.size, result.entered, result.exited) == (False, 2, 1, 1)
    assert members(segment) == {"ann", "cy"}
    assert reload(segment).status == SegmentStatus.FRESH


# --- fairness between workspaces ---------------------------------------------------------------


def _due(workspace, name: str, due) -> Segment:
    """A dynamic segment due at ``due``, written directly: nothing queued on saving."""
    with workspace_scope(workspace):
        return Segment.objects.create(workspace=workspace, name=name, definition=BUYERS, next_refresh_at=due)


def _waiting_for_a_lock(segment_id: int) -> bool:
    return [(state, wait) for state, wait, _ in _holder_activity(segment_id)] == [("active", "Lock")]


@pytest.mark.django_db(transaction=True)
def test_a_flooded_workspace_holds_its_slots_only_and_another_workspace_refreshes_meanwhile(settings):
    # Given a workspace with six due segments (due for an hour) and another with one, due just now
    settings.SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE = 2
    big, small = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    now = timezone.now()
    bought(big, shopper(big, "ann"), now - timedelta(days=1))
    bought(small, shopper(small, "dee"), now - timedelta(days=1))
    flood = [_due(big, f"Flood {n}", now - timedelta(hours=1)) for n in range(6)]
    mine = _due(small, "Mine", now)

    # When the fan-out claims: two of the flood (its slots) and the other workspace's, interleaved
    claimed = services.segments_claim_due(now=now)
    assert claimed == [(big.pk, flood[0].pk), (small.pk, mine.pk), (big.pk, flood[1].pk)]

    # And the flood's two refreshes run and are held up for real, by a lock on their rows held elsewhere
    def refresh(segment: Segment) -> None:
        try:
            with workspace_scope(big):
                services.segment_refresh(segment=segment)
        finally:
            connection.close()

    with psycopg.connect(_database_url()) as other:
        other.execute("SELECT id FROM segmentation_segment WHERE workspace_id = %s FOR UPDATE", [big.pk])
        workers = [threading.Thread(target=refresh, args=(segment,)) for segment in flood[:2]]
        for worker in workers:
            worker.start()
        _wait_for(lambda: _waiting_for_a_lock(flood[0].pk) and _waiting_for_a_lock(flood[1].pk))

        # Then a later fan-out claims none of the four the flood still has due: its slots are taken
        assert services.segments_claim_due(now=timezone.now()) == []
        # and the other workspace's refresh runs to the end meanwhile, and its next one is claimed at once
        with workspace_scope(small):
            assert services.segment_refresh(segment=mine).size == 1
        assert (members(mine), reload(mine).status) == ({"dee"}, SegmentStatus.FRESH)
        Segment.objects.unscoped().filter(pk=mine.pk).update(next_refresh_at=timezone.now())
        assert services.segments_claim_due(now=timezone.now()) == [(small.pk, mine.pk)]
        assert all(worker.is_alive() for worker in workers)
        other.rollback()
    for worker in workers:
        worker.join(timeout=30)

    # When the flood's refreshes end, their slots go to its next due segments
    assert [reload(segment).status for segment in flood[:2]] == [SegmentStatus.FRESH] * 2
    assert services.segments_claim_due(now=timezone.now()) == [(big.pk, flood[2].pk), (big.pk, flood[3].pk)]


def test_a_claim_not_finished_within_its_lease_frees_its_slot(workspace, settings):
    # Given one slot per workspace, taken by a claim whose worker was lost
    settings.SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE = 1
    now = timezone.now()
    lost, waiting = _segment(workspace, name="Lost"), _segment(workspace, name="Waiting")
    Segment.objects.unscoped().filter(pk=lost.pk).update(next_refresh_at=now - timedelta(minutes=2))
    Segment.objects.unscoped().filter(pk=waiting.pk).update(next_refresh_at=now - timedelta(minutes=1))
    assert services.segments_claim_due(now=now) == [(workspace.pk, lost.pk)]
    assert services.segments_claim_due(now=now) == []

    # When the lease runs out, the lost one is due and claimed again (first in due order)
    later = now + timedelta(seconds=services.refresh_lease_seconds() + 1)
    assert services.segments_claim_due(now=later) == [(workspace.pk, lost.pk)]


def test_asking_for_a_refresh_queues_it_when_a_slot_is_free_and_leaves_it_due_otherwise(
    workspace, settings, eager, django_capture_on_commit_callbacks
):
    # Given one slot per workspace, taken by a running refresh
    settings.SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE = 1
    bought(workspace, shopper(workspace, "ann"), timezone.now() - timedelta(days=1))
    running, asked = _segment(workspace, name="Running"), _segment(workspace, name="Asked")
    Segment.objects.unscoped().filter(pk=running.pk).update(refreshing_since=timezone.now())

    # When a refresh of the other is asked for: it is due now, not queued
    with django_capture_on_commit_callbacks(execute=True):
        services.segment_refresh_enqueue(segment=asked)
    assert reload(asked).status == SegmentStatus.PENDING
    assert reload(asked).next_refresh_at <= timezone.now()

    # When the running one ends, its task hands the slot to the asked one, which refreshes
    Segment.objects.unscoped().filter(pk=running.pk).update(refreshing_since=None)
    with django_capture_on_commit_callbacks(execute=True):
        services.segment_refresh_enqueue(segment=running)
    assert (members(running), members(asked)) == ({"ann"}, {"ann"})
    assert [reload(s).refreshing_since for s in (running, asked)] == [None, None]


def test_beat_runs_the_fan_out_every_30_seconds(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["segments-refresh-due"]

    assert (entry["task"], entry["schedule"]) == ("segmentation.tasks.segments_refresh_due", 30.0)
    assert celery_app.tasks[entry["task"]].name == segments_refresh_due.name
