"""Reads for tracking."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import Workspace
from tracking.models import TrackingTrigger

# --- Triggers of the JS snippet -------------------------------------------------

# Seconds the snippet (and any HTTP cache) may keep the configuration.
SNIPPET_CONFIG_TTL = 300


def triggers_list(workspace: Workspace) -> QuerySet[TrackingTrigger]:
    return TrackingTrigger.objects.filter(workspace=workspace).order_by("kind", "event_name", "pk")


def snippet_config(workspace: Workspace) -> dict[str, Any]:
    """What ``GET /v1/config`` tells the snippet: the enabled triggers and how long to keep them."""
    triggers: list[dict[str, Any]] = []
    for trigger in triggers_list(workspace).filter(enabled=True):
        item: dict[str, Any] = {"kind": trigger.kind, "event": trigger.event_name}
        if trigger.selector:
            item["selector"] = trigger.selector
        if trigger.thresholds:
            item["thresholds"] = trigger.thresholds
        triggers.append(item)
    return {"triggers": triggers, "ttl": SNIPPET_CONFIG_TTL}
