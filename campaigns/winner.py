"""Automatic winner: test the variants on a share of the audience, wait, send the best to the rest.

A broadcast with ``auto_winner = {"test_percent", "wait", "default_variant"}`` is fanned out in two
phases (``campaigns.fanout``): at its time, the holdout rows and the sends of the test share
(``bucket(campaign, person, "winner_test") < test_percent / 100``), each with its variant as usual;
its run stays open. ``wait`` after that fan-out, the beat's tick (``winners_due``) asks
``winner_decide`` to choose: the results of the test sends (``selectors.campaign_results``: the
goal's conversions per variant, the z-test for two variants, chi-square for more) name the variant
with the best rate when p < 0.05, else the ``default_variant`` wins. The winner is then written,
in one statement, for the rest of the audience as its memberships are at that time (never the
holdout, never the test share: those people have their row of this occurrence already, and the
unique (campaign, person, occurrence) key would refuse a second one). The decision, its numbers
and how many sends it wrote are kept on the campaign (``winner_decision``), answered in the results
and written to the audit log, in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import audit_record
from campaigns import selectors, stats
from campaigns.fanout import REST, sends_write
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Run, Send, Variant
from core.names import name_key
from segmentation.definition import parse_duration

logger = logging.getLogger(__name__)

AUDIT_ACTION = "campaign.winner_chosen"
AUDIT_LABEL = "Cohortly (automatic winner)"


def wait_of(campaign: Campaign) -> timedelta:
    config = campaign.auto_winner if isinstance(campaign.auto_winner, dict) else {}
    parsed = parse_duration(config.get("wait"))
    return timedelta(seconds=parsed.seconds if parsed is not None else 0)


def _open_run(workspace_id: int, campaign_id: int) -> Run | None:
    # unscoped: the caller names the workspace explicitly (the tick reads across workspaces).
    return (
        Run.objects.unscoped()
        .filter(
            workspace_id=workspace_id, campaign_id=campaign_id, fanned_out_at__isnull=False, finished_at__isnull=True
        )
        .order_by("-pk")
        .first()
    )


def decide_at(campaign: Campaign) -> datetime | None:
    """When the winner will be chosen: ``wait`` after the test share's fan-out (None before it)."""
    run = _open_run(campaign.workspace_id, campaign.pk)
    if run is None or run.fanned_out_at is None:
        return None
    return run.fanned_out_at + wait_of(campaign)


def winners_due(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """(workspace id, campaign id) of sending campaigns whose test share waited long enough."""
    now = now or timezone.now()
    # Across workspaces: the beat's tick serves every workspace; each decision runs in its scope.
    candidates = Campaign.objects.unscoped().filter(
        auto_winner__isnull=False,
        winner_decided_at__isnull=True,
        kind=CampaignKind.BROADCAST,
        status=CampaignStatus.SENDING,
    )
    due = []
    for campaign in candidates.order_by("pk"):
        at = decide_at(campaign)
        if at is not None and at <= now:
            due.append((campaign.workspace_id, campaign.pk))
    return due


def _choose(
    variants: list[Variant], results: selectors.CampaignResults, default_name: str
) -> tuple[Variant, bool, str]:
    """The winner, whether it won on the numbers, and why, in words."""
    default = next((v for v in variants if name_key(v.name) == name_key(default_name)), variants[0])
    significant = results.p_value is not None and results.p_value < stats.ALPHA
    if significant:
        rates = [(group.conversion_rate or 0.0, -index) for index, group in enumerate(results.variants)]
        best = variants[max(range(len(variants)), key=lambda index: rates[index])]
        return best, True, f"{best.name} converted best in the test ({results.verdict})"
    why = "no significant difference" if results.p_value is not None else "the test could not tell"
    return default, False, f"{why} in the test ({results.verdict}): the default, {default.name}, is sent"


def winner_decide(*, workspace: Workspace, campaign_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """Choose the winner of a campaign whose wait is over and send it to the rest of the audience.

    Idempotent: the campaign row is locked and the decision written with the sends, so a second
    call finds it decided and does nothing (None). None as well when the campaign is not sending
    (paused: decided after it resumes) or its wait is not over."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update()
            .filter(workspace=workspace, pk=campaign_id, winner_decided_at__isnull=True, auto_winner__isnull=False)
            .first()
        )
        if campaign is None or campaign.status != CampaignStatus.SENDING:
            return None
        run = _open_run(workspace.pk, campaign.pk)
        if run is None or run.fanned_out_at is None or run.fanned_out_at + wait_of(campaign) > now:
            return None
        variants = list(Variant.objects.filter(workspace=workspace, campaign=campaign).order_by("position"))
        if not variants:
            return None
        results = selectors.campaign_results(workspace, campaign)
        config = campaign.auto_winner if isinstance(campaign.auto_winner, dict) else {}
        winner, significant, reason = _choose(variants, results, str(config.get("default_variant", "")))
        written = sends_write(
            workspace=workspace, campaign=campaign, run=run, variants=[winner], now=now, phase=REST, start=now
        )
        run.total = Send.objects.filter(workspace=workspace, campaign=campaign, occurrence=f"run:{run.pk}").count()
        run.save(update_fields=["total"])
        decision = {
            "winner": winner.name,
            "significant": significant,
            "reason": reason,
            "test": results.test,
            "p_value": results.p_value,
            "verdict": results.verdict,
            "variants": [
                {
                    "name": group.name,
                    "sent": group.sent,
                    "converted": group.converted,
                    "conversion_rate": group.conversion_rate,
                }
                for group in results.variants
            ],
            "remaining_sends": written,
            "decided_at": now.isoformat().replace("+00:00", "Z"),
        }
        campaign.winner_decision = decision
        campaign.winner_decided_at = now
        campaign.save(update_fields=["winner_decision", "winner_decided_at", "updated_at"])
        entry = audit_record(
            workspace=workspace, actor=None, action=AUDIT_ACTION, target=campaign.name, details=decision
        )
        # Nobody acted: the engine did, as the campaign's settings told it to.
        entry.actor_label = AUDIT_LABEL
        entry.save(update_fields=["actor_label"])
    logger.info("Campaign %s of workspace %s: %s (%s sends to the rest)", campaign.pk, workspace.pk, reason, written)
    return decision


def auto_winner_document(campaign: Campaign) -> dict[str, Any] | None:
    """The results' ``auto_winner`` block: the settings, the state and the decision with its numbers."""
    if not isinstance(campaign.auto_winner, dict):
        return None
    at = decide_at(campaign) if campaign.winner_decided_at is None else None
    return {
        **campaign.auto_winner,
        "state": "decided" if campaign.winner_decided_at is not None else "testing",
        "decides_at": at.isoformat().replace("+00:00", "Z") if at is not None else None,
        "decision": campaign.winner_decision,
    }
