"""Keeping the catalogue current: read what arrived since the watermark, merge it in.

Cheap and incremental: each run reads only the events with an id above the
watermark (through the events' primary-key index), aggregates them in
PostgreSQL and merges a few hundred summary rows. Trait keys are recounted
from the people table every ``TRAITS_MAX_AGE`` (identify calls change traits
without storing an event), or at once when the caller asks.

Events are read up to the newest one received at least ``settle_seconds``
ago: an id is drawn when a row is inserted, so a transaction still open may
hold a lower id than one already committed; waiting for ingestion's short
transactions to settle keeps the watermark from stepping over them. Callers
that know every write is committed (the end of ``seed_demo``) pass 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from segmentation.catalogue.models import (
    TOP_VALUES_KEPT,
    CatalogueEvent,
    CatalogueProperty,
    CatalogueWatermark,
    PropertySource,
)
from tracking.models import Event, Person

DEFAULT_SETTLE_SECONDS = 30
# Trait values are recounted from the people table (its cost grows with the people, not with what
# arrived), so at most this often unless asked; identify calls change traits without storing an event.
TRAITS_MAX_AGE = timedelta(minutes=5)

# Top-level keys and one level into nested objects ("address.country"), as the
# definition language's dotted keys reach them. Scalar values of at most 200
# characters are counted as values; every value counts for its key and type. Each object is
# expanded once; the nested expansion is skipped for values that are not objects (the WHERE) and
# could not fail on one if a plan ever evaluated it first (the CASE).
_PAIRS = """
    SELECT p.key, p.value FROM jsonb_each(CASE WHEN jsonb_typeof({col}) = 'object' THEN {col} ELSE '{{}}'::jsonb END) t
    CROSS JOIN LATERAL (
        SELECT t.key AS key, t.value AS value
        UNION ALL
        SELECT t.key || '.' || n.key, n.value
        FROM jsonb_each(CASE WHEN jsonb_typeof(t.value) = 'object' THEN t.value ELSE '{{}}'::jsonb END) n
        WHERE jsonb_typeof(t.value) = 'object'
    ) p
"""
_VALUE = """CASE WHEN jsonb_typeof(p.value) IN ('string', 'number', 'boolean')
    AND length(p.value #>> '{}') <= 200 THEN p.value #>> '{}' END"""

_EVENT_UPPER = with_tables(
    """
SELECT max(e.id) FROM {event} e
WHERE e.workspace_id = %(workspace_id)s AND e.id > %(low)s AND e.received_at <= %(settled)s
""",
    event=Event,
)
_EVENT_NAMES = with_tables(
    """
SELECT e.name, count(*), max(e."timestamp") FROM {event} e
WHERE e.workspace_id = %(workspace_id)s AND e.id > %(low)s AND e.id <= %(upper)s
GROUP BY e.name
""",
    event=Event,
)
# Both statements are built once, at import, from the fixed fragments above; every value is bound.
_EVENT_PROPERTIES = (
    """
WITH pairs AS (
    SELECT e.name AS owner, p.key AS key, jsonb_typeof(p.value) AS type, """
    + _VALUE
    + """ AS value
    FROM {event} e CROSS JOIN LATERAL ("""
    + _PAIRS.format(col="e.properties")
    + """) p
    WHERE e.workspace_id = %(workspace_id)s AND e.id > %(low)s AND e.id <= %(upper)s
)"""
)
_TRAIT_PROPERTIES = (
    """
WITH pairs AS (
    SELECT '' AS owner, p.key AS key, jsonb_typeof(p.value) AS type, """
    + _VALUE
    + """ AS value
    FROM {person} pe CROSS JOIN LATERAL ("""
    + _PAIRS.format(col="pe.traits")
    + """) p
    WHERE pe.workspace_id = %(workspace_id)s
)"""
)
# Per (owner, key): counts per JSON type, and the most frequent values. The pairs are grouped
# once, by (owner, key, type, value), and both summaries re-aggregate those groups, instead of
# each summary sorting every pair, on disk (figures: bench/README.md).
_SUMMARY = """
, grouped AS (SELECT owner, key, type, value, count(*) AS n FROM pairs GROUP BY owner, key, type, value),
typed AS (SELECT owner, key, type, sum(n)::bigint AS n FROM grouped GROUP BY owner, key, type),
valued AS (
    SELECT owner, key, value, n, row_number() OVER (PARTITION BY owner, key ORDER BY n DESC, value) AS rank
    FROM (
        SELECT owner, key, value, sum(n)::bigint AS n FROM grouped WHERE value IS NOT NULL GROUP BY owner, key, value
    ) v
)
SELECT 't', owner, key, type, n FROM typed
UNION ALL
SELECT 'v', owner, key, value, n FROM valued WHERE rank <= %(kept)s
"""

_EVENT_PROPERTIES_SQL = with_tables(_EVENT_PROPERTIES + _SUMMARY, event=Event)
_TRAITS_SQL = with_tables(_TRAIT_PROPERTIES + _SUMMARY, person=Person)


@dataclass(frozen=True)
class CatalogueRun:
    events_read: int
    last_event_id: int
    traits_recounted: bool


@dataclass
class _Summary:
    types: dict[str, int]
    values: dict[str, int]

    @property
    def count(self) -> int:
        return sum(self.types.values())


def _summaries(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], _Summary]:
    summaries: dict[tuple[str, str], _Summary] = defaultdict(lambda: _Summary({}, {}))
    for kind, owner, key, item, n in rows:
        summary = summaries[(owner, key)]
        if kind == "t":
            summary.types[item] = int(n)
        else:
            summary.values[item] = int(n)
    return summaries


def _top(values: dict[str, int]) -> list[list[Any]]:
    ranked = sorted(values.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_VALUES_KEPT]
    return [[value, count] for value, count in ranked]


def _merge_event_properties(workspace: Workspace, summaries: dict[tuple[str, str], _Summary]) -> None:
    if not summaries:
        return
    existing = {
        (row.event, row.key): row
        for row in CatalogueProperty.objects.filter(
            workspace=workspace, source=PropertySource.EVENT, event__in={owner for owner, _ in summaries}
        )
    }
    rows = []
    for (owner, key), summary in summaries.items():
        old = existing.get((owner, key))
        types = dict(old.types) if old else {}
        values = {str(value): int(count) for value, count in old.values} if old else {}
        for type_name, n in summary.types.items():
            types[type_name] = types.get(type_name, 0) + n
        for value, n in summary.values.items():
            values[value] = values.get(value, 0) + n
        rows.append(
            CatalogueProperty(
                workspace=workspace,
                source=PropertySource.EVENT,
                event=owner,
                key=key[:300],
                count=(old.count if old else 0) + summary.count,
                types=types,
                values=_top(values),
            )
        )
    CatalogueProperty.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["workspace", "source", "event", "key"],
        update_fields=["count", "types", "values"],
    )


def _recount_traits(workspace: Workspace) -> None:
    with connection.cursor() as cursor:
        execute_scoped(cursor, _TRAITS_SQL, {"kept": TOP_VALUES_KEPT}, workspace_id=workspace.pk)
        summaries = _summaries(cursor.fetchall())
    keys = [key[:300] for _, key in summaries]
    CatalogueProperty.objects.filter(workspace=workspace, source=PropertySource.TRAIT).exclude(key__in=keys).delete()
    CatalogueProperty.objects.bulk_create(
        [
            CatalogueProperty(
                workspace=workspace,
                source=PropertySource.TRAIT,
                event="",
                key=key[:300],
                count=summary.count,
                types=summary.types,
                values=_top(summary.values),
            )
            for (_, key), summary in summaries.items()
        ],
        update_conflicts=True,
        unique_fields=["workspace", "source", "event", "key"],
        update_fields=["count", "types", "values"],
    )


def catalogue_update(
    *,
    workspace: Workspace,
    settle_seconds: int = DEFAULT_SETTLE_SECONDS,
    recount_traits: bool = False,
    now: datetime | None = None,
) -> CatalogueRun:
    """Merge the events received since the watermark into the catalogue; recount traits if anyone was seen.

    Runs of the same workspace are serialised by a row lock on the watermark,
    so two concurrent runs never count the same events twice.
    """
    now = now or timezone.now()
    with transaction.atomic():
        CatalogueWatermark.objects.get_or_create(workspace=workspace)
        watermark = CatalogueWatermark.objects.select_for_update().get(workspace=workspace)
        low = watermark.last_event_id
        with connection.cursor() as cursor:
            settled = now - timedelta(seconds=settle_seconds)
            execute_scoped(cursor, _EVENT_UPPER, {"low": low, "settled": settled}, workspace_id=workspace.pk)
            upper = cursor.fetchone()[0]
            events_read = 0
            if upper is not None:
                bounds = {"low": low, "upper": upper}
                execute_scoped(cursor, _EVENT_NAMES, bounds, workspace_id=workspace.pk)
                names = cursor.fetchall()
                events_read = sum(int(n) for _, n, _ in names)
                _merge_event_names(workspace, names)
                execute_scoped(
                    cursor, _EVENT_PROPERTIES_SQL, {**bounds, "kept": TOP_VALUES_KEPT}, workspace_id=workspace.pk
                )
                _merge_event_properties(workspace, _summaries(cursor.fetchall()))
                watermark.last_event_id = upper
        recount = recount_traits or watermark.traits_at is None or watermark.traits_at < now - TRAITS_MAX_AGE
        if recount:
            _recount_traits(workspace)
            watermark.traits_at = now
        watermark.save(update_fields=["last_event_id", "traits_at", "updated_at"])
    return CatalogueRun(events_read=events_read, last_event_id=watermark.last_event_id, traits_recounted=recount)


def _merge_event_names(workspace: Workspace, names: list[tuple[str, int, datetime]]) -> None:
    existing = {
        row.name: row for row in CatalogueEvent.objects.filter(workspace=workspace, name__in=[n for n, *_ in names])
    }
    rows = []
    for name, n, last in names:
        old = existing.get(name)
        rows.append(
            CatalogueEvent(
                workspace=workspace,
                name=name,
                count=(old.count if old else 0) + int(n),
                last_seen=max(last, old.last_seen) if old and old.last_seen else last,
            )
        )
    CatalogueEvent.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["workspace", "name"], update_fields=["count", "last_seen"]
    )
