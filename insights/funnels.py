"""Funnels: how many people went through 2 to 8 steps in order, within a time, and where they dropped off.

A funnel is a ``sequence`` condition read step by step. Its runs are the sequence's own
(the compiler's construction; ``segmentation.evaluation.sequence_furthest_runs`` hands over each
person's furthest one): a run starts at each occurrence of step 1 inside ``since``/``until``, each
later step is matched at the earliest instant it can be, no later than ``within`` after step 1. So:

- the count of step *k* is the number of people with at least one run that reached step *k*;
- the last step's count is exactly the number of members of the completed ``sequence``;
- per person, the run that got furthest (the earliest of those, on a tie) gives the times between
  steps, whose median is shown (``docs/insights.md``).

Computed in PostgreSQL: each person's furthest run into a temporary table, then one aggregate
(grouped by a trait's value or by segment membership for a breakdown). Every statement is held
to the workspace (the compiler's own guards, ``accounts.sql``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import execute_scoped, execute_session, with_tables
from insights import inputs
from insights.inputs import Breakdown, Errors, InputInvalid, SegmentBreakdown, TraitBreakdown
from segmentation.definition import Duration, Sequence, Step, Window
from segmentation.evaluation import sequence_furthest_runs
from segmentation.membership import evaluation_settings
from segmentation.models import Membership, Segment
from tracking.models import Person

MIN_STEPS = 2
MAX_STEPS = 8
# A stored ``sequence`` holds at most this many steps (segment-definition.md): a drop-off segment of
# a longer funnel keeps its first steps, which give the same people (see ``dropoff_definition``).
SEGMENT_MAX_STEPS = 5
DEFAULT_WITHIN = "7d"
DEFAULT_SINCE = "30d"
# Values of a trait breakdown shown on their own; the rest are summed as "Other values".
BREAKDOWN_TOP_VALUES = 10

Progress = Callable[[str, int], None]

_BEST = "insights_funnel_best"


@dataclass(frozen=True)
class FunnelSpec:
    steps: tuple[Step, ...]
    within: Duration
    window: Window
    breakdown: Breakdown | None
    # The request as given (validated), to build a segment from it and to show it back.
    document: dict[str, Any] = field(compare=False)

    @property
    def sequence(self) -> Sequence:
        return Sequence(steps=self.steps, within=self.within, window=self.window, completed=True)


FUNNEL_FIELDS = {"steps", "within", "since", "until", "breakdown"}


def funnel_parse(document: Any, *, now: datetime, extra: frozenset[str] = frozenset()) -> FunnelSpec:
    """The funnel of a request body, or ``InputInvalid`` naming every problem by its path.

    ``within`` defaults to 7 days and ``since`` to 30 days; ``since: null`` reaches back to the
    first event, ``until`` (default null) up to now. ``extra`` names fields another caller reads.
    """
    errors = Errors()
    if not isinstance(document, dict):
        raise InputInvalid({"": ["The funnel must be a JSON object with steps."]})
    inputs.unknown_fields(errors, document, FUNNEL_FIELDS | extra)
    raw_steps = document.get("steps")
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not MIN_STEPS <= len(raw_steps) <= MAX_STEPS:
        errors.add("steps", f"must be a list of {MIN_STEPS} to {MAX_STEPS} steps")
    else:
        for index, raw in enumerate(raw_steps):
            step = inputs.event_step(errors, raw, inputs.join("steps", index), now=now)
            if step is not None:
                steps.append(step)
    within_text = document.get("within", DEFAULT_WITHIN)
    within = inputs.duration(errors, within_text, "within")
    since = document.get("since", DEFAULT_SINCE)
    until = document.get("until")
    window = inputs.window(errors, since, until, now=now)
    breakdown = inputs.breakdown(errors, document.get("breakdown"))
    errors.raise_any()
    assert within is not None
    assert window is not None
    normalized = {
        "steps": [
            {"event": raw["event"], **({"filters": raw["filters"]} if raw.get("filters") else {})}
            for raw in raw_steps  # type: ignore[union-attr]
        ],
        "within": within_text,
        "since": since,
        "until": until,
        "breakdown": inputs.as_document(breakdown),
    }
    return FunnelSpec(steps=tuple(steps), within=within, window=window, breakdown=breakdown, document=normalized)


@dataclass(frozen=True)
class StepResult:
    event: str
    count: int
    conversion: float | None  # of the people who did step 1
    conversion_from_previous: float | None
    median_seconds_from_previous: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "count": self.count,
            "conversion": self.conversion,
            "conversion_from_previous": self.conversion_from_previous,
            "median_seconds_from_previous": self.median_seconds_from_previous,
        }


@dataclass(frozen=True)
class BreakdownGroup:
    kind: str  # "value", "none" (the trait is not set), "other" (values past the top), "segment", "no_segment"
    value: Any  # the trait's value (its text), or the segment id; None for "none", "other" and "no_segment"
    label: str
    steps: list[StepResult]

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "label": self.label,
            "steps": [step.as_json() for step in self.steps],
        }


@dataclass(frozen=True)
class FunnelResult:
    steps: list[StepResult]
    breakdown: list[BreakdownGroup] | None
    since: datetime | None
    until: datetime
    computed_at: datetime

    @property
    def conversion(self) -> float | None:
        return self.steps[-1].conversion

    def as_json(self) -> dict[str, Any]:
        return {
            "steps": [step.as_json() for step in self.steps],
            "conversion": self.conversion,
            "breakdown": None if self.breakdown is None else [group.as_json() for group in self.breakdown],
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat(),
            "computed_at": self.computed_at.isoformat(),
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _steps(spec: FunnelSpec, counts: list[int], medians: list[float | None]) -> list[StepResult]:
    results = []
    for k, step in enumerate(spec.steps):
        median = medians[k]
        results.append(
            StepResult(
                event=step.event,
                count=counts[k],
                conversion=_ratio(counts[k], counts[0]),
                conversion_from_previous=_ratio(counts[k], counts[k - 1]) if k else _ratio(counts[0], counts[0]),
                median_seconds_from_previous=None if k == 0 or median is None else round(float(median), 3),
            )
        )
    return results


def _aggregates(n: int) -> str:
    """Per group: how many reached each step, and the median seconds from the step before."""
    counts = [f"count(*) FILTER (WHERE b.reached >= {k + 1})" for k in range(n)]
    medians = ["NULL::float8"] + [
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.t{k} - b.t{k - 1})) "
        f"FILTER (WHERE b.reached >= {k + 1})"
        for k in range(1, n)
    ]
    return ", ".join(counts + medians)


def _key_chain(column: str, key: str) -> tuple[str, dict[str, str]]:
    """The text form of a dotted key of a JSON column: a chain of ``->`` (objects only, as in a trait
    condition) ending in ``->>``, its parts bound as parameters."""
    parts = key.split(".")
    params = {f"k{i}": part for i, part in enumerate(parts)}
    chain = "".join(f" -> %(k{i})s::text" for i in range(len(parts) - 1))
    return f"({column}{chain} ->> %(k{len(parts) - 1})s::text)", params


def funnel_compute(
    *,
    workspace: Workspace,
    spec: FunnelSpec,
    now: datetime | None = None,
    progress: Progress | None = None,
    timeout_seconds: float | None = None,
) -> FunnelResult:
    """Count the funnel in the workspace at ``now``; raises ``InputInvalid`` for a breakdown naming a
    segment that is not the workspace's, and lets a statement timeout through (``is_timeout``)."""
    now = now or timezone.now()
    report = progress or (lambda stage, percent: None)
    n = len(spec.steps)
    segment_names: dict[int, str] = {}
    if isinstance(spec.breakdown, SegmentBreakdown):
        segment_names = dict(
            Segment.objects.filter(workspace=workspace, pk__in=spec.breakdown.segments).values_list("pk", "name")
        )
        missing = [pk for pk in spec.breakdown.segments if pk not in segment_names]
        if missing:
            raise InputInvalid({"breakdown.segments": [f"segment {missing[0]} does not exist in this workspace"]})
    timeout = timeout_seconds if timeout_seconds is not None else settings.INSIGHTS_TIMEOUT_SECONDS
    with transaction.atomic(), connection.cursor() as cursor:
        evaluation_settings(timeout)
        # ON COMMIT DROP ends it with the transaction; inside a caller's transaction, the drop does.
        execute_session(cursor, f"DROP TABLE IF EXISTS {_BEST}")
        report("Following every run of step 1", 10)
        # Each person's furthest run (the earliest of those): fixed text around the compiled
        # statement, which holds the workspace's guards and its people only.
        reached = " + ".join(["1"] + [f"(r.t{k} IS NOT NULL)::int" for k in range(1, n)])
        times = ", ".join(f"r.t{k}" for k in range(n))
        sequence_furthest_runs(spec.sequence, workspace_id=workspace.pk, now=now).execute(
            cursor,
            wrap=f"CREATE TEMP TABLE {_BEST} ON COMMIT DROP AS "
            f"SELECT r.person_id, {reached} AS reached, {times} FROM ({{members}}) r",
        )
        report("Counting each step", 85)
        execute_session(cursor, f"SELECT {_aggregates(n)} FROM {_BEST} b")
        row = cursor.fetchone()
        total = _steps(spec, [int(v) for v in row[:n]], list(row[n:]))
        groups = None
        if isinstance(spec.breakdown, TraitBreakdown):
            groups = _trait_groups(cursor, workspace, spec, spec.breakdown.key)
        elif isinstance(spec.breakdown, SegmentBreakdown):
            groups = _segment_groups(cursor, workspace, spec, spec.breakdown.segments, segment_names)
        execute_session(cursor, f"DROP TABLE {_BEST}")
    start, end = spec.window.bounds(now)
    report("Done", 100)
    return FunnelResult(steps=total, breakdown=groups, since=start, until=end or now, computed_at=now)


def _trait_groups(cursor: Any, workspace: Workspace, spec: FunnelSpec, key: str) -> list[BreakdownGroup]:
    n = len(spec.steps)
    value, params = _key_chain("p.traits", key)
    join = f"FROM {_BEST} b JOIN {{person}} p ON p.id = b.person_id AND p.workspace_id = %(workspace_id)s"
    execute_scoped(
        cursor,
        with_tables(
            f"SELECT {value} AS v FROM {_BEST} b JOIN {{person}} p ON p.id = b.person_id "
            f"AND p.workspace_id = %(workspace_id)s WHERE {value} IS NOT NULL "
            f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %(top)s",
            person=Person,
        ),
        {**params, "top": BREAKDOWN_TOP_VALUES},
        workspace_id=workspace.pk,
    )
    top = [v for (v,) in cursor.fetchall()]
    kind = f"CASE WHEN {value} IS NULL THEN 'none' WHEN {value} = ANY(%(values)s) THEN 'value' ELSE 'other' END"
    execute_scoped(
        cursor,
        with_tables(
            f"SELECT {kind} AS kind, CASE WHEN {value} = ANY(%(values)s) THEN {value} END AS value, "
            f"{_aggregates(n)} {join} GROUP BY 1, 2",
            person=Person,
        ),
        {**params, "values": top},
        workspace_id=workspace.pk,
    )
    rows = {(kind, value): row for kind, value, *row in cursor.fetchall()}
    groups = []
    for text in top:
        row = rows.get(("value", text))
        if row is not None:
            groups.append(BreakdownGroup("value", text, text, _steps(spec, [int(v) for v in row[:n]], row[n:])))
    for kind, label in (("other", "Other values"), ("none", "(not set)")):
        row = rows.get((kind, None))
        if row is not None:
            groups.append(BreakdownGroup(kind, None, label, _steps(spec, [int(v) for v in row[:n]], row[n:])))
    return groups


def _segment_groups(
    cursor: Any, workspace: Workspace, spec: FunnelSpec, segments: tuple[int, ...], names: Mapping[int, str]
) -> list[BreakdownGroup]:
    """One group per segment (its members as of its last refresh; a person in two is in both), and the
    people in none of them."""
    n = len(spec.steps)
    execute_scoped(
        cursor,
        with_tables(
            f"SELECT m.segment_id, {_aggregates(n)} FROM {_BEST} b LEFT JOIN {{membership}} m "
            f"ON m.person_id = b.person_id AND m.workspace_id = %(workspace_id)s AND m.segment_id = ANY(%(segments)s) "
            f"GROUP BY 1",
            membership=Membership,
        ),
        {"segments": list(segments)},
        workspace_id=workspace.pk,
    )
    rows = {segment_id: row for segment_id, *row in cursor.fetchall()}
    empty = [0] * n + [None] * n
    groups = []
    for pk in segments:
        row = rows.get(pk, empty)
        groups.append(BreakdownGroup("segment", pk, names[pk], _steps(spec, [int(v) for v in row[:n]], row[n:])))
    row = rows.get(None, empty)
    groups.append(
        BreakdownGroup("no_segment", None, "In none of them", _steps(spec, [int(v) for v in row[:n]], row[n:]))
    )
    return groups


# --- Drop-off segments --------------------------------------------------------------------


def dropoff_definition(spec: FunnelSpec, dropped_after: int) -> dict[str, Any]:
    """The definition of "people who dropped off after step ``dropped_after``": the funnel's sequence
    with ``completed: false`` and ``dropped_after``.

    A stored sequence holds at most 5 steps. Steps past ``dropped_after + 1`` play no part in a drop-off
    (the run must reach step k and miss step k+1), so a longer funnel keeps its first 5 steps and
    the people are the same; a drop-off after step 5 or later cannot be stored (``InputInvalid``).
    """
    n = len(spec.steps)
    if not 1 <= dropped_after < n:
        raise InputInvalid(
            {"dropped_after": [f"must be a step from 1 to {n - 1} (people who reached it, not the next)"]}
        )
    if dropped_after >= SEGMENT_MAX_STEPS:
        raise InputInvalid(
            {
                "dropped_after": [
                    f"a segment's sequence holds at most {SEGMENT_MAX_STEPS} steps: "
                    f"a drop-off after step {SEGMENT_MAX_STEPS} or later cannot be saved as a segment"
                ]
            }
        )
    document = spec.document
    window = {key: document[key] for key in ("since", "until") if document.get(key) is not None}
    definition: dict[str, Any] = {
        "type": "sequence",
        "steps": document["steps"][:SEGMENT_MAX_STEPS],
        "within": document["within"],
        "completed": False,
        "dropped_after": dropped_after,
    }
    if window:
        definition["window"] = window
    return definition
