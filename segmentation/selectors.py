"""Reads of segments: lists, members, the CSV rows of all members, and day-by-day history."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Lower, TruncDate
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from core.names import InvalidName
from segmentation.models import Membership, MembershipChange, MembershipChangeKind, Segment, SegmentSizeSnapshot
from segmentation.tags import tag_key
from tracking.models import Identity, IdentityKind, Person

# "Name (A-Z)" ignores case, as people read a list; the exact name then breaks ties.
SEGMENT_ORDERS: dict[str, tuple[Any, ...]] = {
    "name": (Lower("name"), "name", "id"),
    "-name": (Lower("name").desc(), "-name", "-id"),
    "size": ("size", "id"),
    "-size": ("-size", "-id"),
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
    "refreshed_at": ("refreshed_at", "id"),
    "-refreshed_at": ("-refreshed_at", "-id"),
}
CSV_CHUNK = 2000


def segment_list(
    workspace: Workspace, *, search: str = "", order: str = "name", tag: str | None = None
) -> QuerySet[Segment]:
    """The workspace's segments; ``search`` matches the name or description (case-insensitive) or is
    one of the tags; ``tag``: only the segments carrying it (compared in its stored form).

    ``order`` is one of ``SEGMENT_ORDERS`` (callers check it; unknown values fall back to name).
    """
    segments = Segment.objects.filter(workspace=workspace)
    if search.strip():
        term = search.strip()
        by_tag = _tag_or_none(term)
        matches = Q(name__icontains=term) | Q(description__icontains=term)
        if by_tag:
            matches |= Q(tags__contains=[by_tag])
        segments = segments.filter(matches)
    if tag is not None:
        segments = segments.filter(tags__contains=[_tag_or_none(tag) or ""])
    return segments.order_by(*SEGMENT_ORDERS.get(order, SEGMENT_ORDERS["name"]))


def _tag_or_none(text: str) -> str | None:
    try:
        return tag_key(text)
    except InvalidName:
        return None


def segment_tags(workspace: Workspace) -> list[tuple[str, int]]:
    """Every tag in use with the number of segments carrying it, by name."""
    counts: dict[str, int] = {}
    for tags in Segment.objects.filter(workspace=workspace).exclude(tags=[]).values_list("tags", flat=True):
        for tag in tags:
            counts[tag] = counts.get(tag, 0) + 1
    return sorted(counts.items())


def segment_get(workspace: Workspace, segment_id: int) -> Segment | None:
    return Segment.objects.filter(workspace=workspace, pk=segment_id).first()


def segment_members(
    workspace: Workspace, segment: Segment, *, search: str = "", identities: bool = False
) -> QuerySet[Person]:
    """The segment's current members, most recent entries first, each with ``entered_at``.

    ``search`` matches the user id, email or name trait (case-insensitive). ``identities``:
    each also with ``identity_list`` (their ids, for the people serializer without a query per person).
    """
    memberships = Membership.objects.filter(workspace=workspace, segment=segment, person=OuterRef("pk"))
    people = (
        Person.objects.filter(workspace=workspace)
        .filter(Exists(memberships))
        .annotate(entered_at=Subquery(memberships.values("entered_at")[:1]))
    )
    if search:
        people = people.filter(
            Q(user_id__icontains=search) | Q(traits__email__icontains=search) | Q(traits__name__icontains=search)
        )
    if identities:
        people = people.prefetch_related(
            Prefetch(
                "identities",
                queryset=Identity.objects.filter(workspace=workspace).order_by("kind", "created_at", "id"),
                to_attr="identity_list",
            )
        )
    return people.order_by("-entered_at", "-id")


# Every member's export row; the people's tables are the tracking app's.
_MEMBER_ROWS_SQL = with_tables(
    """
    SELECT p.user_id,
           coalesce((SELECT array_agg(i.value ORDER BY i.created_at, i.id) FROM {identity} i
                     WHERE i.workspace_id = %(workspace_id)s AND i.person_id = p.id AND i.kind = %(kind)s), '{}'),
           m.entered_at,
           p.traits::text
    FROM segmentation_membership m
    JOIN {person} p ON p.id = m.person_id AND p.workspace_id = %(workspace_id)s
    WHERE m.workspace_id = %(workspace_id)s AND m.segment_id = %(segment)s
    ORDER BY m.entered_at, m.person_id
""",
    identity=Identity,
    person=Person,
)


def segment_member_rows(workspace: Workspace, segment: Segment) -> Iterator[tuple[Any, ...]]:
    """(user_id, anonymous ids, entered_at, traits as JSON text) of every member, from a server-side
    cursor: rows arrive in chunks, so a million members stream in flat memory."""
    params = {"kind": IdentityKind.ANONYMOUS_ID.value, "segment": segment.pk}
    with connection.chunked_cursor() as cursor:
        execute_scoped(cursor, _MEMBER_ROWS_SQL, params, workspace_id=workspace.pk)
        while rows := cursor.fetchmany(CSV_CHUNK):
            yield from rows


@dataclass(frozen=True)
class HistoryDay:
    """One UTC day: the size after the day's last refresh (carried over from earlier days when
    none ran; None before the first), and the entries and exits recorded that day."""

    date: date
    size: int | None
    entered: int
    exited: int


def segment_history(
    workspace: Workspace, segment: Segment, *, days: int = 30, now: datetime | None = None
) -> list[HistoryDay]:
    """The last ``days`` UTC days up to today, oldest first, from the segment's creation day on.

    The one history of a segment: the API's ``history`` and the segment page's table and charts
    both read it, so that they show the same numbers.
    """
    today = (now or timezone.now()).date()
    start = max(today - timedelta(days=days - 1), timezone.localdate(segment.created_at))
    snapshots = SegmentSizeSnapshot.objects.filter(workspace=workspace, segment=segment)
    earlier = snapshots.filter(at__date__lt=start).order_by("-at", "-id").values_list("size", flat=True).first()
    last_of_day = dict(
        snapshots.filter(at__date__gte=start, at__date__lte=today)
        .annotate(day=TruncDate("at"))
        .order_by("day", "-at", "-id")
        .distinct("day")
        .values_list("day", "size")
    )
    counts: dict[tuple[date, str], int] = {
        (day, kind): n
        for day, kind, n in MembershipChange.objects.filter(
            workspace=workspace, segment=segment, at__date__gte=start, at__date__lte=today
        )
        .annotate(day=TruncDate("at"))
        .values("day", "kind")
        .annotate(n=Count("id"))
        .values_list("day", "kind", "n")
    }
    rows: list[HistoryDay] = []
    size = earlier
    day = start
    while day <= today:
        size = last_of_day.get(day, size)
        rows.append(
            HistoryDay(
                date=day,
                size=size,
                entered=counts.get((day, MembershipChangeKind.ENTERED), 0),
                exited=counts.get((day, MembershipChangeKind.EXITED), 0),
            )
        )
        day += timedelta(days=1)
    return rows


@dataclass(frozen=True)
class PersonSegment:
    """A segment the person is in now, since ``entered_at``."""

    id: int
    name: str
    entered_at: datetime
    is_static: bool


def person_segments(workspace: Workspace, person_id: int) -> list[PersonSegment]:
    """The segments the person is in now (stored membership), earliest entry first."""
    rows = (
        Membership.objects.filter(workspace=workspace, person_id=person_id, segment__workspace=workspace)
        .order_by("entered_at", "segment_id")
        .values_list("segment_id", "segment__name", "entered_at", "segment__is_static")
    )
    return [PersonSegment(*row) for row in rows]


@dataclass(frozen=True)
class PersonChange:
    """The person entered or left a segment at ``at`` (``name`` None: the segment was deleted since)."""

    segment_id: int
    name: str | None
    kind: str
    at: datetime

    @property
    def entered(self) -> bool:
        return self.kind == MembershipChangeKind.ENTERED


def person_changes(workspace: Workspace, person_id: int, *, limit: int = 10) -> list[PersonChange]:
    """The person's latest entries and exits, newest first."""
    name = Segment.objects.filter(workspace=workspace, pk=OuterRef("segment_id")).values("name")[:1]
    rows = (
        MembershipChange.objects.filter(workspace=workspace, person_id=person_id)
        .annotate(name=Subquery(name))
        .order_by("-at", "-id")
        .values_list("segment_id", "name", "kind", "at")[:limit]
    )
    return [PersonChange(*row) for row in rows]


def people_in_segment(workspace: Workspace, people: QuerySet[Person], segment: Segment) -> QuerySet[Person]:
    """``people`` narrowed to the segment's current members (stored membership)."""
    return people.filter(Exists(Membership.objects.filter(workspace=workspace, segment=segment, person=OuterRef("pk"))))
