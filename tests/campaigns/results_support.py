"""A campaign with results to show: an A/B email broadcast with a holdout, its sends written
directly (as the engine leaves them) and the goal events of the people who converted."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns.models import Campaign, CampaignStatus, FrequencyCap, Send, SendState, Variant
from tests.tracking import builders
from tracking.models import Person

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
GOAL = "Order Completed"
_ids = itertools.count(1)


@dataclass
class Planted:
    campaign: Campaign
    variants: list[Variant]
    converted: list[Person] = field(default_factory=list)  # recipients who converted
    not_converted: list[Person] = field(default_factory=list)  # recipients who did not


def campaign(
    workspace: Workspace,
    *,
    name: str = "Spring win-back",
    plan: dict[str, tuple[int, int]] | None = None,
    holdout: tuple[int, int] = (20, 2),
    status: str = CampaignStatus.SENT,
    anonymous_converted: int = 0,
    pending: int = 0,
) -> Planted:
    """``plan``: per variant name, (sent, converted); ``holdout``: (held out, converted). Besides: 3
    capped by a cap, 2 suppressed (no email address), 1 failed, on variant A."""
    plan = plan or {"A": (40, 4), "B": (40, 16)}
    with workspace_scope(workspace):
        made = Campaign.objects.create(
            workspace=workspace,
            name=name,
            channel="email",
            kind="broadcast",
            status=status,
            holdout_percent=20,
            goal_event=GOAL,
            goal_within="1d",
            goal_within_seconds=86400,
        )
        variants = [
            Variant.objects.create(
                workspace=workspace, campaign=made, position=i, name=vname, weight=1, subject="Hi", body="<p>Hi</p>"
            )
            for i, vname in enumerate(plan)
        ]
        cap = FrequencyCap.objects.create(workspace=workspace, channel="email", max=2, per="1d", per_seconds=86400)
    planted = Planted(made, variants)
    for variant, (sent, converting) in zip(variants, plan.values(), strict=True):
        for n in range(sent):
            sent_at = T0 + timedelta(hours=n % 5, minutes=n)
            who = _send(
                workspace, made, variant, SendState.SENT, sent_at=sent_at, opened=n < sent // 2, clicked=n < sent // 4
            )
            if n < converting:
                builders.event(workspace, who, GOAL, at=sent_at + timedelta(hours=2))
                planted.converted.append(who)
            else:
                planted.not_converted.append(who)
    for _ in range(anonymous_converted):
        who = _send(workspace, made, variants[0], SendState.SENT, sent_at=T0, user_id=None)
        builders.event(workspace, who, GOAL, at=T0 + timedelta(hours=1))
    held, converting = holdout
    for n in range(held):
        who = _send(workspace, made, None, SendState.HOLDOUT)
        if n < converting:
            builders.event(workspace, who, GOAL, at=T0 + timedelta(hours=3))
    for _ in range(3):
        _send(workspace, made, variants[0], SendState.CAPPED, cap=cap)
    for _ in range(2):
        _send(workspace, made, variants[0], SendState.SUPPRESSED, reason="no email address")
    _send(workspace, made, variants[0], SendState.FAILED, reason="550 mailbox unavailable")
    for _ in range(pending):
        _send(workspace, made, variants[-1], SendState.PENDING)
    return planted


def _send(
    workspace: Workspace,
    made: Campaign,
    variant: Variant | None,
    state: str,
    *,
    sent_at: datetime | None = None,
    opened: bool = False,
    clicked: bool = False,
    reason: str = "",
    cap: FrequencyCap | None = None,
    user_id: str | None = "",
) -> Person:
    number = next(_ids)
    who = builders.person(
        workspace,
        user_id=f"r{number}" if user_id == "" else user_id,
        traits={"email": f"r{number}@example.com"},
    )
    with workspace_scope(workspace):
        Send.objects.create(
            workspace=workspace,
            campaign=made,
            variant=variant,
            person=who,
            occurrence="run:1",
            channel="email",
            state=state,
            reason=reason,
            cap=cap,
            due_at=T0,
            sent_at=sent_at,
            opened_at=sent_at if opened else None,
            clicked_at=sent_at if clicked else None,
        )
    return who
