"""Writing a segment's membership: the lock every writer holds, the settings of an evaluation, and
applying the difference between the stored members and a newly computed set.

Shared by the full refresh (``segmentation.services.refresh``), the real-time
re-evaluation (``segmentation.realtime``) and the preview; static lists hold the
same lock. Applying a difference is one statement (``membership_difference_apply``):
leavers deleted, newcomers inserted, both recorded as ``MembershipChange`` rows
with the same instant, so that every writer records changes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection

from accounts.sql import execute_scoped, execute_session, with_tables
from segmentation.compiler import CompiledQuery
from segmentation.models import MembershipChangeKind
from tracking.models import Person

# pg_advisory_xact_lock(MEMBERSHIP_LOCK_CLASS, segment id): held by every writer of a segment's membership.
MEMBERSHIP_LOCK_CLASS = 1510
ERROR_MAX_LENGTH = 2000


def membership_lock(segment_id: int) -> None:
    """Wait for the segment's membership lock, held until the transaction ends (short writers)."""
    with connection.cursor() as cursor:
        execute_session(cursor, "SELECT pg_advisory_xact_lock(%s, %s)", [MEMBERSHIP_LOCK_CLASS, segment_id])


def membership_try_lock(segment_id: int) -> bool:
    """Take the segment's membership lock if it is free (the full refresh: skipped while another writes)."""
    with connection.cursor() as cursor:
        execute_session(cursor, "SELECT pg_try_advisory_xact_lock(%s, %s)", [MEMBERSHIP_LOCK_CLASS, segment_id])
        return bool(cursor.fetchone()[0])


def is_timeout(error: BaseException) -> bool:
    cause = getattr(error, "__cause__", None)
    return getattr(cause, "sqlstate", None) == "57014"  # query_canceled: the statement timeout


def evaluation_settings(timeout_seconds: float) -> None:
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
        execute_session(
            cursor,
            "SELECT set_config('statement_timeout', %s, true), "
            "set_config('client_connection_check_interval', %s, true), set_config('work_mem', %s, true), "
            "set_config('parallel_tuple_cost', '0.001', true)",
            [f"{int(timeout_seconds * 1000)}ms", "1000ms", settings.SEGMENT_WORK_MEM],
        )


def plan_settings(query: CompiledQuery) -> None:
    """Settings for the rest of the transaction that suit ``query``'s shape.

    Grouping every event of the workspace by person goes fastest serially, reading
    the person index in order and grouping as it goes. With parallel workers, or
    with ``SEGMENT_WORK_MEM``, PostgreSQL hashes the million people instead, more
    than twice as slow (bench/README.md). Such a query runs without parallel
    workers and with the server's ``work_mem``.
    """
    if query.groups_every_event:
        with connection.cursor() as cursor:
            execute_session(cursor, "SELECT set_config('max_parallel_workers_per_gather', '0', true)")
            execute_session(cursor, "SET LOCAL work_mem TO DEFAULT")


# The new set goes into a temporary table, so that the planner knows its size (the full refresh
# analyses it). CREATE TABLE ... AS, not INSERT ... SELECT: PostgreSQL may evaluate the definition
# with parallel workers only for the former. The compiled members are distinct (each person once)
# and nothing probes the table by key (below), so it has no index to maintain. It lives in this
# transaction only.
_NEW_MEMBERS_TABLE = "segment_refresh_new"
# The difference, in one statement: one pass over the old and the new set (a full join,
# which PostgreSQL can only plan as a hash or merge join: linear whatever it believes of
# the sizes), then the leavers' rows deleted by primary key (an index scan of an array,
# whatever the planner believes; not even that when nobody leaves: the EXISTS is a one-time
# filter, where the planner, believing a new segment small, scanned all its members to match
# none of them), the newcomers inserted, both recorded as changes.
# Every data-modifying part sees the same snapshot. The new set may come unchecked against the
# people (``compile_members(check_people=False)``): only the newcomers are, here, one probe each
# (few on a periodic refresh, where checking the whole set scanned every person), and only when
# the set is not drawn from the people (``CompiledQuery.people_checked``); an id that is not a
# person of the workspace is neither inserted nor counted (the third column).
# ``{only}`` restricts the old set to the people re-evaluated (real time); the new set already is.
_APPLY_SQL = """
WITH diff AS MATERIALIZED (
    SELECT new.person_id AS came_id, old.id AS gone_row
    FROM segment_refresh_new new
    FULL JOIN (
        SELECT m.id, m.person_id FROM segmentation_membership m
        WHERE m.workspace_id = %(workspace_id)s AND m.segment_id = %(segment)s{only}
    ) old ON old.person_id = new.person_id
    WHERE new.person_id IS NULL OR old.person_id IS NULL
),
gone AS (
    DELETE FROM segmentation_membership m
    WHERE EXISTS (SELECT 1 FROM diff WHERE gone_row IS NOT NULL)
      AND m.id = ANY (ARRAY(SELECT gone_row FROM diff WHERE gone_row IS NOT NULL))
      AND m.workspace_id = %(workspace_id)s AND m.segment_id = %(segment)s
    RETURNING m.person_id
),
came AS (
    INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at)
    SELECT %(workspace_id)s, %(segment)s, d.came_id, %(now)s FROM diff d
    WHERE d.came_id IS NOT NULL{check}
    RETURNING person_id
),
changes AS (
    INSERT INTO segmentation_membershipchange (workspace_id, segment_id, person_id, kind, at)
    SELECT %(workspace_id)s, %(segment)s, person_id, %(exited)s, %(now)s FROM gone
    UNION ALL
    SELECT %(workspace_id)s, %(segment)s, person_id, %(entered)s, %(now)s FROM came
)
SELECT (SELECT count(*) FROM came), (SELECT count(*) FROM gone),
       (SELECT count(*) FROM diff WHERE came_id IS NOT NULL) - (SELECT count(*) FROM came){ids}
"""
_ONLY_SQL = " AND m.person_id = ANY(%(people)s)"
_CHECK_SQL = with_tables(
    "\n      AND EXISTS (SELECT 1 FROM {person} p WHERE p.workspace_id = %(workspace_id)s AND p.id = d.came_id)",
    person=Person,
)
_IDS_SQL = (
    ", (SELECT coalesce(array_agg(person_id ORDER BY person_id), '{}') FROM came),"
    " (SELECT coalesce(array_agg(person_id ORDER BY person_id), '{}') FROM gone)"
)


@dataclass(frozen=True)
class Difference:
    """What applying a new set did. ``members``: the new set's size, people of the workspace only.
    The ids (sorted) are filled only when asked for."""

    members: int
    entered: int
    exited: int
    entered_ids: list[int] = field(default_factory=list)
    exited_ids: list[int] = field(default_factory=list)


def membership_difference_apply(
    *,
    workspace_id: int,
    segment_id: int,
    members: CompiledQuery,
    now: datetime,
    people: list[int] | None = None,
    want_ids: bool,
) -> Difference:
    """Replace the segment's stored members by ``members`` (those among ``people`` only, when given).

    Call inside a transaction that holds the segment's membership lock. Newcomers get
    ``entered_at = now`` and an "entered" change, leavers lose their row and get an "exited"
    change at ``now``. The segment row (size, status) is the caller's to update.
    """
    params: dict[str, Any] = {
        "segment": segment_id,
        "now": now,
        "entered": MembershipChangeKind.ENTERED.value,
        "exited": MembershipChangeKind.EXITED.value,
    }
    if people is not None:
        params["people"] = people
    sql = _APPLY_SQL.format(
        only="" if people is None else _ONLY_SQL,
        check="" if members.people_checked else _CHECK_SQL,
        ids=_IDS_SQL if want_ids else "",
    )
    with connection.cursor() as cursor:
        members.execute(cursor, wrap=f"CREATE TEMP TABLE {_NEW_MEMBERS_TABLE} ON COMMIT DROP AS {{members}}")
        size = cursor.rowcount
        if people is None:
            execute_session(cursor, f"ANALYZE {_NEW_MEMBERS_TABLE}")
        execute_scoped(cursor, sql, params, workspace_id=workspace_id)
        result = cursor.fetchone()
        execute_session(cursor, f"DROP TABLE {_NEW_MEMBERS_TABLE}")
    return Difference(
        members=size - int(result[2]),  # minus ids of nobody in this workspace
        entered=int(result[0]),
        exited=int(result[1]),
        entered_ids=list(result[3]) if want_ids else [],
        exited_ids=list(result[4]) if want_ids else [],
    )
