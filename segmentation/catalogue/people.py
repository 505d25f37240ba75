"""The catalogue's subscriber to tracking's port (``tracking.events``; listed in ``TRACKING_SUBSCRIBERS``).

- ``people_imported``: an import's events and traits are in the builder's pickers at once
  (every chunk is committed, so nothing needs to settle).
- ``person_erased``: the person's values leave the catalogue where no one else has them.

Erasure, before tracking deletes the person's events and row. Trait values are
checked exactly: the other people's traits are read for the person's values
(one pass over the workspace's people, as a trait recount does), and each
value keeps the count of the others who have it, or goes. Event property
values are summaries merged run after run (``catalogue_update``): each value's
count loses the person's events already read into it (those up to the
watermark, locked here so that no run merges meanwhile), and a value left with
nothing goes; events not read yet are deleted before any run reads them. A
count the catalogue had under-counted may drop a value someone else still
has, until that value is seen again: the pickers' loss, never a value kept
for the erased person. Keys whose count falls to nothing go too.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import connection

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from segmentation.catalogue.models import CatalogueProperty, CatalogueWatermark, PropertySource
from segmentation.catalogue.services import _PAIRS, _VALUE, _top, catalogue_update
from tracking.events import ErasedPerson
from tracking.models import Event, Person

# (owner, key, type, value, n) of one person's events up to the watermark; owner is the event name.
_PERSON_EVENT_PAIRS = with_tables(
    "SELECT e.name, p.key, jsonb_typeof(p.value), "
    + _VALUE
    + ", count(*) FROM {event} e CROSS JOIN LATERAL ("
    + _PAIRS.format(col="e.properties")
    + ") p WHERE e.workspace_id = %(workspace_id)s AND e.person_id = %(person)s AND e.id <= %(last)s"
    " GROUP BY 1, 2, 3, 4",
    event=Event,
)
# (key, type, value) of one person's traits.
_PERSON_TRAIT_PAIRS = with_tables(
    "SELECT p.key, jsonb_typeof(p.value), "
    + _VALUE
    + " FROM {person} pe CROSS JOIN LATERAL ("
    + _PAIRS.format(col="pe.traits")
    + ") p WHERE pe.workspace_id = %(workspace_id)s AND pe.id = %(person)s",
    person=Person,
)
# (key, value, n): how many other people of the workspace have these trait values.
_OTHERS_TRAIT_VALUES = with_tables(
    "SELECT key, value, count(*) FROM (SELECT p.key AS key, "
    + _VALUE
    + " AS value FROM {person} pe CROSS JOIN LATERAL ("
    + _PAIRS.format(col="pe.traits")
    + ") p WHERE pe.workspace_id = %(workspace_id)s AND pe.id <> %(person)s AND p.key = ANY(%(keys)s)) t"
    " WHERE value = ANY(%(values)s) GROUP BY 1, 2",
    person=Person,
)


def people_imported(workspace: Workspace) -> None:
    catalogue_update(workspace=workspace, recount_traits=True, settle_seconds=0)


def person_erased(erased: ErasedPerson) -> dict[str, int]:
    workspace = erased.workspace
    watermark = CatalogueWatermark.objects.select_for_update().filter(workspace=workspace).first()
    removed = 0
    if watermark is not None and watermark.last_event_id:
        removed += _forget_event_values(workspace, erased.person_id, watermark.last_event_id)
    removed += _forget_trait_values(workspace, erased.person_id)
    return {"catalogue_values": removed}


def _without(row: CatalogueProperty, types: dict[str, int], values: dict[str, int]) -> int:
    """Take the person's ``types`` and ``values`` counts off ``row``; the values removed."""
    row_types = {name: n - types.get(name, 0) for name, n in row.types.items()}
    row.types = {name: n for name, n in row_types.items() if n > 0}
    row.count = sum(row.types.values())
    kept: dict[str, int] = {}
    removed = 0
    for value, n in row.values:
        left = int(n) - values.get(str(value), 0)
        if left > 0:
            kept[str(value)] = left
        elif str(value) in values:
            removed += 1
    row.values = _top(kept)
    return removed


def _save(rows: list[CatalogueProperty]) -> None:
    gone = [row.pk for row in rows if row.count <= 0]
    CatalogueProperty.objects.filter(pk__in=gone).delete()
    CatalogueProperty.objects.bulk_update([row for row in rows if row.count > 0], ["count", "types", "values"])


def _forget_event_values(workspace: Workspace, person_id: int, last_event_id: int) -> int:
    with connection.cursor() as cursor:
        execute_scoped(
            cursor, _PERSON_EVENT_PAIRS, {"person": person_id, "last": last_event_id}, workspace_id=workspace.pk
        )
        pairs = cursor.fetchall()
    types: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    values: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for owner, key, type_name, value, n in pairs:
        types[(owner, key[:300])][type_name] += int(n)
        if value is not None:
            values[(owner, key[:300])][value] += int(n)
    if not types:
        return 0
    rows = [
        row
        for row in CatalogueProperty.objects.filter(
            workspace=workspace, source=PropertySource.EVENT, event__in={owner for owner, _ in types}
        )
        if (row.event, row.key) in types
    ]
    removed = sum(_without(row, types[(row.event, row.key)], values[(row.event, row.key)]) for row in rows)
    _save(rows)
    return removed


def _forget_trait_values(workspace: Workspace, person_id: int) -> int:
    with connection.cursor() as cursor:
        execute_scoped(cursor, _PERSON_TRAIT_PAIRS, {"person": person_id}, workspace_id=workspace.pk)
        pairs = cursor.fetchall()
        mine: dict[str, dict[str, Any]] = defaultdict(lambda: {"types": defaultdict(int), "values": set()})
        for key, type_name, value in pairs:
            mine[key[:300]]["types"][type_name] += 1
            if value is not None:
                mine[key[:300]]["values"].add(value)
        if not mine:
            return 0
        wanted = sorted({value for entry in mine.values() for value in entry["values"]})
        others: dict[tuple[str, str], int] = {}
        if wanted:
            execute_scoped(
                cursor,
                _OTHERS_TRAIT_VALUES,
                {"person": person_id, "keys": sorted(mine), "values": wanted},
                workspace_id=workspace.pk,
            )
            others = {(key[:300], value): int(n) for key, value, n in cursor.fetchall()}
    rows = list(CatalogueProperty.objects.filter(workspace=workspace, source=PropertySource.TRAIT, key__in=list(mine)))
    removed = 0
    for row in rows:
        entry = mine[row.key]
        # The person's share of each of their values: what the catalogue counted less what the others have.
        share = {
            str(value): int(n) - others.get((row.key, str(value)), 0)
            for value, n in row.values
            if str(value) in entry["values"]
        }
        removed += _without(row, dict(entry["types"]), share)
    _save(rows)
    return removed
