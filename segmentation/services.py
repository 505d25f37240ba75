"""Writes of segments: saving definitions, previews, membership refresh, static lists.

Membership refresh (``segment_refresh``) computes the new member set inside
PostgreSQL and applies the difference in one statement of one transaction,
under the per-segment advisory lock shared with every other writer of a
segment's membership (classid ``MEMBERSHIP_LOCK_CLASS``, objid the segment
id). Readers see the old set until the commit and the new one after, never a
mixture; no member list ever travels through Python, so memory stays flat
whatever the segment's size. ``docs/segments.md`` ("Membership and refresh")
describes the statuses, the backoff after failures and static segments.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from accounts.tenancy import workspace_scope
from segmentation import feed
from segmentation.compiler import CompiledQuery, compile_members, compile_preview
from segmentation.definition import Node, parse
from segmentation.models import (
    MembershipChangeKind,
    Segment,
    SegmentSizeSnapshot,
    SegmentStatus,
    WebhookSegment,
    WebhookSubscription,
)
from tracking.models import Identity, IdentityKind, Person

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock(MEMBERSHIP_LOCK_CLASS, segment id): held by every writer of a segment's membership.
MEMBERSHIP_LOCK_CLASS = 1510
# pg_advisory_xact_lock(CLAIM_LOCK_CLASS, 0): held while claiming refreshes, so that each claim counts
# the slots every other claim took.
CLAIM_LOCK_CLASS = 1511
MIN_REFRESH_INTERVAL_SECONDS = 60
MAX_REFRESH_INTERVAL_SECONDS = 7 * 86400
MAX_SAMPLE_SIZE = 100
MAX_STATIC_CHANGE = 10_000
# Person.user_id's column width: a longer value cannot be anyone's user id.
MAX_USER_ID_LENGTH = 255
UNMATCHED_REPORTED = 20
ERROR_MAX_LENGTH = 2000


@dataclass(frozen=True)
class SegmentPreview:
    count: int
    sample: list[Person]


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did. ``skipped``: another refresh held the lock. ``error``: why it failed, if it did."""

    size: int
    entered: int
    exited: int
    skipped: bool = False
    error: str = ""


@dataclass(frozen=True)
class StaticChange:
    """How many people a static change added and removed, and the user ids that named nobody."""

    added: int
    removed: int
    unknown: list[str] = field(default_factory=list)


class CsvPreview(NamedTuple):
    """What a CSV would match; unpacks as ``(matched, unmatched, total)``."""

    matched: int
    unmatched: list[str]
    total: int


class SegmentQueryTimeout(Exception):
    """Evaluating a definition took longer than its statement timeout."""


# --- validation ----------------------------------------------------------------------


def _references(document: Any) -> set[int]:
    """Segment ids a stored definition refers to, read from the raw JSON (stored documents are valid)."""
    found: set[int] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "segment" and isinstance(node.get("segment"), int):
            found.add(node["segment"])
        if isinstance(node.get("conditions"), list):
            stack.extend(node["conditions"])
        if "condition" in node:
            stack.append(node["condition"])
    return found


def _reference_graph(workspace: Workspace) -> dict[int, set[int]]:
    """Every segment of the workspace -> the segments its definition refers to (one query)."""
    rows = Segment.objects.filter(workspace=workspace).values_list("pk", "definition")
    return {pk: _references(document) for pk, document in rows}


def definition_validate(*, workspace: Workspace, definition: Any, self_id: int | None = None) -> Node:
    """The parsed tree, or ``DefinitionInvalid``: references must name segments of this workspace, without cycles."""
    graph = _reference_graph(workspace)
    return parse(
        definition,
        segment_exists=lambda pk: pk in graph,
        segment_references=lambda pk: graph.get(pk, set()),
        self_id=self_id,
    )


def _clean_name(workspace: Workspace, name: str, *, exclude: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["A segment needs a name."]})
    if len(name) > 200:
        raise ValidationError({"name": ["At most 200 characters."]})
    taken = Segment.objects.filter(workspace=workspace, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ValidationError({"name": [f"A segment named {name!r} already exists in this workspace."]})
    return name


def _clean_description(description: str) -> str:
    if len(description) > 2000:
        raise ValidationError({"description": ["At most 2000 characters."]})
    return description


def _clean_interval(seconds: int) -> int:
    if not MIN_REFRESH_INTERVAL_SECONDS <= seconds <= MAX_REFRESH_INTERVAL_SECONDS:
        raise ValidationError(
            {
                "refresh_interval_seconds": [
                    f"Must be between {MIN_REFRESH_INTERVAL_SECONDS} and {MAX_REFRESH_INTERVAL_SECONDS} seconds."
                ]
            }
        )
    return seconds


def _name_taken(name: str) -> ValidationError:
    return ValidationError({"name": [f"A segment named {name!r} already exists in this workspace."]})


# --- create, update, delete --------------------------------------------------------------


def segment_create(
    *,
    workspace: Workspace,
    actor: User | None,
    name: str,
    definition: dict[str, Any] | None,
    static: bool = False,
    description: str = "",
) -> Segment:
    """A new segment. A dynamic one is refreshed once the transaction commits; a static one starts empty.

    Raises ``DefinitionInvalid`` for a bad definition, ``ValidationError`` ({field: [message]}) otherwise.
    Nothing is written when either is raised.
    """
    name = _clean_name(workspace, name)
    description = _clean_description(description)
    if static and definition is not None:
        raise ValidationError({"definition": ["A static segment has no definition: its members are uploaded."]})
    if not static:
        if definition is None:
            raise ValidationError({"definition": ["A segment needs a definition (or static: true)."]})
        definition_validate(workspace=workspace, definition=definition)
    now = timezone.now()
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                workspace=workspace,
                name=name,
                description=description,
                definition=None if static else definition,
                is_static=static,
                created_by=actor,
                # A static segment is exactly what it was told: fresh from the start, never recomputed.
                status=SegmentStatus.FRESH if static else SegmentStatus.PENDING,
                refreshed_at=now if static else None,
            )
            audit_record(workspace=workspace, actor=actor, action="segment.created", target=name)
            if not static:
                segment_refresh_enqueue(segment=segment)
    except IntegrityError as error:  # a concurrent create took the name between the check and the insert
        raise _name_taken(name) from error
    return segment


def segment_update(
    *,
    segment: Segment,
    actor: User | None,
    name: str | None = None,
    definition: dict[str, Any] | None = None,
    description: str | None = None,
    refresh_interval_seconds: int | None = None,
) -> Segment:
    """Change what is given. A new definition is validated (cycles included) and refreshed on commit."""
    workspace = Workspace(pk=segment.workspace_id)
    fields: list[str] = []
    if name is not None:
        segment.name = _clean_name(workspace, name, exclude=segment.pk)
        fields.append("name")
    if description is not None:
        segment.description = _clean_description(description)
        fields.append("description")
    if refresh_interval_seconds is not None:
        segment.refresh_interval_seconds = _clean_interval(refresh_interval_seconds)
        fields.append("refresh_interval_seconds")
    definition_changed = False
    if definition is not None:
        if segment.is_static:
            raise ValidationError({"definition": ["A static segment has no definition: its members are uploaded."]})
        definition_validate(workspace=workspace, definition=definition, self_id=segment.pk)
        definition_changed = definition != segment.definition
        segment.definition = definition
        fields.append("definition")
    if not fields:
        return segment
    try:
        with transaction.atomic():
            segment.save(update_fields=[*fields, "updated_at"])
            audit_record(
                workspace=workspace,
                actor=actor,
                action="segment.updated",
                target=segment.name,
                details={"fields": fields},
            )
            if definition_changed:
                segment_refresh_enqueue(segment=segment)
    except IntegrityError as error:
        raise _name_taken(segment.name) from error
    return segment


def segment_delete(*, segment: Segment, actor: User | None) -> None:
    """Delete the segment and its membership history; refused while another segment's definition names it."""
    workspace = Workspace(pk=segment.workspace_id)
    with transaction.atomic():
        # Serialises concurrent deletes and refreshes' reads of the row; references are checked below.
        Segment.objects.select_for_update().filter(workspace=workspace, pk=segment.pk).values_list("pk").first()
        graph = _reference_graph(workspace)
        users = sorted(pk for pk, refs in graph.items() if segment.pk in refs)
        if users:
            names = dict(Segment.objects.filter(workspace=workspace, pk__in=users).values_list("pk", "name"))
            listed = ", ".join(f"{names[pk]!r} (id {pk})" for pk in users)
            raise ValidationError({"segment": [f"Segment {segment.name!r} is used by the definition of {listed}."]})
        audit_record(workspace=workspace, actor=actor, action="segment.deleted", target=segment.name)
        segment.delete()


# --- preview -------------------------------------------------------------------------------


def _evaluation_settings(timeout_seconds: float) -> None:
    """The transaction's settings for evaluating a definition (``SET LOCAL``).

    ``statement_timeout``; ``client_connection_check_interval``, so that a worker
    killed mid-refresh has its transaction rolled back (and its lock freed) within
    a second, instead of when the statement would have ended; ``work_mem``
    (``SEGMENT_WORK_MEM``), so that grouping a million people's events by person
    and hashing the sets stay in memory instead of spilling to disk in batches;
    ``parallel_tuple_cost`` 0.001 instead of 0.1. PostgreSQL cannot estimate how
    many rows a predicate over JSON keeps (it assumes a fixed share), so it
    believes that parallel workers would hand the leader most of the people, at
    a cost that makes it scan serially; handing over a row is in fact cheap. At
    0.001 the aggregates of event properties read the events' pages with the
    workers too (figures: bench/README.md, "Figures behind the code").
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true), "
            "set_config('client_connection_check_interval', %s, true), set_config('work_mem', %s, true), "
            "set_config('parallel_tuple_cost', '0.001', true)",
            [f"{int(timeout_seconds * 1000)}ms", "1000ms", settings.SEGMENT_WORK_MEM],
        )


def _plan_settings(query: CompiledQuery) -> None:
    """Settings for the rest of the transaction that suit ``query``'s shape.

    Grouping every event of the workspace by person goes fastest serially, reading
    the person index in order and grouping as it goes. With parallel workers, or
    with ``SEGMENT_WORK_MEM``, PostgreSQL hashes the million people instead, more
    than twice as slow (bench/README.md). Such a query runs without parallel
    workers and with the server's ``work_mem``.
    """
    if query.groups_every_event:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('max_parallel_workers_per_gather', '0', true)")
            cursor.execute("SET LOCAL work_mem TO DEFAULT")


def is_timeout(error: BaseException) -> bool:
    cause = getattr(error, "__cause__", None)
    return getattr(cause, "sqlstate", None) == "57014"  # query_canceled: the statement timeout


def segment_preview(*, workspace: Workspace, definition: dict[str, Any], sample_size: int = 10) -> SegmentPreview:
    """How many people the definition holds now, and a sample (most recently seen first), without saving.

    Raises ``DefinitionInvalid``, or ``SegmentQueryTimeout`` beyond ``SEGMENT_PREVIEW_TIMEOUT_SECONDS``.
    """
    tree = definition_validate(workspace=workspace, definition=definition)
    sample_size = max(0, min(sample_size, MAX_SAMPLE_SIZE))
    now = timezone.now()
    # One evaluation gives the count and the sample's ids: half the work of two.
    query = compile_preview(tree, workspace_id=workspace.pk, now=now, sample_size=sample_size)
    try:
        with transaction.atomic():
            _evaluation_settings(settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS)
            _plan_settings(query)
            with connection.cursor() as cursor:
                cursor.execute(query.sql, query.params)
                count, ids = cursor.fetchone()
            sample: list[Person] = []
            if ids:
                from tracking.people_selectors import people_list

                sample = list(people_list(workspace).filter(pk__in=ids))
    except Exception as error:
        if is_timeout(error):
            raise SegmentQueryTimeout(
                f"Counting this segment took longer than {settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS:g} s."
            ) from error
        raise
    return SegmentPreview(count=count, sample=sample)


# --- refresh -------------------------------------------------------------------------------


def segment_refresh_enqueue(*, segment: Segment) -> None:
    """Make the segment due now and, once the current transaction commits (at once outside one),
    queue its refresh if its workspace has a free refresh slot. Never raises: a segment not
    queued (no free slot, a failed enqueue) stays due and a later claim takes it."""
    workspace_id, segment_id = segment.workspace_id, segment.pk

    def publish() -> None:
        from segmentation.tasks import segment_refreshes_enqueue

        now = timezone.now()
        # Runs after the commit, possibly after the caller's scope has closed: it opens its own.
        with workspace_scope(workspace_id):
            Segment.objects.filter(workspace_id=workspace_id, pk=segment_id, is_static=False).update(
                next_refresh_at=now
            )
        segment_refreshes_enqueue(segments_claim_due(now=now, workspace_id=workspace_id, segment_id=segment_id))

    transaction.on_commit(publish)


def _has_webhooks(workspace_id: int, segment_id: int) -> bool:
    """Whether any subscription listens to this segment: only then do entry and exit ids leave PostgreSQL."""
    listening = Q(all_segments=True) | Q(
        pk__in=WebhookSegment.objects.filter(workspace_id=workspace_id, segment_id=segment_id).values("subscription_id")
    )
    return WebhookSubscription.objects.filter(listening, workspace_id=workspace_id).exists()


# The new set goes into a temporary table, analysed, so that the planner knows its size.
# CREATE TABLE ... AS, not INSERT ... SELECT: PostgreSQL may evaluate the definition with
# parallel workers only for the former. The compiled members are distinct (each person
# once) and nothing probes the table by key (below), so it has no index to maintain.
# It lives in this transaction only.
_NEW_MEMBERS_SQL = "CREATE TEMP TABLE segment_refresh_new ON COMMIT DROP AS {members}"
# The difference, in one statement: one pass over the old and the new set (a full join,
# which PostgreSQL can only plan as a hash or merge join: linear whatever it believes of
# the sizes), then the leavers' rows deleted by primary key (an index scan of an array,
# whatever the planner believes; not even that when nobody leaves: the EXISTS is a one-time
# filter, where the planner, believing a new segment small, scanned all its members to match
# none of them), the newcomers inserted, both recorded as changes.
# Every data-modifying part sees the same snapshot. The new set comes unchecked against the
# people (``compile_members(check_people=False)``): only the newcomers are, here, one probe each
# (few on a periodic refresh, where checking the whole set scanned every person), and only when
# the set is not drawn from the people (``CompiledQuery.people_checked``); an id that is not a
# person of the workspace is neither inserted nor counted (the third column).
_APPLY_SQL = """
WITH diff AS MATERIALIZED (
    SELECT new.person_id AS came_id, old.id AS gone_row
    FROM segment_refresh_new new
    FULL JOIN (
        SELECT m.id, m.person_id FROM segmentation_membership m
        WHERE m.workspace_id = %(workspace)s AND m.segment_id = %(segment)s
    ) old ON old.person_id = new.person_id
    WHERE new.person_id IS NULL OR old.person_id IS NULL
),
gone AS (
    DELETE FROM segmentation_membership m
    WHERE EXISTS (SELECT 1 FROM diff WHERE gone_row IS NOT NULL)
      AND m.id = ANY (ARRAY(SELECT gone_row FROM diff WHERE gone_row IS NOT NULL))
      AND m.workspace_id = %(workspace)s AND m.segment_id = %(segment)s
    RETURNING m.person_id
),
came AS (
    INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at)
    SELECT %(workspace)s, %(segment)s, d.came_id, %(now)s FROM diff d
    WHERE d.came_id IS NOT NULL{check}
    RETURNING person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %(workspace)s, %(segment)s, person_id, %(exited)s, %(now)s FROM gone
    UNION ALL
    SELECT %(workspace)s, %(segment)s, person_id, %(entered)s, %(now)s FROM came
)
SELECT (SELECT count(*) FROM came), (SELECT count(*) FROM gone),
       (SELECT count(*) FROM diff WHERE came_id IS NOT NULL) - (SELECT count(*) FROM came)
"""
_CHECK_SQL = (
    "\n      AND EXISTS (SELECT 1 FROM tracking_person p WHERE p.workspace_id = %(workspace)s AND p.id = d.came_id)"
)


def _try_lock(segment_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [MEMBERSHIP_LOCK_CLASS, segment_id])
        return bool(cursor.fetchone()[0])


def membership_lock(segment_id: int) -> None:
    """Wait for the segment's membership lock, held until the transaction ends (short writers)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [MEMBERSHIP_LOCK_CLASS, segment_id])


def _readable(error: BaseException) -> str:
    if is_timeout(error):
        return f"The refresh took longer than {settings.SEGMENT_REFRESH_TIMEOUT_SECONDS:g} s and was stopped."
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"The refresh failed: {text}"[:ERROR_MAX_LENGTH]


def _apply(segment: Segment, now: datetime) -> RefreshResult | None:
    """The refresh transaction; None when another refresh holds the lock."""
    with transaction.atomic():
        _evaluation_settings(settings.SEGMENT_REFRESH_TIMEOUT_SECONDS)
        if not _try_lock(segment.pk):
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
            _plan_settings(members)
            params: dict[str, Any] = {
                "workspace": workspace_id,
                "segment": segment.pk,
                "now": now,
                "entered": MembershipChangeKind.ENTERED.value,
                "exited": MembershipChangeKind.EXITED.value,
            }
            with connection.cursor() as cursor:
                cursor.execute(_NEW_MEMBERS_SQL.format(members=members.sql), members.params)
                size = cursor.rowcount
                cursor.execute("ANALYZE segment_refresh_new")
                check = "" if members.people_checked else _CHECK_SQL
                cursor.execute(_APPLY_SQL.format(check=check), params)
                result = cursor.fetchone()
                cursor.execute("DROP TABLE segment_refresh_new")
            entered, exited = int(result[0]), int(result[1])
            size -= int(result[2])  # ids of nobody in this workspace
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
        logger.warning("Refresh of segment %s failed: %s", segment.pk, reason, exc_info=True)
        _record_failure(segment, reason, now)
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
        cursor.execute(
            "UPDATE segmentation_segment SET status = %s, refreshing_since = %s WHERE id = ("
            "SELECT id FROM segmentation_segment WHERE workspace_id = %s AND id = %s FOR UPDATE SKIP LOCKED)",
            [SegmentStatus.REFRESHING.value, now, segment.workspace_id, segment.pk],
        )


def _record_failure(segment: Segment, reason: str, now: datetime) -> None:
    with transaction.atomic():
        row = (
            Segment.objects.select_for_update()
            .filter(workspace_id=segment.workspace_id, pk=segment.pk)
            .values_list("refresh_interval_seconds", "consecutive_failures")
            .first()
        )
        if row is None:
            return
        interval, failures = row
        backoff = min(interval * 2 ** (failures + 1), settings.SEGMENT_REFRESH_MAX_BACKOFF_SECONDS)
        Segment.objects.filter(workspace_id=segment.workspace_id, pk=segment.pk).update(
            status=SegmentStatus.FAILED,
            error=reason,
            consecutive_failures=F("consecutive_failures") + 1,
            next_refresh_at=now + timedelta(seconds=backoff),
            refreshing_since=None,
        )


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
    with transaction.atomic(), connection.cursor() as cursor:
        # Claims take turns: each counts the slots the others took, committed.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [CLAIM_LOCK_CLASS])
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        cursor.execute(
            "UPDATE segmentation_segment SET refreshing_since = %s WHERE id = ANY(%s)", [now, [row[1] for row in rows]]
        )
    # Django reads jsonb as text (JSONField decodes it); so does this cursor.
    ordered = _referenced_first([(ws, pk, _references(json.loads(document))) for ws, pk, document, _ in rows])
    by_workspace: dict[int, list[int]] = {}
    for ws, pk in ordered:
        by_workspace.setdefault(ws, []).append(pk)
    # Round-robin, workspaces in the order of their first turn in the claim.
    workspaces = list(dict.fromkeys(ws for ws, _, _, _ in rows))
    interleaved: list[tuple[int, int]] = []
    for turn in range(max((len(pks) for pks in by_workspace.values()), default=0)):
        interleaved.extend((ws, by_workspace[ws][turn]) for ws in workspaces if turn < len(by_workspace[ws]))
    return interleaved


def segments_claims_release(*, segment_ids: list[int]) -> None:
    """Give back claims whose refresh was never queued: the segments are due again at once."""
    Segment.objects.unscoped().filter(pk__in=segment_ids).update(refreshing_since=None)


def _referenced_first(rows: Iterable[tuple[int, int, set[int]]]) -> list[tuple[int, int]]:
    """Order so that a due segment comes after the due segments it refers to (definitions have no cycles)."""
    by_id = {pk: (ws, refs) for ws, pk, refs in rows}
    ordered: list[tuple[int, int]] = []
    placed: set[int] = set()

    def place(pk: int, trail: frozenset[int]) -> None:
        if pk in placed or pk in trail:
            return
        ws, refs = by_id[pk]
        for ref in sorted(refs):
            if ref in by_id:
                place(ref, trail | {pk})
        placed.add(pk)
        ordered.append((ws, pk))

    for pk in by_id:
        place(pk, frozenset())
    return ordered


# --- static segments ---------------------------------------------------------------------

_STATIC_APPLY_SQL = """
WITH wanted AS MATERIALIZED (
    SELECT DISTINCT i.person_id FROM tracking_identity i
    WHERE i.workspace_id = %s AND i.kind = %s AND i.value = ANY(%s)
),
came AS (
    INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at)
    SELECT %s, %s, person_id, %s FROM wanted
    ON CONFLICT (workspace_id, segment_id, person_id) DO NOTHING
    RETURNING person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %s, %s, person_id, %s, %s FROM came
)
SELECT count(*), RESULT_IDS FROM came
"""
_STATIC_REMOVE_SQL = """
WITH gone AS (
    DELETE FROM segmentation_membership m
    USING tracking_identity i
    WHERE m.workspace_id = %s AND m.segment_id = %s
      AND i.workspace_id = %s AND i.kind = %s AND i.value = ANY(%s) AND i.person_id = m.person_id
    RETURNING m.person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %s, %s, person_id, %s, %s FROM gone
)
SELECT count(*), RESULT_IDS FROM gone
"""
# Person ids leave PostgreSQL only when a webhook will need them; otherwise NULL.
_IDS_OR_NULL = {True: "coalesce(array_agg(person_id), '{}')", False: "NULL::bigint[]"}


def _known_user_ids(workspace_id: int, values: list[str]) -> set[str]:
    return set(
        Identity.objects.filter(workspace_id=workspace_id, kind=IdentityKind.USER_ID, value__in=values).values_list(
            "value", flat=True
        )
    )


def _storable(value: str) -> bool:
    return 0 < len(value) <= MAX_USER_ID_LENGTH and "\x00" not in value


def _require_static(segment: Segment) -> None:
    if not segment.is_static:
        raise ValidationError(
            {"segment": ["Members of a dynamic segment follow its definition; only static segments take a list."]}
        )


@dataclass
class _Applied:
    added: int = 0
    removed: int = 0
    entered_ids: list[int] = field(default_factory=list)
    exited_ids: list[int] = field(default_factory=list)

    def merge(self, other: _Applied) -> None:
        self.added += other.added
        self.removed += other.removed
        self.entered_ids.extend(other.entered_ids)
        self.exited_ids.extend(other.exited_ids)


def _static_write(segment: Segment, *, add: list[str], remove: list[str], now: datetime, want_ids: bool) -> _Applied:
    """Inside a transaction holding the membership lock: apply one batch of known user ids."""
    workspace_id = segment.workspace_id
    applied = _Applied()
    ids = _IDS_OR_NULL[want_ids]
    user_id = IdentityKind.USER_ID.value
    with connection.cursor() as cursor:
        if remove:
            exited = MembershipChangeKind.EXITED.value
            cursor.execute(
                _STATIC_REMOVE_SQL.replace("RESULT_IDS", ids),
                [workspace_id, segment.pk, workspace_id, user_id, remove, workspace_id, segment.pk, exited, now],
            )
            count, people = cursor.fetchone()
            applied.removed, applied.exited_ids = int(count), list(people or [])
        if add:
            entered = MembershipChangeKind.ENTERED.value
            cursor.execute(
                _STATIC_APPLY_SQL.replace("RESULT_IDS", ids),
                [workspace_id, user_id, add, workspace_id, segment.pk, now, workspace_id, segment.pk, entered, now],
            )
            count, people = cursor.fetchone()
            applied.added, applied.entered_ids = int(count), list(people or [])
    return applied


def _static_finish(segment: Segment, added: int, removed: int, now: datetime) -> None:
    """Exact size, a snapshot, fresh status; still inside the locked transaction."""
    from segmentation.models import Membership

    size = Membership.objects.filter(workspace_id=segment.workspace_id, segment_id=segment.pk).count()
    SegmentSizeSnapshot.objects.create(
        workspace_id=segment.workspace_id, segment_id=segment.pk, at=now, size=size, entered=added, exited=removed
    )
    Segment.objects.filter(workspace_id=segment.workspace_id, pk=segment.pk).update(
        size=size, status=SegmentStatus.FRESH, refreshed_at=now, error=""
    )


def _notify(segment: Segment, entered: list[int], exited: list[int], now: datetime) -> None:
    """Kick the change feed's drain on commit: always (the ids are only gathered when a webhook
    listens, and other consumers read the feed too); a kick is cheap and finds nothing when nothing changed."""
    workspace_id = segment.workspace_id
    transaction.on_commit(lambda: feed.feed_kick(workspace_id))


def segment_static_change(*, segment: Segment, actor: User | None, add: list[str], remove: list[str]) -> StaticChange:
    """Add and remove people of a static segment by user id (aliases count).

    A user id that names nobody in the workspace is reported in ``unknown`` and not
    created: a static list holds people the workspace knows. Adding a member or
    removing a non-member changes nothing. At most ``MAX_STATIC_CHANGE`` ids per side.
    """
    _require_static(segment)
    errors: dict[str, list[str]] = {}
    for name, values in (("add", add), ("remove", remove)):
        if len(values) > MAX_STATIC_CHANGE:
            errors[name] = [f"At most {MAX_STATIC_CHANGE} user ids per call."]
    both = sorted(set(add) & set(remove))
    if both:
        errors["remove"] = [f"Named in both add and remove: {', '.join(repr(v) for v in both[:UNMATCHED_REPORTED])}."]
    if errors:
        raise ValidationError(errors)
    asked = list(dict.fromkeys([*add, *remove]))
    known = _known_user_ids(segment.workspace_id, [v for v in asked if _storable(v)])
    unknown = [v for v in asked if v not in known]
    now = timezone.now()
    with transaction.atomic():
        membership_lock(segment.pk)
        applied = _static_write(
            segment,
            add=[v for v in add if v in known],
            remove=[v for v in remove if v in known],
            now=now,
            want_ids=_has_webhooks(segment.workspace_id, segment.pk),
        )
        _static_finish(segment, applied.added, applied.removed, now)
        if applied.added or applied.removed:
            audit_record(
                workspace=Workspace(pk=segment.workspace_id),
                actor=actor,
                action="segment.members_changed",
                target=segment.name,
                details={"added": applied.added, "removed": applied.removed},
            )
        _notify(segment, applied.entered_ids, applied.exited_ids, now)
    segment.refresh_from_db()
    return StaticChange(added=applied.added, removed=applied.removed, unknown=unknown)


# --- CSV of user ids -------------------------------------------------------------------------

CSV_BATCH = 5000


def _csv_user_ids(file: IO[Any]) -> Iterator[str]:
    """The user ids of a CSV, one per row: the ``user_id`` column when the header names one, else the first column.

    Decoded as UTF-8 (a byte-order mark is skipped; undecodable bytes become U+FFFD, which
    matches no id); blank values are skipped. Streams: the file is never held in memory whole.
    A file the csv module cannot read (a NUL byte, a field beyond its size limit) raises
    ``ValidationError`` on ``file``; callers inside a transaction then write nothing.
    """
    if hasattr(file, "seek"):
        file.seek(0)
    text: Iterable[str] = codecs.getreader("utf-8-sig")(file, "replace") if _is_binary(file) else file
    rows = csv.reader(text)
    try:
        first = next(rows, None)
        if first is None:
            return
        header = [cell.strip().lstrip("\ufeff").lower() for cell in first]
        column = 0
        if "user_id" in header:
            column = header.index("user_id")
        elif first and first[0].strip():
            yield first[0].strip()
        for row in rows:
            if len(row) > column and row[column].strip():
                yield row[column].strip()
    except csv.Error as error:
        raise ValidationError({"file": [f"Not a readable CSV file (line {rows.line_num}): {error}."]}) from error


def _is_binary(file: IO[Any]) -> bool:
    return isinstance(file.read(0), bytes)


def _batches(values: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def segment_static_csv_preview(*, segment: Segment, file: IO[Any]) -> CsvPreview:
    """What applying this CSV would match: people found, the first unmatched ids, rows with an id.

    Read in batches: each batch's ids are looked up in one query, so memory follows the batch, not the file.
    """
    _require_static(segment)
    matched = total = 0
    unmatched: list[str] = []
    for batch in _batches(_csv_user_ids(file), CSV_BATCH):
        total += len(batch)
        known = _known_user_ids(segment.workspace_id, [v for v in batch if _storable(v)])
        matched += sum(1 for v in batch if v in known)
        for value in batch:
            if value not in known and len(unmatched) < UNMATCHED_REPORTED:
                unmatched.append(value)
    return CsvPreview(matched=matched, unmatched=unmatched, total=total)


def segment_static_csv_apply(
    *, segment: Segment, actor: User | None, file: IO[Any], replace: bool = False
) -> StaticChange:
    """Add the CSV's people to a static segment (``replace``: and remove members it does not list).

    One transaction under the membership lock; ``unknown`` holds the first unmatched ids.
    """
    _require_static(segment)
    now = timezone.now()
    unknown: list[str] = []
    applied = _Applied()
    with transaction.atomic():
        membership_lock(segment.pk)
        want_ids = _has_webhooks(segment.workspace_id, segment.pk)
        if replace:
            with connection.cursor() as cursor:
                cursor.execute("CREATE TEMP TABLE segment_csv_keep (person_id bigint PRIMARY KEY) ON COMMIT DROP")
        for batch in _batches(_csv_user_ids(file), CSV_BATCH):
            known = _known_user_ids(segment.workspace_id, [v for v in batch if _storable(v)])
            for value in batch:
                if value not in known and len(unknown) < UNMATCHED_REPORTED:
                    unknown.append(value)
            values = sorted(known)
            applied.merge(_static_write(segment, add=values, remove=[], now=now, want_ids=want_ids))
            if replace and values:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO segment_csv_keep (person_id) SELECT DISTINCT person_id FROM tracking_identity "
                        "WHERE workspace_id = %s AND kind = %s AND value = ANY(%s) ON CONFLICT DO NOTHING",
                        [segment.workspace_id, IdentityKind.USER_ID.value, values],
                    )
        if replace:
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    WITH gone AS (
                        DELETE FROM segmentation_membership m
                        WHERE m.workspace_id = %s AND m.segment_id = %s
                          AND NOT EXISTS (SELECT 1 FROM segment_csv_keep k WHERE k.person_id = m.person_id)
                        RETURNING m.person_id
                    ),
                    changes AS (
                        INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
                        SELECT %s, %s, person_id, %s, %s FROM gone
                    )
                    SELECT count(*), RESULT_IDS FROM gone
                    """.replace("RESULT_IDS", _IDS_OR_NULL[want_ids]),
                    [
                        segment.workspace_id,
                        segment.pk,
                        segment.workspace_id,
                        segment.pk,
                        MembershipChangeKind.EXITED.value,
                        now,
                    ],
                )
                count, people = cursor.fetchone()
                applied.merge(_Applied(removed=int(count), exited_ids=list(people or [])))
                cursor.execute("DROP TABLE segment_csv_keep")
        _static_finish(segment, applied.added, applied.removed, now)
        audit_record(
            workspace=Workspace(pk=segment.workspace_id),
            actor=actor,
            action="segment.members_uploaded",
            target=segment.name,
            details={"added": applied.added, "removed": applied.removed},
        )
        _notify(segment, applied.entered_ids, applied.exited_ids, now)
    segment.refresh_from_db()
    return StaticChange(added=applied.added, removed=applied.removed, unknown=unknown)
