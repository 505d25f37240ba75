"""Fixed small datasets of the insights tests, loaded into a workspace and a copy into another one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from segmentation.models import Membership, Segment
from tests.tracking import builders
from tracking.models import Person

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def load(
    workspace: Workspace, people: dict[str, dict[str, Any]], events: list[tuple[str, str, datetime, dict]]
) -> dict[str, Person]:
    """People by name (``traits``), then their events ``(person, event, at, properties)``."""
    made = {name: builders.person(workspace, user_id=name, traits=traits) for name, traits in people.items()}
    for who, name, at, properties in events:
        builders.event(workspace, made[who], name, at=at, properties=properties)
    return made


def static_segment(workspace: Workspace, name: str, members: list[Person]) -> Segment:
    with workspace_scope(workspace):
        segment = Segment.objects.create(workspace=workspace, name=name, is_static=True, size=len(members))
        Membership.objects.bulk_create(
            [Membership(workspace=workspace, segment=segment, person=person, entered_at=NOW) for person in members]
        )
    return segment
