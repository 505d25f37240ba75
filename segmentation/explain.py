"""Why a person is (or is not) in a segment: each condition of its definition, evaluated for them.

Trust in a count comes from seeing it decided for someone one knows. Each node
of the definition is evaluated by the engine itself, restricted to the one
person (``compile_members(..., people=[id])``, the real-time path), all in one
statement; each condition of events also gets its numbers read by the
compiler's own expressions (``compile_measure``): how many matching events in
the window, the aggregate's value, the first or last time, the periods hit, the
runs of a sequence and how far each got. Trait values come from the person's
traits, segment references from the stored membership the engine reads. So the
page says what the refresh would decide now, and why, in the same terms.

What is stored (``Membership``) is the last refresh's answer; the evaluation is
now's. They differ between a change and the next refresh (or as time passes a
window's edge), and the page says so rather than hiding one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from segmentation.compiler import CompiledQuery, compile_measure, compile_members
from segmentation.definition import (
    ANY_EVENT,
    Aggregate,
    And,
    Comparison,
    DefinitionInvalid,
    EventCount,
    Node,
    Not,
    Or,
    Performed,
    Regular,
    SegmentRef,
    Sequence,
    Trait,
    parse,
    referenced_segments,
)
from segmentation.membership import evaluation_settings, is_timeout
from segmentation.models import Membership, Segment
from segmentation.sentence import Part, duration_words, sentence, window_words
from tracking.models import Person

GROUP_WORDS = {
    "and": "All of these",
    "or": "At least one of these",
    "none": "None of these",
    "not all": "Not all of these",
}


@dataclass(frozen=True)
class Explained:
    """One condition for one person: whether it holds now, what it says, and the values that decided.

    ``group`` is "" for a condition, else how its ``children`` combine ("and", "or", "none", "not all").
    ``measure``: the rows of ``compile_measure`` behind ``detail`` (for a negation, its condition's).
    """

    path: str
    holds: bool
    clause: list[Part]
    detail: str = ""
    group: str = ""
    children: tuple[Explained, ...] = ()
    measure: tuple[tuple[Any, ...], ...] = ()

    @property
    def group_words(self) -> str:
        return GROUP_WORDS.get(self.group, "")


@dataclass(frozen=True)
class Explanation:
    segment: Segment
    person: Person
    entered_at: datetime | None  # stored membership: since when, or None when not a member
    holds: bool | None = None  # the definition evaluated now; None for a static segment or a problem
    tree: Explained | None = None
    problem: str = ""
    evaluated_at: datetime | None = None

    @property
    def member(self) -> bool:
        return self.entered_at is not None

    @property
    def disagrees(self) -> bool:
        """The stored membership and now's evaluation differ (the next refresh will follow)."""
        return self.holds is not None and self.holds != self.member


class _Evaluation:
    """Each node's truth for the person and each condition's numbers, read in one transaction."""

    def __init__(self, workspace: Workspace, person: Person, tree: Node, now: datetime) -> None:
        self.workspace = workspace
        self.person = person
        self.now = now
        self.nodes = list(_nodes(tree))
        self.holds: dict[int, bool] = {}
        self.measures: dict[int, list[tuple[Any, ...]]] = {}
        refs = referenced_segments(tree)
        self.memberships = dict(
            Membership.objects.filter(workspace=workspace, person=person, segment_id__in=refs).values_list(
                "segment_id", "entered_at"
            )
        )
        self.names = dict(Segment.objects.filter(workspace=workspace, pk__in=refs).values_list("pk", "name"))

    def run(self) -> None:
        queries = [
            compile_members(node, workspace_id=self.workspace.pk, now=self.now, people=[self.person.pk])
            for node in self.nodes
        ]
        # One statement: is the person in each node's set?
        truths = CompiledQuery(
            sql="SELECT " + ", ".join(f"EXISTS ({query.sql})" for query in queries),
            params=[value for query in queries for value in query.params],
        )
        with transaction.atomic():
            evaluation_settings(settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS)
            with connection.cursor() as cursor:
                truths.execute(cursor)
                row = cursor.fetchone()
                self.holds = {id(node): bool(value) for node, value in zip(self.nodes, row, strict=True)}
                for node in self.nodes:
                    measure = compile_measure(
                        node, workspace_id=self.workspace.pk, now=self.now, person_id=self.person.pk
                    )
                    if measure is not None:
                        measure.execute(cursor)
                        self.measures[id(node)] = cursor.fetchall()

    def explained(self, node: Node, path: str = "") -> Explained:
        holds = self.holds[id(node)]
        if isinstance(node, And | Or):
            children = tuple(
                self.explained(child, f"{path}.conditions[{i}]") for i, child in enumerate(node.conditions)
            )
            return Explained(path, holds, [], group=node.type, children=children)
        if isinstance(node, Not) and isinstance(node.condition, And | Or):
            inner = node.condition
            children = tuple(
                self.explained(child, f"{path}.condition.conditions[{i}]") for i, child in enumerate(inner.conditions)
            )
            return Explained(path, holds, [], group="none" if isinstance(inner, Or) else "not all", children=children)
        if isinstance(node, Not) and isinstance(node.condition, Not):
            child = self.explained(node.condition, f"{path}.condition")
            return Explained(path, holds, _clause(node, self.names), children=(child,))
        if isinstance(node, Not):
            # "did not perform Login": the negation reads as one condition, decided by its condition's numbers.
            measure = tuple(self.measures.get(id(node.condition), []))
            return Explained(path, holds, _clause(node, self.names), self.detail(node.condition), measure=measure)
        measure = tuple(self.measures.get(id(node), []))
        return Explained(path, holds, _clause(node, self.names), self.detail(node), measure=measure)

    def detail(self, node: Node) -> str:
        rows = self.measures.get(id(node), [])
        if isinstance(node, Trait):
            return _trait_detail(self.person, node)
        if isinstance(node, SegmentRef):
            name = self.names.get(node.segment, f"segment #{node.segment}")
            entered = self.memberships.get(node.segment)
            if entered is None:
                return f"Not in {name} at its last refresh."
            return f"In {name} since {_moment(entered)}."
        if isinstance(node, EventCount):
            count = int(rows[0][0])
            return f"{_times(count, _what(node.event))}{_window(node)}; needs {_needed(node.count, 'time')}."
        if isinstance(node, Aggregate):
            value, numbers = rows[0]
            function = {"sum": "Total", "avg": "Average", "min": "Lowest", "max": "Highest"}[node.function]
            what = f"{function} of {node.key} on {_what(node.event)}{_window(node)}"
            needs = _needed(node.comparison, "")
            if not numbers:
                empty = "0" if node.function == "sum" else "none"
                return f"{what}: {empty}, no event with a number; needs {needs}."
            events = "event" if numbers == 1 else "events"
            return f"{what}: {_number(value)}, from {numbers} {events} with a number; needs {needs}."
        if isinstance(node, Performed):
            moment = rows[0][0] if rows else None
            verb = f"{node.which.capitalize()} performed"
            if moment is None:
                return f"Never performed {_what(node.event)}."
            words = window_words(node.window)
            return f"{verb} {_moment(moment)}" + (f"; needs it {words}." if words else ".")
        if isinstance(node, Regular):
            hit = int(rows[0][0])
            period = duration_words(node.period)
            return f"In {hit} of the last {node.periods} periods of {period}; needs at least {node.min_periods}."
        if isinstance(node, Sequence):
            return _sequence_detail(node, rows)
        return ""


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, And | Or):
        for child in node.conditions:
            yield from _nodes(child)
    elif isinstance(node, Not):
        yield from _nodes(node.condition)


def _clause(node: Node, names: dict[int, str]) -> list[Part]:
    """The condition in the words of the segment's sentence, without its "People who"."""
    return sentence(node, names)[1:]


def _what(event: str) -> str:
    return "any event" if event == ANY_EVENT else event


def _times(count: int, what: str) -> str:
    return f"Performed {what} {count} time{'' if count == 1 else 's'}"


def _window(node: EventCount | Aggregate) -> str:
    words = window_words(node.window)
    return f" {words}" if words else ""


_NEEDS = {"gte": "at least", "gt": "more than", "lte": "at most", "lt": "fewer than", "eq": "exactly", "neq": "not"}


def _needed(comparison: Comparison, unit: str) -> str:
    if comparison.operator == "between":
        low, high = comparison.value
        return f"between {_number(low)} and {_number(high)}" + (f" {unit}s" if unit else "")
    value = comparison.value
    if unit and comparison == Comparison("eq", 0):
        return "none"
    words = f"{_NEEDS[comparison.operator]} {_number(value)}"
    if not unit:
        return words
    return f"{words} {unit}{'' if value == 1 else 's'}"


def _number(value: Any) -> str:
    """A number as people write it: no exponent, no trailing zeros (612.50 is 612.5)."""
    if isinstance(value, bool):
        return str(value).lower()
    number = Decimal(value) if isinstance(value, int) else Decimal(str(value))
    text = format(number.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def _moment(value: datetime) -> str:
    moment = value.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def _lookup(traits: Any, key: str) -> tuple[bool, Any]:
    """(found, value) at a dotted key, through nested objects only, as the compiler reads it."""
    value = traits
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _trait_detail(person: Person, node: Trait) -> str:
    found, value = _lookup(person.traits, node.filter.key)
    if not found or value is None:
        return f"{node.filter.key} is not set."
    if isinstance(value, str):
        shown = f"“{value}”"
    elif isinstance(value, bool | int | float):
        shown = _number(value) if not isinstance(value, bool) else str(value).lower()
    else:
        shown = "a list" if isinstance(value, list) else "an object"
    return f"{node.filter.key} is {shown}."


def _sequence_detail(node: Sequence, rows: list[tuple[Any, ...]]) -> str:
    # With dropped_after k the runs are followed to step k+1 only (the compiler's ``runs``).
    steps = len(node.steps) if node.dropped_after is None else node.dropped_after + 1
    runs = sum(int(count) for _, _, count in rows)
    window = window_words(node.window)
    if not runs:
        return f"Never performed {_what(node.steps[0].event)}{f' {window}' if window else ''}: no run started."
    completed = sum(int(count) for reached, _, count in rows if reached == steps)
    stopped: dict[int, int] = {}
    for reached, old_enough, count in rows:
        if reached < steps and old_enough:
            stopped[reached] = stopped.get(reached, 0) + int(count)
    too_recent = sum(int(count) for reached, old_enough, count in rows if reached < steps and not old_enough)
    parts = [f"{runs} run{'' if runs == 1 else 's'} started{f' {window}' if window else ''}"]
    within = duration_words(node.within)
    if node.dropped_after is None:
        every = "both steps" if steps == 2 else f"all {steps} steps"
        parts.append(f"{completed} completed {every} within {within}")
    else:
        parts.append(f"{completed} went on to step {steps} ({_what(node.steps[steps - 1].event)}) within {within}")
    for reached in sorted(stopped):
        step = node.steps[reached - 1]
        parts.append(f"{stopped[reached]} stopped after step {reached} ({_what(step.event)})")
    if too_recent:
        parts.append(f"{too_recent} still within {within} of their start")
    return "; ".join(parts) + "."


def person_explain(
    *, workspace: Workspace, segment: Segment, person: Person, now: datetime | None = None
) -> Explanation:
    """Whether ``person`` is in ``segment``, stored and evaluated now, with each condition's reasons."""
    entered_at = (
        Membership.objects.filter(workspace=workspace, segment=segment, person=person)
        .values_list("entered_at", flat=True)
        .first()
    )
    if segment.is_static or segment.definition is None:
        return Explanation(segment, person, entered_at)
    try:
        tree = parse(segment.definition)
    except DefinitionInvalid:
        return Explanation(
            segment, person, entered_at, problem="The stored definition no longer reads as valid; open it to fix it."
        )
    now = now or timezone.now()
    evaluation = _Evaluation(workspace, person, tree, now)
    try:
        evaluation.run()
    except Exception as error:
        if is_timeout(error):
            return Explanation(
                segment,
                person,
                entered_at,
                problem=f"Evaluating this definition took longer than {settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS:g} s.",
            )
        raise
    explained = evaluation.explained(tree)
    return Explanation(segment, person, entered_at, explained.holds, explained, evaluated_at=now)
