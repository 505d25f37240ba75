"""Reads of the tracking plan and its violation counts: the settings page, the REST API, the catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Max, Sum

from accounts.models import User, Workspace
from tracking import plan
from tracking.models import Event, PlanViolation, TrackingPlan

# Examples shown per event (each violation row keeps ``plan.EXAMPLES_KEPT``).
EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class PlanState:
    document: plan.PlanDocument
    version: int
    updated_at: datetime | None = None
    updated_by: User | None = None


EVENT_ANCHOR = "event-{}"


def event_anchor(document: plan.PlanDocument, name: str) -> str:
    """The id of the event's card on the settings page (Settings -> Data), "" when it is not planned."""
    for index, event in enumerate(document.events, start=1):
        if event.name == name:
            return EVENT_ANCHOR.format(index)
    return ""


def tracking_plan(workspace: Workspace) -> PlanState:
    """The workspace's plan; an empty one (version 0) when it never had one."""
    row = TrackingPlan.objects.filter(workspace=workspace).select_related("updated_by").first()
    if row is None or not row.document:
        return PlanState(plan.PlanDocument(), row.version if row else 0)
    return PlanState(plan.parse(row.document), row.version, row.updated_at, row.updated_by)


@dataclass(frozen=True)
class ViolationCount:
    kind: str
    label: str
    property: str
    count: int
    quarantined: int
    last_seen_at: datetime


@dataclass
class EventViolations:
    """An event's violations since its plan last changed: per kind and property, and the latest examples."""

    event: str
    total: int = 0
    quarantined: int = 0
    last_seen_at: datetime | None = None
    counts: list[ViolationCount] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)


def violations_by_event(workspace: Workspace) -> dict[str, EventViolations]:
    """Every event with violations, its counts largest first, its examples newest first (one per message)."""
    found: dict[str, EventViolations] = {}
    rows = PlanViolation.objects.filter(workspace=workspace).order_by("event", "-count", "kind", "property")
    for row in rows:
        summary = found.get(row.event)
        if summary is None:
            summary = found[row.event] = EventViolations(row.event)
        summary.total += row.count
        summary.quarantined += row.quarantined
        if summary.last_seen_at is None or row.last_seen_at > summary.last_seen_at:
            summary.last_seen_at = row.last_seen_at
        summary.counts.append(
            ViolationCount(
                row.kind,
                plan.VIOLATION_KINDS.get(row.kind, row.kind),
                row.property,
                row.count,
                row.quarantined,
                row.last_seen_at,
            )
        )
        summary.examples.extend(row.examples)
    for summary in found.values():
        seen: set[str] = set()
        examples = []
        for example in sorted(summary.examples, key=lambda e: str(e.get("at", "")), reverse=True):
            message_id = str(example.get("message_id"))
            if message_id not in seen:
                seen.add(message_id)
                examples.append(example)
        summary.examples = examples[:EXAMPLES_SHOWN]
    return found


@dataclass(frozen=True)
class ViolationTotal:
    total: int
    quarantined: int
    last_seen_at: datetime | None


def violation_totals(workspace: Workspace, *, events: list[str] | None = None) -> dict[str, ViolationTotal]:
    """Per event (of ``events``, or all): its violations and how many of its messages were quarantined.

    ``quarantined`` counts violations of quarantined messages; a message with two problems counts twice.
    """
    rows = PlanViolation.objects.filter(workspace=workspace)
    if events is not None:
        rows = rows.filter(event__in=events)
    totals = rows.values("event").annotate(total=Sum("count"), held=Sum("quarantined"), last=Max("last_seen_at"))
    return {row["event"]: ViolationTotal(int(row["total"]), int(row["held"]), row["last"]) for row in totals}


# Recent events read to propose an event's properties.
OBSERVED_SAMPLE = 200
_JSON_TYPES = {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "list"}


def observed_property_types(workspace: Workspace, event: str, *, sample: int = OBSERVED_SAMPLE) -> dict[str, str]:
    """The properties the latest ``sample`` events named ``event`` carried, most frequent first, each with
    the plan type most of its values had (nulls aside). Reads the (workspace, name, timestamp) index."""
    rows = (
        Event.objects.filter(workspace=workspace, name=event)
        .order_by("-timestamp")
        .values_list("properties", flat=True)[:sample]
    )
    seen: dict[str, dict[str, int]] = {}
    for properties in rows:
        if not isinstance(properties, dict):
            continue
        for key, value in properties.items():
            kind = _JSON_TYPES.get(type(value))
            if kind is not None and not plan.name_problem(key, what="property") and len(key) <= plan.MAX_NAME_LENGTH:
                counts = seen.setdefault(key, {})
                counts[kind] = counts.get(kind, 0) + 1
    ranked = sorted(seen.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return {key: max(kinds.items(), key=lambda pair: (pair[1], pair[0]))[0] for key, kinds in ranked}
