"""Pages that belong to no single app: the dashboard."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from segmentation import charts, ui_selectors
from segmentation.playbooks import PLAYBOOKS
from tracking import people_selectors

DASHBOARD_DAYS = 30


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
