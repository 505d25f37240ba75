"""Retention: cohorts of people by the period of their first (or any) start event, and how many of each
came back with a return event in each later period.

Periods are UTC calendar days, weeks (from Monday) or months. The table covers the last
``periods`` periods, the current one included (it is still filling). A cohort is:

- ``"cohort": "first"`` (the default): the people whose first start event ever falls in that period;
- ``"cohort": "any"``: the people who did the start event in that period (a person belongs to every
  period they did it in).

``returned[n]`` counts the people of the cohort who did the return event in the *n*-th period after
the cohort's (``returned[0]``: in the cohort's own period, so with the same event for both it is the
cohort's size). ``$any`` is every event. With ``segment``, only that segment's members (as of its
last refresh) count. Each cell is also a segment definition (``cell_definition``): the same
people, evaluated by the segment engine (``docs/insights.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped, execute_session, with_tables
from insights import inputs
from insights.inputs import Errors, InputInvalid
from segmentation.definition import ANY_EVENT
from segmentation.membership import evaluation_settings
from segmentation.models import Membership, Segment
from tracking.models import Event, Person, PersonEventFirst

PERIODS = ("day", "week", "month")
MAX_PERIODS = {"day": 90, "week": 52, "month": 24}
DEFAULT_PERIODS = {"day": 14, "week": 12, "month": 12}
FIELDS = {"start_event", "return_event", "period", "periods", "cohort", "segment"}

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class RetentionSpec:
    start_event: str
    return_event: str
    period: str
    periods: int
    first_time: bool
    segment: int | None
    document: dict[str, Any] = field(compare=False)


def retention_parse(document: Any, *, extra: frozenset[str] = frozenset()) -> RetentionSpec:
    errors = Errors()
    if not isinstance(document, dict):
        raise InputInvalid({"": ["The retention request must be a JSON object."]})
    inputs.unknown_fields(errors, document, FIELDS | extra)
    start = inputs.event_name(errors, document.get("start_event"), "start_event")
    back = inputs.event_name(errors, document.get("return_event"), "return_event")
    period = document.get("period", "week")
    if period not in PERIODS:
        errors.add("period", f"must be one of {', '.join(PERIODS)}, not {period!r}")
        period = None
    periods = document.get("periods", DEFAULT_PERIODS.get(period or "week", 12))
    if period is not None:
        most = MAX_PERIODS[period]
        if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= most:
            errors.add("periods", f"must be a whole number from 1 to {most} for {period}s")
    cohort = document.get("cohort", "first")
    if cohort not in ("first", "any"):
        errors.add("cohort", f'must be "first" (first start event) or "any" (every start event), not {cohort!r}')
    segment = document.get("segment")
    if segment is not None and (isinstance(segment, bool) or not isinstance(segment, int) or segment <= 0):
        errors.add("segment", "must be a segment id, or null")
    errors.raise_any()
    assert start is not None
    assert back is not None
    assert period is not None
    normalized = {
        "start_event": start,
        "return_event": back,
        "period": period,
        "periods": periods,
        "cohort": cohort,
        "segment": segment,
    }
    return RetentionSpec(start, back, period, periods, cohort == "first", segment, normalized)


# --- periods --------------------------------------------------------------------------------


def period_start(moment: datetime, period: str) -> datetime:
    """The UTC start of the period holding ``moment``."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def shift(start: datetime, period: str, n: int) -> datetime:
    """The start of the period ``n`` periods after the one starting at ``start``."""
    if period == "day":
        return start + timedelta(days=n)
    if period == "week":
        return start + timedelta(weeks=n)
    months = start.year * 12 + start.month - 1 + n
    return start.replace(year=months // 12, month=months % 12 + 1)


def cohort_starts(spec: RetentionSpec, now: datetime) -> list[datetime]:
    current = period_start(now, spec.period)
    return [shift(current, spec.period, -k) for k in range(spec.periods - 1, -1, -1)]


# --- computing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    start: date
    size: int
    returned: list[int]

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "size": self.size, "returned": self.returned}


@dataclass(frozen=True)
class RetentionResult:
    period: str
    cohorts: list[Cohort]
    computed_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "cohorts": [cohort.as_json() for cohort in self.cohorts],
            "computed_at": self.computed_at.isoformat(),
        }


def _named(alias: str, event: str, param: str) -> str:
    return "" if event == ANY_EVENT else f" AND {alias}.name = %({param})s"


def _counts(cohorts: str, returns: str) -> str:
    """The cohorts' sizes, then each (cohort, period) count of the people back in that period: the
    return events of the cohorts' people only, each (cohort, person, period) once (the join keeps a
    fraction of the return events before anything is hashed for distinctness)."""
    return (
        f"SELECT c.cohort, NULL::timestamp, count(*) FROM {cohorts} c GROUP BY 1 "
        "UNION ALL SELECT t.cohort, t.period, count(*) FROM (SELECT DISTINCT c.cohort, c.person_id, "
        f"date_trunc(%(unit)s, r.\"timestamp\" AT TIME ZONE 'UTC') AS period FROM {cohorts} c JOIN {returns}) t "
        "WHERE t.period >= t.cohort GROUP BY 1, 2"
    )


def _member(spec: RetentionSpec, person: str) -> str:
    """The join to the filter segment's members (as of its last refresh) of the people in column
    ``person``, or nothing without a segment."""
    if spec.segment is None:
        return ""
    return (
        f" JOIN {{membership}} m ON m.person_id = {person} AND m.workspace_id = %(workspace_id)s"
        " AND m.segment_id = %(segment)s"
    )


def _first_time_sql(spec: RetentionSpec) -> str:
    """Cohorts by the first start event ever: the people whose first start event falls in the table's
    periods, read from tracking's first time per person and event name (``PersonEventFirst``, one
    range of its index), or from the people's first event time for ``$any``; the periods' return
    events of those people joined to them."""
    if spec.start_event == ANY_EVENT:
        firsts = (
            "SELECT p.id AS person_id, date_trunc(%(unit)s, p.first_event_at AT TIME ZONE 'UTC') AS cohort "
            "FROM {person} p" + _member(spec, "p.id") + " WHERE p.workspace_id = %(workspace_id)s "
            "AND p.first_event_at >= %(first)s AND p.first_event_at < %(end)s"
        )
    else:
        firsts = (
            "SELECT f.person_id, date_trunc(%(unit)s, f.first_at AT TIME ZONE 'UTC') AS cohort "
            "FROM {first} f"
            + _member(spec, "f.person_id")
            + " WHERE f.workspace_id = %(workspace_id)s AND f.name = %(start_event)s "
            "AND f.first_at >= %(first)s AND f.first_at < %(end)s"
        )
    # Read twice rather than materialized: a CTE's scan would keep the returns' join out of the
    # parallel workers, and the range of the index costs less than a tenth of that join.
    return with_tables(
        _counts(f"({firsts})", _returns(spec)),
        event=Event,
        person=Person,
        first=PersonEventFirst,
        membership=Membership,
    )


def _returns(spec: RetentionSpec) -> str:
    """The join of the periods' return events to the cohorts (``c``)."""
    return (
        "{event} r ON r.person_id = c.person_id AND r.workspace_id = %(workspace_id)s"
        + _named("r", spec.return_event, "return_event")
        + ' AND r."timestamp" >= %(first)s AND r."timestamp" < %(end)s'
    )


def _any_time_sql(spec: RetentionSpec) -> str:
    """Cohorts by every start event: a person is in the cohort of each period they did it in."""
    cohort_rows = (
        "SELECT e.person_id, date_trunc(%(unit)s, e.\"timestamp\" AT TIME ZONE 'UTC') AS cohort "
        "FROM {event} e WHERE e.workspace_id = %(workspace_id)s"
        + _named("e", spec.start_event, "start_event")
        + ' AND e."timestamp" >= %(first)s AND e."timestamp" < %(end)s GROUP BY 1, 2'
    )
    return with_tables(
        "WITH cohorts AS MATERIALIZED (SELECT c.person_id, c.cohort FROM ("
        + cohort_rows
        + ") c JOIN {person} p ON p.id = c.person_id AND p.workspace_id = %(workspace_id)s"
        + _member(spec, "p.id")
        + ") "
        + _counts("cohorts", _returns(spec)),
        event=Event,
        person=Person,
        membership=Membership,
    )


def retention_compute(
    *,
    workspace: Workspace,
    spec: RetentionSpec,
    now: datetime | None = None,
    progress: Progress | None = None,
    timeout_seconds: float | None = None,
) -> RetentionResult:
    now = now or timezone.now()
    report = progress or (lambda stage, percent: None)
    if spec.segment is not None and not Segment.objects.filter(workspace=workspace, pk=spec.segment).exists():
        raise InputInvalid({"segment": [f"segment {spec.segment} does not exist in this workspace"]})
    starts = cohort_starts(spec, now)
    first, end = starts[0], shift(starts[-1], spec.period, 1)
    params: dict[str, Any] = {
        "unit": spec.period,
        "first": first,
        "end": end,
        "start_event": spec.start_event,
        "return_event": spec.return_event,
        "segment": spec.segment,
    }
    sql = _first_time_sql(spec) if spec.first_time else _any_time_sql(spec)
    timeout = timeout_seconds if timeout_seconds is not None else settings.INSIGHTS_TIMEOUT_SECONDS
    report("Finding cohorts and returns", 20)
    with transaction.atomic(), connection.cursor() as cursor:
        evaluation_settings(timeout)
        # Sets joined by hashing: PostgreSQL cannot estimate how many people a min() over their events
        # keeps, takes a few hundred, and probes the people and their events one by one, several times
        # slower than hashing them (bench/README.md, "Insights").
        execute_session(cursor, "SET LOCAL enable_nestloop = off")
        execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
        rows = cursor.fetchall()
    index = {start.replace(tzinfo=None): k for k, start in enumerate(starts)}
    sizes = [0] * len(starts)
    returned = [[0] * (len(starts) - k) for k in range(len(starts))]
    for cohort, period, count in rows:
        k = index[cohort]
        if period is None:
            sizes[k] = int(count)
        else:
            returned[k][index[period] - k] = int(count)
    report("Done", 100)
    cohorts = [Cohort(start.date(), sizes[k], returned[k]) for k, start in enumerate(starts)]
    return RetentionResult(period=spec.period, cohorts=cohorts, computed_at=now)


# --- a cell as a segment ----------------------------------------------------------------------


def cell_definition(spec: RetentionSpec, cohort_start: date, offset: int | None, *, now: datetime) -> dict[str, Any]:
    """The segment definition of a cohort (``offset`` None) or of one cell of its row: the same people as
    the table counts, with the periods as fixed ISO-8601 windows.

    ``first_performed`` of the start event in the cohort's period (or ``event`` for ``"any"``), and
    ``event`` of the return event in the period ``offset`` periods later; ``segment`` for the filter.
    Raises ``InputInvalid`` for a cohort or an offset that is not in the table at ``now``.
    """
    ordered = cohort_starts(spec, now)
    by_date = {start.date(): k for k, start in enumerate(ordered)}
    if cohort_start not in by_date:
        raise InputInvalid({"cohort_start": [f"{cohort_start.isoformat()} is not the start of a cohort of this table"]})
    k = by_date[cohort_start]
    start, remaining = ordered[k], len(ordered) - 1 - k
    if offset is not None and not 0 <= offset <= remaining:
        raise InputInvalid({"offset": [f"must be a period from 0 to {remaining} for this cohort"]})

    def window(begin: datetime) -> dict[str, str]:
        return {"since": begin.isoformat(), "until": shift(begin, spec.period, 1).isoformat()}

    conditions: list[dict[str, Any]] = [
        {"type": "first_performed" if spec.first_time else "event", "event": spec.start_event, "window": window(start)}
    ]
    if offset is not None:
        conditions.append(
            {"type": "event", "event": spec.return_event, "window": window(shift(start, spec.period, offset))}
        )
    if spec.segment is not None:
        conditions.append({"type": "segment", "segment": spec.segment})
    return conditions[0] if len(conditions) == 1 else {"type": "and", "conditions": conditions}
