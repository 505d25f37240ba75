"""Reads the segment pages need beyond the engine's selectors (``segmentation.selectors``: members,
history): trends for the list, overlap between segments, the webhooks listening to a segment,
the segments referring to one.

Every read takes the workspace and filters on it; the raw SQL of the overlap goes through
``accounts.sql.execute_scoped``, which binds the workspace and checks its guard.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped
from segmentation.definition import referenced_segments
from segmentation.models import (
    Segment,
    SegmentSizeSnapshot,
    WebhookSegment,
    WebhookSubscription,
)

TREND_DAYS = 30
CHANGE_DAYS = 7
MAX_OVERLAP = 8


@dataclass(frozen=True)
class Trend:
    points: list[int]  # size at the end of each known day of the last TREND_DAYS, oldest first
    change: int | None  # size now minus size CHANGE_DAYS ago (None: not known that far back)


def _daily_sizes(snapshots: list[tuple[datetime, int]], days: list[date]) -> list[int | None]:
    """The last known size at the end of each day (carried forward; None before the first snapshot)."""
    by_day: dict[date, int] = {}
    for at, size in snapshots:  # ordered by time
        by_day[at.date()] = size
    points: list[int | None] = []
    last: int | None = None
    earlier = [size for at, size in snapshots if at.date() < days[0]]
    if earlier:
        last = earlier[-1]
    for day in days:
        last = by_day.get(day, last)
        points.append(last)
    return points


def _day_list(today: date, days: int) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def segment_trends(workspace: Workspace, segments: list[Segment], *, now: datetime | None = None) -> dict[int, Trend]:
    """Sparkline points and the 7-day change of each segment, in one query."""
    now = now or timezone.now()
    days = _day_list(now.date(), TREND_DAYS)
    ids = [segment.pk for segment in segments]
    if not ids:
        return {}
    rows = (
        SegmentSizeSnapshot.objects.filter(
            workspace=workspace, segment_id__in=ids, at__gte=now - timedelta(days=TREND_DAYS + CHANGE_DAYS)
        )
        .order_by("segment_id", "at")
        .values_list("segment_id", "at", "size")
    )
    series: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for segment_id, at, size in rows:
        series[segment_id].append((at, size))
    trends = {}
    for segment in segments:
        snapshots = series.get(segment.pk, [])
        points = _daily_sizes(snapshots, days)
        before = [size for at, size in snapshots if at <= now - timedelta(days=CHANGE_DAYS)]
        change = segment.size - before[-1] if before else None
        known = [p for p in points if p is not None] or [segment.size]
        # A segment known for one day only draws flat rather than not at all.
        trends[segment.pk] = Trend(points=known if len(known) > 1 else known * 2, change=change)
    return trends


def segment_webhooks(workspace: Workspace, segment: Segment) -> list[WebhookSubscription]:
    """Subscriptions told about this segment's entries and exits: those for all segments and those naming it."""
    chosen = WebhookSegment.objects.filter(workspace=workspace, segment=segment).values("subscription_id")
    return list(
        WebhookSubscription.objects.filter(workspace=workspace)
        .filter(Q(all_segments=True) | Q(pk__in=chosen))
        .order_by("created_at")
    )


def segment_referrers(workspace: Workspace, segment: Segment) -> list[Segment]:
    """Segments whose definition uses this one (which makes deleting it refused)."""
    others = Segment.objects.filter(workspace=workspace).exclude(pk=segment.pk).only("pk", "name", "definition")
    return [other for other in others if segment.pk in referenced_segments(other.definition)]


_OVERLAP = """
SELECT a.segment_id, b.segment_id, count(*)
FROM segmentation_membership a
JOIN segmentation_membership b ON b.workspace_id = %(workspace_id)s AND b.person_id = a.person_id
    AND b.segment_id > a.segment_id
WHERE a.workspace_id = %(workspace_id)s AND a.segment_id = ANY(%(ids)s) AND b.segment_id = ANY(%(ids)s)
GROUP BY a.segment_id, b.segment_id
"""


@dataclass(frozen=True)
class OverlapCell:
    """Row segment A, column segment B: the people in both, out of A's (the row's) people."""

    both: int
    row_size: int

    @property
    def share(self) -> float | None:
        """The share of the row's people also in the column's segment; None when the row is empty."""
        return self.both / self.row_size if self.row_size else None

    @property
    def percent(self) -> str:
        """The share as a whole percent; never 0 for some people nor 100 for not all of them."""
        share = self.share
        if share is None:
            return "—"
        rounded = round(share * 100)
        if rounded == 0 and self.both:
            return "<1%"
        if rounded == 100 and self.both < self.row_size:
            return ">99%"
        return f"{rounded}%"

    @property
    def row_only(self) -> int:
        """The row's people not in the column's segment."""
        return self.row_size - self.both


def segment_overlap(workspace: Workspace, segments: list[Segment]) -> dict[tuple[int, int], OverlapCell]:
    """Pairwise overlap of stored memberships (each segment's last refresh), keyed (row, column)."""
    ids = [segment.pk for segment in segments]
    sizes = {segment.pk: segment.size for segment in segments}
    with connection.cursor() as cursor:
        execute_scoped(cursor, _OVERLAP, {"ids": ids}, workspace_id=workspace.pk)
        both = {(a, b): int(n) for a, b, n in cursor.fetchall()}
    cells: dict[tuple[int, int], OverlapCell] = {}
    for a in ids:
        for b in ids:
            n = sizes[a] if a == b else both.get((min(a, b), max(a, b)), 0)
            cells[(a, b)] = OverlapCell(n, sizes[a])
    return cells


DASHBOARD_SEGMENTS = 5


@dataclass(frozen=True)
class SegmentHighlight:
    segment: Segment
    trend: Trend

    @property
    def growth_percent(self) -> int | None:
        """The 7-day gain against the size then, rounded; None when it was empty then (or is unknown)."""
        change = self.trend.change
        before = self.segment.size - change if change is not None else 0
        return round(change / before * 100) if change is not None and before > 0 else None


@dataclass(frozen=True)
class SegmentHighlights:
    """The dashboard's view of segments: how many, the largest, and those that grew most in 7 days."""

    count: int
    largest: list[SegmentHighlight]
    growing: list[SegmentHighlight]


def segment_highlights(workspace: Workspace, *, now: datetime | None = None) -> SegmentHighlights:
    """Largest by size; fastest-growing by people gained against the size known 7 days ago (only gains)."""
    segments = list(Segment.objects.filter(workspace=workspace).order_by("-size", "name", "id"))
    trends = segment_trends(workspace, segments, now=now)
    highlights = [SegmentHighlight(segment, trends[segment.pk]) for segment in segments]
    growing = sorted(
        (h for h in highlights if h.trend.change is not None and h.trend.change > 0),
        key=lambda h: (-(h.trend.change or 0), h.segment.name, h.segment.pk),
    )
    return SegmentHighlights(
        count=len(segments),
        largest=[h for h in highlights if h.segment.size > 0][:DASHBOARD_SEGMENTS],
        growing=growing[:DASHBOARD_SEGMENTS],
    )
