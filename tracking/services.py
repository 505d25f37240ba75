"""Writes for tracking."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User, Workspace
from accounts.services import audit_record
from tracking import triggers
from tracking.models import TrackingTrigger

# --- Triggers of the JS snippet -------------------------------------------------


def _trigger_spec(*, kind: str, selector: str, event_name: str, thresholds: list[int]) -> triggers.TriggerSpec:
    try:
        return triggers.check(kind, selector, event_name, thresholds)
    except triggers.TriggerInvalid as error:
        raise ValidationError({error.field: [error.message]}) from error


def _trigger_save(trigger: TrackingTrigger, *, update_fields: list[str] | None = None) -> None:
    """Save, turning a duplicate event name into a ValidationError on that field."""
    try:
        with transaction.atomic():
            trigger.save(update_fields=update_fields)
    except IntegrityError as error:
        raise ValidationError(
            {"event_name": [f"Another trigger already sends “{trigger.event_name}”. Choose another name."]}
        ) from error


def trigger_create(
    *,
    workspace: Workspace,
    actor: User | None,
    kind: str,
    selector: str = "",
    event_name: str = "",
    thresholds: list[int] | None = None,
    enabled: bool = True,
) -> TrackingTrigger:
    """A new trigger. Missing event names and thresholds take the kind's defaults."""
    if thresholds is None:
        thresholds = triggers.DEFAULT_THRESHOLDS.get(kind, [])
    spec = _trigger_spec(kind=kind, selector=selector, event_name=event_name, thresholds=thresholds)
    trigger = TrackingTrigger(
        workspace=workspace,
        kind=spec.kind,
        selector=spec.selector,
        event_name=spec.event_name,
        thresholds=spec.thresholds,
        enabled=enabled,
    )
    with transaction.atomic():
        _trigger_save(trigger)
        audit_record(
            workspace=workspace, actor=actor, action="trigger.created", target=spec.event_name, details={"kind": kind}
        )
    return trigger


def trigger_update(
    *,
    workspace: Workspace,
    trigger: TrackingTrigger,
    actor: User | None,
    kind: str,
    selector: str,
    event_name: str,
    thresholds: list[int],
    enabled: bool,
) -> TrackingTrigger:
    if trigger.workspace_id != workspace.pk:
        raise ValueError("trigger of another workspace")
    spec = _trigger_spec(kind=kind, selector=selector, event_name=event_name, thresholds=thresholds)
    trigger.kind, trigger.selector, trigger.event_name = spec.kind, spec.selector, spec.event_name
    trigger.thresholds, trigger.enabled = spec.thresholds, enabled
    with transaction.atomic():
        _trigger_save(trigger, update_fields=["kind", "selector", "event_name", "thresholds", "enabled", "updated_at"])
        audit_record(workspace=workspace, actor=actor, action="trigger.updated", target=spec.event_name)
    return trigger


def trigger_delete(*, workspace: Workspace, trigger: TrackingTrigger, actor: User | None) -> None:
    if trigger.workspace_id != workspace.pk:
        raise ValueError("trigger of another workspace")
    with transaction.atomic():
        TrackingTrigger.objects.filter(workspace=workspace, pk=trigger.pk).delete()
        audit_record(workspace=workspace, actor=actor, action="trigger.deleted", target=trigger.event_name)
