"""Computed traits: RFM scores and groups, and an engagement score, written on each person.

``$rfm_recency``, ``$rfm_frequency``, ``$rfm_monetary`` (1 to 5), ``$rfm_group`` and
``$engagement_score`` (0 to 100) are traits like any other: segments compare them with ``trait``
conditions, the builder's pickers list them once the catalogue has seen them, the person page shows
them. The ``$`` prefix is the product's: identify calls cannot set them (``tracking.messages``).

One run recomputes a workspace (``computed_traits_refresh``):

1. each person's new values, in SQL, into unlogged tables of the run's own: the RFM scores from the
   workspace's purchase event and revenue property (``ComputedTraitSettings``) and the engagement
   scores from the weighted, time-decayed events (for a large workspace, at once on two
   connections), then each person's patch of traits; the rules are in docs/insights.md;
2. the people whose traits differ, written in chunks of ``WRITE_CHUNK`` people in id order, each
   chunk its own short transaction locking its rows in id order (as ingestion does, so that neither
   deadlocks the other nor waits long), and told to tracking's subscribers
   (``tracking.services.people_traits_computed``) so that real-time membership re-evaluates them
   and records entries and exits; a run over more than ``ONE_BY_ONE_MAX`` people tells them once,
   at the end (``tracking.services.people_traits_recomputed``: every segment refreshed whole).

Runs of one workspace never overlap (a session advisory lock); the Celery beat recomputes a
workspace within minutes of new events and at least daily (``workspaces_due``).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from accounts.sql import dangerously_execute_across_workspaces, execute_scoped, execute_session, with_tables
from insights.models import ComputedTraitSettings, RunStatus
from segmentation.catalogue.models import CatalogueProperty, PropertySource
from segmentation.catalogue.services import catalogue_update
from segmentation.evaluation import NUMERIC_MAX_LENGTH, NUMERIC_RE
from segmentation.membership import evaluation_settings
from tracking.models import Event, Person
from tracking.services import people_traits_computed, people_traits_recomputed

logger = logging.getLogger(__name__)

RECENCY, FREQUENCY, MONETARY, GROUP, ENGAGEMENT = (
    "$rfm_recency",
    "$rfm_frequency",
    "$rfm_monetary",
    "$rfm_group",
    "$engagement_score",
)
COMPUTED_KEYS = (RECENCY, FREQUENCY, MONETARY, GROUP, ENGAGEMENT)
RFM_GROUPS = ("Champions", "Loyal", "Potential", "New", "At risk", "Hibernating", "Lost")
# The rules of the groups, as the SQL below applies them: tried in this order, the first that holds wins.
RFM_RULES = (
    ("New", "recency 4 or 5, exactly one purchase"),
    ("Champions", "recency 4 or 5, frequency + monetary 8 or more"),
    ("Loyal", "recency 3 or more, frequency + monetary 6 or more"),
    ("Potential", "recency 3 or more, the rest"),
    ("At risk", "recency 1 or 2, frequency + monetary 6 or more"),
    ("Hibernating", "recency 2, the rest"),
    ("Lost", "recency 1, the rest"),
)

# pg_try_advisory_lock(LOCK_CLASS, workspace id): one recompute of a workspace at a time.
LOCK_CLASS = 1811
WRITE_CHUNK = 5000
# Real time keeps up to 100,000 pending changes per workspace (segmentation.realtime.MAX_PENDING);
# a run over more people than that tells tracking's subscribers once, in bulk.
ONE_BY_ONE_MAX = 100_000
# A run over more people than this scores on two connections at once, and writes through
# PARALLEL_WRITERS connections at once.
PARALLEL_AFTER = 50_000
PARALLEL_WRITERS = 2
# work_mem of the statement that scores everyone (the purchases' sums, the engagement's sort).
COMPUTE_WORK_MEM = "256MB"
# The engagement score reads events this many half-lives back; older ones would weigh under 0.4 %.
LOOKBACK_HALF_LIVES = 8
# New events newer than this before the last run make a workspace due; older late arrivals wait for
# the daily run (the check reads the events' (workspace, timestamp) index over this span only).
RECENT_EVENTS = timedelta(days=1)
MIN_INTERVAL = timedelta(minutes=4)
MAX_AGE = timedelta(days=1)
# A run (or a queued one) that has not finished after this long is taken as lost (a killed worker).
STALE_AFTER = timedelta(hours=1)
MAX_WEIGHT = 1000.0
MAX_WEIGHTED_EVENTS = 200
MAX_HALF_LIFE_DAYS = 3650.0

Progress = Callable[[str, int], None]
_T = TypeVar("_T")

# The run's patches: an unlogged table of the workspace's own (runs of one workspace never overlap),
# not a temporary one, so that the writers' connections read it too (``patches_write``).
_COMPUTED = "insights_computed_traits_{workspace_id}"
RECOUNT_TASK = "insights.tasks.catalogue_recount_task"


def settings_for(workspace: Workspace) -> ComputedTraitSettings:
    """The workspace's settings, made with the defaults the first time."""
    row, _ = ComputedTraitSettings.objects.get_or_create(workspace=workspace)
    return row


def settings_update(
    *,
    workspace: Workspace,
    actor: User | None,
    rfm_event: str | None = None,
    rfm_revenue_property: str | None = None,
    engagement_weights: dict[str, Any] | None = None,
    engagement_default_weight: float | None = None,
    engagement_half_life_days: float | None = None,
) -> ComputedTraitSettings:
    """Change the settings given (``None`` keeps one); the workspace is then due for a recompute.

    Raises ``ValidationError`` ({field: [message]}) and writes nothing when a value is out of bounds.
    """
    errors: dict[str, list[str]] = {}
    for name, value in (("rfm_event", rfm_event), ("rfm_revenue_property", rfm_revenue_property)):
        if value is not None and (not value.strip() or len(value) > 200 or "\x00" in value):
            errors[name] = ["Must be a name of 1 to 200 characters."]
    if engagement_weights is not None:
        if len(engagement_weights) > MAX_WEIGHTED_EVENTS:
            errors["engagement_weights"] = [f"At most {MAX_WEIGHTED_EVENTS} events."]
        for name, weight in engagement_weights.items():
            if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
                errors.setdefault("engagement_weights", []).append("Each event name must have 1 to 200 characters.")
            elif not _weight_ok(weight):
                errors.setdefault("engagement_weights", []).append(
                    f"The weight of {name!r} must be a number from 0 to {MAX_WEIGHT:g}."
                )
    if engagement_default_weight is not None and not _weight_ok(engagement_default_weight):
        errors["engagement_default_weight"] = [f"Must be a number from 0 to {MAX_WEIGHT:g}."]
    if engagement_half_life_days is not None and not (
        _number(engagement_half_life_days) and 0.01 <= engagement_half_life_days <= MAX_HALF_LIFE_DAYS
    ):
        errors["engagement_half_life_days"] = [f"Must be a number of days from 0.01 to {MAX_HALF_LIFE_DAYS:g}."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        row = settings_for(workspace)
        row = ComputedTraitSettings.objects.select_for_update().get(pk=row.pk)
        given: tuple[tuple[str, Any], ...] = (
            ("rfm_event", rfm_event),
            ("rfm_revenue_property", rfm_revenue_property),
            ("engagement_weights", engagement_weights),
            ("engagement_default_weight", engagement_default_weight),
            ("engagement_half_life_days", engagement_half_life_days),
        )
        changes = {name: value for name, value in given if value is not None and getattr(row, name) != value}
        if changes:
            for name, value in changes.items():
                setattr(row, name, value)
            row.settings_changed_at = timezone.now()
            row.save(update_fields=[*changes, "settings_changed_at"])
            audit_record(
                workspace=workspace,
                actor=actor,
                action="computed_traits.settings_changed",
                target="computed traits",
                details={name: changes[name] for name in sorted(changes)},
            )
    return row


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _weight_ok(value: Any) -> bool:
    return _number(value) and 0 <= value <= MAX_WEIGHT


# The RFM scores of every purchaser and the engagement score of everyone, as one patch of traits per person.
# A score is 1 + floor(5 (rank - 1) / (N - 1)), at most 5, where rank is 1 + the number of the N
# purchasers with a strictly smaller value (SQL's rank()): equal values always score the same. In
# integers, so that no rounding moves anyone across a boundary.
# Three statements, each into an unlogged table of the run's (``{computed}``: its name): the RFM scores
# of the purchasers and the engagement scores of the engaged (at once, on two connections, for a
# large workspace), then each person's patch of traits from both.
_RFM_SQL = with_tables(
    """
CREATE UNLOGGED TABLE {computed}_rfm AS
WITH purchases AS (
    SELECT e.person_id, max(e."timestamp") AS last_at, count(*) AS n, coalesce(sum(
        CASE WHEN jsonb_typeof(e.properties -> %(revenue)s::text) = 'number'
                THEN (e.properties -> %(revenue)s::text)::numeric
             WHEN jsonb_typeof(e.properties -> %(revenue)s::text) = 'string'
                AND char_length(e.properties ->> %(revenue)s::text) <= %(numeric_max)s
                AND (e.properties ->> %(revenue)s::text) ~ %(numeric_re)s
                THEN (e.properties ->> %(revenue)s::text)::numeric END), 0) AS revenue
    FROM {event} e
    WHERE e.workspace_id = %(workspace_id)s AND e.name = %(rfm_event)s AND e."timestamp" <= %(now)s
    GROUP BY e.person_id
)
SELECT u.person_id, u.n,
    least(5, 1 + 5 * (rank() OVER (ORDER BY u.last_at) - 1) / greatest(count(*) OVER () - 1, 1))::int AS r,
    least(5, 1 + 5 * (rank() OVER (ORDER BY u.n) - 1) / greatest(count(*) OVER () - 1, 1))::int AS f,
    least(5, 1 + 5 * (rank() OVER (ORDER BY u.revenue) - 1) / greatest(count(*) OVER () - 1, 1))::int AS m
FROM purchases u
""",
    event=Event,
)
_ENGAGEMENT_TEMPLATE = with_tables(
    """
CREATE UNLOGGED TABLE {computed}_engagement AS
WITH weighted AS (
    SELECT e.person_id,
        sum({weight} * power(0.5, (%(now_epoch)s - date_part('epoch', e."timestamp")) / %(half_life)s)) AS raw
    FROM {event} e
    WHERE e.workspace_id = %(workspace_id)s AND e."timestamp" >= %(lookback)s AND e."timestamp" <= %(now)s
        AND (%(default_weight)s > 0 OR e.name = ANY(%(weighted_names)s))
    GROUP BY e.person_id
)
SELECT w.person_id, ceil(100 * cume_dist() OVER (ORDER BY w.raw))::int AS score
FROM weighted w
WHERE w.raw > 0
""",
    event=Event,
)
_PATCHES_SQL = with_tables(
    """
CREATE UNLOGGED TABLE {computed} AS
SELECT p.id AS person_id, jsonb_strip_nulls(jsonb_build_object(
    '$rfm_recency', s.r, '$rfm_frequency', s.f, '$rfm_monetary', s.m,
    '$rfm_group', CASE
        WHEN s.r IS NULL THEN NULL
        WHEN s.r >= 4 AND s.n = 1 THEN 'New'
        WHEN s.r >= 4 AND s.f + s.m >= 8 THEN 'Champions'
        WHEN s.r >= 3 AND s.f + s.m >= 6 THEN 'Loyal'
        WHEN s.r >= 3 THEN 'Potential'
        WHEN s.f + s.m >= 6 THEN 'At risk'
        WHEN s.r = 2 THEN 'Hibernating'
        ELSE 'Lost' END,
    '$engagement_score', coalesce(a.score, 0))) AS patch
FROM {person} p LEFT JOIN {computed}_rfm s ON s.person_id = p.id
LEFT JOIN {computed}_engagement a ON a.person_id = p.id
WHERE p.workspace_id = %(workspace_id)s
""",
    person=Person,
)
# Each event's weight: its name's in the settings, else the default; with no weight by name, the
# default as a constant, with no lookup in the weights for each of the millions of events read.
_ENGAGEMENT_BY_NAME = _ENGAGEMENT_TEMPLATE.replace(
    "{weight}", "coalesce((%(weights)s::jsonb ->> e.name)::float8, %(default_weight)s)"
)
_ENGAGEMENT_UNIFORM = _ENGAGEMENT_TEMPLATE.replace("{weight}", "%(default_weight)s::float8")
# ``{computed}``: the table of patches (``person_id``, ``patch``) a run wrote. A chunk is the
# next ``%(chunk)s`` patches in person id order after ``%(after)s``; the people among them whose traits
# change are updated, each locked as the update reaches it, in id order (the chunk sorted, then one
# probe of the primary key per person, as ingestion's update of the people locks them), so that
# neither waits long for the other and they never deadlock. Answers the chunk's last person id
# (NULL past the end) and the ids written.
_WRITE_CHUNK = with_tables(
    "WITH chunk AS MATERIALIZED (SELECT c.person_id, c.patch FROM {computed} c "
    "WHERE c.person_id > %(after)s AND c.person_id <= %(upto)s "
    "ORDER BY c.person_id LIMIT %(chunk)s), "
    "written AS (UPDATE {person} p SET traits = (p.traits - %(keys)s::text[]) || v.patch "
    "FROM (SELECT k.person_id, k.patch FROM chunk k ORDER BY k.person_id OFFSET 0) v "
    "WHERE p.workspace_id = %(workspace_id)s AND p.id = v.person_id "
    "AND (p.traits - %(keys)s::text[]) || v.patch <> p.traits RETURNING p.id) "
    "SELECT (SELECT max(k.person_id) FROM chunk k), (SELECT coalesce(array_agg(w.id), '{}') FROM written w)",
    person=Person,
)
_PEOPLE_COUNT = with_tables("SELECT count(*) FROM {person} p WHERE p.workspace_id = %(workspace_id)s", person=Person)
_HIGH_WATER = with_tables(
    "SELECT coalesce(max(e.id), 0) FROM {event} e "
    'WHERE e.workspace_id = %(workspace_id)s AND e."timestamp" >= %(recent)s',
    event=Event,
)


@dataclass(frozen=True)
class RefreshOutcome:
    ran: bool  # False when another run of the workspace held the lock
    people_changed: int = 0
    seconds: float = 0.0


def _try_lock(workspace: Workspace) -> bool:
    with connection.cursor() as cursor:
        execute_session(cursor, "SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, workspace.pk])
        return bool(cursor.fetchone()[0])


def _unlock(workspace: Workspace) -> None:
    with connection.cursor() as cursor:
        execute_session(cursor, "SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, workspace.pk])


def _state(workspace: Workspace, **values: Any) -> None:
    ComputedTraitSettings.objects.filter(workspace=workspace).update(**values)


def computed_traits_refresh(
    *, workspace: Workspace, now: datetime | None = None, progress: Progress | None = None
) -> RefreshOutcome:
    """Recompute the workspace's computed traits at ``now`` and write the ones that changed.

    Skipped (``ran=False``) while another run of the workspace holds the lock. The state columns of
    ``ComputedTraitSettings`` show the stage while it runs and the outcome after; a failure is
    recorded there and raised.
    """
    if not _try_lock(workspace):
        return RefreshOutcome(ran=False)
    started = time.monotonic()
    now = now or timezone.now()
    config = settings_for(workspace)

    def report(stage: str, percent: int) -> None:
        _state(workspace, stage=stage[:200], progress=percent)
        if progress is not None:
            progress(stage, percent)

    try:
        _state(workspace, status=RunStatus.RUNNING, started_at=timezone.now(), error="", progress=0)
        report("Scoring purchases and engagement", 5)
        changed = _compute_and_write(workspace, config, now, report)
        catalogue_catch_up(workspace)
        seconds = time.monotonic() - started
        _state(
            workspace,
            status=RunStatus.DONE,
            stage="",
            progress=100,
            computed_at=now,
            last_event_id=_high_water(workspace, now),
            seconds=seconds,
            people_changed=changed,
        )
        return RefreshOutcome(ran=True, people_changed=changed, seconds=seconds)
    except Exception as error:
        _state(workspace, status=RunStatus.FAILED, stage="", error=str(error)[:2000])
        raise
    finally:
        _tables_drop(_computed_table(workspace))
        _unlock(workspace)


def _computed_table(workspace: Workspace) -> str:
    return _COMPUTED.format(workspace_id=int(workspace.pk))


def _params(config: ComputedTraitSettings, now: datetime) -> dict[str, Any]:
    half_life = timedelta(days=config.engagement_half_life_days)
    weights = {str(name): float(weight) for name, weight in (config.engagement_weights or {}).items()}
    return {
        "now": now,
        "rfm_event": config.rfm_event,
        "revenue": config.rfm_revenue_property,
        "numeric_max": NUMERIC_MAX_LENGTH,
        "numeric_re": NUMERIC_RE,
        "weights": json.dumps(weights),
        "default_weight": float(config.engagement_default_weight),
        "weighted_names": [name for name, weight in weights.items() if weight > 0],
        # Seconds as float8: date_part's epoch costs a third of extract's numeric, per event read.
        "now_epoch": now.timestamp(),
        "half_life": half_life.total_seconds(),
        "lookback": now - half_life * LOOKBACK_HALF_LIVES,
    }


def _compute_and_write(workspace: Workspace, config: ComputedTraitSettings, now: datetime, report: Progress) -> int:
    table = _computed_table(workspace)
    _tables_drop(table)
    params = _params(config, now)
    engagement = _ENGAGEMENT_BY_NAME if config.engagement_weights else _ENGAGEMENT_UNIFORM
    statements = [_RFM_SQL.replace("{computed}", table), engagement.replace("{computed}", table)]
    if _people_count(workspace) > PARALLEL_AFTER:
        # The two scorings at once, the RFM on a connection of its own: each is one process's work.
        with ThreadPoolExecutor(max_workers=1) as pool:
            rfm = pool.submit(_in_own_connection, _score, workspace, statements[0], params)
            _score(workspace, statements[1], params)
            rfm.result()
    else:
        for statement in statements:
            _score(workspace, statement, params)
    _score(workspace, _PATCHES_SQL.replace("{computed}", table), params)
    with connection.cursor() as cursor:
        execute_session(cursor, f"CREATE UNIQUE INDEX ON {table} (person_id)")
        execute_session(cursor, f"ANALYZE {table}")
    return patches_write(
        workspace=workspace, table=table, keys=COMPUTED_KEYS, report=report, start=60, end=95, shared=True
    )


def _score(workspace: Workspace, statement: str, params: dict[str, Any]) -> None:
    """One scoring statement, committed (the other connections read what it wrote)."""
    with transaction.atomic(), connection.cursor() as cursor:
        evaluation_settings(settings.INSIGHTS_TRAITS_TIMEOUT_SECONDS)
        # Every person's aggregates at once: their hashes and sorts in memory, not spilled to disk.
        execute_session(cursor, "SELECT set_config('work_mem', %s, true)", [COMPUTE_WORK_MEM])
        # The engagement's events grouped as the person index gives them, in person order (a merge
        # of the partitions' index-only scans), not hashed: workers hashing 7M events by person each
        # held most of the people, and the leader merged their 2.5M partial groups (bench/README.md:
        # 5.8 s against 3.6 s for that part).
        execute_session(cursor, "SELECT set_config('enable_hashagg', 'off', true)")
        execute_scoped(cursor, statement, params, workspace_id=workspace.pk)


def _people_count(workspace: Workspace) -> int:
    with connection.cursor() as cursor:
        execute_scoped(cursor, _PEOPLE_COUNT, workspace_id=workspace.pk)
        return int(cursor.fetchone()[0])


def _tables_drop(table: str) -> None:
    with connection.cursor() as cursor:
        for name in (table, f"{table}_rfm", f"{table}_engagement"):
            execute_session(cursor, f"DROP TABLE IF EXISTS {name}")


def patches_write(
    *,
    workspace: Workspace,
    table: str,
    keys: Sequence[str],
    report: Progress,
    start: int,
    end: int,
    shared: bool = False,
) -> int:
    """Write the patches of ``table`` (``person_id``, ``patch``: the new values of ``keys``, a key left
    out being removed) on the people whose traits they change, and tell tracking's subscribers;
    answers how many people changed.

    ``table`` is one of this app's tables, never input: temporary, or ``shared`` (a committed table
    other connections read), which lets ``PARALLEL_WRITERS`` connections write halves of the people
    at once when there are more than ``PARALLEL_AFTER``. Chunks of ``WRITE_CHUNK`` patches, each its
    own short transaction; other traits, computed ones of other keys included, are left as they are
    at the time of the write.
    """
    with connection.cursor() as cursor:
        execute_session(cursor, f"SELECT count(*) FROM {table}")
        total = int(cursor.fetchone()[0])
        # More people than real time keeps pending (it would drop the rest and refresh every segment):
        # tracking's subscribers are told once, at the end, that everyone's traits changed (real
        # time makes the segments due for a full refresh, as after a bulk import), not person by
        # person (a fifth of the writing time at 1M people).
        one_by_one = total <= ONE_BY_ONE_MAX
        bounds = [0, _LAST_ID]
        if shared and total > PARALLEL_AFTER and PARALLEL_WRITERS > 1:
            for k in range(1, PARALLEL_WRITERS):
                execute_session(
                    cursor,
                    f"SELECT person_id FROM {table} ORDER BY person_id OFFSET %s LIMIT 1",
                    [total * k // PARALLEL_WRITERS],
                )
                bounds.insert(-1, int(cursor.fetchone()[0]))
    parts = [_Part(after, upto) for after, upto in itertools.pairwise(bounds)]
    write = partial(_part_write, workspace, _WRITE_CHUNK.replace("{computed}", table), keys, one_by_one)
    try:
        if len(parts) == 1:
            return write(parts[0], _progress(report, start, end, total, 1))
        # The first part reports the progress; each other part writes from a thread of its own, on a
        # connection of its own (closed when it is done).
        with ThreadPoolExecutor(max_workers=len(parts) - 1) as pool:
            others = [pool.submit(_in_own_connection, write, part, None) for part in parts[1:]]
            written = write(parts[0], _progress(report, start, end, total, len(parts)))
            return written + sum(other.result() for other in others)
    finally:
        if not one_by_one:
            people_traits_recomputed(workspace=workspace)


# A person id above every real one: the end of the last part.
_LAST_ID = 2**63 - 1


@dataclass(frozen=True)
class _Part:
    """The patches of the people with ``after < person_id <= upto``."""

    after: int
    upto: int


def _progress(report: Progress, start: int, end: int, total: int, parts: int) -> Callable[[int], None]:
    """The progress of the first of ``parts`` equal parts, told as the whole's (the others keep pace)."""

    def progress(checked: int) -> None:
        done = min(checked * parts, total)
        report(f"Writing traits: {done:,} of {total:,} people checked", start + (end - start) * done // max(total, 1))

    return progress


def _in_own_connection(function: Callable[..., _T], *args: Any) -> _T:
    try:
        return function(*args)
    finally:
        connection.close()


def _part_write(
    workspace: Workspace,
    write_sql: str,
    keys: Sequence[str],
    one_by_one: bool,
    part: _Part,
    progress: Callable[[int], None] | None,
) -> int:
    written, checked, after = 0, 0, part.after
    with connection.cursor() as cursor:
        while True:
            if progress is not None:
                progress(checked)
            with transaction.atomic():
                execute_scoped(
                    cursor,
                    write_sql,
                    {"after": after, "upto": part.upto, "chunk": WRITE_CHUNK, "keys": list(keys)},
                    workspace_id=workspace.pk,
                )
                last, changed = cursor.fetchone()
                if last is None:
                    return written
                if one_by_one:
                    people_traits_computed(workspace=workspace, person_ids=changed)
            written += len(changed)
            checked += WRITE_CHUNK
            after = last


def catalogue_catch_up(workspace: Workspace, key: str = ENGAGEMENT) -> None:
    """The builder's pickers list trait keys from the catalogue, recounted every few minutes; the first
    time a computed trait (``key``) exists, a task recounts them at once (``catalogue_recount``)."""
    known = CatalogueProperty.objects.filter(workspace=workspace, source=PropertySource.TRAIT, key=key)
    if not known.exists():
        transaction.on_commit(partial(_enqueue_recount, workspace.pk))


def _enqueue_recount(workspace_id: int) -> None:
    """Queue the recount; a broker that is down costs only the wait for the catalogue's own recount."""
    try:
        current_app.tasks[RECOUNT_TASK].apply_async((workspace_id,), retry=False)
    except Exception:
        logger.warning("Could not queue the catalogue recount of workspace %s", workspace_id, exc_info=True)


def catalogue_recount(*, workspace: Workspace) -> None:
    """Recount the catalogue's trait keys now, so that new computed traits are in the builder's pickers."""
    catalogue_update(workspace=workspace, recount_traits=True)


def _high_water(workspace: Workspace, now: datetime) -> int:
    with connection.cursor() as cursor:
        execute_scoped(cursor, _HIGH_WATER, {"recent": now - RECENT_EVENTS}, workspace_id=workspace.pk)
        return int(cursor.fetchone()[0])


# --- Which workspaces are due -----------------------------------------------------------------

_DUE = with_tables(
    """
SELECT w.id FROM {workspace} w LEFT JOIN {settings} s ON s.workspace_id = w.id
WHERE EXISTS (SELECT 1 FROM {person} p WHERE p.workspace_id = w.id)
  AND (s.id IS NULL
    OR (s.status IN ('queued', 'running') AND s.started_at < %(stale)s)
    OR (s.status NOT IN ('queued', 'running') AND (
        s.computed_at IS NULL OR s.computed_at < %(oldest)s OR s.settings_changed_at > s.computed_at
        OR (s.computed_at < %(newest)s AND EXISTS (
            SELECT 1 FROM {event} e WHERE e.workspace_id = w.id AND e."timestamp" >= s.computed_at - %(recent)s
            AND e.id > s.last_event_id)))))
ORDER BY s.computed_at NULLS FIRST, w.id
""",
    workspace=Workspace,
    settings=ComputedTraitSettings,
    person=Person,
    event=Event,
)


def workspaces_due(*, now: datetime | None = None) -> list[int]:
    """Workspaces (with people) whose computed traits are due: never computed, computed over a day ago,
    settings changed since, or events arrived since the last run at least ``MIN_INTERVAL`` ago. A run
    queued or running for over ``STALE_AFTER`` is taken as lost and due again."""
    now = now or timezone.now()
    params = {
        "stale": now - STALE_AFTER,
        "oldest": now - MAX_AGE,
        "newest": now - MIN_INTERVAL,
        "recent": RECENT_EVENTS,
    }
    with connection.cursor() as cursor:
        dangerously_execute_across_workspaces(
            cursor, _DUE, params, why="the beat finds every workspace whose computed traits are due"
        )
        return [pk for (pk,) in cursor.fetchall()]


def mark_queued(*, workspace_ids: list[int]) -> None:
    """Mark these workspaces' runs queued, so that the next sweeps do not queue them again."""
    now = timezone.now()
    for workspace_id in workspace_ids:
        # Each row in its own workspace: the sweep looks across them, each write stays in one.
        ComputedTraitSettings.objects.unscoped().get_or_create(workspace_id=workspace_id)
        ComputedTraitSettings.objects.unscoped().filter(workspace_id=workspace_id).update(
            status=RunStatus.QUEUED, started_at=now
        )
