"""Refreshing segments: the full refresh of one segment, and claiming due refreshes fairly across
workspaces.

The full refresh (``segment_refresh``) computes the new member set inside
PostgreSQL and applies the difference in one statement of one transaction
(``segmentation.membership.membership_difference_apply``), under the per-segment
advisory lock shared with every other writer of a segment's membership. Readers
see the old set until the commit and the new one after, never a mixture; no
member list ever travels through Python, so memory stays flat whatever the
segment's size. ``docs/segments.md`` ("Membership and refresh") describes the
statuses, the backoff after failures and static segments.

Queueing goes through ``segmentation.queueing`` (by task name): the tasks import
this module, never the reverse.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.sql import dangerously_execute_across_workspaces, execute_scoped, execute_session
from accounts.tenancy import workspace_scope
from segmentation import feed, queueing
from segmentation.compiler import compile_members
from segmentation.definition import parse, referenced_first, referenced_segments
from segmentation.membership import (
    ERROR_MAX_LENGTH,
    evaluation_settings,
    is_timeout,
    membership_difference_apply,
    membership_try_lock,
    plan_settings,
)
from segmentation.models import Segment, SegmentSizeSnapshot, SegmentStatus

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock(CLAIM_LOCK_CLASS, 0): held while claiming refreshes, so that each claim counts
# the slots every other claim took.
CLAIM_LOCK_CLASS = 1511


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did. ``skipped``: another refresh held the lock. ``error``: why it failed, if it did."""

    size: int
    entered: int
    exited: int
    skipped: bool = False
    error: str = ""


def segment_refresh_enqueue(*, segment: Segment) -> None:
    """Make the segment due now and, once the current transaction commits (at once outside one),
    queue its refresh if its workspace has a free refresh slot. Never raises: a segment not
    queued (no free slot, a failed enqueue) stays due and a later claim takes it."""
    workspace_id, segment_id = segment.workspace_id, segment.pk

    def publish() -> None:
        now = timezone.now()
        # Runs after the commit, possibly after the caller's scope has closed: it opens its own.
        with workspace_scope(workspace_id):
            Segment.objects.filter(workspace_id=workspace_id, pk=segment_id, is_static=False).update(
                next_refresh_at=now
            )
        segment_refreshes_enqueue(segments_claim_due(now=now, workspace_id=workspace_id, segment_id=segment_id))

    transaction.on_commit(publish)


def _readable(error: BaseException) -> str:
    if is_timeout(error):
        return f"The refresh took longer than {settings.SEGMENT_REFRESH_TIMEOUT_SECONDS:g} s and was stopped."
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"The refresh failed: {text}"[:ERROR_MAX_LENGTH]


def _apply(segment: Segment, now: datetime) -> RefreshResult | None:
    """The refresh transaction; None when another refresh holds the lock."""
    with transaction.atomic():
        evaluation_settings(settings.SEGMENT_REFRESH_TIMEOUT_SECONDS)
        if not membership_try_lock(segment.pk):
            return None
        workspace_id = segment.workspace_id
        current = Segment.objects.filter(workspace_id=workspace_id, pk=segment.pk).values_list(
            "definition", "is_static", "refresh_interval_seconds", "updated_at", "size"
        )
        row = current.first()
        if row is None:  # deleted meanwhile
            return RefreshResult(size=0, entered=0, exited=0, skipped=True)
        definition, is_static, interval, edited_at, size = row
        if is_static:
            entered = exited = 0
        else:
            # Parsed as of its last edit: a window mixing a timestamp and a duration was checked then.
            tree = parse(definition, now=edited_at)
            members = compile_members(tree, workspace_id=workspace_id, now=now, check_people=False)
            plan_settings(members)
            difference = membership_difference_apply(
                workspace_id=workspace_id, segment_id=segment.pk, members=members, now=now, want_ids=False
            )
            size, entered, exited = difference.members, difference.entered, difference.exited
        SegmentSizeSnapshot.objects.create(
            workspace_id=workspace_id, segment_id=segment.pk, at=now, size=size, entered=entered, exited=exited
        )
        Segment.objects.filter(workspace_id=workspace_id, pk=segment.pk).update(
            status=SegmentStatus.FRESH,
            size=size,
            refreshed_at=now,
            next_refresh_at=None if is_static else now + timedelta(seconds=interval),
            consecutive_failures=0,
            error="",
            refreshing_since=None,
        )
        if entered or exited:
            transaction.on_commit(lambda: feed.feed_kick(workspace_id))
    return RefreshResult(size=size, entered=entered, exited=exited)


def segment_refresh(*, segment: Segment, now: datetime | None = None) -> RefreshResult:
    """Recompute the membership now and apply the difference; synchronous.

    Skipped (``skipped=True``) when another refresh of the segment holds the lock: that one
    is applying a set at least as new. A failure (timeout, database error) leaves the
    membership as it was and is recorded in its own transaction: status ``failed``, the
    reason in ``error``, and the next attempt backed off exponentially. Static segments
    are only stamped fresh. ``now`` is the evaluation time (tests move it).
    """
    now = now or timezone.now()
    _mark_refreshing(segment, now)
    try:
        result = _apply(segment, now)
    except Exception as error:
        reason = _readable(error)
        new = _record_failure(segment, reason, now)
        # Once per failure, not per retry: the same reason again (every backed-off retry of a
        # broken definition) is a DEBUG line; the page and the list show the status meanwhile.
        (logger.warning if new else logger.debug)(
            "Refresh of segment %s of workspace %s failed: %s",
            segment.pk,
            segment.workspace_id,
            reason,
            exc_info=error if new else None,
        )
        _reload(segment)
        return RefreshResult(size=segment.size, entered=0, exited=0, error=reason)
    _reload(segment)
    if result is None:
        return RefreshResult(size=segment.size, entered=0, exited=0, skipped=True)
    return result


def _reload(segment: Segment) -> None:
    """The caller's instance shows the stored state; a segment deleted meanwhile keeps what it had."""
    try:
        segment.refresh_from_db()
    except Segment.DoesNotExist:
        return


def _mark_refreshing(segment: Segment, now: datetime) -> None:
    """Show ``refreshing`` at once (its own statement, committed before the refresh starts), and
    hold one of the workspace's refresh slots from now (``refreshing_since``; the end clears it).

    SKIP LOCKED: when the row is locked, a refresh is committing its result right now; waiting
    for it would make this refresh queue behind that one instead of being skipped by the lock.
    """
    with connection.cursor() as cursor:
        execute_scoped(
            cursor,
            "UPDATE segmentation_segment SET status = %(status)s, refreshing_since = %(now)s "
            "WHERE workspace_id = %(workspace_id)s AND id = (SELECT id FROM segmentation_segment "
            "WHERE workspace_id = %(workspace_id)s AND id = %(segment)s FOR UPDATE SKIP LOCKED)",
            {"status": SegmentStatus.REFRESHING.value, "now": now, "segment": segment.pk},
            workspace_id=segment.workspace_id,
        )


def _record_failure(segment: Segment, reason: str, now: datetime) -> bool:
    """Mark the segment failed and back its next attempt off; whether this is news: it was not
    already failed for the same reason (a deleted segment is no news)."""
    with transaction.atomic():
        row = (
            Segment.objects.select_for_update()
            .filter(workspace_id=segment.workspace_id, pk=segment.pk)
            .values_list("refresh_interval_seconds", "consecutive_failures", "error")
            .first()
        )
        if row is None:
            return False
        interval, failures, error = row
        backoff = min(interval * 2 ** (failures + 1), settings.SEGMENT_REFRESH_MAX_BACKOFF_SECONDS)
        Segment.objects.filter(workspace_id=segment.workspace_id, pk=segment.pk).update(
            status=SegmentStatus.FAILED,
            error=reason,
            consecutive_failures=F("consecutive_failures") + 1,
            next_refresh_at=now + timedelta(seconds=backoff),
            refreshing_since=None,
        )
    # The status reads "refreshing" by now; a failure before this one left its count and reason.
    return not (failures and error == reason)


def refresh_lease_seconds() -> float:
    """How long a claimed or started refresh holds its workspace's slot without ending: its
    timeout and a minute. A refresh lost with its worker frees the slot then, and is due again."""
    return float(settings.SEGMENT_REFRESH_TIMEOUT_SECONDS) + 60


# Due segments in the order of the fan-out, with their workspace's free slots counted: each
# workspace's due segments numbered (``turn``) in due order, kept while the turn fits in the
# slots its unfinished refreshes leave, then round-robin: every workspace's first turn (the
# workspace due longest first), then every second turn...
_CLAIM_SQL = """
WITH busy AS (
    SELECT workspace_id, count(*) AS running FROM segmentation_segment
    WHERE refreshing_since > %(stale)s {only_workspace}
    GROUP BY workspace_id
),
due AS (
    SELECT s.id, s.workspace_id, s.definition,
           row_number() OVER (PARTITION BY s.workspace_id ORDER BY s.next_refresh_at NULLS FIRST, s.id) AS turn,
           min(coalesce(s.next_refresh_at, '-infinity')) OVER (PARTITION BY s.workspace_id) AS waiting_since
    FROM segmentation_segment s
    WHERE NOT s.is_static AND (s.next_refresh_at IS NULL OR s.next_refresh_at <= %(now)s)
      AND (s.refreshing_since IS NULL OR s.refreshing_since <= %(stale)s) {only_workspace} {only_segment}
)
SELECT d.workspace_id, d.id, d.definition, d.turn FROM due d LEFT JOIN busy b USING (workspace_id)
WHERE d.turn <= %(slots)s - coalesce(b.running, 0)
ORDER BY d.turn, d.waiting_since, d.workspace_id
LIMIT %(limit)s
"""


def segments_claim_due(
    *,
    now: datetime | None = None,
    limit: int = 1000,
    workspace_id: int | None = None,
    segment_id: int | None = None,
) -> list[tuple[int, int]]:
    """Claim due dynamic segments for refresh, fairly across workspaces: (workspace id, segment id).

    Due: ``next_refresh_at`` has come, or is unset, and no unfinished refresh holds it. A
    workspace gets at most ``SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE`` refreshes claimed
    or running at once (``refreshing_since`` younger than ``refresh_lease_seconds``); its
    other due segments stay due for a later claim (the next fan-out, or the end of one of
    its refreshes). The answer interleaves workspaces round-robin, referenced segments
    before the segments referring to them within a workspace. Claiming stamps
    ``refreshing_since``, so that no other claim takes the same segment or the same slot.
    ``workspace_id`` / ``segment_id`` restrict the claim (a refreshing workspace refilling its
    slot; a refresh asked for now).

    Crosses workspaces: the periodic fan-out looks at every workspace, then each refresh runs
    inside its own workspace's scope.
    """
    now = now or timezone.now()
    params: dict[str, Any] = {
        "now": now,
        "stale": now - timedelta(seconds=refresh_lease_seconds()),
        "slots": settings.SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE,
        "limit": limit,
        "workspace": workspace_id,
        "segment": segment_id,
    }
    sql = _CLAIM_SQL.format(
        only_workspace="" if workspace_id is None else "AND workspace_id = %(workspace)s",
        only_segment="" if segment_id is None else "AND s.id = %(segment)s",
    )
    why = "the fan-out claims due refreshes of every workspace; each refresh then runs in its own scope"
    with transaction.atomic(), connection.cursor() as cursor:
        # Claims take turns: each counts the slots the others took, committed.
        execute_session(cursor, "SELECT pg_advisory_xact_lock(%s, 0)", [CLAIM_LOCK_CLASS])
        dangerously_execute_across_workspaces(cursor, sql, params, why=why)
        rows = cursor.fetchall()
        dangerously_execute_across_workspaces(
            cursor,
            "UPDATE segmentation_segment SET refreshing_since = %s WHERE id = ANY(%s)",
            [now, [row[1] for row in rows]],
            why=why,
        )
    # Django reads jsonb as text (JSONField decodes it); so does this cursor.
    workspace_of = {pk: ws for ws, pk, _, _ in rows}
    ordered = referenced_first({pk: referenced_segments(json.loads(document)) for _, pk, document, _ in rows})
    by_workspace: dict[int, list[int]] = {}
    for pk in ordered:
        by_workspace.setdefault(workspace_of[pk], []).append(pk)
    # Round-robin, workspaces in the order of their first turn in the claim.
    workspaces = list(dict.fromkeys(ws for ws, _, _, _ in rows))
    interleaved: list[tuple[int, int]] = []
    for turn in range(max((len(pks) for pks in by_workspace.values()), default=0)):
        interleaved.extend((ws, by_workspace[ws][turn]) for ws in workspaces if turn < len(by_workspace[ws]))
    return interleaved


def segments_claims_release(*, segment_ids: list[int]) -> None:
    """Give back claims whose refresh was never queued: the segments are due again at once."""
    # Across workspaces: the fan-out claimed these for every workspace at once (segments_claim_due).
    Segment.objects.unscoped().filter(pk__in=segment_ids).update(refreshing_since=None)


def segment_refreshes_enqueue(claimed: list[tuple[int, int]]) -> int:
    """Enqueue the claimed refreshes in the claim's order; when the broker fails, give the rest
    of the claims back (the segments stay due for the next claim). Answers how many were enqueued."""
    for index, (workspace_id, segment_id) in enumerate(claimed):
        try:
            queueing.refresh_enqueue(workspace_id=workspace_id, segment_id=segment_id)
        except Exception:
            logger.warning("Could not enqueue segment refreshes; the next claim retries", exc_info=True)
            segments_claims_release(segment_ids=[pk for _, pk in claimed[index:]])
            return index
    return len(claimed)
