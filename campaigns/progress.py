"""How far a campaign's sending has got: counts of its sends by outcome, for the API and the UI."""

from __future__ import annotations

from django.db.models import Count

from accounts.models import Workspace
from campaigns.models import Campaign, Send, SendState

PROGRESS_KEYS = ("total", "sent", "capped", "suppressed", "failed", "cancelled", "pending", "holdout")


def campaign_progress(workspace: Workspace, campaign: Campaign) -> dict[str, int]:
    """``total`` sends written, and how many are ``sent``, ``capped``, ``suppressed``, ``failed``,
    ``cancelled``, ``pending`` (waiting or being sent: pending and claimed) and ``holdout``."""
    counts = dict(
        Send.objects.filter(workspace=workspace, campaign=campaign)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    progress = {key: 0 for key in PROGRESS_KEYS}
    progress["total"] = sum(counts.values())
    for state, n in counts.items():
        key = "pending" if state in (SendState.PENDING, SendState.CLAIMED) else state
        progress[key] = progress.get(key, 0) + n
    return progress
