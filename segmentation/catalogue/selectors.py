"""Reads of the catalogue for the builder's pickers: small indexed tables, never the events."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from accounts.models import Workspace
from segmentation.catalogue.models import CatalogueEvent, CatalogueProperty, PropertySource
from segmentation.definition import ANY_EVENT

SUGGESTIONS = 12


@dataclass(frozen=True)
class Suggestion:
    value: str
    count: int
    type: str = ""  # a key's most common JSON type


def _dominant(types: dict[str, int]) -> str:
    return max(types.items(), key=lambda pair: pair[1])[0] if types else ""


def event_names(workspace: Workspace, *, q: str = "", limit: int = SUGGESTIONS) -> list[Suggestion]:
    rows = CatalogueEvent.objects.filter(workspace=workspace)
    if q:
        rows = rows.filter(name__icontains=q)
    return [
        Suggestion(name, count) for name, count in rows.order_by("-count", "name").values_list("name", "count")[:limit]
    ]


def property_keys(
    workspace: Workspace, *, source: str, event: str = "", q: str = "", limit: int = SUGGESTIONS
) -> list[Suggestion]:
    """Keys of one event's properties (of every event for ``$any`` or none), or trait keys."""
    rows = CatalogueProperty.objects.filter(workspace=workspace, source=source)
    if source == PropertySource.EVENT and event and event != ANY_EVENT:
        rows = rows.filter(event=event)
    if q:
        rows = rows.filter(key__icontains=q)
    if source == PropertySource.EVENT and (not event or event == ANY_EVENT):
        totals = rows.values("key").annotate(total=Sum("count")).order_by("-total", "key")[:limit]
        return [Suggestion(row["key"], row["total"]) for row in totals]
    return [
        Suggestion(key, count, _dominant(types))
        for key, count, types in rows.order_by("-count", "key").values_list("key", "count", "types")[:limit]
    ]


def property_values(
    workspace: Workspace, *, source: str, key: str, event: str = "", q: str = "", limit: int = SUGGESTIONS
) -> list[Suggestion]:
    """The common values of a key, most frequent first, those containing ``q`` (case-insensitively)."""
    rows = CatalogueProperty.objects.filter(workspace=workspace, source=source, key=key)
    if source == PropertySource.EVENT and event and event != ANY_EVENT:
        rows = rows.filter(event=event)
    merged: dict[str, int] = {}
    for values in rows.values_list("values", flat=True)[:50]:
        for value, count in values:
            merged[str(value)] = merged.get(str(value), 0) + int(count)
    needle = q.casefold()
    ranked = sorted(merged.items(), key=lambda pair: (-pair[1], pair[0]))
    return [Suggestion(value, count) for value, count in ranked if needle in value.casefold()][:limit]
