"""The events catalogue page (Live events -> Catalogue): every event the workspace received or planned,
with its volume, when it was last seen and its tracking-plan status."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from segmentation.catalogue import selectors

PAGE_SIZE = 100
SORTS = [("volume", "Most events"), ("violations", "Most violations"), ("name", "Name (A\u2013Z)")]
STATUSES = [
    ("", "Any status"),
    ("planned", "Planned"),
    ("unplanned", "Unplanned"),
    ("violations", "With violations"),
    ("not_seen", "Planned, never seen"),
]


@require_GET
@workspace_required()
def event_catalogue(request: MemberRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    status = status if status in selectors.STATUS_FILTERS else ""
    sort = request.GET.get("sort", "volume")
    sort = sort if sort in dict(SORTS) else "volume"
    catalogue = selectors.event_catalogue(request.workspace, q=q, status=status, sort=sort)
    page = Paginator(catalogue.rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({key: value for key, value in (("q", q), ("status", status), ("sort", sort)) if value})
    return render(
        request,
        "segmentation/event_catalogue.html",
        {
            "section": "live_events",
            "events_tab": "catalogue",
            "catalogue": catalogue,
            "page": page,
            "q": q,
            "status": status,
            "sort": sort,
            "sorts": SORTS,
            "statuses": STATUSES,
            "query": query,
            "filtered": bool(q or status),
        },
    )
