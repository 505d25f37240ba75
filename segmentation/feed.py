"""The change feed: segment entries and exits, read forward by named consumers (an outbox).

``MembershipChange`` rows are written in the same transaction as the membership
they record (full refresh, real-time update, static list), so a committed change
is never lost and an uncommitted one never seen. Each consumer named in
``SEGMENT_FEED_CONSUMERS`` keeps a cursor per workspace (``ChangeFeedCursor``)
and reads the changes after it, in order, in batches: ``feed_read`` locks the
cursor and returns the next batch, the consumer writes its effects, and
``feed_advance`` moves the cursor, all in one transaction. A consumer that fails
or a worker that dies before the commit leaves the cursor where it was: the
batch is read again (at least once). Consumers are idempotent by change id: a
unique constraint on their own effect rows (webhooks: one delivery per
subscription and change).

Where reading stops. Ids are drawn when a row is inserted, so a transaction still
open may hold lower ids than rows already committed; a cursor on ids alone would
step over them for good. Each row carries the id of the transaction that wrote it
(``txid``, a column default: ``pg_current_xact_id()``), and the feed is read in
(txid, id) order up to the oldest transaction of this database still open at the
read (``_frontier``): no row with a lower txid can appear any more. A settle
window on time (the catalogue's watermark) does not fit: a full refresh's
transaction lasts as long as its evaluation, minutes on a large segment, so a
window that never skips a row would hold back every change by minutes. The
frontier waits exactly as long as needed: a change is read once every write
transaction that started before its own has ended (in practice at once; behind
a long refresh, until it commits). Transactions of other databases on the same
server are left out: they write no rows here.

A commit that records changes kicks a drain of its workspace (``feed_kick``,
from ``transaction.on_commit``: one Redis ``SET NX`` and, unless a drain is
already queued, one task). A lost kick (Redis or the broker down, a worker
killed) loses nothing: the beat's ``segment_feed_sweep`` drains every workspace
with unread changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Workspace
from accounts.sql import dangerously_execute_across_workspaces, execute_scoped, execute_session
from core.kicks import Kick
from segmentation.models import ChangeFeedCursor, MembershipChange

logger = logging.getLogger(__name__)

# Celery's name of the drain task (``segmentation.tasks.segment_feed_drain``): kicked by name, so
# that the writers of changes need not import the tasks.
DRAIN_TASK = "segmentation.feed_drain"
# Batches per consumer per task run before it hands over to a fresh task.
MAX_BATCHES_PER_RUN = 20

# The frontier: rows with a txid below it are all committed (or rolled back) and visible to the
# next statement. It is the oldest transaction of this database still running when
# pg_stat_activity is read (a 32-bit xid, widened to 64 bits next to the snapshot's xmax), and at
# most the snapshot's xmax, taken before that read: a transaction given its id after the read
# gets one at or above it, and one that ended between the snapshot and the read is committed
# before the next statement, which reads the rows, takes its snapshot. The caller's own
# transaction is left out (its rows are visible to itself): a test, or a consumer reading
# inside a transaction that wrote changes, reads them too.
_FRONTIER_SQL = """
WITH snap AS (
    SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
           pg_current_xact_id_if_assigned()::text::bigint AS own
),
running AS (
    SELECT backend_xid AS xid FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    UNION ALL
    SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
),
widened AS (
    SELECT snap.xmax + (r.xid::text::bigint - snap.xmax % 4294967296 + 6442450944) % 4294967296 - 2147483648 AS xid
    FROM running r, snap
)
SELECT least(greatest(snap.xmax, snap.own + 1), (SELECT min(xid) FROM widened)) FROM snap
"""

_READ_SQL = f"""
SELECT c.id, c.txid, c.segment_id, c.person_id, c.kind, c.at
FROM {MembershipChange._meta.db_table} c
WHERE c.workspace_id = %(workspace_id)s
  AND c.txid IS NOT NULL
  AND (c.txid, c.id) > (%(txid)s, %(id)s)
  AND c.txid < %(frontier)s
ORDER BY c.txid, c.id
LIMIT %(limit)s
"""

# Workspaces with changes after a consumer's cursor and before the frontier (none: cursor at the start).
_UNREAD_SQL = f"""
SELECT w.id FROM {Workspace._meta.db_table} w
LEFT JOIN {ChangeFeedCursor._meta.db_table} f ON f.workspace_id = w.id AND f.consumer = %(consumer)s
WHERE EXISTS (
    SELECT 1 FROM {MembershipChange._meta.db_table} c
    WHERE c.workspace_id = w.id AND c.txid IS NOT NULL
      AND (c.txid, c.id) > (coalesce(f.last_txid, 0), coalesce(f.last_id, 0))
      AND c.txid < %(frontier)s
)
"""


@dataclass(frozen=True)
class FeedChange:
    """One change as consumers see it."""

    id: int
    txid: int
    segment_id: int
    person_id: int | None  # None: the trace of an erased person or a merge's loser
    kind: str  # MembershipChangeKind
    at: datetime


@dataclass(frozen=True)
class FeedBatch:
    """Changes read after a consumer's cursor, with the locked cursor they move on commit."""

    consumer: str
    cursor_id: int
    changes: list[FeedChange]


# A consumer: called as ``consumer(workspace=..., changes=[...])`` inside the feed's transaction.
# It writes its effects there (or raises: nothing is kept, the batch comes again) and defers
# work outside the database to ``transaction.on_commit``.
Consumer = Callable[..., None]


def consumers() -> dict[str, Consumer]:
    """The registered consumers by name (``SEGMENT_FEED_CONSUMERS``: name -> dotted path).

    The name keys the cursor: renaming a consumer starts it again from the feed's start.
    """
    return {name: import_string(path) for name, path in settings.SEGMENT_FEED_CONSUMERS.items()}


def _require_transaction(what: str) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError(f"{what} must run inside transaction.atomic(), with the consumer's own writes")


def _locked_cursor(workspace: Workspace, consumer: str) -> ChangeFeedCursor:
    cursors = ChangeFeedCursor.objects.filter(workspace=workspace, consumer=consumer)
    cursor = cursors.select_for_update().first()
    if cursor is None:
        ChangeFeedCursor.objects.bulk_create(
            [ChangeFeedCursor(workspace=workspace, consumer=consumer)], ignore_conflicts=True
        )
        cursor = cursors.select_for_update().get()
    return cursor


def _frontier() -> int:
    with connection.cursor() as cursor:
        # pg_stat_activity is read once per transaction unless told otherwise.
        execute_session(cursor, "SELECT pg_stat_clear_snapshot()")
        execute_session(cursor, _FRONTIER_SQL)
        return int(cursor.fetchone()[0])


def feed_read(*, workspace: Workspace, consumer: str, limit: int) -> FeedBatch:
    """Lock ``consumer``'s cursor of ``workspace`` and read up to ``limit`` changes after it, in order.

    Inside the transaction that will hold the consumer's effects and ``feed_advance``;
    another reader of the same cursor waits for it. Only changes whose
    transaction and every earlier one have ended are read (the frontier, above).
    """
    _require_transaction("feed_read")
    cursor = _locked_cursor(workspace, consumer)
    frontier = _frontier()
    with connection.cursor() as db:
        execute_scoped(
            db,
            _READ_SQL,
            {"txid": cursor.last_txid, "id": cursor.last_id, "frontier": frontier, "limit": limit},
            workspace_id=workspace.pk,
        )
        changes = [FeedChange(*row) for row in db.fetchall()]
    return FeedBatch(consumer=consumer, cursor_id=cursor.pk, changes=changes)


def feed_advance(*, workspace: Workspace, batch: FeedBatch) -> None:
    """Move the cursor past ``batch``, in the transaction of ``feed_read`` and the consumer's effects."""
    _require_transaction("feed_advance")
    if not batch.changes:
        return
    last = batch.changes[-1]
    ChangeFeedCursor.objects.filter(workspace=workspace, pk=batch.cursor_id).update(
        last_txid=last.txid, last_id=last.id, updated_at=timezone.now()
    )


@dataclass
class DrainResult:
    read: dict[str, int] = field(default_factory=dict)  # changes consumed, by consumer
    failed: list[str] = field(default_factory=list)  # consumers whose batch failed (retried from their cursor)
    more: bool = False  # a consumer stopped at MAX_BATCHES_PER_RUN with changes left


def feed_drain(
    *, workspace: Workspace, batch_size: int | None = None, max_batches: int = MAX_BATCHES_PER_RUN
) -> DrainResult:
    """Hand the workspace's unread changes to every consumer, batch by batch, one transaction each.

    A consumer that raises keeps its cursor (its batch is rolled back, logged) and the
    others go on; the next drain retries it from there. Idempotent.
    """
    size = batch_size or settings.SEGMENT_FEED_BATCH_SIZE
    result = DrainResult()
    for name, consume in consumers().items():
        read = 0
        for _ in range(max_batches):
            try:
                with transaction.atomic():
                    batch = feed_read(workspace=workspace, consumer=name, limit=size)
                    if batch.changes:
                        consume(workspace=workspace, changes=batch.changes)
                        feed_advance(workspace=workspace, batch=batch)
            except Exception:
                logger.exception(
                    "Change feed: consumer %r failed in workspace %s; it resumes from its cursor", name, workspace.pk
                )
                result.failed.append(name)
                break
            read += len(batch.changes)
            if len(batch.changes) < size:
                break
        else:
            result.more = True
        result.read[name] = read
    return result


def workspaces_unread() -> list[int]:
    """Ids of the workspaces with changes some consumer has not read, as of now.

    Crosses workspaces: the beat's sweep looks at all of them.
    """
    frontier = _frontier()
    found: set[int] = set()
    with connection.cursor() as cursor:
        for name in consumers():
            dangerously_execute_across_workspaces(
                cursor,
                _UNREAD_SQL,
                {"consumer": name, "frontier": frontier},
                why="the beat's sweep lists every workspace with changes a consumer has not read",
            )
            found.update(row[0] for row in cursor.fetchall())
    return sorted(found)


# --- Kicks -------------------------------------------------------------------------------


def feed_queue() -> str:
    """The Celery queue of the drain tasks (``SEGMENT_FEED_QUEUE``)."""
    return str(settings.SEGMENT_FEED_QUEUE)


# ``feed_kick(workspace_id)`` after a commit that recorded changes: the drain clears the mark
# (``kick_clear``) before it reads, so a change committed after that gets a drain of its own.
feed_kick = Kick("segment-feed", DRAIN_TASK, feed_queue, "Change feed")
kick_clear = feed_kick.clear
