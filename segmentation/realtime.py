"""Real-time segment membership: people re-evaluated within seconds of their events.

The flow (docs/segments.md, "Real-time membership"):

1. Ingestion commits, then hands the people it touched to ``people_touched``:
   one Redis script adds ``person|what`` members (``segmentation.dependencies``)
   to the workspace's pending set, marks the workspace dirty and, at most about
   twice a second per workspace (a ``SET NX PX`` key), kicks the drain task.
   Nothing else is on the ingestion path: no database round trip, tiny socket
   timeouts, errors swallowed, and after a failure Redis is left alone for a few
   seconds (a circuit breaker), so a down Redis costs ingestion nothing.
2. ``workspace_drain`` (the ``segment_realtime_drain`` task, and the beat's
   ``segment_realtime_sweep`` for lost kicks) pops small batches and, per batch,
   ``people_changes_apply`` re-evaluates those people for the segments whose
   dependencies their changes match, referenced segments before the segments
   that reference them, cascading what changed.
3. ``segment_people_reevaluate`` applies one segment's difference for those
   people only, in one short transaction holding the segment's advisory lock
   (the one the full refresh try-locks): memberships, history, size,
   then webhooks from ``transaction.on_commit``.

What is lost (Redis down, more pending than ``MAX_PENDING``, a worker killed
mid-batch) is caught up by the periodic full refresh, which is the source of
truth; real time only brings changes forward.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, NamedTuple

import orjson
import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from accounts.models import Workspace
from accounts.sql import execute_session
from core.kicks import KICK_EXPIRES_SECONDS
from segmentation import feed, queueing
from segmentation.compiler import compile_members
from segmentation.definition import Node, parse, referenced_first
from segmentation.dependencies import Change, Dependencies, decode, dependencies, encode
from segmentation.membership import ERROR_MAX_LENGTH, MEMBERSHIP_LOCK_CLASS, is_timeout, membership_difference_apply
from segmentation.models import Segment, SegmentStatus

logger = logging.getLogger(__name__)

# Ingestion side: a loopback Redis answers in well under a millisecond.
NOTIFY_TIMEOUT_SECONDS = 0.05
# After a failure, ingestion leaves Redis alone this long.
NOTIFY_BACKOFF_SECONDS = 5.0
# At most one drain kick per workspace per this many milliseconds.
KICK_DEBOUNCE_MS = 500
# Pending facts kept per workspace; beyond, the workspace's segments are marked due for a full refresh.
MAX_PENDING = 100_000
# Facts (person|event) popped per batch: at most this many people per re-evaluation.
BATCH_SIZE = 500
# Batches per task run before it hands over to a fresh task (other workspaces get a turn).
MAX_BATCHES_PER_RUN = 20
DRAIN_TIMEOUT_SECONDS = 5.0
# A few hundred people's evaluation takes milliseconds; far beyond, give up and leave it to the full refresh.
REEVALUATE_TIMEOUT_MS = 10_000
# Every reason a real-time failure records in ``Segment.error`` starts so; a later success clears only those.
FAILURE_PREFIX = "The real-time update "


def _prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'cohortly')}:segments-rt"


class Keys(NamedTuple):
    """The Redis keys of one workspace's real-time work (and the shared set of dirty workspaces)."""

    pending: str  # set of facts ``person|what`` waiting to be applied
    dirty: str  # set of workspace ids with pending facts (shared)
    kick: str  # present while a drain kick is debounced
    overflow: str  # present when facts were dropped for want of room


def keys(workspace_id: int) -> Keys:
    prefix = _prefix()
    base = f"{prefix}:{workspace_id}"
    return Keys(f"{base}:pending", f"{prefix}:dirty", f"{base}:kick", f"{base}:overflow")


def _client(timeout: float) -> redis.Redis:
    """A Redis client with these timeouts and no retries: a failure surfaces at once (ingestion) or
    fails the task (drain). One per URL and timeout per process (its pool reconnects after a fork)."""
    key = (settings.REDIS_URL, timeout)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
    return client


_clients: dict[tuple[str, float], redis.Redis] = {}


# KEYS: pending, dirty, kick, overflow. ARGV: workspace id, cap, kick ms, facts...
# Answers 1 when this call should kick the drain.
_RECORD = """
local pending, dirty, kick, overflow = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('SCARD', pending) < tonumber(ARGV[2]) then
    for i = 4, #ARGV, 500 do
        redis.call('SADD', pending, unpack(ARGV, i, math.min(i + 499, #ARGV)))
    end
else
    redis.call('SET', overflow, '1')
end
redis.call('SADD', dirty, ARGV[1])
if redis.call('SET', kick, '1', 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# KEYS: pending, dirty, overflow. ARGV: workspace id, count. Answers {overflowed, facts}.
# The workspace leaves the dirty set only when nothing is pending, atomically with the pop.
_POP = """
local pending, dirty, overflow = KEYS[1], KEYS[2], KEYS[3]
local overflowed = redis.call('DEL', overflow)
local facts = redis.call('SPOP', pending, tonumber(ARGV[2]))
if redis.call('SCARD', pending) == 0 then redis.call('SREM', dirty, ARGV[1]) end
return {overflowed, facts}
"""


class Notifier:
    """Records touched people in Redis for ingestion; never raises, never waits long.

    One per process. ``failing_until`` is the circuit breaker: while it lies in
    the future, ``people_touched`` returns at once and counts what it skipped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._url: str | None = None
        self._script: Any = None
        self.failing_until = 0.0
        self.skipped = 0

    def _record_script(self) -> Any:
        url = settings.REDIS_URL
        if self._client is None or self._url != url:
            with self._lock:
                client = _client(NOTIFY_TIMEOUT_SECONDS)
                self._script = client.register_script(_RECORD)
                self._client, self._url = client, url
        return self._script

    def reset(self) -> None:
        """Close the breaker and look the client up again (settings changed, tests)."""
        with self._lock:
            self._client, self._url, self._script = None, None, None
            self.failing_until, self.skipped = 0.0, 0

    def people_touched(self, workspace_id: int, touched: Mapping[int, Change]) -> None:
        if not touched:
            return
        if time.monotonic() < self.failing_until:
            self.skipped += 1
            return
        facts = [fact for person_id, change in touched.items() for fact in encode(person_id, change)]
        try:
            kick = self._record_script()(
                keys=list(keys(workspace_id)), args=[workspace_id, MAX_PENDING, KICK_DEBOUNCE_MS, *facts]
            )
        except Exception as error:
            self._fail("record", workspace_id, error)
            return
        if kick:
            self._kick(workspace_id)

    def _kick(self, workspace_id: int) -> None:
        try:
            # No publish retries: the beat's sweep is the retry, and ingestion must not wait.
            queueing.drain_enqueue(workspace_id=workspace_id, expires=KICK_EXPIRES_SECONDS)
        except Exception as error:
            self._fail("kick the drain of", workspace_id, error)

    def _fail(self, what: str, workspace_id: int, error: BaseException) -> None:
        self.failing_until = time.monotonic() + NOTIFY_BACKOFF_SECONDS
        logger.warning(
            "Real-time segments: could not %s workspace %s (%s); not trying for %.0f s "
            "(%d notifications skipped so far). The periodic refresh catches up.",
            what,
            workspace_id,
            error,
            NOTIFY_BACKOFF_SECONDS,
            self.skipped,
        )


notifier = Notifier()


def people_touched(workspace_id: int, touched: Mapping[int, Change]) -> None:
    """Ingestion committed changes of these people (ids): queue their re-evaluation. Never raises."""
    notifier.people_touched(workspace_id, touched)


# --- Draining ------------------------------------------------------------------------


@dataclass
class DrainResult:
    batches: int = 0
    people: int = 0
    entered: int = 0
    exited: int = 0
    more: bool = False


def workspace_drain(*, workspace: Workspace, max_batches: int = MAX_BATCHES_PER_RUN) -> DrainResult:
    """Pop and apply up to ``max_batches`` batches of the workspace's pending changes.

    A batch whose apply fails is put back, so that the next drain tries again.
    ``more`` says whether anything is still pending (the task then enqueues a
    successor rather than holding the worker).
    """
    client = _client(DRAIN_TIMEOUT_SECONDS)
    pending, dirty, _, overflow = keys(workspace.pk)
    pop = client.register_script(_POP)
    result = DrainResult()
    for _ in range(max_batches):
        overflowed, facts = pop(keys=[pending, dirty, overflow], args=[workspace.pk, BATCH_SIZE])
        if overflowed:
            logger.warning("Real-time segments: workspace %s overflowed; its segments are due now", workspace.pk)
            segments_mark_due(workspace=workspace)
        if not facts:
            return result
        changes = decode(facts)
        try:
            applied = people_changes_apply(workspace=workspace, changes=changes)
        except Exception:
            client.sadd(pending, *facts)
            client.sadd(dirty, workspace.pk)
            raise
        result.batches += 1
        result.people += len(changes)
        result.entered += sum(len(r.entered) for r in applied.values())
        result.exited += sum(len(r.exited) for r in applied.values())
    result.more = bool(client.scard(pending))
    return result


def dirty_workspaces() -> list[int]:
    """Workspaces with pending changes (the beat's sweep drains them: a lost kick is harmless)."""
    client = _client(DRAIN_TIMEOUT_SECONDS)
    members: set[bytes] = client.smembers(keys(0).dirty)  # type: ignore[assignment]
    return sorted(int(member) for member in members)


def workspace_forget(*, workspace_id: int) -> None:
    """Drop a deleted workspace's pending work, so that the sweep stops kicking its drain."""
    client = _client(DRAIN_TIMEOUT_SECONDS)
    found = keys(workspace_id)
    client.delete(found.pending, found.kick, found.overflow)
    client.srem(found.dirty, workspace_id)


def segments_mark_due(*, workspace: Workspace) -> int:
    """Make every dynamic segment of the workspace due for its periodic full refresh now.

    Used where per-person notification is not worth it: a bulk import, or more
    pending changes than ``MAX_PENDING``.
    """
    return Segment.objects.filter(workspace=workspace, is_static=False).update(next_refresh_at=timezone.now())


@dataclass(frozen=True)
class _Live:
    """A segment real time keeps up: its id, what it depends on."""

    id: int
    dependencies: Dependencies


@lru_cache(maxsize=1024)
def _parsed(definition_json: bytes, edited_at: datetime) -> Node:
    """A definition's tree. Cached: parsing is pure and definitions rarely change."""
    return parse(orjson.loads(definition_json), now=edited_at)


def _tree(definition: Any, edited_at: datetime) -> Node:
    """Parsed as of its last edit, as the full refresh does: a window mixing a timestamp and a
    duration was checked then, and must not be refused later because time moved on."""
    return _parsed(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS), edited_at)


def live_segments(*, workspace: Workspace) -> list[_Live]:
    """The workspace's dynamic segments that have had a first refresh, referenced ones first.

    A segment still pending is skipped: its first full refresh computes everyone.
    A stored definition that does not parse (saved under older rules, or written
    around the validation) is marked failed with the reason, and the others go on.
    """
    rows = (
        Segment.objects.filter(workspace=workspace, is_static=False, refreshed_at__isnull=False)
        .exclude(status=SegmentStatus.PENDING)
        .order_by("pk")
        .values_list("pk", "definition", "updated_at")
    )
    found: dict[int, Dependencies] = {}
    for pk, definition, edited_at in rows:
        try:
            found[pk] = dependencies(_tree(definition, edited_at))
        except Exception as error:
            segment_realtime_failed(workspace_id=workspace.pk, segment_id=pk, error=error)
    return [_Live(pk, found[pk]) for pk in referenced_first({pk: deps.segments for pk, deps in found.items()})]


@dataclass
class Reevaluation:
    """One segment's difference for some people: who entered and who left, at ``at``."""

    entered: list[int] = field(default_factory=list)
    exited: list[int] = field(default_factory=list)
    at: datetime | None = None


def people_changes_apply(*, workspace: Workspace, changes: Mapping[int, Change]) -> dict[int, Reevaluation]:
    """Re-evaluate the changed people for the segments their changes can affect.

    A segment whose referenced segment changed for some people is re-evaluated
    for those people too, after it (``live_segments`` orders them). Answers the
    segments that changed, by id.

    Each segment is evaluated in isolation: its own transaction (a savepoint when
    the caller holds one), so that any exception while evaluating it (an SQL
    error, its statement timeout, a definition that no longer parses) rolls back
    that segment's work only. It is marked failed with the reason
    (``segment_realtime_failed``) and the others go on; it is tried again with the
    next batch that touches it, and a success clears the failure. The people it
    missed are caught up by its full refresh.
    """
    changed: dict[int, Reevaluation] = {}
    for live in live_segments(workspace=workspace):
        people = {person_id for person_id, change in changes.items() if live.dependencies.affected_by(change)}
        for ref in live.dependencies.segments:
            if ref in changed:
                people.update(changed[ref].entered, changed[ref].exited)
        if not people:
            continue
        try:
            outcome = segment_people_reevaluate(segment=Segment(pk=live.id, workspace=workspace), person_ids=people)
        except Exception as error:
            segment_realtime_failed(workspace_id=workspace.pk, segment_id=live.id, error=error)
            continue
        if outcome.entered or outcome.exited:
            changed[live.id] = outcome
    return changed


def segment_people_reevaluate(*, segment: Segment, person_ids: Collection[int]) -> Reevaluation:
    """Apply ``segment``'s membership difference for ``person_ids`` only, now.

    One short transaction holding the segment's advisory lock, blocking (the
    full refresh try-locks the same key and skips while this holds it): the
    definition is read again under the lock, the people are evaluated with the
    segment's own SQL restricted to them, and only their rows change. New
    members get ``entered_at = now`` and an "entered" change, leavers lose their
    row and get an "exited" change, ``size`` moves by the difference, and
    webhooks start from ``transaction.on_commit``. Idempotent: run again, it
    finds nothing to change. Static, pending, deleted segments: nothing happens.
    Ids of people of another workspace are never members (the SQL is the workspace's).
    A definition that no longer parses raises (``DefinitionInvalid``), as any
    failure of the evaluation does; a success clears an earlier real-time failure.
    """
    workspace_id = segment.workspace_id
    people = sorted(set(person_ids))
    if not people:
        return Reevaluation()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The timeout applies to the statements after this one, not to the wait for the lock.
            execute_session(
                cursor,
                "SELECT set_config('statement_timeout', %s, true), pg_advisory_xact_lock(%s, %s::integer)",
                [f"{REEVALUATE_TIMEOUT_MS}ms", MEMBERSHIP_LOCK_CLASS, segment.pk],
            )
        row = (
            Segment.objects.filter(workspace_id=workspace_id, pk=segment.pk)
            .values("definition", "is_static", "status", "error", "refreshed_at", "updated_at")
            .first()
        )
        if row is None or row["is_static"] or row["status"] == SegmentStatus.PENDING or row["refreshed_at"] is None:
            return Reevaluation()
        tree = _tree(row["definition"], row["updated_at"])
        now = timezone.now()
        query = compile_members(tree, workspace_id=workspace_id, now=now, people=people)
        difference = membership_difference_apply(
            workspace_id=workspace_id, segment_id=segment.pk, members=query, now=now, people=people, want_ids=True
        )
        entered, exited = difference.entered_ids, difference.exited_ids
        if row["status"] == SegmentStatus.FAILED and row["error"].startswith(FAILURE_PREFIX):
            Segment.objects.filter(
                workspace_id=workspace_id, pk=segment.pk, status=SegmentStatus.FAILED, error__startswith=FAILURE_PREFIX
            ).update(status=SegmentStatus.FRESH, error="")
        if not entered and not exited:
            return Reevaluation(at=now)
        Segment.objects.filter(workspace_id=workspace_id, pk=segment.pk).update(
            size=F("size") + len(entered) - len(exited)
        )
        transaction.on_commit(partial(feed.feed_kick, workspace_id))
    return Reevaluation(entered=entered, exited=exited, at=now)


def _failure_reason(error: BaseException) -> str:
    if is_timeout(error):
        return f"{FAILURE_PREFIX}took longer than {REEVALUATE_TIMEOUT_MS / 1000:g} s and was stopped."
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{FAILURE_PREFIX}failed: {text}"[:ERROR_MAX_LENGTH]


def segment_realtime_failed(*, workspace_id: int, segment_id: int, error: BaseException) -> None:
    """Mark the segment failed with the reason, where its page and the list show it.

    Logged (with the traceback) when the stored state changes, not on every drain that
    meets the same failure again. The full refresh's outcome replaces it; a real-time
    success clears it. The segment keeps its members and schedule.
    """
    reason = _failure_reason(error)
    changed = (
        Segment.objects.filter(workspace_id=workspace_id, pk=segment_id)
        .exclude(status=SegmentStatus.FAILED, error=reason)
        .update(status=SegmentStatus.FAILED, error=reason)
    )
    log = logger.warning if changed else logger.debug
    log(
        "Real-time segments: segment %s of workspace %s failed: %s",
        segment_id,
        workspace_id,
        reason,
        exc_info=error if changed else None,
    )


def facts_pending(workspace_id: int) -> set[str]:
    """The pending facts of a workspace, as text (for operators and tests; does not pop)."""
    members: set[bytes] = _client(DRAIN_TIMEOUT_SECONDS).smembers(keys(workspace_id).pending)  # type: ignore[assignment]
    return {member.decode() for member in members}
