"""Reads of the catalogue: the builder's pickers, and the events catalogue page (with each event's
tracking-plan status). Small indexed tables, never the events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum

from accounts.models import Workspace
from segmentation.catalogue.models import CatalogueEvent, CatalogueProperty, CatalogueWatermark, PropertySource
from segmentation.definition import ANY_EVENT
from tracking import plan_selectors
from tracking.plan import UNCHECKED_EVENTS

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


# --- The events catalogue page: every event with its volume and its tracking-plan status ---------

PLANNED = "planned"
UNPLANNED = "unplanned"
NOT_CHECKED = "not_checked"  # page and screen calls; or every event while the plan is empty
STATUS_FILTERS = ("planned", "unplanned", "violations", "not_seen")


@dataclass(frozen=True)
class CatalogueRow:
    name: str
    count: int
    last_seen: datetime | None
    status: str
    violations: int = 0
    quarantined: int = 0
    # The event's card on Settings -> Data ("" when it is not planned).
    plan_anchor: str = ""


@dataclass(frozen=True)
class EventCatalogue:
    rows: list[CatalogueRow]
    has_plan: bool
    block_unplanned: bool
    # When the catalogue last read new events (its counts are as of then).
    updated_at: datetime | None


def event_catalogue(workspace: Workspace, *, q: str = "", status: str = "", sort: str = "volume") -> EventCatalogue:
    """Every event name the workspace received (the catalogue's counts), every planned one and every
    one the plan kept out (volume 0: never stored), with its plan status and its violations since its
    plan last changed."""
    state = plan_selectors.tracking_plan(workspace)
    document = state.document
    totals = plan_selectors.violation_totals(workspace)
    seen = {
        name: (count, last)
        for name, count, last in CatalogueEvent.objects.filter(workspace=workspace).values_list(
            "name", "count", "last_seen"
        )
    }
    anchors = {event.name: plan_selectors.EVENT_ANCHOR.format(i) for i, event in enumerate(document.events, start=1)}
    # Blocked calls are never stored, so the catalogue never counts them: their violations name them.
    names = set(seen) | set(anchors) | set(totals)
    rows = []
    for name in names:
        count, last = seen.get(name, (0, None))
        planned = name in anchors
        if not document.events or name in UNCHECKED_EVENTS:
            plan_status = NOT_CHECKED
        else:
            plan_status = PLANNED if planned else UNPLANNED
        total = totals.get(name)
        rows.append(
            CatalogueRow(
                name=name,
                count=count,
                last_seen=last,
                status=plan_status,
                violations=total.total if total else 0,
                quarantined=total.quarantined if total else 0,
                plan_anchor=anchors.get(name, ""),
            )
        )
    needle = q.casefold()
    if needle:
        rows = [row for row in rows if needle in row.name.casefold()]
    if status == "planned":
        rows = [row for row in rows if row.status == PLANNED]
    elif status == "unplanned":
        rows = [row for row in rows if row.status == UNPLANNED]
    elif status == "violations":
        rows = [row for row in rows if row.violations]
    elif status == "not_seen":
        rows = [row for row in rows if row.last_seen is None]
    if sort == "name":
        rows.sort(key=lambda row: (row.name.casefold(), row.name))
    elif sort == "violations":
        rows.sort(key=lambda row: (-row.violations, -row.count, row.name.casefold()))
    else:
        rows.sort(key=lambda row: (-row.count, row.name.casefold()))
    watermark = CatalogueWatermark.objects.filter(workspace=workspace).values_list("updated_at", flat=True).first()
    return EventCatalogue(rows, bool(document.events), document.block_unplanned_events, watermark)
