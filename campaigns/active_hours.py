"""Send-time optimisation: each person's most active hour of the week, learned from their events.

A person's histogram has 168 buckets, the hours of the week in their timezone (hour 0 is Monday
00:00-01:00; the timezone is their ``timezone`` trait when PostgreSQL knows it, else the
workspace's ``CampaignSettings.timezone``, as ``campaigns.localtime`` and the fan-out say). Each
event adds its weight to the bucket of its hour, a weight that halves every ``half_life``
(``ACTIVE_HOURS_HALF_LIFE_DAYS``, 30 by default) of age, so recent habits win over old ones.

``active_hours_refresh`` is incremental: the workspace's ``WorkspaceActiveHours.through`` says
up to when events (by ``received_at``) were counted, and one statement reads only the events
received since, decays the touched people's stored histograms to now, adds the new weights and
writes back histogram, best hour, confidence (the best bucket's share of the weight) and the
number of events counted. Nothing is read into Python per person. The first refresh of a
workspace counts ``LOOKBACK`` of history; later ones look ``LATE`` back in event time (events
arriving later than that after they happened are not counted: the index on event time bounds
the read).

People with fewer than ``MIN_EVENTS`` events get the workspace's best hour: the most common
best hour among people with enough history (``DEFAULT_HOUR``, Tuesday 10:00, before there is any).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped, with_tables
from campaigns.localtime import zone_named
from campaigns.models import HOURS_OF_WEEK, ActiveHours, CampaignSettings, WorkspaceActiveHours
from tracking.models import Event, Person

MIN_EVENTS = 5
DEFAULT_HOUR = 34  # Tuesday 10:00-11:00
LOOKBACK = timedelta(days=180)
LATE = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def half_life() -> timedelta:
    return timedelta(days=float(getattr(settings, "ACTIVE_HOURS_HALF_LIFE_DAYS", 30)))


def hour_of_week(local: datetime) -> int:
    """The hour of the week of a wall-clock time: Monday 00:00-01:00 is 0, Sunday 23:00 is 167."""
    return local.weekday() * 24 + local.hour


def hour_label(hour: int) -> str:
    """``"Tuesday 10:00-11:00"``."""
    day, at = divmod(hour % HOURS_OF_WEEK, 24)
    return f"{DAYS[day]} {at:02d}:00-{(at + 1) % 24:02d}:00"


# One statement per workspace: the events received since the last refresh, bucketed by the hour of
# the week in the person's zone with their decayed weight; the touched people's stored histograms
# decayed to now and summed with them; the best bucket and its share; written back in place.
_REFRESH = """
WITH fresh AS (
    SELECT e.person_id,
           ((extract(isodow FROM l.at)::int - 1) * 24 + extract(hour FROM l.at)::int) AS hour,
           sum(power(0.5::float8, extract(epoch FROM (%(until)s::timestamptz
               - LEAST(e."timestamp", %(until)s::timestamptz)))::float8 / %(half_life)s::float8)) AS weight,
           count(*) AS n
    FROM {event} e
    JOIN {person} p ON p.workspace_id = %(workspace_id)s AND p.id = e.person_id
    LEFT JOIN (SELECT name FROM pg_timezone_names) AS z ON z.name = p.traits->>'timezone'
    CROSS JOIN LATERAL (SELECT e."timestamp" AT TIME ZONE COALESCE(z.name, %(zone)s) AS at) AS l
    WHERE e.workspace_id = %(workspace_id)s
      AND e."timestamp" >= %(oldest)s AND e.received_at > %(since)s AND e.received_at <= %(until)s
    GROUP BY 1, 2
),
counted AS (SELECT person_id, sum(n)::int AS n FROM fresh GROUP BY 1),
merged AS (
    SELECT c.person_id, h.hour,
           COALESCE(was.histogram[h.hour + 1] * power(0.5::float8, extract(epoch FROM (%(until)s::timestamptz
               - was.as_of))::float8 / %(half_life)s::float8), 0) + COALESCE(f.weight, 0) AS weight
    FROM counted c
    CROSS JOIN generate_series(0, 167) AS h(hour)
    LEFT JOIN {active} was ON was.workspace_id = %(workspace_id)s AND was.person_id = c.person_id
    LEFT JOIN fresh f ON f.person_id = c.person_id AND f.hour = h.hour
),
learned AS (
    SELECT m.person_id, array_agg(m.weight ORDER BY m.hour) AS histogram,
           (array_agg(m.hour ORDER BY m.weight DESC, m.hour))[1] AS best_hour,
           COALESCE(max(m.weight) / NULLIF(sum(m.weight), 0), 0) AS confidence
    FROM merged m GROUP BY m.person_id
)
INSERT INTO {active} (workspace_id, person_id, histogram, best_hour, confidence, events, as_of)
SELECT %(workspace_id)s, r.person_id, r.histogram, r.best_hour, r.confidence, c.n, %(until)s
FROM learned r JOIN counted c ON c.person_id = r.person_id
ON CONFLICT (workspace_id, person_id) DO UPDATE SET
    histogram = EXCLUDED.histogram, best_hour = EXCLUDED.best_hour, confidence = EXCLUDED.confidence,
    events = {active}.events + EXCLUDED.events, as_of = EXCLUDED.as_of
"""

_WORKSPACE_BEST = """
SELECT a.best_hour FROM {active} a
WHERE a.workspace_id = %(workspace_id)s AND a.events >= %(min_events)s
GROUP BY a.best_hour ORDER BY count(*) DESC, a.best_hour LIMIT 1
"""


def workspace_zone(workspace_id: int) -> str:
    """The workspace's timezone name (``CampaignSettings.timezone`` when known, else UTC)."""
    name = CampaignSettings.objects.filter(workspace_id=workspace_id).values_list("timezone", flat=True).first()
    return name if name and zone_named(name) is not None else "UTC"


@dataclass(frozen=True)
class Refreshed:
    people: int  # people whose histogram changed
    best_hour: int  # the workspace's


def active_hours_refresh(*, workspace: Workspace, now: datetime | None = None) -> Refreshed:
    """Count the events received since the last refresh into people's histograms (idempotent: the
    workspace's row is locked and moved forward in the same transaction)."""
    until = now or timezone.now()
    zone = workspace_zone(workspace.pk)
    with transaction.atomic():
        state = WorkspaceActiveHours.objects.select_for_update().filter(workspace=workspace).first()
        if state is None:
            WorkspaceActiveHours.objects.bulk_create(
                [WorkspaceActiveHours(workspace=workspace, through=EPOCH, updated_at=until)], ignore_conflicts=True
            )
            state = WorkspaceActiveHours.objects.select_for_update().get(workspace=workspace)
        first = state.through == EPOCH
        since = state.through
        if since >= until:
            return Refreshed(0, state.best_hour if state.best_hour is not None else DEFAULT_HOUR)
        params = {
            "since": since,
            "until": until,
            "oldest": until - LOOKBACK if first else since - LATE,
            "zone": zone,
            "half_life": half_life().total_seconds(),
        }
        with connection.cursor() as cursor:
            sql = with_tables(_REFRESH, event=Event, person=Person, active=ActiveHours)
            execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
            people = max(cursor.rowcount, 0)
            execute_scoped(
                cursor,
                with_tables(_WORKSPACE_BEST, active=ActiveHours),
                {"min_events": MIN_EVENTS},
                workspace_id=workspace.pk,
            )
            row = cursor.fetchone()
        state.through = until
        state.best_hour = int(row[0]) if row else None
        state.people = ActiveHours.objects.filter(workspace=workspace).count()
        state.updated_at = until
        state.save(update_fields=["through", "best_hour", "people", "updated_at"])
    return Refreshed(people, state.best_hour if state.best_hour is not None else DEFAULT_HOUR)


def workspace_best_hour(workspace_id: int) -> int:
    """The workspace's best hour of the week (people with too little history are sent at it)."""
    best = WorkspaceActiveHours.objects.filter(workspace_id=workspace_id).values_list("best_hour", flat=True).first()
    return best if best is not None else DEFAULT_HOUR


@dataclass(frozen=True)
class PersonActiveHours:
    best_hour: int
    label: str
    confidence: float | None
    events: int
    own: bool  # False: too little history, the workspace's best hour
    workspace_zone: str  # the workspace's timezone name (people without a known one of their own)


def person_active_hours(workspace_id: int, person_id: int) -> PersonActiveHours:
    """When a person is usually active, or the workspace's best hour when they have too little
    history; with the workspace's timezone. One query (a person page's section)."""
    mine = ActiveHours.objects.filter(workspace_id=workspace_id, person_id=person_id)
    found = (
        Workspace.objects.filter(pk=workspace_id)
        .annotate(
            own_hour=Subquery(mine.values("best_hour")[:1]),
            own_confidence=Subquery(mine.values("confidence")[:1]),
            own_events=Subquery(mine.values("events")[:1]),
            workspace_hour=Subquery(
                WorkspaceActiveHours.objects.filter(workspace_id=workspace_id).values("best_hour")[:1]
            ),
            zone=Subquery(CampaignSettings.objects.filter(workspace_id=workspace_id).values("timezone")[:1]),
        )
        .values("own_hour", "own_confidence", "own_events", "workspace_hour", "zone")
        .first()
    )
    row: dict[str, Any] = dict(found) if found else {}
    zone = row.get("zone")
    zone_name = zone if zone and zone_named(zone) is not None else "UTC"
    events = row.get("own_events") or 0
    if row.get("own_hour") is not None and events >= MIN_EVENTS:
        hour = int(row["own_hour"])
        return PersonActiveHours(hour, hour_label(hour), row["own_confidence"], events, True, zone_name)
    best = row.get("workspace_hour")
    best = DEFAULT_HOUR if best is None else int(best)
    return PersonActiveHours(best, hour_label(best), None, events, False, zone_name)
