"""Storing a request's messages: the hottest path of the product.

One request, or a group of concurrent requests (``tracking.group_commit``), is
one PostgreSQL transaction, committed before the answer, so a 2xx means
durable. Each table is touched by one set-based statement per workspace of the
transaction (no query per message, no ORM objects): the write keys,
quarantine, suppressed ids, dedupe, the identity lookup (which also locks the
people it finds), new people, new identities, merges (rare, a few statements
each), events, the people's update, groups. Sets of rows travel as one JSON
parameter (orjson encodes it in C; psycopg would dump arrays in Python).

Identity resolution is planned in memory in processing order, with no
database (``tracking.identity.Plan``), over the people the lookup returned,
then written. Concurrency: the lookup locks the people rows it returns
(``FOR UPDATE``), so a concurrent merge cannot delete a person under us; ids
seen for the first time are inserted with ``ON CONFLICT DO NOTHING`` and, if
another request created one of them first, the whole transaction is retried,
as it is on a deadlock or a unique violation. Every statement goes through ``accounts.sql``,
which binds ``%(workspace_id)s`` and refuses one that names a tenant table without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
import psycopg.errors
from django.db import DatabaseError, connection, transaction

from accounts.models import Workspace
from accounts.sql import (
    dangerously_execute_across_workspaces,
    execute_scoped,
    execute_session,
    prepare_when_asked,
    with_tables,
)
from accounts.tenancy import workspace_scope
from tracking import events, plan_services
from tracking.events import Change
from tracking.identity import Key, Plan, PlannedPerson, keys_of, message_keys
from tracking.messages import (
    ESCAPED_NUL,
    FIRST_TOUCH_KEYS,
    FIRST_TOUCH_MARKER,
    Message,
    Rejection,
    first_touch,
)
from tracking.models import QuarantineKind, TrackingPlan

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    suppressed: int = 0
    rejected: int = 0
    # Valid messages the tracking plan kept out (quarantined): counted as rejected, not accepted.
    blocked: int = 0

    def as_dict(self, *, accepted: int) -> dict[str, Any]:
        """``accepted``: the valid messages of the request (those the plan blocked are rejected)."""
        return {
            "success": True,
            "accepted": accepted - self.blocked,
            "rejected": self.rejected,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
        }


class _Retry(Exception):
    """Another transaction created one of our new ids first: start again."""


def json_text(value: Any) -> str:
    """JSON for a json/jsonb parameter; PostgreSQL refuses the NUL character in jsonb."""
    data = orjson.dumps(value)
    if b"u0000" in data:
        data = ESCAPED_NUL.sub(rb"\1\\ufffd", data)
    return data.decode()


@dataclass(slots=True)
class Submission:
    """One request's messages, as the endpoint parsed them, waiting to be stored."""

    write_key: str
    messages: list[Message]
    rejections: list[Rejection]
    received_at: datetime


# Outcomes of one message, counted per request.
STORED, DUPLICATE, SUPPRESSED = range(3)
# With the version of the workspace's tracking plan (NULL: none), for ``plan_services.checker_for``.
WORKSPACE_BY_WRITE_KEY = with_tables(
    "SELECT w.id, p.version FROM {workspace} w LEFT JOIN {plan} p ON p.workspace_id = w.id WHERE w.write_key = %s",
    workspace=Workspace,
    plan=TrackingPlan,
)
WORKSPACES_BY_WRITE_KEYS = with_tables(
    "SELECT w.write_key, w.id, p.version FROM {workspace} w LEFT JOIN {plan} p ON p.workspace_id = w.id "
    "WHERE w.write_key = ANY(%s::text[])",
    workspace=Workspace,
    plan=TrackingPlan,
)


def submissions_ingest(submissions: Sequence[Submission], *, notify: bool = True) -> list[IngestResult | None]:
    """Store the requests ``submissions`` in one transaction, all or nothing, then commit.

    Answers one result per submission, in order: None when its write key is
    unknown (nothing of it stored). The write keys are looked up here, in the
    same round trips, and each workspace's messages are stored inside that
    workspace's scope. Several requests in one transaction share its statements
    and its commit (see ``tracking.group_commit``); a single request is a group of one.

    Inside the transaction, what changed for each person it touched is published
    (``tracking.events.people_touched``; subscribers defer their work to the commit)
    unless ``notify`` is false (a bulk import publishes ``people_imported`` once instead).
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return _ingest_group(submissions, notify=notify)
        except _Retry:
            logger.info("ingest: concurrent identity creation, retrying (attempt %s)", attempt)
        except DatabaseError as error:
            cause = error.__cause__
            retryable = (psycopg.errors.DeadlockDetected, psycopg.errors.UniqueViolation)
            if not isinstance(cause, retryable) or attempt == MAX_ATTEMPTS:
                raise
            logger.info("ingest: %s, retrying (attempt %s)", type(cause).__name__, attempt)
    raise RuntimeError("ingest: identities kept changing under concurrent requests")


def _ingest_group(submissions: Sequence[Submission], *, notify: bool) -> list[IngestResult | None]:
    results: list[IngestResult | None] = [None] * len(submissions)
    connection.ensure_connection()
    prepare_when_asked(connection.connection)
    # A plain psycopg cursor on Django's connection (and transaction): server-side
    # parameter binding and prepared statements, so big arrays travel as
    # parameters instead of being interpolated. Errors surface as django.db errors.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        workspaces = _workspaces(cursor, {s.write_key for s in submissions})
        by_workspace: dict[int, list[int]] = {}
        plan_versions: dict[int, int | None] = {}
        for index, submission in enumerate(submissions):
            found = workspaces.get(submission.write_key)
            if found is not None:
                workspace_id, plan_versions[workspace_id] = found
                by_workspace.setdefault(workspace_id, []).append(index)
        # Workspaces in id order: concurrent groups lock their people in the same order.
        for workspace_id in sorted(by_workspace):
            # Entry point of the workspace: the write key named it.
            indexes = by_workspace[workspace_id]
            touched: dict[int, Change] | None = {} if notify and events.people_touched_wanted() else None
            with workspace_scope(workspace_id):
                check = plan_services.plan_check(workspace_id, plan_versions[workspace_id])
                stored = _ingest(cursor, workspace_id, [submissions[index] for index in indexes], touched, check)
            if touched:
                events.people_touched(workspace_id, touched)
            for index, result in zip(indexes, stored, strict=True):
                results[index] = result
    return results


_WHY = "a write key is how a message names its workspace"


def _workspaces(cursor: Any, write_keys: set[str]) -> dict[str, tuple[int, int | None]]:
    """The workspace of each known write key and its plan's version; pipelined with the transaction's BEGIN."""
    with cursor.connection.pipeline():
        if len(write_keys) == 1:
            [key] = write_keys
            dangerously_execute_across_workspaces(cursor, WORKSPACE_BY_WRITE_KEY, [key], why=_WHY, prepare=True)
        else:
            dangerously_execute_across_workspaces(
                cursor, WORKSPACES_BY_WRITE_KEYS, [sorted(write_keys)], why=_WHY, prepare=True
            )
    rows = cursor.fetchall()
    if len(write_keys) == 1:
        return {key: (rows[0][0], rows[0][1])} if rows else {}
    return {write_key: (workspace_id, version) for write_key, workspace_id, version in rows}


def _ingest(
    cursor: Any,
    workspace_id: int,
    submissions: list[Submission],
    touched: dict[int, Change] | None,
    check: plan_services.PlanCheck | None = None,
) -> list[IngestResult]:
    """Store the submissions of one workspace, in order; one result per submission.

    ``touched`` receives, per person id, what changed for segments (see ``Plan.touched``);
    None when nobody will be notified (bulk import), which spares working it out.
    ``check``: the check against the workspace's tracking plan, None without one: each new track
    call's violations are counted, and a call the plan keeps out is quarantined instead of stored.
    """
    results = [IngestResult(rejected=len(s.rejections)) for s in submissions]
    rejections = [r for s in submissions for r in s.rejections]
    if rejections:
        _quarantine(cursor, workspace_id, QuarantineKind.REJECTED, rejections)
    # Each message with the index of its request, for the counts of the answer.
    unique: list[Message] = []
    owners: list[int] = []
    seen_ids: set[str] = set()
    for owner, submission in enumerate(submissions):
        for message in submission.messages:
            if message.message_id in seen_ids:
                results[owner].duplicates += 1
            else:
                seen_ids.add(message.message_id)
                unique.append(message)
                owners.append(owner)
    if not unique:
        return results
    suppressed, new_ids, known = _read(cursor, workspace_id, unique, submissions[0].received_at)
    plan = Plan(known)
    drops: dict[Key, int] = {}
    warned: list[Rejection] = []
    for message, owner in zip(unique, owners, strict=True):
        result = results[owner]
        if message.message_id not in new_ids:
            result.duplicates += 1
            continue
        hits = [key for key in message_keys(message) if key in suppressed] if suppressed else []
        if hits:
            result.suppressed += 1
            for key in hits:
                drops[key] = drops.get(key, 0) + 1
        else:
            if check is not None and check.keeps_out(message):
                result.rejected += 1
                result.blocked += 1
                continue
            result.stored += 1
            plan.add(message)
            if message.warnings:
                warned.append(
                    Rejection(message.raw, "; ".join(message.warnings), message.received_at, message.message_id)
                )
    if plan.seen or drops:
        row_id = _write(cursor, workspace_id, plan, drops, submissions[-1].received_at)
        if touched is not None:
            touched.update(plan.touched(row_id))
    blocked = check.blocked if check is not None else []
    counted = check is not None and check.counted()
    if warned or blocked or counted:
        # After the writes: the plan's counts are rows every transaction of the workspace updates,
        # so their locks are taken as late, and held as briefly, as possible.
        with cursor.connection.pipeline():
            if warned:
                # Listed as "accepted with warnings"; only stored messages (a suppressed one is not kept anywhere).
                _quarantine(cursor, workspace_id, QuarantineKind.WARNED, warned)
            if blocked:
                _quarantine(cursor, workspace_id, QuarantineKind.PLAN, blocked)
            if check is not None and counted:
                check.record(cursor, workspace_id)
    return results


def _quarantine(cursor: Any, workspace_id: int, kind: str, rejections: Sequence[Rejection]) -> None:
    execute_scoped(
        cursor,
        "INSERT INTO tracking_quarantinedmessage (workspace_id, kind, raw, reason, message_id, received_at) "
        "SELECT %(workspace_id)s, %(kind)s, raw::jsonb, reason, message_id, received_at "
        "FROM unnest(%(raw)s::text[], %(reasons)s::text[], %(message_ids)s::text[], %(received)s::timestamptz[]) "
        "AS t(raw, reason, message_id, received_at)",
        {
            "kind": kind,
            "raw": [json_text(r.raw) for r in rejections],
            "reasons": [r.reason for r in rejections],
            "message_ids": [r.message_id.replace("\x00", "") if r.message_id else None for r in rejections],
            "received": [r.received_at for r in rejections],
        },
        workspace_id=workspace_id,
    )


# One round trip for everything ingestion must know before planning:
# - "s": which of the ids are suppressed (erased people),
# - "m": which messageIds are new (recording them; the rest are retries),
# - "i": the people the ids belong to, locked until commit in id order (against
#   deadlocks: the probes run in the order of the sorted person ids) so that a
#   concurrent merge cannot delete one under us.
READ = """
WITH keys AS (
    SELECT k->>0 AS kind, k->>1 AS value FROM json_array_elements(%(keys)s::json) AS k
), suppressed AS (
    SELECT k.kind, k.value FROM keys k WHERE EXISTS (
        SELECT FROM tracking_suppressedid s
        WHERE s.workspace_id = %(workspace_id)s AND s.kind = k.kind AND s.value = k.value
    )
), fresh AS (
    INSERT INTO tracking_processedmessage (workspace_id, message_id, received_at)
    SELECT %(workspace_id)s, m, %(received_at)s FROM json_array_elements_text(%(message_ids)s::json) AS m
    ON CONFLICT (workspace_id, message_id) DO NOTHING
    RETURNING message_id
), ids AS (
    -- One unique-index probe per id. OFFSET 0 keeps the planner from turning the
    -- probes into a scan of the workspace's identities (or people, below).
    SELECT k.kind, k.value, i.person_id FROM keys k CROSS JOIN LATERAL (
        SELECT i.person_id FROM tracking_identity i
        WHERE i.workspace_id = %(workspace_id)s AND i.kind = k.kind AND i.value = k.value OFFSET 0
    ) i
), found AS (
    SELECT p.id, p.user_id, p.has_first_touch
    FROM (SELECT DISTINCT person_id FROM ids ORDER BY person_id) d CROSS JOIN LATERAL (
        SELECT p.id, p.user_id, p.traits ? %(marker)s AS has_first_touch FROM tracking_person p
        WHERE p.workspace_id = %(workspace_id)s AND p.id = d.person_id
        FOR UPDATE OFFSET 0
    ) p
)
SELECT 's', kind, value, NULL::bigint, NULL::text, NULL::boolean FROM suppressed
UNION ALL SELECT 'm', message_id, NULL, NULL, NULL, NULL FROM fresh
UNION ALL SELECT 'i', ids.kind, ids.value, f.id, f.user_id, f.has_first_touch
    FROM ids JOIN found f ON f.id = ids.person_id
"""


def _read(
    cursor: Any, workspace_id: int, messages: list[Message], received_at: datetime
) -> tuple[set[Key], set[str], dict[Key, PlannedPerson]]:
    keys = keys_of(messages)
    execute_scoped(
        cursor,
        READ,
        {
            "keys": json_text(keys),
            "received_at": received_at,
            "message_ids": json_text(sorted(m.message_id for m in messages)),
            "marker": FIRST_TOUCH_MARKER,
        },
        workspace_id=workspace_id,
        prepare=True,
    )
    rows = cursor.fetchall()
    suppressed: set[Key] = set()
    new_ids: set[str] = set()
    people: dict[int, PlannedPerson] = {}
    known: dict[Key, PlannedPerson] = {}
    for tag, first, second, person_id, user_id, has_first_touch in rows:
        if tag == "s":
            suppressed.add((first, second))
        elif tag == "m":
            new_ids.add(first)
        else:
            person = people.get(person_id)
            if person is None:
                person = people[person_id] = PlannedPerson(person_id, user_id, bool(has_first_touch))
            known[(first, second)] = person
    return suppressed, new_ids, known


def _write(
    cursor: Any, workspace_id: int, plan: Plan, drops: dict[Key, int], received_at: datetime
) -> Callable[[int], int]:
    """Write the plan; answer the row id of each of its person refs (merged ones: their survivor's)."""
    # The people's first/last event times are kept below (``_update_people``, ``people_merge``),
    # not by the events' triggers (tracking migration 0008), until the end of this function: the
    # pipeline's last statement hands them back to the triggers for whatever else the
    # transaction writes (an error rolls the setting back with the rest).
    execute_session(cursor, "SELECT set_config('cohortly.event_times_kept', 'on', true)", prepare=True)
    ids: dict[int, int] = {}
    if plan.new_people:
        execute_session(
            cursor,
            "SELECT nextval(pg_get_serial_sequence('tracking_person', 'id')) FROM generate_series(1, %s)",
            [len(plan.new_people)],
        )
        ids = {ref: row[0] for ref, row in zip(plan.new_people, cursor.fetchall(), strict=True)}
        # first_seen/last_seen start at +/-infinity so that LEAST/GREATEST below set them.
        execute_scoped(
            cursor,
            "INSERT INTO tracking_person (id, workspace_id, user_id, traits, first_seen, last_seen) "
            "SELECT id, %(workspace_id)s, NULL, '{}'::jsonb, 'infinity', '-infinity' "
            "FROM unnest(%(ids)s::bigint[]) AS id",
            {"ids": list(ids.values())},
            workspace_id=workspace_id,
        )

    def resolve(ref: int) -> int:
        final = plan.final(ref)
        return ids.get(final, final)

    # Every ref's row id, resolved once (a dict lookup per use: an import chunk makes hundreds of thousands).
    row_id = {ref: resolve(ref) for ref in plan.people}.__getitem__

    if plan.new_identities:
        identities = sorted({(kind, value): row_id(ref) for kind, value, ref in plan.new_identities}.items())
        execute_scoped(
            cursor,
            "INSERT INTO tracking_identity (workspace_id, person_id, kind, value, created_at) "
            "SELECT %(workspace_id)s, t.person_id, t.kind, t.value, %(now)s FROM json_to_recordset(%(rows)s::json) "
            "AS t(person_id bigint, kind text, value text) "
            "ON CONFLICT (workspace_id, kind, value) DO NOTHING RETURNING 1",
            {
                "now": received_at,
                "rows": json_text([{"person_id": p, "kind": k, "value": v} for (k, v), p in identities]),
            },
            workspace_id=workspace_id,
            prepare=True,
        )
        if len(cursor.fetchall()) != len(identities):
            raise _Retry
    for loser, survivor in plan.merges:
        people_merge(
            cursor, workspace_id=workspace_id, loser_id=ids.get(loser, loser), survivor_id=ids.get(survivor, survivor)
        )
    events = [(row_id(ref), m) for ref, m in plan.events]
    copied = len(events) >= COPY_MIN_EVENTS
    if copied:
        # A big group (an import chunk, a loaded server's group commit): COPY, which cannot
        # ride in the pipeline below but is a little cheaper per row (import_events of
        # 200,000 messages: 7,381-7,564 messages/s against 6,894-7,102 with the INSERT).
        _copy_events(cursor, workspace_id, events)
    # The remaining writes depend on nothing they return: one round trip for all.
    with cursor.connection.pipeline():
        if events and not copied:
            _insert_events(cursor, workspace_id, events)
        if plan.seen:
            _update_people(cursor, workspace_id, plan, row_id)
        if plan.group_links:
            _write_groups(cursor, workspace_id, [(row_id(ref), g, t) for ref, g, t in plan.group_links], received_at)
        if drops:
            execute_scoped(
                cursor,
                "UPDATE tracking_suppressedid s SET dropped_count = s.dropped_count + d.n, last_dropped_at = %(now)s "
                "FROM unnest(%(kinds)s::text[], %(values)s::text[], %(counts)s::bigint[]) AS d(kind, value, n) "
                "WHERE s.workspace_id = %(workspace_id)s AND s.kind = d.kind AND s.value = d.value",
                {
                    "now": received_at,
                    "kinds": [k for k, _ in drops],
                    "values": [v for _, v in drops],
                    "counts": list(drops.values()),
                },
                workspace_id=workspace_id,
            )
        execute_session(cursor, "SELECT set_config('cohortly.event_times_kept', 'off', true)", prepare=True)
    return row_id


def people_merge(cursor: Any, *, workspace_id: int, loser_id: int, survivor_id: int) -> None:
    """Fold person ``loser_id`` into ``survivor_id`` inside the caller's transaction.

    Identities, events and group links move to the survivor, so that every query
    over the survivor's history sees all of it at once. The survivor's traits
    win over the loser's; its first-touch traits, if set, are kept whole.
    """

    def run(sql: str, **params: Any) -> None:
        execute_scoped(cursor, sql, {"survivor": survivor_id, "loser": loser_id, **params}, workspace_id=workspace_id)

    run(
        "UPDATE tracking_identity SET person_id = %(survivor)s "
        "WHERE workspace_id = %(workspace_id)s AND person_id = %(loser)s"
    )
    run(
        "UPDATE tracking_event SET person_id = %(survivor)s "
        "WHERE workspace_id = %(workspace_id)s AND person_id = %(loser)s"
    )
    run(
        "INSERT INTO tracking_persongroup (workspace_id, person_id, group_id, created_at) "
        "SELECT %(workspace_id)s, %(survivor)s, group_id, created_at FROM tracking_persongroup "
        "WHERE workspace_id = %(workspace_id)s AND person_id = %(loser)s "
        "ON CONFLICT (workspace_id, person_id, group_id) DO NOTHING"
    )
    run("DELETE FROM tracking_persongroup WHERE workspace_id = %(workspace_id)s AND person_id = %(loser)s")
    run(
        "UPDATE tracking_person s SET "
        "traits = (CASE WHEN s.traits ? %(marker)s THEN l.traits - %(first_touch_keys)s::text[] ELSE l.traits END) "
        "|| s.traits, "
        "first_seen = LEAST(s.first_seen, l.first_seen), last_seen = GREATEST(s.last_seen, l.last_seen), "
        "first_event_at = LEAST(s.first_event_at, l.first_event_at), "
        "last_event_at = GREATEST(s.last_event_at, l.last_event_at) "
        "FROM tracking_person l "
        "WHERE s.workspace_id = %(workspace_id)s AND s.id = %(survivor)s "
        "AND l.workspace_id = %(workspace_id)s AND l.id = %(loser)s",
        marker=FIRST_TOUCH_MARKER,
        first_touch_keys=list(FIRST_TOUCH_KEYS),
    )
    # The apps above move what they keep about the loser (nothing cascades to them), then its row goes;
    # its identities and events moved above and its group links are gone.
    events.person_merged(workspace_id, loser_id, survivor_id)
    run("DELETE FROM tracking_person WHERE workspace_id = %(workspace_id)s AND id = %(loser)s")


# Every event of the request in one JSON parameter: orjson encodes it in one C call
# (datetimes included), PostgreSQL decodes it in one pass, and the statement rides
# in the same pipeline as the people's update.
INSERT_EVENTS = (
    "INSERT INTO tracking_event (workspace_id, person_id, name, properties, context, timestamp, received_at, "
    "message_id, anonymous_id, user_id, session_id, warnings) "
    "SELECT %(workspace_id)s, e.p, e.n, e.pr, e.c, e.t, e.r, e.m, e.a, e.u, e.s, e.w "
    "FROM json_to_recordset(%(rows)s::json) "
    "AS e(p bigint, n text, pr jsonb, c jsonb, t timestamptz, r timestamptz, m text, a text, u text, s text, w jsonb)"
)


# From this many events of one workspace in a transaction, they are written with COPY.
COPY_MIN_EVENTS = 500
COPY_EVENTS = (
    "COPY tracking_event (workspace_id, person_id, name, properties, context, timestamp, received_at, "
    "message_id, anonymous_id, user_id, session_id, warnings) FROM STDIN"
)


def _copy_events(cursor: Any, workspace_id: int, events: list[tuple[int, Message]]) -> None:
    with cursor.copy(COPY_EVENTS) as copy:
        write = copy.write_row
        for person_id, m in events:
            write(
                (
                    workspace_id,
                    person_id,
                    m.event,
                    json_text(m.properties),
                    json_text(m.context),
                    m.timestamp,
                    m.received_at,
                    m.message_id,
                    m.anonymous_id,
                    m.user_id,
                    m.session_id,
                    json_text(m.warnings) if m.warnings else "[]",
                )
            )


def _insert_events(cursor: Any, workspace_id: int, events: list[tuple[int, Message]]) -> None:
    rows = [
        {
            "p": person_id,
            "n": m.event,
            "pr": m.properties,
            "c": m.context,
            "t": m.timestamp,
            "r": m.received_at,
            "m": m.message_id,
            "a": m.anonymous_id,
            "u": m.user_id,
            "s": m.session_id,
            "w": m.warnings,
        }
        for person_id, m in events
    ]
    execute_scoped(cursor, INSERT_EVENTS, {"rows": json_text(rows)}, workspace_id=workspace_id, prepare=True)


UPDATE_PERSON = (
    "UPDATE tracking_person p SET "
    "user_id = COALESCE(p.user_id, %(user_id)s), "
    "traits = (CASE WHEN %(first_touch)s::text IS NULL OR p.traits ? %(marker)s THEN p.traits "
    "ELSE p.traits || %(first_touch)s::jsonb END) || %(patch)s::jsonb, "
    "first_seen = LEAST(p.first_seen, %(first_seen)s), last_seen = GREATEST(p.last_seen, %(last_seen)s), "
    "first_event_at = LEAST(p.first_event_at, %(first_event)s::timestamptz), "
    "last_event_at = GREATEST(p.last_event_at, %(last_event)s::timestamptz) "
    "WHERE p.workspace_id = %(workspace_id)s AND p.id = %(id)s"
)


@dataclass
class _PersonUpdate:
    first_seen: datetime
    last_seen: datetime
    # Of events only (NULL leaves the columns as they are: LEAST and GREATEST skip it).
    first_event: datetime | None = None
    last_event: datetime | None = None
    user_id: str | None = None
    patch: dict[str, Any] = field(default_factory=dict)
    first_page: tuple[datetime, dict[str, Any]] | None = None  # the earliest page's time and properties


def _update_people(cursor: Any, workspace_id: int, plan: Plan, row_id: Callable[[int], int]) -> None:
    updates: dict[int, _PersonUpdate] = {}
    for ref, timestamp in plan.seen:
        person_id = row_id(ref)
        update = updates.get(person_id)
        if update is None:
            updates[person_id] = _PersonUpdate(first_seen=timestamp, last_seen=timestamp)
        else:
            update.first_seen = min(update.first_seen, timestamp)
            update.last_seen = max(update.last_seen, timestamp)
    for ref, message in plan.events:
        update = updates[row_id(ref)]
        timestamp = message.timestamp
        if update.first_event is None or timestamp < update.first_event:
            update.first_event = timestamp
        if update.last_event is None or timestamp > update.last_event:
            update.last_event = timestamp
    for ref, person in plan.people.items():
        if person.user_id_set and plan.final(ref) == ref:
            updates[row_id(ref)].user_id = person.user_id
    for ref, traits in plan.trait_writes:
        updates[row_id(ref)].patch.update(traits)
    for ref, timestamp, properties in plan.first_touches:
        if plan.people[plan.final(ref)].has_first_touch:
            continue  # kept whole: the update would leave them as they are
        update = updates[row_id(ref)]
        if update.first_page is None or timestamp < update.first_page[0]:
            update.first_page = (timestamp, properties)
    rows = list(updates.items())
    if len(rows) == 1:
        [(person_id, update)] = rows
        execute_scoped(
            cursor,
            UPDATE_PERSON,
            {
                "marker": FIRST_TOUCH_MARKER,
                "id": person_id,
                "user_id": update.user_id,
                "first_touch": json_text(first_touch(update.first_page[1])) if update.first_page else None,
                "patch": json_text(update.patch),
                "first_seen": update.first_seen,
                "last_seen": update.last_seen,
                "first_event": update.first_event,
                "last_event": update.last_event,
            },
            workspace_id=workspace_id,
            prepare=True,
        )
        return
    execute_scoped(
        cursor,
        UPDATE_PEOPLE,
        {"marker": FIRST_TOUCH_MARKER, "rows": json_text([_person_row(*row) for row in rows])},
        workspace_id=workspace_id,
        prepare=True,
    )


# Many people: one JSON parameter (psycopg dumps arrays, of timestamps above all, in Python).
# ORDER BY ... OFFSET 0: one primary-key probe per person, in id order, where the planner
# would otherwise scan the workspace's people through the workspace_id index.
UPDATE_PEOPLE = (
    "UPDATE tracking_person p SET "
    "user_id = COALESCE(p.user_id, v.u), "
    "traits = (CASE WHEN v.ft IS NULL OR p.traits ? %(marker)s THEN p.traits ELSE p.traits || v.ft END) || v.pa, "
    "first_seen = LEAST(p.first_seen, v.fs), last_seen = GREATEST(p.last_seen, v.ls), "
    "first_event_at = LEAST(p.first_event_at, v.fe), last_event_at = GREATEST(p.last_event_at, v.le) "
    "FROM (SELECT * FROM json_to_recordset(%(rows)s::json) "
    "AS v(id bigint, u text, ft jsonb, pa jsonb, fs timestamptz, ls timestamptz, fe timestamptz, le timestamptz) "
    "ORDER BY id OFFSET 0) v "
    "WHERE p.workspace_id = %(workspace_id)s AND p.id = v.id"
)


def _person_row(person_id: int, update: _PersonUpdate) -> dict[str, Any]:
    return {
        "id": person_id,
        "u": update.user_id,
        "ft": first_touch(update.first_page[1]) if update.first_page else None,
        "pa": update.patch,
        "fs": update.first_seen,
        "ls": update.last_seen,
        "fe": update.first_event,
        "le": update.last_event,
    }


def _write_groups(
    cursor: Any, workspace_id: int, links: list[tuple[int, str, dict[str, Any]]], received_at: datetime
) -> None:
    traits_by_group: dict[str, dict[str, Any]] = {}
    for _, group_id, traits in links:
        traits_by_group.setdefault(group_id, {}).update(traits)
    pairs = sorted({(person_id, group_id) for person_id, group_id, _ in links})
    execute_scoped(
        cursor,
        "WITH upserted AS ("
        " INSERT INTO tracking_group (workspace_id, group_id, traits, created_at, updated_at)"
        " SELECT %(workspace_id)s, group_id, traits::jsonb, %(now)s, %(now)s"
        " FROM unnest(%(group_ids)s::text[], %(traits)s::text[]) AS t(group_id, traits)"
        " ON CONFLICT (workspace_id, group_id) DO UPDATE"
        " SET traits = tracking_group.traits || EXCLUDED.traits, updated_at = EXCLUDED.updated_at"
        " RETURNING id, group_id"
        ") "
        "INSERT INTO tracking_persongroup (workspace_id, person_id, group_id, created_at) "
        "SELECT %(workspace_id)s, l.person_id, u.id, %(now)s "
        "FROM unnest(%(people)s::bigint[], %(link_groups)s::text[]) AS l(person_id, group_id) "
        "JOIN upserted u ON u.group_id = l.group_id "
        "ON CONFLICT (workspace_id, person_id, group_id) DO NOTHING",
        {
            "now": received_at,
            "group_ids": list(traits_by_group),
            "traits": [json_text(t) for t in traits_by_group.values()],
            "people": [p for p, _ in pairs],
            "link_groups": [g for _, g in pairs],
        },
        workspace_id=workspace_id,
    )
