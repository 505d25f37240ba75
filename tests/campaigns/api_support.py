"""Helpers of the campaigns API tests: segments to target, bodies, and every campaign row for
"nothing changed" checks."""

from __future__ import annotations

import copy
from typing import Any

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns.models import Campaign, CampaignAudience, CampaignSettings, FrequencyCap, Run, Send, Variant
from segmentation import services as segment_services
from segmentation.models import Segment

EMAIL_BODY: dict[str, Any] = {
    "name": "Win back",
    "channel": "email",
    "audience": {"segments": [], "exclude": []},
    "kind": "broadcast",
    "trigger": None,
    "variants": [
        {
            "name": "A",
            "weight": 50,
            "subject": "Hello {{ person.traits.first_name | default('there') }}",
            "body": "<p>Come back</p>",
        },
        {"name": "B", "weight": 50, "subject": "We miss you", "body": "<p>20 % off</p>"},
    ],
    "holdout_percent": 10,
    "goal": {"event": "Order Completed", "within": "3d"},
    "once_per_person": True,
}


def segment(workspace: Workspace, name: str = "Lapsed") -> Segment:
    with workspace_scope(workspace):
        return segment_services.segment_create(
            workspace=workspace,
            actor=None,
            name=name,
            definition={"type": "trait", "key": "email", "operator": "is_set"},
        )


def body(include: list[int], exclude: list[int] | None = None, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(EMAIL_BODY)
    document["audience"] = {"segments": include, "exclude": exclude or []}
    document.update(changes)
    return document


def campaign_rows(workspace: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    """Every campaign row of the workspace, for "nothing changed" checks."""
    with workspace_scope(workspace):
        return {
            "campaigns": sorted(
                Campaign.objects.values_list(
                    "id", "name", "status", "channel", "kind", "trigger", "holdout_percent", "goal_event", "launched_at"
                )
            ),
            "audience": sorted(CampaignAudience.objects.values_list("id", "campaign_id", "segment_id", "exclude")),
            "variants": sorted(
                Variant.objects.values_list("id", "campaign_id", "position", "name", "weight", "subject", "body", "url")
            ),
            "runs": sorted(Run.objects.values_list("id", "campaign_id", "finished_at")),
            "sends": sorted(Send.objects.values_list("id", "campaign_id", "state")),
            "caps": sorted(FrequencyCap.objects.values_list("id", "channel", "max", "per")),
            "settings": sorted(CampaignSettings.objects.values_list("id", "from_email", "timezone", "quiet_start")),
        }
