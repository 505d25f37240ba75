"""Pages that belong to no single app: the dashboard and the not-yet-built sections."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from segmentation import charts, ui_selectors
from segmentation.playbooks import PLAYBOOKS
from tracking import people_selectors

DASHBOARD_DAYS = 30

# Sections of the navigation that later work fills in, with what they will hold.
UPCOMING = {
    "segments": ("Segments", "Behavioural segments with live counts, built from conditions or templates."),
    "campaigns": ("Campaigns", "Email, webhook and on-site messages to segments, with caps and A/B splits."),
}


@workspace_required()
def dashboard(request: MemberRequest) -> HttpResponse:
    """The workspace at a glance: people, events per day, the largest and fastest-growing segments,
    and whether data is arriving (events in the last hour, the quarantine). A new workspace gets
    the first steps instead of empty charts."""
    workspace = request.workspace
    people = people_selectors.people_count(workspace)
    days = people_selectors.events_per_day(workspace, days=DASHBOARD_DAYS)
    health = people_selectors.ingestion_health(workspace)
    segments = ui_selectors.segment_highlights(workspace)
    largest = [(h, round(h.segment.size / people * 100) if people else None) for h in segments.largest]
    return render(
        request,
        "dashboard.html",
        {
            "section": "dashboard",
            "people": people,
            "events_chart": charts.daily_bars(days),
            "events_today": days[-1][1],
            "events_days": DASHBOARD_DAYS,
            "health": health,
            "segments": segments,
            "largest": largest,
            "growing": [(h, charts.sparkline(h.trend.points)) for h in segments.growing],
            "has_data": people > 0 or health.last_event_at is not None,
            "playbooks": PLAYBOOKS[:3],
            "can_write": request.membership.can_write,
        },
    )


def upcoming(section: str):  # type: ignore[no-untyped-def]
    title, summary = UPCOMING[section]

    @workspace_required()
    def view(request: MemberRequest) -> HttpResponse:
        return render(request, "upcoming.html", {"section": section, "title": title, "summary": summary})

    view.__name__ = f"{section}_upcoming"
    return view
