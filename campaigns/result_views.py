"""A campaign's results page, and the segments made from it.

Every member reads results; making a segment of who converted (or did not) is a segment write,
for members and above (``workspace_required(write="member")``, as segments' own pages). While the
campaign is sending, a banner polls the page (``?seen=<state>``, htmx target ``results-poll``) the
way a segment's page polls while it refreshes: the same state answers 204, a new one answers the
live part of the page (progress, numbers, charts), swapped in place.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import reswap, retarget

from accounts.decorators import workspace_required
from accounts.models import Workspace
from accounts.requests import MemberRequest
from campaigns import result_charts, result_selectors, result_services, selectors, stats
from campaigns.models import Campaign, CampaignStatus
from campaigns.progress import campaign_progress

LIVE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
SEGMENT_KINDS = {"converted": True, "not_converted": False}


def _campaign_or_404(workspace: Workspace, pk: int) -> Campaign:
    campaign = selectors.campaign_get(workspace, pk)
    if campaign is None:
        raise Http404("No such campaign in this workspace.")
    return campaign


def _live_state(campaign: Campaign, progress: dict[str, int]) -> str:
    """What the page was drawn from: while it is the same, a poll has nothing new to show."""
    return f"{campaign.status}-" + "-".join(str(progress[key]) for key in sorted(progress))


def _rate(value: float | None) -> str:
    return "\u2013" if value is None else stats.percent(value)


def _lift(value: float | None) -> str:
    if value is None:
        return "\u2013"
    sign = "+" if value >= 0 else "\u2212"
    return f"{sign}{abs(value) * 100:.1f} %"


def results_context(workspace: Workspace, campaign: Campaign) -> dict[str, Any]:
    """Everything the live part of the page shows, from ``campaign_results`` and the progress."""
    progress = campaign_progress(workspace, campaign)
    results = selectors.campaign_results(workspace, campaign)
    over_time = result_selectors.sends_over_time(workspace, campaign)
    groups = [*results.variants, results.holdout] if results.holdout.targeted else list(results.variants)
    rows = [
        {
            "group": group,
            "holdout": group.name == selectors.HOLDOUT,
            "rate": _rate(group.conversion_rate),
            "low": _rate(group.interval[0]) if group.interval else "\u2013",
            "high": _rate(group.interval[1]) if group.interval else "\u2013",
            "lift": _lift(group.lift) if group.name != selectors.HOLDOUT else "",
        }
        for group in groups
    ]
    finished = progress["total"] - progress["pending"]
    return {
        "campaign": campaign,
        "progress": progress,
        "done_percent": round(100 * finished / progress["total"]) if progress["total"] else 0,
        "busy": campaign.status in LIVE or progress["pending"] > 0,
        "live_state": _live_state(campaign, progress),
        "results": results,
        "rows": rows,
        "p_text": stats.p_text(results.p_value) if results.p_value is not None else "",
        "over_time": over_time,
        "time_chart": result_charts.time_chart(over_time.points, over_time.unit),
        "funnel_chart": result_charts.funnel_chart(results.variants),
        "legend": [(i % result_charts.SERIES, group.name) for i, group in enumerate(results.variants)],
        "interval_chart": result_charts.interval_chart(results),
        "interval_chart_narrow": result_charts.interval_chart(results, width=360, row_height=44),
        "reasons": result_selectors.send_outcome_reasons(workspace, campaign),
        "sent_total": sum(group.sent for group in results.variants),
        "converted_total": sum(group.converted for group in results.variants),
    }


@workspace_required()
@require_safe
def campaign_results_page(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    campaign = _campaign_or_404(workspace, pk)
    target = request.htmx.target if request.htmx else None  # type: ignore[attr-defined]
    if target == "results-poll":
        progress = campaign_progress(workspace, campaign)
        if request.GET.get("seen") == _live_state(campaign, progress):
            return HttpResponse(status=204)
    context = {
        "section": "campaigns",
        "can_write": request.membership.can_write,
        **results_context(workspace, campaign),
    }
    if target == "results-poll":
        response = render(request, "campaigns/results/results.html#live", context)
        return reswap(retarget(response, "#results-live"), "outerHTML")
    return render(request, "campaigns/results/results.html", context)


@workspace_required(write="member")
@require_POST
def campaign_results_segment(request: MemberRequest, pk: int) -> HttpResponse:
    """``kind=converted`` or ``kind=not_converted``: a static segment of those recipients, then its page."""
    campaign = _campaign_or_404(request.workspace, pk)
    kind = request.POST.get("kind", "")
    if kind not in SEGMENT_KINDS:
        messages.error(request, "Choose the people who converted or those who did not.")
        return redirect("campaign_results", pk=campaign.pk)
    try:
        segment = result_services.campaign_segment_create(
            campaign=campaign, actor=request.user, converted=SEGMENT_KINDS[kind]
        )
    except ValidationError as error:
        text = " ".join(m for ms in error.message_dict.values() for m in ms) if hasattr(error, "error_dict") else ""
        messages.error(request, f"No segment made. {text or ' '.join(error.messages)}")
        return redirect("campaign_results", pk=campaign.pk)
    messages.success(
        request, f"Segment “{segment.name}” made with {segment.size} {'person' if segment.size == 1 else 'people'}."
    )
    return redirect("segment_detail", pk=segment.pk)
