"""Helpers of the sending engine's tests: an audience written in bulk, a launched campaign."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns.models import (
    Campaign,
    CampaignAudience,
    CampaignKind,
    CampaignStatus,
    Channel,
    FrequencyCap,
    Run,
    Send,
    Variant,
)
from segmentation.models import Membership, Segment
from tracking.models import Person

_names = itertools.count(1)


def audience(
    workspace: Workspace, traits: Sequence[dict[str, Any]], *, name: str | None = None
) -> tuple[Segment, list[Person]]:
    """A static segment of new people, one per ``traits`` entry, in that order."""
    now = timezone.now()
    with workspace_scope(workspace):
        segment = Segment.objects.create(workspace=workspace, name=name or f"Audience {next(_names)}", is_static=True)
        people = Person.objects.bulk_create(
            [
                Person(workspace=workspace, user_id=f"u{next(_names)}", traits=dict(t), first_seen=now, last_seen=now)
                for t in traits
            ],
            batch_size=5000,
        )
        Membership.objects.bulk_create(
            [Membership(workspace=workspace, segment=segment, person=p, entered_at=now) for p in people],
            batch_size=5000,
        )
    return segment, people


def join(workspace: Workspace, segment: Segment, people: Sequence[Person]) -> None:
    with workspace_scope(workspace):
        Membership.objects.bulk_create(
            [Membership(workspace=workspace, segment=segment, person=p, entered_at=timezone.now()) for p in people]
        )


def broadcast(
    workspace: Workspace,
    *,
    segments: Sequence[Segment],
    exclude: Sequence[Segment] = (),
    variants: Sequence[dict[str, Any]] = ({"name": "A", "weight": 1, "subject": "Hi", "body": "<p>Hi</p>"},),
    holdout: int = 0,
    channel: str = Channel.EMAIL,
    status: str = CampaignStatus.SENDING,
    send_at: datetime | None = None,
    local_time: bool = False,
    name: str | None = None,
) -> tuple[Campaign, Run]:
    """A launched broadcast with its run (as the API's launch leaves it)."""
    with workspace_scope(workspace):
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=name or f"Campaign {next(_names)}",
            channel=channel,
            kind=CampaignKind.BROADCAST,
            status=status,
            send_at=send_at,
            local_time=local_time,
            holdout_percent=holdout,
            launched_at=timezone.now(),
        )
        for position, spec in enumerate(variants):
            Variant.objects.create(workspace=workspace, campaign=campaign, position=position, **spec)
        for segment in segments:
            CampaignAudience.objects.create(workspace=workspace, campaign=campaign, segment=segment)
        for segment in exclude:
            CampaignAudience.objects.create(workspace=workspace, campaign=campaign, segment=segment, exclude=True)
        run = Run.objects.create(workspace=workspace, campaign=campaign)
    return campaign, run


def cap(
    workspace: Workspace, *, channel: str = Channel.EMAIL, max: int = 1, per: str = "1d", seconds: int = 86_400
) -> FrequencyCap:
    with workspace_scope(workspace):
        return FrequencyCap.objects.create(workspace=workspace, channel=channel, max=max, per=per, per_seconds=seconds)


def sends(workspace: Workspace, campaign: Campaign) -> list[Send]:
    with workspace_scope(workspace):
        return list(Send.objects.filter(campaign=campaign).order_by("person_id"))


def states(workspace: Workspace, campaign: Campaign) -> dict[str, int]:
    counts: dict[str, int] = {}
    for send in sends(workspace, campaign):
        counts[send.state] = counts.get(send.state, 0) + 1
    return counts
