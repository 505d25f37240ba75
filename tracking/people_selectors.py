"""Reads over people, their events and the quarantine, for the REST API and the UI.

The events table is big and partitioned by month on ``timestamp``: lists here
are ordered by ``(timestamp, id)`` for keyset pagination and never count a
workspace's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped
from tracking.models import Event, Group, Identity, IdentityKind, Person, QuarantinedMessage, QuarantineKind

FIRST_TOUCH_PREFIX = "$initial_"
LIVE_PAGE_SIZE = 50


def _with_identities(people: QuerySet[Person]) -> QuerySet[Person]:
    return people.prefetch_related(
        Prefetch("identities", queryset=Identity.objects.order_by("kind", "created_at", "id"), to_attr="identity_list")
    )


def with_first_anonymous_id(people: QuerySet[Person]) -> QuerySet[Person]:
    """Each person with ``first_anonymous_id``, their earliest anonymous id (``tracking.labels``
    names anonymous people by it): one subquery per row through the identities' person index."""
    first = (
        Identity.objects.filter(
            workspace_id=OuterRef("workspace_id"), person=OuterRef("pk"), kind=IdentityKind.ANONYMOUS_ID
        )
        .order_by("created_at", "id")
        .values("value")[:1]
    )
    return people.annotate(first_anonymous_id=Subquery(first))


def people_list(
    workspace: Workspace,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    search: str | None = None,
) -> QuerySet[Person]:
    """People, most recently seen first, each with ``identity_list``.

    ``search`` matches a user id or anonymous id (contains, case-insensitive),
    any trait value (contains, in the traits' JSON text), or, written
    ``key=value``, one trait exactly.
    """
    people = Person.objects.filter(workspace=workspace)
    if user_id is not None:
        people = people.filter(
            Exists(
                Identity.objects.filter(
                    workspace=workspace, person=OuterRef("pk"), kind=IdentityKind.USER_ID, value=user_id
                )
            )
        )
    if anonymous_id is not None:
        people = people.filter(
            Exists(
                Identity.objects.filter(
                    workspace=workspace, person=OuterRef("pk"), kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id
                )
            )
        )
    if search and search.strip():
        people = _search(workspace, people, search.strip())
    return _with_identities(people.order_by("-last_seen", "-id"))


def _search(workspace: Workspace, people: QuerySet[Person], term: str) -> QuerySet[Person]:
    key, sep, value = term.partition("=")
    if sep and key.strip() and value.strip():
        # key=value: one trait, its text form, case-insensitively (numbers too: "age=42").
        return people.alias(trait_value=KeyTextTransform(key.strip(), "traits")).filter(
            trait_value__iexact=value.strip()
        )
    by_identity = Exists(Identity.objects.filter(workspace=workspace, person=OuterRef("pk"), value__icontains=term))
    return people.alias(traits_text=Cast("traits", TextField())).filter(by_identity | Q(traits_text__icontains=term))


def person_get(workspace: Workspace, person_id: int) -> Person | None:
    return _with_identities(Person.objects.filter(workspace=workspace, pk=person_id)).first()


def person_exists(workspace: Workspace, person_id: int) -> bool:
    return Person.objects.filter(workspace=workspace, pk=person_id).exists()


def person_by_id_value(workspace: Workspace, value: str) -> Person | None:
    """The person known by ``value`` as a user id (preferred) or an anonymous id."""
    identities = Identity.objects.filter(workspace=workspace, value=value).select_related("person").order_by("-kind")
    identity = identities.first()  # "user_id" sorts after "anonymous_id": descending puts it first
    return identity.person if identity is not None else None


def anonymous_ids(person: Person) -> list[str]:
    return [i.value for i in _identities(person) if i.kind == IdentityKind.ANONYMOUS_ID]


def user_ids(person: Person) -> list[str]:
    return [i.value for i in _identities(person) if i.kind == IdentityKind.USER_ID]


def _identities(person: Person) -> list[Identity]:
    cached = getattr(person, "identity_list", None)
    if cached is None:
        cached = list(Identity.objects.filter(workspace_id=person.workspace_id, person=person).order_by("kind", "id"))
        person.identity_list = cached  # type: ignore[attr-defined]
    return cached


def first_touch(person: Person) -> list[tuple[str, Any]]:
    return sorted((k, v) for k, v in person.traits.items() if k.startswith(FIRST_TOUCH_PREFIX))


def plain_traits(person: Person) -> list[tuple[str, Any]]:
    return sorted((k, v) for k, v in person.traits.items() if not k.startswith(FIRST_TOUCH_PREFIX))


def person_groups(workspace: Workspace, person: Person) -> QuerySet[Group]:
    return Group.objects.filter(workspace=workspace, person_links__person=person).order_by("group_id")


def events_list(
    workspace: Workspace,
    *,
    person_id: int | None = None,
    name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Event]:
    """Events newest first, ordered by ``(timestamp, id)`` for keyset pagination.

    ``since`` is inclusive and ``until`` exclusive, as in segment windows.
    """
    events = Event.objects.filter(workspace=workspace)
    if person_id is not None:
        events = events.filter(person_id=person_id)
    if name is not None:
        events = events.filter(name=name)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lt=until)
    return events.order_by("-timestamp", "-id")


def events_before(events: QuerySet[Event], cursor: tuple[datetime, int] | None, limit: int) -> list[Event]:
    """One keyset page of ``events`` (ordered newest first): those strictly older than ``cursor``."""
    if cursor is not None:
        moment, event_id = cursor
        events = events.filter(Q(timestamp__lt=moment) | Q(timestamp=moment, id__lt=event_id))
    return list(events[:limit])


@dataclass(frozen=True)
class LiveFilter:
    name: str | None = None
    person_id: int | None = None
    unknown_person: bool = False


def live_events(
    workspace: Workspace, live: LiveFilter, *, after_id: int | None, limit: int = LIVE_PAGE_SIZE
) -> list[Event]:
    """The newest events, or only those that arrived after ``after_id`` (ids grow with arrival)."""
    if live.unknown_person:
        return []
    events = Event.objects.filter(workspace=workspace)
    if live.name:
        events = events.filter(name=live.name)
    if live.person_id is not None:
        events = events.filter(person_id=live.person_id)
    if after_id is None:
        return list(events.order_by("-timestamp", "-id")[:limit])
    return list(events.filter(id__gt=after_id).order_by("-id")[:limit])


def people_count(workspace: Workspace) -> int:
    """Every person of the workspace, anonymous ones included (what a segment is evaluated over)."""
    return Person.objects.filter(workspace=workspace).count()


def first_event_at(workspace: Workspace) -> datetime | None:
    """When the workspace's earliest event happened: where its data starts. One probe of the
    ``(workspace_id, timestamp)`` index per monthly partition."""
    return Event.objects.filter(workspace=workspace).aggregate(first=Min("timestamp"))["first"]


def workspace_has_events(workspace: Workspace) -> bool:
    return Event.objects.filter(workspace=workspace).exists()


def recent_event_names(workspace: Workspace, *, sample: int = 5000) -> list[str]:
    """Names among the workspace's latest events, for filter suggestions (no scan of its history)."""
    with connection.cursor() as cursor:
        execute_scoped(
            cursor,
            "SELECT DISTINCT name FROM (SELECT name FROM tracking_event WHERE workspace_id = %(workspace_id)s "
            'ORDER BY "timestamp" DESC LIMIT %(sample)s) AS latest ORDER BY name LIMIT 200',
            {"sample": sample},
            workspace_id=workspace.pk,
        )
        return [row[0] for row in cursor.fetchall()]


def quarantine_by_reason(workspace: Workspace, *, kind: str = QuarantineKind.REJECTED) -> list[dict[str, Any]]:
    rows = (
        QuarantinedMessage.objects.filter(workspace=workspace, kind=kind)
        .values("reason")
        .annotate(count=Count("id"), last_seen=Max("received_at"))
        .order_by("-count", "reason")
    )
    return [dict(row) for row in rows]


def quarantine_list(
    workspace: Workspace, *, kind: str = QuarantineKind.REJECTED, reason: str | None = None
) -> QuerySet[QuarantinedMessage]:
    """Rejected messages (or, with ``kind``, those accepted with warnings), newest first."""
    messages = QuarantinedMessage.objects.filter(workspace=workspace, kind=kind)
    if reason is not None:
        messages = messages.filter(reason=reason)
    return messages.order_by("-received_at", "-id")


# --- The dashboard's numbers -------------------------------------------------------------

# Days before today change only when late events arrive with old timestamps: their counts are
# kept this long per workspace, and today's are counted on every read.
EVENTS_PER_DAY_CACHE_SECONDS = 3600


def _events_by_day(workspace: Workspace, start: datetime, end: datetime) -> dict[date, int]:
    rows = (
        Event.objects.filter(workspace=workspace, timestamp__gte=start, timestamp__lt=end)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return dict(rows)


def events_per_day(workspace: Workspace, *, days: int = 30, now: datetime | None = None) -> list[tuple[date, int]]:
    """Events by UTC day of their timestamp, the last ``days`` days up to today, oldest first, zeros included.

    Reads the ``(workspace_id, timestamp)`` index over the window: the earlier days are cached
    (``EVENTS_PER_DAY_CACHE_SECONDS``), today is counted on each read.
    """
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    key = f"tracking:events-per-day:{workspace.pk}:{first.isoformat()}:{days}"
    earlier: dict[date, int] | None = cache.get(key)
    if earlier is None:
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        earlier = _events_by_day(workspace, start, midnight)
        cache.set(key, earlier, EVENTS_PER_DAY_CACHE_SECONDS)
    counts = {**earlier, **_events_by_day(workspace, midnight, midnight + timedelta(days=1))}
    return [(first + timedelta(days=offset), counts.get(first + timedelta(days=offset), 0)) for offset in range(days)]


@dataclass(frozen=True)
class IngestionHealth:
    """Is data arriving, and is some of it refused?"""

    events_last_hour: int  # events whose time is within the last hour
    last_event_at: datetime | None  # the newest event's time
    rejected_last_day: int  # messages refused on their own in the last 24 hours (the quarantine)
    rejected_total: int
    warned_last_day: int  # messages stored with warnings in the last 24 hours


def ingestion_health(workspace: Workspace, *, now: datetime | None = None) -> IngestionHealth:
    now = now or timezone.now()
    events = Event.objects.filter(workspace=workspace)
    quarantine = QuarantinedMessage.objects.filter(workspace=workspace)
    day_ago = now - timedelta(days=1)
    return IngestionHealth(
        events_last_hour=events.filter(timestamp__gte=now - timedelta(hours=1), timestamp__lte=now).count(),
        last_event_at=events.order_by("-timestamp").values_list("timestamp", flat=True).first(),
        rejected_last_day=quarantine.filter(kind=QuarantineKind.REJECTED, received_at__gte=day_ago).count(),
        rejected_total=quarantine.filter(kind=QuarantineKind.REJECTED).count(),
        warned_last_day=quarantine.filter(kind=QuarantineKind.WARNED, received_at__gte=day_ago).count(),
    )
