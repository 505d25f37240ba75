"""Helpers of the segment engine tests: people with events, and reading membership back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from segmentation.models import Membership, MembershipChange, Segment, SegmentSizeSnapshot
from tests.tracking import builders
from tracking.models import Person


def shopper(workspace: Workspace, user_id: str, *, traits: dict[str, Any] | None = None) -> Person:
    return builders.person(workspace, user_id=user_id, traits=traits or {}, anonymous_ids=(f"anon-{user_id}",))


def crowd(workspace: Workspace, size: int = 20_000) -> None:
    """``size`` people with a trait ``n`` in one statement: enough that a scan of them takes well over a
    millisecond on any machine (the preview-timeout tests)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tracking_person (workspace_id, user_id, traits, first_seen, last_seen) "
            "SELECT %s, 'p' || n, jsonb_build_object('n', n), now(), now() FROM generate_series(1, %s) n",
            [workspace.pk, size],
        )


def bought(workspace: Workspace, who: Person, at: datetime, **properties: Any) -> None:
    builders.event(workspace, who, "Order Completed", at=at, properties=properties)


def members(segment: Segment) -> set[str | None]:
    """user_ids of the segment's stored members."""
    with workspace_scope(segment.workspace_id):
        people = Membership.objects.filter(segment=segment).values_list("person_id", flat=True)
        return set(Person.objects.filter(pk__in=list(people)).values_list("user_id", flat=True))


def changes(segment: Segment) -> list[tuple[str | None, str]]:
    """(user_id, kind) of every recorded change, in order."""
    with workspace_scope(segment.workspace_id):
        rows = MembershipChange.objects.filter(segment=segment).order_by("at", "kind", "person__user_id")
        return list(rows.values_list("person__user_id", "kind"))


def snapshots(segment: Segment) -> list[tuple[int, int, int]]:
    with workspace_scope(segment.workspace_id):
        rows = SegmentSizeSnapshot.objects.filter(segment=segment).order_by("at", "id")
        return list(rows.values_list("size", "entered", "exited"))


def reload(segment: Segment) -> Segment:
    with workspace_scope(segment.workspace_id):
        return Segment.objects.get(pk=segment.pk)


def segment_rows(workspace: Workspace) -> list[tuple[Any, ...]]:
    """Every segment row and its memberships, for "nothing changed" checks."""
    with workspace_scope(workspace):
        return sorted(
            Segment.objects.values_list("id", "name", "definition", "is_static", "size", "status", "description")
        ) + sorted(Membership.objects.values_list("segment_id", "person_id"))
