"""Pages that belong to no single app: the dashboard and the not-yet-built sections."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest

# Sections of the navigation that later work fills in, with what they will hold.
UPCOMING = {
    "segments": ("Segments", "Behavioural segments with live counts, built from conditions or templates."),
    "campaigns": ("Campaigns", "Email, webhook and on-site messages to segments, with caps and A/B splits."),
}


@workspace_required()
def dashboard(request: MemberRequest) -> HttpResponse:
    return render(request, "dashboard.html", {"section": "dashboard"})


def upcoming(section: str):  # type: ignore[no-untyped-def]
    title, summary = UPCOMING[section]

    @workspace_required()
    def view(request: MemberRequest) -> HttpResponse:
        return render(request, "upcoming.html", {"section": section, "title": title, "summary": summary})

    view.__name__ = f"{section}_upcoming"
    return view
