"""Rows of tracking built directly, for tests of reads, erasure and pages.

Ingestion has its own tests; these builders let the reading side be tested
with exact, hand-picked data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from tracking.models import Event, Identity, IdentityKind, Person

NOW = timezone.now().replace(microsecond=0)


def person(
    workspace: Workspace,
    *,
    user_id: str | None = None,
    anonymous_ids: tuple[str, ...] = (),
    traits: dict[str, Any] | None = None,
    first_seen: datetime | None = None,
    last_seen: datetime | None = None,
) -> Person:
    with workspace_scope(workspace):
        created = Person.objects.create(
            workspace=workspace,
            user_id=user_id,
            traits=traits or {},
            first_seen=first_seen or NOW - timedelta(days=3),
            last_seen=last_seen or NOW - timedelta(hours=1),
        )
        if user_id is not None:
            Identity.objects.create(workspace=workspace, person=created, kind=IdentityKind.USER_ID, value=user_id)
        for value in anonymous_ids:
            Identity.objects.create(workspace=workspace, person=created, kind=IdentityKind.ANONYMOUS_ID, value=value)
    return created


def event(
    workspace: Workspace,
    who: Person,
    name: str,
    *,
    at: datetime | None = None,
    properties: dict[str, Any] | None = None,
    anonymous_id: str | None = None,
) -> Event:
    moment = at or NOW - timedelta(hours=2)
    with workspace_scope(workspace):
        return Event.objects.create(
            workspace=workspace,
            person_id=who.pk,
            name=name,
            properties=properties or {},
            context={},
            timestamp=moment,
            received_at=moment,
            message_id=f"test-{name}-{moment.timestamp()}-{who.pk}",
            user_id=who.user_id,
            anonymous_id=anonymous_id,
            warnings=[],
        )
