"""Writes of the tracking plan, and what ingestion needs of it.

- ``tracking_plan_replace`` (an import, the REST API's PUT) and ``tracking_plan_edit`` (the settings
  page's add/change/remove) save a new plan in one transaction: the row locked, ``version`` up by
  one, the counts of every event whose plan changed started again, an audit entry.
- ``checker_for`` is ingestion's in-process cache of each workspace's compiled plan. Ingestion reads
  the plan's version with the write key, in the round trip it makes anyway; the cache answers from
  memory while the version is the one it holds, and reads the plan again (one query) when it is not.
- ``violations_record`` writes a transaction's violation counts and examples: one statement for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from accounts.sql import Cursor, execute_scoped, with_tables
from tracking import plan
from tracking.messages import Message, Rejection
from tracking.models import PlanViolation, TrackingPlan

logger = logging.getLogger(__name__)

AUDIT_ACTION = "tracking_plan.changed"
# Changed event names listed in an audit entry.
AUDIT_EVENTS_LISTED = 20


class PlanVersionConflict(Exception):
    """The plan was saved since the version the caller read."""

    def __init__(self, current: int, expected: int) -> None:
        super().__init__(
            f"The plan is at version {current} now, not {expected}: someone saved it since you read it. "
            "Read it again and apply your change to that."
        )
        self.current = current


def _current(row: TrackingPlan) -> plan.PlanDocument:
    return plan.parse(row.document) if row.document else plan.PlanDocument()


def _locked(workspace: Workspace) -> TrackingPlan:
    # The unique constraint arbitrates two first saves at once; then the row is locked for the save.
    TrackingPlan.objects.bulk_create([TrackingPlan(workspace=workspace)], ignore_conflicts=True)
    return TrackingPlan.objects.select_for_update().get(workspace=workspace)


def _save(
    row: TrackingPlan,
    *,
    workspace: Workspace,
    actor: User | None,
    before: plan.PlanDocument,
    after: plan.PlanDocument,
    what: str,
) -> TrackingPlan:
    if after == before and row.version:
        return row
    row.document = after.as_json()
    row.version += 1
    row.updated_at = timezone.now()
    row.updated_by = actor
    row.save(update_fields=["document", "version", "updated_at", "updated_by"])
    changed = plan.changed_events(before, after)
    # Counts are of the plan as it is: an event's start again when its plan changes (and all of them
    # when nothing is checked any more).
    violations = PlanViolation.objects.filter(workspace=workspace)
    if after.events:
        violations = violations.filter(event__in=changed)
    violations.delete()
    audit_record(
        workspace=workspace,
        actor=actor,
        action=AUDIT_ACTION,
        target=what,
        details={
            "version": row.version,
            "events": len(after.events),
            "block_unplanned_events": after.block_unplanned_events,
            "changed_events": sorted(changed)[:AUDIT_EVENTS_LISTED],
        },
    )
    return row


def tracking_plan_replace(
    *,
    workspace: Workspace,
    actor: User | None,
    document: plan.PlanDocument,
    expected_version: int | None = None,
    what: str = "plan replaced",
) -> TrackingPlan:
    """Make ``document`` the workspace's plan. With ``expected_version``, only if the plan is still at
    that version (``PlanVersionConflict`` otherwise, nothing written)."""
    with transaction.atomic():
        row = _locked(workspace)
        if expected_version is not None and expected_version != row.version:
            raise PlanVersionConflict(row.version, expected_version)
        return _save(row, workspace=workspace, actor=actor, before=_current(row), after=document, what=what)


def tracking_plan_edit(
    *, workspace: Workspace, actor: User | None, edit: Callable[[plan.PlanDocument], plan.PlanDocument], what: str
) -> TrackingPlan:
    """Apply ``edit`` (one of ``tracking.plan``'s edits) to the plan as it is now, under its lock.
    ``PlanInvalid`` from the edit: nothing written."""
    with transaction.atomic():
        row = _locked(workspace)
        before = _current(row)
        return _save(row, workspace=workspace, actor=actor, before=before, after=edit(before), what=what)


# --- Ingestion ----------------------------------------------------------------------------


class PlanCheck:
    """The tracking plan's check of one transaction's messages of one workspace (``tracking.ingest``):
    the violations summed for one statement, the calls to quarantine instead of storing."""

    __slots__ = ("blocked", "checker", "tally")

    def __init__(self, checker: plan.Checker) -> None:
        self.checker = checker
        self.tally = plan.Tally()
        self.blocked: list[Rejection] = []

    def keeps_out(self, message: Message) -> bool:
        """Check a new track call (other calls pass) and count its violations; True when it goes
        to the quarantine (``blocked``) instead of being stored."""
        if message.type != "track":
            return False
        event = message.event or ""
        violations, quarantined = self.checker.check(event, message.properties)
        if not violations:
            return False
        shown = {
            "at": message.timestamp,
            "message_id": message.message_id,
            "user_id": message.user_id,
            "anonymous_id": message.anonymous_id,
            "properties": message.properties,
        }
        self.tally.add(event, violations, quarantined=quarantined, received_at=message.received_at, message=shown)
        if quarantined:
            reason = plan.violations_reason(event, violations)
            self.blocked.append(Rejection(message.raw, reason, message.received_at, message.message_id))
        return quarantined

    def counted(self) -> bool:
        return bool(self.tally)

    def record(self, cursor: Cursor, workspace_id: int) -> None:
        violations_record(cursor, workspace_id, self.tally)


def plan_check(workspace_id: int, version: int | None) -> PlanCheck | None:
    """A check against the workspace's plan at ``version`` (see ``checker_for``); None: nothing to check."""
    checker = checker_for(workspace_id, version)
    return PlanCheck(checker) if checker is not None else None


# Workspace id -> (version, compiled plan or None). Read and written by ingestion's threads; a
# dictionary's get and set are atomic, and a lost race only reads a plan once more.
_checkers: dict[int, tuple[int, plan.Checker | None]] = {}
_MAX_CACHED = 10_000


def checker_for(workspace_id: int, version: int | None) -> plan.Checker | None:
    """The compiled plan of the workspace at ``version`` (as the write-key lookup read it); None when
    there is nothing to check. Must run inside the workspace's scope (ingestion's)."""
    if not version:
        return None
    cached = _checkers.get(workspace_id)
    if cached is not None and cached[0] == version:
        return cached[1]
    row = TrackingPlan.objects.filter(workspace_id=workspace_id).values_list("version", "document").first()
    if row is None:
        return None
    loaded_version, document = row
    checker: plan.Checker | None = None
    try:
        checker = plan.compile_plan(plan.parse(document)) if document else None
    except plan.PlanInvalid:
        # Saved plans are checked first; a broken one must not stop ingestion: nothing is checked.
        logger.exception("tracking plan of workspace %s (version %s) cannot be read", workspace_id, loaded_version)
    if len(_checkers) >= _MAX_CACHED:
        _checkers.clear()
    _checkers[workspace_id] = (loaded_version, checker)
    return checker


RECORD_VIOLATIONS = with_tables(
    "INSERT INTO {violation} (workspace_id, event, kind, property, count, quarantined, first_seen_at, "
    "last_seen_at, examples) "
    "SELECT %(workspace_id)s, r.e, r.k, r.p, r.n, r.q, r.f, r.l, r.x FROM json_to_recordset(%(rows)s::json) "
    "AS r(e text, k text, p text, n bigint, q bigint, f timestamptz, l timestamptz, x jsonb) "
    "ORDER BY r.e, r.k, r.p "
    "ON CONFLICT (workspace_id, event, kind, property) DO UPDATE SET "
    "count = {violation}.count + EXCLUDED.count, "
    "quarantined = {violation}.quarantined + EXCLUDED.quarantined, "
    "last_seen_at = GREATEST({violation}.last_seen_at, EXCLUDED.last_seen_at), "
    "examples = (SELECT COALESCE(jsonb_agg(x.value ORDER BY x.n), '[]'::jsonb) "
    "FROM jsonb_array_elements(EXCLUDED.examples || {violation}.examples) WITH ORDINALITY AS x(value, n) "
    "WHERE x.n <= %(kept)s)",
    violation=PlanViolation,
)


def violations_record(cursor: Cursor, workspace_id: int, tally: plan.Tally) -> None:
    """Add a transaction's violations to the counts: one statement, rows in key order (concurrent
    transactions take the row locks in the same order)."""
    rows = sorted(tally.rows(), key=lambda row: (row["e"], row["k"], row["p"]))
    execute_scoped(
        cursor,
        RECORD_VIOLATIONS,
        {"rows": orjson.dumps(rows).decode(), "kept": plan.EXAMPLES_KEPT},
        workspace_id=workspace_id,
    )


# --- Erasure ------------------------------------------------------------------------------

_ERASE_EXAMPLES = with_tables(
    "UPDATE {violation} SET examples = COALESCE((SELECT jsonb_agg(x.value ORDER BY x.n) "
    "FROM jsonb_array_elements({violation}.examples) WITH ORDINALITY AS x(value, n) "
    "WHERE NOT (COALESCE(x.value->>'user_id', '') = ANY(%(ids)s) "
    "OR COALESCE(x.value->>'anonymous_id', '') = ANY(%(ids)s))), '[]'::jsonb) "
    "WHERE workspace_id = %(workspace_id)s "
    "AND EXISTS (SELECT FROM jsonb_array_elements({violation}.examples) AS y(value) "
    "WHERE y.value->>'user_id' = ANY(%(ids)s) OR y.value->>'anonymous_id' = ANY(%(ids)s))",
    violation=PlanViolation,
)


def violation_examples_erase(*, workspace: Workspace, ids: Sequence[str], cursor: Cursor) -> int:
    """Drop the examples of messages that carried one of ``ids`` (an erased person's); the counts
    stay. Returns how many rows changed."""
    if not ids:
        return 0
    execute_scoped(cursor, _ERASE_EXAMPLES, {"ids": list(ids)}, workspace_id=workspace.pk)
    count: Any = getattr(cursor, "rowcount", 0)
    return int(count or 0)
