"""Builders for the triggered campaigns' tests: campaigns written as the API would leave them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
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
    Send,
    TriggerOn,
    Variant,
)
from segmentation.models import Segment


def triggered(
    workspace: Workspace,
    *,
    name: str = "Welcome",
    segment: Segment | None = None,
    event: str = "",
    delay_seconds: int = 0,
    exit_event: str = "",
    once_per_person: bool = True,
    reeligible_after_seconds: int | None = None,
    holdout_percent: int = 0,
    exclude: Sequence[Segment] = (),
    channel: str = Channel.EMAIL,
    status: str = CampaignStatus.LISTENING,
    launched_at: datetime | None = None,
    listening_since: datetime | None = None,
    variants: Sequence[tuple[str, int]] = (("A", 1),),
) -> Campaign:
    """A triggered campaign on entry into ``segment`` or on ``event``, listening since an hour ago by default."""
    on = TriggerOn.SEGMENT_ENTRY if segment is not None else TriggerOn.EVENT
    trigger: dict[str, Any] = {"on": on}
    if segment is not None:
        trigger["segment"] = segment.pk
    else:
        trigger["event"] = event
    with workspace_scope(workspace):
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=name,
            channel=channel,
            kind=CampaignKind.TRIGGERED,
            status=status,
            trigger=trigger,
            trigger_on=on,
            trigger_segment=segment,
            trigger_event=event,
            delay_seconds=delay_seconds,
            exit_event=exit_event,
            once_per_person=once_per_person,
            reeligible_after="" if reeligible_after_seconds is None else f"{reeligible_after_seconds}s",
            reeligible_after_seconds=reeligible_after_seconds,
            holdout_percent=holdout_percent,
            launched_at=launched_at or timezone.now() - timedelta(hours=1),
            listening_since=listening_since,
        )
        Variant.objects.bulk_create(
            Variant(
                workspace=workspace,
                campaign=campaign,
                position=position,
                name=variant_name,
                weight=weight,
                subject=f"Hello {{{{ person.traits.first_name | default('there') }}}} ({variant_name})",
                body="<p>Your cart: {{ event.properties.sku }}</p>",
                url="http://127.0.0.1:9/hook" if channel == Channel.WEBHOOK else "",
            )
            for position, (variant_name, weight) in enumerate(variants)
        )
        CampaignAudience.objects.bulk_create(
            CampaignAudience(workspace=workspace, campaign=campaign, segment=s, exclude=True) for s in exclude
        )
    return campaign


def static_segment(workspace: Workspace, name: str) -> Segment:
    with workspace_scope(workspace):
        return Segment.objects.create(workspace=workspace, name=name, is_static=True)


def sends(workspace: Workspace, campaign: Campaign | None = None) -> list[Send]:
    """The workspace's sends (of one campaign), in the order they were written."""
    with workspace_scope(workspace):
        found = Send.objects.filter(workspace=workspace)
        if campaign is not None:
            found = found.filter(campaign=campaign)
        return list(found.order_by("id"))
