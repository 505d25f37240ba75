"""Reads of the catalogue: the builder's pickers and hints, and the events catalogue page (with each
event's tracking-plan status). Small indexed tables, never the events."""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Sum

from accounts.models import Workspace
from segmentation.catalogue.models import CatalogueEvent, CatalogueProperty, CatalogueWatermark, PropertySource
from segmentation.definition import (
    ANY_EVENT,
    MAX_GROUP_CONDITIONS,
    MAX_GROUP_DEPTH,
    MAX_NODES,
    NUMERIC_MAX_LENGTH,
    NUMERIC_RE,
)
from tracking import plan_selectors
from tracking.plan import UNCHECKED_EVENTS

SUGGESTIONS = 12
_NUMERIC = re.compile(NUMERIC_RE)


@dataclass(frozen=True)
class Suggestion:
    value: str
    count: int
    type: str = ""  # a key's most common JSON type
    numeric: bool | None = None  # keys asked for with ``numeric_first``: seen with numeric values


def _is_numeric_text(text: str) -> bool:
    return len(text) <= NUMERIC_MAX_LENGTH and _NUMERIC.match(text) is not None


def _seen_numeric(types: dict[str, int], values: list[list[Any]]) -> bool:
    """A key seen with numbers, or with numeric strings among its common values (aggregates and
    numeric operators read ``"12.50"`` as 12.5). Values are kept as text: without a JSON number
    among the key's types, a numeric-looking value was a string."""
    return bool(types.get("number")) or any(_is_numeric_text(str(value)) for value, _ in values)


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
    workspace: Workspace,
    *,
    source: str,
    event: str = "",
    q: str = "",
    limit: int = SUGGESTIONS,
    numeric_first: bool = False,
) -> list[Suggestion]:
    """Keys of one event's properties (of every event for ``$any`` or none), or trait keys.

    ``numeric_first`` (the "total of a property" picker): keys seen with numeric values first, each
    suggestion saying whether it was (``numeric``).
    """
    rows = CatalogueProperty.objects.filter(workspace=workspace, source=source)
    if source == PropertySource.EVENT and event and event != ANY_EVENT:
        rows = rows.filter(event=event)
    if q:
        rows = rows.filter(key__icontains=q)
    if numeric_first:
        return _numeric_first(rows.values_list("key", "count", "types", "values"), limit)
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


def _numeric_first(rows: Iterable[tuple[str, int, dict[str, int], list[list[Any]]]], limit: int) -> list[Suggestion]:
    merged: dict[str, tuple[int, dict[str, int], bool]] = {}
    for key, count, types, values in rows:
        total, all_types, numeric = merged.get(key, (0, {}, False))
        for name, n in types.items():
            all_types[name] = all_types.get(name, 0) + n
        merged[key] = (total + count, all_types, numeric or _seen_numeric(types, values))
    ranked = sorted(merged.items(), key=lambda item: (not item[1][2], -item[1][0], item[0]))
    return [Suggestion(key, total, _dominant(types), numeric) for key, (total, types, numeric) in ranked[:limit]]


# --- Hints: names the catalogue has never seen ---------------------------------------------------

# How many of the most frequent names and keys a misspelling is compared with.
HINT_CANDIDATES = 2000
# Longer than any name or key the catalogue keeps: nothing to compare with.
HINT_MAX_LENGTH = 300


@dataclass(frozen=True)
class DefinitionWarning:
    """Something a definition names that the workspace has never sent: likely a typo. Never an
    error: events may come later. ``path`` as in validation errors; ``suggestion``: the closest
    name or key seen, if one is close."""

    path: str
    message: str
    suggestion: str = ""


@dataclass(frozen=True)
class _Name:
    kind: str  # "event", "property" (of ``event``) or "trait"
    path: str
    value: str
    event: str = ""
    totalled: bool = False  # the key of an aggregate: its values are summed, averaged...


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _filters(node: dict[str, Any], path: str, event: str) -> Iterator[_Name]:
    filters = node.get("filters")
    for index, item in enumerate(filters if isinstance(filters, list) else []):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            yield _Name("property", _join(_join(_join(path, "filters"), index), "key"), item["key"], event)


def _names(node: Any, path: str = "", depth: int = 0) -> Iterator[_Name]:
    """Every event name, event property key and trait key a document names, with its path. Reads
    the raw document defensively: it may not be valid (the hints come with its errors), nor stop
    nesting where validation does."""
    if not isinstance(node, dict) or depth > MAX_GROUP_DEPTH:
        return
    kind = node.get("type")
    if kind in ("and", "or") and isinstance(node.get("conditions"), list):
        for index, child in enumerate(node["conditions"][:MAX_GROUP_CONDITIONS]):
            yield from _names(child, _join(_join(path, "conditions"), index), depth + 1)
    elif kind == "not":
        yield from _names(node.get("condition"), _join(path, "condition"), depth + 1)
    elif kind == "trait" and isinstance(node.get("key"), str):
        yield _Name("trait", _join(path, "key"), node["key"])
    elif kind == "sequence" and isinstance(node.get("steps"), list):
        for index, step in enumerate(node["steps"]):
            step_path = _join(_join(path, "steps"), index)
            if isinstance(step, dict) and isinstance(step.get("event"), str):
                yield _Name("event", _join(step_path, "event"), step["event"])
                yield from _filters(step, step_path, step["event"])
    elif isinstance(node.get("event"), str):  # event, aggregate, first/last_performed, regular
        event = node["event"]
        yield _Name("event", _join(path, "event"), event)
        if kind == "aggregate" and isinstance(node.get("key"), str):
            yield _Name("property", _join(path, "key"), node["key"], event, totalled=True)
        yield from _filters(node, path, event)


def _closest(word: str, candidates: list[str]) -> str:
    """The candidate closest to ``word``, ignoring case, if close enough to be a likely typo."""
    if len(word) > HINT_MAX_LENGTH:
        return ""
    by_folded: dict[str, str] = {}
    for candidate in candidates:  # most frequent first: it wins a tie of spellings
        by_folded.setdefault(candidate.casefold(), candidate)
    found = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.75)
    return by_folded[found[0]] if found else ""


def _warning(path: str, text: str, suggestion: str) -> DefinitionWarning:
    if suggestion:
        return DefinitionWarning(path, f"{text}; did you mean {suggestion}?", suggestion)
    return DefinitionWarning(path, f"{text}.")


def definition_warnings(workspace: Workspace, document: Any) -> list[DefinitionWarning]:
    """Event names, property keys and trait keys of ``document`` never seen in the workspace, each
    with the closest one seen; and aggregate keys never seen with a numeric value. A few small
    catalogue queries (two when every name is known, plus one per aggregate key).

    Not judged: ``$any``, empty names (validation speaks of those), keys more than one level deep
    (the catalogue keeps ``a.b``, not ``a.b.c``), and the keys of an event never seen (its own
    warning says enough). The catalogue trails ingestion by up to a minute or two
    (``DEFAULT_SETTLE_SECONDS`` and its beat schedule): a name sent seconds ago may still be
    reported.
    """
    found = itertools.islice(_names(document), MAX_NODES * 2)
    names = [n for n in found if n.value.strip() and n.value != ANY_EVENT]
    if not names:
        return []
    events = {n.value for n in names if n.kind == "event"}
    known_events = set(
        CatalogueEvent.objects.filter(workspace=workspace, name__in=events).values_list("name", flat=True)
    )
    properties = [
        n
        for n in names
        if n.value.count(".") <= 1
        and (n.kind == "trait" or (n.kind == "property" and (n.event == ANY_EVENT or n.event in known_events)))
    ]
    known_pairs: set[tuple[str, str, str]] = set()
    if properties:
        seen = CatalogueProperty.objects.filter(workspace=workspace, key__in={n.value for n in properties})
        for source, event, key in seen.values_list("source", "event", "key"):
            if source == PropertySource.TRAIT:
                known_pairs.add((PropertySource.TRAIT, "", key))
            else:
                known_pairs.update({("event", event, key), ("event", ANY_EVENT, key)})

    def known(name: _Name) -> bool:
        if name.kind == "event":
            return name.value in known_events
        if name.kind == "trait":
            return (PropertySource.TRAIT, "", name.value) in known_pairs
        return ("event", name.event, name.value) in known_pairs

    judged = {id(n) for n in properties}
    unknown = [n for n in names if (n.kind == "event" or id(n) in judged) and not known(n)]
    not_numeric = _not_numeric(workspace, [n for n in properties if n.totalled and known(n)])
    if not unknown:
        return not_numeric
    all_events: list[str] = []
    if any(n.kind == "event" for n in unknown):
        all_events = list(
            CatalogueEvent.objects.filter(workspace=workspace)
            .order_by("-count", "name")
            .values_list("name", flat=True)[:HINT_CANDIDATES]
        )
    keys_of: dict[tuple[str, str], list[str]] = {}
    order = {n.path: index for index, n in enumerate(names)}
    warnings = []
    for name in unknown:
        if name.kind == "event":
            warnings.append(_warning(name.path, "never seen in this workspace", _closest(name.value, all_events)))
            continue
        source = PropertySource.TRAIT if name.kind == "trait" else PropertySource.EVENT
        scope = (source, name.event)
        if scope not in keys_of:
            rows = CatalogueProperty.objects.filter(workspace=workspace, source=source)
            if source == PropertySource.EVENT and name.event != ANY_EVENT:
                rows = rows.filter(event=name.event)
            keys_of[scope] = list(
                dict.fromkeys(rows.order_by("-count", "key").values_list("key", flat=True)[:HINT_CANDIDATES])
            )
        if name.kind == "trait":
            text = "no one in this workspace has this trait"
        elif name.event == ANY_EVENT:
            text = "no event in this workspace has this property"
        else:
            text = f"no {name.event} event in this workspace has this property"
        warnings.append(_warning(name.path, text, _closest(name.value, keys_of[scope])))
    return sorted([*warnings, *not_numeric], key=lambda w: order[w.path])


def _not_numeric(workspace: Workspace, totalled: list[_Name]) -> list[DefinitionWarning]:
    """Aggregate keys seen, but never with a numeric value: the total would skip every value."""
    warnings = []
    for name in totalled:
        rows = CatalogueProperty.objects.filter(workspace=workspace, source=PropertySource.EVENT, key=name.value)
        if name.event != ANY_EVENT:
            rows = rows.filter(event=name.event)
        if not any(_seen_numeric(types, values) for types, values in rows.values_list("types", "values")):
            warnings.append(
                DefinitionWarning(name.path, "not numeric in the data: the total skips every value it has seen")
            )
    return warnings


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
