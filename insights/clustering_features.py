"""The behaviour of a workspace's people as clustering features, read from their events.

Statements through ``accounts.sql`` (each holds every table to the workspace): the people
with at least one event (the population, sampled down to ``MAX_SAMPLE`` when larger), then
one pass over the sample's events grouped twice at once
(``GROUPING SETS``): per person (events, last event, distinct sessions, revenue) and
per person and event name (the event mix). Only events at or before ``now`` count,
as in a segment's windows.

Revenue sums the purchase event's revenue property where it is a JSON number or a
numeric string, as the segment contract's aggregates read it (segment-definition.md,
"aggregate"; the pattern below is docs/segments.md's "numeric string").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from accounts.models import Workspace
from accounts.sql import execute_scoped, execute_session, with_tables
from insights.clustering import ANY_EVENT, MIX_NAMES, PURCHASE_EVENT, REVENUE_KEY, PeopleFeatures
from segmentation.definition import NUMERIC_MAX_LENGTH, NUMERIC_RE
from tracking.models import Event, Person

MAX_SAMPLE = 100_000
STATEMENT_TIMEOUT_SECONDS = 600

# The people with an event at or before now; a sample is those whose id hashes lowest with the
# run's seed (``hashint8extended``): uniform, reproducible, and one cheap test per event row, where
# a list of 100,000 ids cost an index descent per id and partition (3 times slower).
_PEOPLE = (
    "FROM {person} p WHERE p.workspace_id = %(workspace_id)s "
    "AND p.first_event_at IS NOT NULL AND p.first_event_at <= %(now)s"
)
_POPULATION_SQL = with_tables("SELECT count(*) {people}".replace("{people}", _PEOPLE), person=Person)
_CUTOFF_SQL = with_tables(
    "SELECT x.h FROM (SELECT hashint8extended(p.id, %(seed)s) AS h {people}) x "
    "ORDER BY x.h OFFSET %(offset)s LIMIT 1".replace("{people}", _PEOPLE),
    person=Person,
)
_SAMPLE_SQL = with_tables("SELECT p.id {people}{cutoff} ORDER BY p.id".replace("{people}", _PEOPLE), person=Person)
_CUTOFF = " AND hashint8extended(p.id, %(seed)s) <= %(cutoff)s"
_REVENUE = (
    "CASE WHEN jsonb_typeof(e.properties -> %(revenue_key)s) = 'number' "
    "THEN (e.properties ->> %(revenue_key)s)::numeric "
    "WHEN jsonb_typeof(e.properties -> %(revenue_key)s) = 'string' "
    "AND char_length(e.properties ->> %(revenue_key)s) <= %(numeric_length)s "
    "AND (e.properties ->> %(revenue_key)s) ~ %(numeric_re)s "
    "THEN (e.properties ->> %(revenue_key)s)::numeric END"
)
# Rows with ``whole`` are a person's totals; the others one event name of theirs.
_FEATURES_SQL = with_tables(
    "SELECT e.person_id, e.name, GROUPING(e.name) = 1 AS whole, count(*), "
    'extract(epoch FROM %(now)s::timestamptz - max(e."timestamp")) / 86400.0, '
    "count(DISTINCT e.session_id), "
    "coalesce(sum({revenue}) FILTER (WHERE e.name = %(purchase)s), 0)::float8 "
    "FROM {event} e "
    'WHERE e.workspace_id = %(workspace_id)s AND e."timestamp" <= %(now)s{only} '
    "GROUP BY GROUPING SETS ((e.person_id), (e.person_id, e.name))",
    event=Event,
).replace("{revenue}", _REVENUE)
# The events of a sample's people only (``%(seed)s`` and ``%(cutoff)s`` bound from the ``Sample``).
SAMPLED_EVENTS = " AND hashint8extended(e.person_id, %(seed)s) <= %(cutoff)s"
# The events of the people whose ids lie in a batch's range (the person index's range scan).
_BATCH_EVENTS = " AND e.person_id > %(after)s AND e.person_id <= %(upto)s"
# Every ``size``-th id of the people with an event at or before now, in id order, the last one
# left out when it closes the list: the bounds between batches, in one scan of the people.
_BATCH_BOUNDS_SQL = with_tables(
    "SELECT x.id, x.total FROM (SELECT p.id, row_number() OVER (ORDER BY p.id) AS n, count(*) OVER () AS total "
    "{people}) x WHERE x.n %% %(size)s = 0 AND x.n < x.total ORDER BY x.id".replace("{people}", _PEOPLE),
    person=Person,
)
# The events at or before now, and those of each of some names: the mix for ``PeopleFeatures.mix_prior``.
_EVENTS_SQL = with_tables(
    'SELECT count(*) FROM {event} e WHERE e.workspace_id = %(workspace_id)s AND e."timestamp" <= %(now)s',
    event=Event,
)
_NAMES_SQL = with_tables(
    "SELECT e.name, count(*) FROM {event} e "
    'WHERE e.workspace_id = %(workspace_id)s AND e.name = ANY(%(names)s) AND e."timestamp" <= %(now)s '
    "GROUP BY e.name",
    event=Event,
)
# Below and above every person id (a bigint): the open ends of the first and the last batch.
_BEFORE_FIRST_ID, _LAST_ID = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Sample:
    """Who the clustering looks at: ``people`` (sorted ids) out of ``population`` people with events;
    when sampled, those whose id hashes at or below ``cutoff`` with ``seed``."""

    people: np.ndarray
    population: int
    seed: int = 0
    cutoff: int | None = None

    @property
    def sampled(self) -> bool:
        return self.cutoff is not None


@dataclass(frozen=True)
class Batches:
    """Everyone with an event at or before an instant, as consecutive ranges of person ids
    (``after``, ``upto``] that cover every id, each holding at most ``size`` of the ``population``."""

    ranges: list[tuple[int, int]]
    population: int


def _session_settings() -> None:
    with connection.cursor() as cursor:
        execute_session(
            cursor,
            "SELECT set_config('statement_timeout', %s, true), set_config('work_mem', %s, true)",
            [f"{STATEMENT_TIMEOUT_SECONDS * 1000}ms", settings.SEGMENT_WORK_MEM],
        )


def people_sample(*, workspace: Workspace, now: datetime, seed: int, max_sample: int = MAX_SAMPLE) -> Sample:
    """The people with an event at or before ``now``; when there are more than ``max_sample``, the
    ``max_sample`` of them whose ids hash lowest with ``seed`` (a few more on a tie of hashes)."""
    params = {"now": now, "seed": seed}
    with transaction.atomic(), connection.cursor() as cursor:
        _session_settings()
        execute_scoped(cursor, _POPULATION_SQL, params, workspace_id=workspace.pk)
        population = int(cursor.fetchone()[0])
        cutoff = None
        if population > max_sample:
            execute_scoped(cursor, _CUTOFF_SQL, {**params, "offset": max_sample - 1}, workspace_id=workspace.pk)
            cutoff = int(cursor.fetchone()[0])
        sql = _SAMPLE_SQL.replace("{cutoff}", "" if cutoff is None else _CUTOFF)
        execute_scoped(cursor, sql, {**params, "cutoff": cutoff}, workspace_id=workspace.pk)
        ids = np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64)
    return Sample(ids, population, seed, cutoff)


def people_batches(*, workspace: Workspace, now: datetime, size: int) -> Batches:
    """The people with an event at or before ``now`` in batches of ``size`` by id: the ranges for
    ``people_features(id_range=...)``, so that reading everyone holds one batch's rows at a time.
    Together the ranges cover every id, so the batches' features, read with the same ``names`` and
    ``mix_prior``, are exactly those of one read of everyone."""
    if size < 1:
        raise ValueError("A batch holds at least one person.")
    with transaction.atomic(), connection.cursor() as cursor:
        _session_settings()
        execute_scoped(cursor, _BATCH_BOUNDS_SQL, {"now": now, "size": size}, workspace_id=workspace.pk)
        rows = cursor.fetchall()
        if rows:
            population = int(rows[0][1])
        else:
            execute_scoped(cursor, _POPULATION_SQL, {"now": now}, workspace_id=workspace.pk)
            population = int(cursor.fetchone()[0])
    bounds = [_BEFORE_FIRST_ID] + [int(row[0]) for row in rows] + [_LAST_ID]
    return Batches(list(pairwise(bounds)), population)


def mix_prior(*, workspace: Workspace, now: datetime, names: tuple[str, ...]) -> np.ndarray:
    """Each of ``names``' share of the events at or before ``now``: the mix that the shares of everyone
    read in one go are pulled toward, for ``people_features(mix_prior=...)`` of each batch."""
    with transaction.atomic(), connection.cursor() as cursor:
        _session_settings()
        execute_scoped(cursor, _EVENTS_SQL, {"now": now}, workspace_id=workspace.pk)
        total = float(cursor.fetchone()[0])
        execute_scoped(cursor, _NAMES_SQL, {"now": now, "names": list(names)}, workspace_id=workspace.pk)
        counts = {name: float(count) for name, count in cursor.fetchall()}
    return np.array([counts.get(name, 0.0) / max(total, 1.0) for name in names], dtype=float)


def people_features(
    *,
    workspace: Workspace,
    sample: Sample | None,
    now: datetime,
    purchase_event: str = PURCHASE_EVENT,
    revenue_key: str = REVENUE_KEY,
    mix_names: int = MIX_NAMES,
    names: tuple[str, ...] | None = None,
    id_range: tuple[int, int] | None = None,
    mix_prior: np.ndarray | None = None,
) -> PeopleFeatures:
    """The features of the sample's people (everyone's for no sample), one row each, in id order;
    only those with ids in (``id_range[0]``, ``id_range[1]``] when given (``people_batches``, with
    the ``names`` and ``mix_prior`` of everyone, so that the shares do not depend on the batch).

    A person of the sample whose events all lie after ``now`` (or who lost them since the
    sample was drawn) has no row. The event mix is over the ``mix_names`` names with the
    most events in the sample, the purchase event aside (it has a column of its own); or over
    ``names`` when given, so that features read at several instants have the same columns.
    """
    params = {
        "now": now,
        "purchase": purchase_event,
        "revenue_key": revenue_key,
        "numeric_re": NUMERIC_RE,
        "numeric_length": NUMERIC_MAX_LENGTH,
    }
    only = ""
    if sample is not None and sample.sampled:
        only += SAMPLED_EVENTS
        params.update({"seed": sample.seed, "cutoff": sample.cutoff})
    if id_range is not None:
        only += _BATCH_EVENTS
        params.update({"after": id_range[0], "upto": id_range[1]})
    sql = _FEATURES_SQL.replace("{only}", only)
    with transaction.atomic(), connection.cursor() as cursor:
        _session_settings()
        execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
        rows = cursor.fetchall()
    wholes = sorted((row for row in rows if row[2]), key=lambda row: row[0])
    ids = np.array([row[0] for row in wholes], dtype=np.int64)
    position = {person_id: index for index, person_id in enumerate(ids.tolist())}
    totals: dict[str, int] = {}
    for row in rows:
        if not row[2] and row[1] not in (purchase_event, ANY_EVENT):
            totals[row[1]] = totals.get(row[1], 0) + int(row[3])
    if names is None:
        names = tuple(sorted(totals, key=lambda name: (-totals[name], name))[:mix_names])
    column = {name: index for index, name in enumerate(names)}
    mix = np.zeros((len(ids), len(names)), dtype=np.int64)
    orders = np.zeros(len(ids), dtype=np.int64)
    for row in rows:
        if row[2]:
            continue
        if row[1] == purchase_event:
            orders[position[row[0]]] = int(row[3])
        elif row[1] in column:
            mix[position[row[0]], column[row[1]]] = int(row[3])
    return PeopleFeatures(
        person_ids=ids,
        recency_days=np.array([max(0.0, float(row[4])) for row in wholes], dtype=float),
        events=np.array([int(row[3]) for row in wholes], dtype=np.int64),
        orders=orders,
        revenue=np.array([float(row[6]) for row in wholes], dtype=float),
        sessions=np.array([int(row[5]) for row in wholes], dtype=np.int64),
        mix_names=names,
        mix_counts=mix,
        purchase_event=purchase_event,
        revenue_key=revenue_key,
        mix_prior=mix_prior,
    )
