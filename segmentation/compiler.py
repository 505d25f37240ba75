"""Definition tree -> one parameterised SQL statement returning member person ids.

Set-based: every node compiles to a subquery yielding the ``person_id`` of the
people for whom it holds, and groups combine those sets with INTERSECT and
UNION; ``not`` is an anti-join of the workspace's people with its condition's
set. A condition that holds for people with no matching events (``count eq 0``,
``sum lte 100``...) is compiled as "everyone except those whose events make it
fail", so people with no events at all are members without being enumerated
one by one. The trait conditions of a group are one boolean filter of one scan
of the people. ``bench/segments.py`` measures these shapes (bench/README.md).

Every subquery carries ``workspace_id = %s`` at the root of its WHERE, and
every event name, key and value is bound as a parameter: nothing in a
definition becomes SQL text. The typing rules of the contract live in the
property-predicate builders below (``predicate``, ``positive``, ``equals``,
``extract``, ``json_*``); ``docs/segments.md`` explains the choices where the
contract is silent. ``tests/segmentation/oracle.py`` is the plain-Python
reference the compiled SQL is checked against.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from itertools import combinations
from typing import Any

from segmentation.definition import (
    ANY_EVENT,
    NEGATIVE_OPERATORS,
    NUMERIC_MAX_LENGTH,
    NUMERIC_RE,
    Aggregate,
    And,
    Comparison,
    Duration,
    EventCount,
    Filter,
    Node,
    Not,
    Or,
    Performed,
    Regular,
    SegmentRef,
    Sequence,
    Step,
    Trait,
    Window,
    resolve_instant,
)

PEOPLE_TABLE = "tracking_person"
EVENTS_TABLE = "tracking_event"
FIRSTS_TABLE = "tracking_personeventfirst"
MEMBERSHIP_TABLE = "segmentation_membership"

# The shape of a timestamp in a property (docs/segments.md), checked before the
# string is cast (the cast itself is guarded by segmentation_try_timestamptz,
# which answers NULL for what the shape lets through, such as February 30th).
# Fields in range (no 24:00, no leap second), at most microseconds, offsets
# within +-15:59 (every real zone is within +-14:00).
TIMESTAMP_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?"
    r"(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)?$"
)


_MARKER = re.compile("\x00([0-9]+)\x00")
# A path element ``#>`` may read as a list index (a superset: anything starting like an integer).
_INDEX_LIKE = re.compile(r"[ \t\n\r\f\v]*[-+]?[0-9]")
# Keys of at most this many parts are read with a chain of ``->``; longer ones with one ``#>``
# (a chain of thousands of operators would exceed PostgreSQL's expression stack).
MAX_CHAIN_PARTS = 8


@dataclass
class CompiledQuery:
    sql: str
    params: list[Any] = field(default_factory=list)
    # True when the statement groups every event of the workspace by person
    # (``_Builder.performed`` of ``$any``): see ``segmentation.membership.plan_settings``.
    groups_every_event: bool = False
    # False when the set may hold ids that are not people of the workspace
    # (``compile_members(check_people=False)`` of a set not drawn from the people).
    people_checked: bool = True

    def execute(self, cursor: Any, *, wrap: str = "{members}") -> None:
        """Run the statement, placed in ``wrap`` (fixed text around ``{members}``, such as
        ``CREATE TEMP TABLE ... AS {members}``). The compiler's statements are the one raw SQL that
        does not go through ``accounts.sql``: it puts ``workspace_id`` at the root of each of its own
        subqueries (see the module's docstring and tests/segmentation/test_compiler.py)."""
        cursor.execute(wrap.format(members=self.sql), self.params)


class _Builder:
    """Builds SQL text from fixed fragments; every value goes through ``bind``.

    ``bind`` returns a marker, not ``%s``: an expression may be reused in the
    text (a property path appears in several checks) and fragments are not
    always built in the order they appear. ``finish`` turns the markers into
    positional ``%s`` placeholders, in text order, with the matching values.
    """

    def __init__(self, workspace_id: int, now: datetime, people: Collection[int] | None = None) -> None:
        self.workspace_id = workspace_id
        self.now = now
        self.values: list[Any] = []
        self.groups_every_event = False
        # One marker for the people restriction, repeated wherever it applies.
        self.people = None if people is None else self.bind(list(people))
        # The text form (``->>``, ``#>>``) of each property read by ``extract``: one
        # operator instead of a lookup and a conversion of its result.
        self.text_forms: dict[str, str] = {}
        self.people_checked = True

    def bind(self, value: Any) -> str:
        self.values.append(value)
        return f"\x00{len(self.values) - 1}\x00"

    def finish(self, sql: str) -> CompiledQuery:
        params: list[Any] = []

        def placeholder(match: re.Match[str]) -> str:
            params.append(self.values[int(match.group(1))])
            return "%s"

        sql = _MARKER.sub(placeholder, sql)
        return CompiledQuery(
            sql=sql, params=params, groups_every_event=self.groups_every_event, people_checked=self.people_checked
        )

    # --- sets -------------------------------------------------------------

    def members(self, tree: Node, *, check_people: bool = True) -> str:
        """The members' ``person_id``, each once, only people of this workspace.

        Every set holds each person once (grouped, ``DISTINCT``, a scan of the
        people, or INTERSECT / UNION of such sets), and every leaf reads rows of
        this workspace only. A set drawn from the people (trait conditions, a
        complement, the first or last time of any event, an intersection with
        any of them; ``_drawn_from_people``) holds nothing else; one drawn
        from events or memberships is checked against the workspace's people, so
        that a row pointing at someone else's person never makes them a member.
        ``check_people=False`` leaves that check to the caller, which must make it
        before storing anything when the query says ``people_checked=False``
        (``segment_refresh`` makes it for the newcomers only): with parallel
        workers PostgreSQL computes the set once per process to build the check's
        hash, and the check alone scans every person of the workspace (figures:
        bench/README.md).
        """
        if _drawn_from_people(tree):
            return self.node(tree)
        if not check_people:
            self.people_checked = False
            return self.node(tree)
        return self.people_in(tree, "p.id AS person_id")

    def people_in(self, tree: Node, columns: str) -> str:
        """``columns`` of the workspace's people (``p``) in the tree's set: a filter of one scan of them.

        A tree of trait conditions only is a filter of this scan, and a complement
        ("not", "has not done") the anti-join of this scan; any other set is
        looked up in it.
        """
        excluded = self.excluded(tree)
        if excluded is not None:
            return (
                f"SELECT {columns} FROM {PEOPLE_TABLE} p LEFT JOIN ({excluded}) x ON x.person_id = p.id "
                f"WHERE p.workspace_id = {self.bind(self.workspace_id)}{self.only('p.id')} AND x.person_id IS NULL"
            )
        condition = self.traits_predicate(tree) if _traits_only(tree) else f"p.id IN ({self.node(tree)})"
        return (
            f"SELECT {columns} FROM {PEOPLE_TABLE} p WHERE p.workspace_id = {self.bind(self.workspace_id)}"
            f"{self.only('p.id')} AND {condition}"
        )

    def only(self, column: str) -> str:
        """`` AND column = ANY(people)`` when the evaluation is restricted to some people, else nothing.

        The root carries the restriction; every leaf set repeats it so that the
        planner probes the people's rows (and their events by the
        ``(workspace_id, person_id, timestamp)`` index) instead of computing the
        whole workspace's set and intersecting. Restricting every leaf gives the
        same answer: intersection with a set distributes over INTERSECT, UNION
        and EXCEPT.
        """
        if self.people is None:
            return ""
        return f" AND {column} = ANY({self.people}::bigint[])"

    def everyone_except(self, excluded: str) -> str:
        """The workspace's people not in ``excluded``: an anti-join, which spills to disk where EXCEPT sorts."""
        return (
            f"SELECT n.id AS person_id FROM {PEOPLE_TABLE} n LEFT JOIN ({excluded}) x ON x.person_id = n.id "
            f"WHERE n.workspace_id = {self.bind(self.workspace_id)}{self.only('n.id')} AND x.person_id IS NULL"
        )

    def excluded(self, node: Node) -> str | None:
        """For a node holding for everyone but some people (outside trait groups), the set of those people.

        ``not`` excludes its condition's set; a count or a sum that holds at
        zero excludes the people whose events make it fail. ``None`` otherwise.
        """
        if not _complement(node):
            return None
        if isinstance(node, Not):
            return self.node(node.condition)
        if isinstance(node, EventCount):
            where = self.events_where("e", node.event, node.filters, node.window)
            if node.count.operator in ("eq", "lt", "lte", "between") and not self.holds_at(node.count, 1):
                # Fails at every count from 1 up ("has not done"): having one matching event excludes.
                return f"SELECT e.person_id FROM {EVENTS_TABLE} e WHERE {where}"
            return self.grouped(where, f"NOT ({self.comparison('count(*)', node.count)})")
        if isinstance(node, Aggregate):  # a sum holding at zero
            number = self.aggregated(node)
            where = self.events_where("e", node.event, node.filters, node.window)
            return self.grouped(where, f"NOT ({self.comparison(_SUM, node.comparison)})", number)
        raise TypeError(f"not a complement {node!r}")

    def node(self, node: Node) -> str:
        if _traits_only(node):
            return (
                f"SELECT id AS person_id FROM {PEOPLE_TABLE} "
                f"WHERE workspace_id = {self.bind(self.workspace_id)}{self.only('id')} "
                f"AND {self.traits_predicate(node)}"
            )
        if isinstance(node, And | Or):
            # The trait conditions of a group are one scan of the people, not one each.
            traits = [child for child in node.conditions if _traits_only(child)]
            others = [child for child in node.conditions if not _traits_only(child)]
            parts = [self.node(child) for child in others]
            if traits:
                group = And(conditions=tuple(traits)) if isinstance(node, And) else Or(conditions=tuple(traits))
                parts.insert(0, self.node(group))
            return (" INTERSECT " if isinstance(node, And) else " UNION ").join(f"({part})" for part in parts)
        excluded = self.excluded(node)
        if excluded is not None:
            return self.everyone_except(excluded)
        if isinstance(node, EventCount):
            return self.event_count(node)
        if isinstance(node, Aggregate):
            return self.aggregate(node)
        if isinstance(node, Performed):
            return self.performed(node)
        if isinstance(node, Regular):
            return self.regular(node)
        if isinstance(node, Sequence):
            return self.sequence(node)
        if isinstance(node, SegmentRef):
            return (
                f"SELECT person_id FROM {MEMBERSHIP_TABLE} "
                f"WHERE workspace_id = {self.bind(self.workspace_id)}{self.only('person_id')} "
                f"AND segment_id = {self.bind(node.segment)}"
            )
        raise TypeError(f"unknown node {node!r}")

    def traits_predicate(self, node: Node) -> str:
        """A group of trait conditions as one boolean over ``traits``; each predicate is never NULL."""
        if isinstance(node, Trait):
            return self.predicate("traits", node.filter)
        if isinstance(node, Not):
            return f"NOT ({self.traits_predicate(node.condition)})"
        if isinstance(node, And | Or):
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(f"({self.traits_predicate(child)})" for child in node.conditions) + ")"
        raise TypeError(f"not a trait condition {node!r}")

    # --- events -----------------------------------------------------------

    def events_where(self, alias: str, event: str, filters: tuple[Filter, ...], window: Window | None) -> str:
        """WHERE clause selecting one person's matching events (workspace first)."""
        parts = [f"{alias}.workspace_id = {self.bind(self.workspace_id)}{self.only(f'{alias}.person_id')}"]
        if event != ANY_EVENT:
            parts.append(f"{alias}.name = {self.bind(event)}")
        if window is not None:
            parts.extend(self.window(f'{alias}."timestamp"', window))
        parts.extend(self.predicate(f"{alias}.properties", f) for f in filters)
        return " AND ".join(parts)

    def window(self, column: str, window: Window) -> list[str]:
        start, end = window.bounds(self.now)
        parts = []
        if start is not None:
            parts.append(f"{column} >= {self.bind(start)}")
        if end is not None:
            parts.append(f"{column} < {self.bind(end)}")
        else:
            parts.append(f"{column} <= {self.bind(self.now)}")
        return parts

    def grouped(self, where: str, having: str, value: str = "") -> str:
        """The people whose matching events, grouped, pass ``having``.

        ``having`` reads ``g.value`` (``value`` computed per event; aggregates skip
        its NULLs, so a sum of no number is 0 and an average none), or counts. The
        events are read, ``value`` computed and the rows sorted by person in a
        subquery kept whole by ``OFFSET 0``, which the parallel workers run; the
        leader then groups rows that arrive in person order. Grouped straight,
        PostgreSQL computed every value in the leader and hashed every person there
        (for an average, a numeric state of about 470 bytes each), about twice as
        slow (bench/README.md).
        """
        selected = f", {value} AS value" if value else ""
        return (
            f"SELECT g.person_id FROM (SELECT e.person_id{selected} FROM {EVENTS_TABLE} e WHERE {where} "
            f"ORDER BY e.person_id OFFSET 0) g GROUP BY g.person_id HAVING {having}"
        )

    def holds_at(self, comparison: Comparison, value: float) -> bool:
        return _compare(comparison, value)

    def event_count(self, node: EventCount) -> str:
        """A count that fails at zero (one holding at zero is a complement: ``excluded``)."""
        where = self.events_where("e", node.event, node.filters, node.window)
        return self.grouped(where, self.comparison("count(*)", node.count))

    def aggregated(self, node: Aggregate) -> str:
        """The value an aggregate takes from one event ``e``: its property as a number, else NULL (skipped)."""
        return self.json_number(self.extract("e.properties", node.key))

    def aggregate(self, node: Aggregate) -> str:
        """An aggregate that fails with no events (a sum holding at zero is a complement: ``excluded``).

        Its values are the numbers of ``json_number``, numeric strings included, as for the
        numeric operators; anything else is NULL, which the aggregate functions skip.
        """
        number = self.aggregated(node)
        where = self.events_where("e", node.event, node.filters, node.window)
        function = _SUM if node.function == "sum" else f"{node.function}(g.value)"
        return self.grouped(where, self.comparison(function, node.comparison), number)

    def performed(self, node: Performed) -> str:
        """The first (last) matching event's time per person, in the window.

        Of any event, unfiltered ("new this week"): the person's ``first_event_at``
        (``last_event_at``), which the events' triggers keep (tracking migration
        0008), in one scan of the people. The first time of a named event,
        unfiltered: a range of tracking's first time per person and name (kept the
        same way, migration 0011). With filters this groups every event of
        the workspace by person, which the compiled query says
        (``groups_every_event``) so that it is evaluated with the plan that suits it.
        """
        if _times_of_people(node):
            column = "first_event_at" if node.which == "first" else "last_event_at"
            return (
                f"SELECT id AS person_id FROM {PEOPLE_TABLE} WHERE workspace_id = {self.bind(self.workspace_id)}"
                f"{self.only('id')} AND {' AND '.join(self.window(column, node.window))}"
            )
        if _first_of_a_name(node):
            return (
                f"SELECT person_id FROM {FIRSTS_TABLE} WHERE workspace_id = {self.bind(self.workspace_id)}"
                f"{self.only('person_id')} AND name = {self.bind(node.event)} "
                f"AND {' AND '.join(self.window('first_at', node.window))}"
            )
        if node.event == ANY_EVENT:
            self.groups_every_event = True
        where = self.events_where("e", node.event, node.filters, None)
        moment = "min" if node.which == "first" else "max"
        conditions = self.window(f"{moment}(g.value)", node.window)
        return self.grouped(where, " AND ".join(conditions), 'e."timestamp"')

    def regular(self, node: Regular) -> str:
        where, bucket = self.periods(node)
        return self.grouped(where, f"count(DISTINCT g.value) >= {self.bind(node.min_periods)}", bucket)

    def periods(self, node: Regular) -> tuple[str, str]:
        """The WHERE of the events inside the node's periods, and the period *k* each falls in."""
        period_seconds = node.period.seconds
        earliest = self.now - node.period.as_timedelta() * node.periods
        where = self.events_where("e", node.event, node.filters, None)
        now = self.bind(self.now)
        # Period k covers [now - (k+1)P, now - kP): k = ceil((now - t) / P) - 1.
        bucket = f'ceil(extract(epoch FROM ({now}::timestamptz - e."timestamp")) / {self.bind(period_seconds)}) - 1'
        where += f' AND e."timestamp" >= {self.bind(earliest)} AND e."timestamp" < {self.bind(self.now)}'
        return where, bucket

    def sequence(self, node: Sequence) -> str:
        """Runs from each step-1 occurrence ``s0``, each step taken at the earliest instant it can be.

        A run is a choice of distinct events, one per step, in time order, all
        within ``within`` of step 1. Step *k*'s lateral join finds the earliest
        instant at or after step *k-1*'s at which it can be matched: any later
        instant holding a matching event, or step *k-1*'s own instant when the
        steps matched there, with step *k*, can each take a different event of
        that instant. No event is picked: only instants are, so events at one
        instant may serve its steps in any order. By induction on *k*, every
        run from ``s0`` matches step *k* no earlier than the instant found here
        (if the run matches it at that very instant, so are the steps before it
        that share the instant here, and the run's own events show them
        feasible), so a run from ``s0`` exists exactly when the last step gets
        an instant.
        """
        runs, times = self.runs(node)
        if node.completed:
            return f"SELECT DISTINCT s0.person_id {runs} AND {times[-1]} IS NOT NULL"
        cutoff = self.bind(self.now - node.within.as_timedelta())
        # Dropped off after step k: step k got an instant (so the run reached it), step k+1 none.
        reached = f" AND {times[-2]} IS NOT NULL" if node.dropped_after is not None and len(times) > 2 else ""
        return f'SELECT DISTINCT s0.person_id {runs} AND {times[-1]} IS NULL{reached} AND s0."timestamp" <= {cutoff}'

    def runs(self, node: Sequence, *, check_people: bool = False) -> tuple[str, list[str]]:
        """``FROM ... WHERE ...`` of the node's runs, one row per step-1 occurrence ``s0`` in the window,
        and the expression of each step's instant (NULL from the first step the run does not reach).

        The one construction of runs: ``sequence`` filters them, ``compile_sequence_furthest`` keeps
        each person's furthest one for readers that count how far people got (insights' funnels).
        With ``dropped_after: k`` only steps 1 to k+1 are matched: the later ones play no part.
        ``check_people`` keeps only the runs of people of the workspace (``furthest_runs``;
        ``members`` checks its sets itself).
        """
        within = self.bind(node.within.as_timedelta())
        # Dropped off after step k: steps past k+1 play no part.
        steps = node.steps if node.dropped_after is None else node.steps[: node.dropped_after + 1]
        names = [step.event for step in steps]
        people = self.people_check("s0.person_id") if check_people else ""
        if ANY_EVENT not in names and len(set(names)) == len(names):
            return self.runs_of_distinct_steps(node, steps, within, people)
        runs, times = self.runs_by_lookups(node, steps, within, ['s0."timestamp"'], from_events=True)
        return runs + people, times

    def people_check(self, column: str) -> str:
        """`` AND EXISTS (...)``: ``column`` is a person of the workspace (events carry no foreign key)."""
        ws = self.bind(self.workspace_id)
        return (
            f" AND EXISTS (SELECT p.id FROM {PEOPLE_TABLE} p "
            f"WHERE p.workspace_id = {ws}{self.only('p.id')} AND p.id = {column})"
        )

    def runs_by_lookups(
        self,
        node: Sequence,
        steps: tuple[Step, ...],
        within: str,
        times: list[str],
        *,
        from_events: bool,
        distinct: bool = False,
    ) -> tuple[str, list[str]]:
        """The runs with one lateral lookup per step after ``times`` (the steps already matched, in
        ``s0``): ``FROM`` the step-1 events ``s0`` in the window (``from_events``), or only the
        lateral joins, for a caller that puts them after its own ``s0``. ``distinct``: the steps'
        event names are pairwise distinct, none ``$any``, so a step at the instant of the step
        before is always possible (``runs_of_distinct_steps``) and needs no check."""
        times = list(times)
        joins = []
        bounds = self.later_steps_bounds(node, within)
        for k, step in enumerate(steps[len(times) :], start=len(times)):
            previous = times[-1]
            inner = self.events_where("x", step.event, step.filters, None)
            instant = "" if distinct else f' AND (x."timestamp" > {previous} OR {self.same_instant(node, k, times)})'
            # A run that missed the step before cannot take this one: PostgreSQL skips the lookup
            # altogether on this condition of the outer row alone (a one-time filter), where the
            # index scan would still be started for every run (bench/README.md, "Insights").
            reached = f" AND {previous} IS NOT NULL" if k > 1 else ""
            joins.append(
                f'LEFT JOIN LATERAL (SELECT min(x."timestamp") AS "timestamp" FROM {EVENTS_TABLE} x '
                f'WHERE {inner} AND x.person_id = s0.person_id AND x."timestamp" >= {previous} '
                f'AND x."timestamp" <= s0."timestamp" + {within}::interval{bounds}{instant}{reached}) s{k} ON true'
            )
            times.append(f's{k}."timestamp"')
        if not from_events:
            return " ".join(joins), times
        start_where = self.events_where("s0", node.steps[0].event, node.steps[0].filters, node.window)
        return f"FROM {EVENTS_TABLE} s0 {' '.join(joins)} WHERE {start_where}", times

    def later_steps_bounds(self, node: Sequence, within: str) -> str:
        """Bounds on the events ``x`` of the steps after the first that follow from the window: at or
        after its start, at most ``within`` after its end. Every such event already lies between step
        1's instant and ``within`` after it; the bounds say so in constants, with which PostgreSQL
        leaves out the partitions (months) and index ranges outside them."""
        start, end = node.window.bounds(self.now)
        bounds = "" if start is None else f' AND x."timestamp" >= {self.bind(start)}'
        return bounds + f' AND x."timestamp" <= {self.bind(end or self.now)}::timestamptz + {within}::interval'

    def runs_of_distinct_steps(
        self, node: Sequence, steps: tuple[Step, ...], within: str, people: str
    ) -> tuple[str, list[str]]:
        """The runs of steps of pairwise distinct event names, none ``$any``: step 2 by one join of
        the step-1 and step-2 events, the later steps by lookups for the runs that reached step 2.

        No event can match two such steps, so a step at the instant of the step before is always
        possible (``same_instant`` holds: each earlier step matched there has its own event) and
        step 2's instant is the earliest step-2 event from step 1's instant to ``within`` after it.
        Every step-1 occurrence needs that lookup, one at a time in the leader as a lateral join
        (about 10 us each, 7 s for 640,000 runs, bench/README.md "insights at full size"); as a
        join grouped by run, the workers read and hash both sets. The extra bounds on the step-2
        events follow from the window and only let PostgreSQL skip partitions and index ranges.
        Runs are grouped by (person, instant of step 1): occurrences at one instant are the same run.
        Later steps: only about 1 run in 20 reaches step 2, so those runs alone (a materialized
        set, split on it) take the lookups.
        """
        # Each WHERE of the statement is held to the workspace (and the people, when restricted).
        guard = f"s0.workspace_id = {self.bind(self.workspace_id)}{self.only('s0.person_id')}"
        first_two = self.first_two_steps(node, steps, within, people, join="LEFT JOIN")
        if len(steps) == 2:
            return f"FROM ({first_two}) s0 WHERE {guard}", ['s0."timestamp"', "s0.t1"]
        joins, inner = self.runs_by_lookups(
            node, steps, within, ['s0."timestamp"', "s0.t1"], from_events=False, distinct=True
        )
        later = [f"t{k}" for k in range(2, len(steps))]
        unreached = ", ".join(f"NULL::timestamptz AS {name}" for name in later)
        reached = ", ".join(f"{time} AS {name}" for time, name in zip(inner[2:], later, strict=True))
        columns = 's0.workspace_id, s0.person_id, s0."timestamp", s0.t1'
        runs = (
            f"WITH r AS MATERIALIZED ({first_two}) "
            f"SELECT {columns}, {unreached} FROM r s0 WHERE {guard} AND s0.t1 IS NULL "
            f"UNION ALL SELECT {columns}, {reached} FROM r s0 {joins} "
            f"WHERE {guard} AND s0.t1 IS NOT NULL"
        )
        return f"FROM ({runs}) s0 WHERE {guard}", ['s0."timestamp"', "s0.t1", *(f"s0.{n}" for n in later)]

    def first_two_steps(self, node: Sequence, steps: tuple[Step, ...], within: str, people: str, *, join: str) -> str:
        """Runs of distinct steps to step 2: ``workspace_id, person_id, "timestamp"`` of step 1 and
        ``t1``, the earliest step-2 instant within ``within`` (one row per step-1 instant). With
        ``join="JOIN"``, only the runs that reached step 2; with ``"LEFT JOIN"``, every run (``t1``
        NULL for the others). The extra bounds on the step-2 events follow from the window and only
        let PostgreSQL skip partitions and index ranges."""
        start_where = self.events_where("s0", steps[0].event, steps[0].filters, node.window)
        second = self.events_where("x", steps[1].event, steps[1].filters, None)
        bounds = self.later_steps_bounds(node, within)
        return (
            f'SELECT s0.workspace_id, s0.person_id, s0."timestamp", min(x."timestamp") AS t1 '
            f"FROM {EVENTS_TABLE} s0 {join} {EVENTS_TABLE} x ON {second} AND x.person_id = s0.person_id "
            f'AND x."timestamp" >= s0."timestamp" AND x."timestamp" <= s0."timestamp" + {within}::interval{bounds} '
            f'WHERE {start_where}{people} GROUP BY s0.workspace_id, s0.person_id, s0."timestamp"'
        )

    def furthest_runs(self, node: Sequence) -> str:
        """``person_id, t0, ...``: each person's furthest run (the earliest of those on a tie), one row
        per person of the workspace with a step-1 occurrence in the window, the instants as ``runs``
        gives them.

        With steps of distinct event names, only the runs that reached step 2 (about 1 in 10 in
        bench/insights.py) are followed and sorted. A person with none of them has the earliest
        step-1 occurrence in the window as the start of a run that reached step 1 only, which is the
        same person's furthest run: their step-1 occurrences are grouped by person, in parallel,
        and checked against the people there. Otherwise every run is ordered.
        """
        within = self.bind(node.within.as_timedelta())
        steps = node.steps if node.dropped_after is None else node.steps[: node.dropped_after + 1]
        names = [step.event for step in steps]
        if ANY_EVENT in names or len(set(names)) != len(names):
            runs, times = self.runs(node, check_people=True)
            columns = ", ".join(f"{time} AS t{k}" for k, time in enumerate(times))
            return (
                f"SELECT DISTINCT ON (s0.person_id) s0.person_id, {columns} {runs} "
                f"ORDER BY s0.person_id, {_reached(times)} DESC, {times[0]}"
            )
        guard = f"s0.workspace_id = {self.bind(self.workspace_id)}{self.only('s0.person_id')}"
        pairs = self.first_two_steps(node, steps, within, "", join="JOIN")
        joins, times = self.runs_by_lookups(
            node, steps, within, ['s0."timestamp"', "s0.t1"], from_events=False, distinct=True
        )
        columns = ", ".join(f"{time} AS t{k}" for k, time in enumerate(times))
        far = (
            f"SELECT DISTINCT ON (s0.person_id) s0.person_id, {columns} FROM ({pairs}) s0 {joins} "
            f'WHERE {guard} ORDER BY s0.person_id, {_reached(times)} DESC, s0."timestamp"'
        )
        start_where = self.events_where("s0", steps[0].event, steps[0].filters, node.window)
        first = (
            f'SELECT s0.workspace_id, s0.person_id, min(s0."timestamp") AS t0 FROM {EVENTS_TABLE} s0 '
            f"WHERE {start_where}{self.people_check('s0.person_id')} GROUP BY s0.workspace_id, s0.person_id"
        )
        later = ", ".join(f"f.t{k}" for k in range(1, len(times)))
        return (
            f"SELECT s0.person_id, coalesce(f.t0, s0.t0) AS t0, {later} "
            f"FROM ({first}) s0 LEFT JOIN ({far}) f ON f.person_id = s0.person_id WHERE {guard}"
        )

    def same_instant(self, node: Sequence, k: int, times: list[str]) -> str:
        """Step *k* can join the steps matched at step *k-1*'s instant: distinct events there for all of them.

        The steps matched at that instant are *j..k-1* for the *j* where the
        instants start being equal; step 1 is always ``s0`` itself. Two steps
        of different event names (neither ``$any``) never match one event, so
        their events need no inequality: with none on ``s0.id``, step 1 reads
        from the name index alone.
        """
        at = times[k - 1]
        options = []
        for j in range(k):
            starts = f"{times[j]} = {at}" + (f" AND {times[j - 1]} < {at}" if j else "")
            tables, conditions = [], []
            ids: list[tuple[str, str]] = [("s0.id", node.steps[0].event)] if j == 0 else []
            for m in range(max(j, 1), k + 1):
                alias = f"y{m}"
                step = node.steps[m]
                tables.append(f"{EVENTS_TABLE} {alias}")
                conditions.append(self.events_where(alias, step.event, step.filters, None))
                conditions.append(f'{alias}.person_id = s0.person_id AND {alias}."timestamp" = {at}')
                ids.append((f"{alias}.id", step.event))
            conditions += [
                f"{a} <> {b}"
                for (a, a_event), (b, b_event) in combinations(ids, 2)
                if a_event == b_event or ANY_EVENT in (a_event, b_event)
            ]
            options.append(
                f"({starts} AND EXISTS (SELECT 1 FROM {', '.join(tables)} WHERE {' AND '.join(conditions)}))"
            )
        return f"({' OR '.join(options)})"

    # --- property predicates ------------------------------------------------

    def predicate(self, column: str, f: Filter) -> str:
        """The filter on a JSON object column; negative operators complement positive ones."""
        value = self.extract(column, f.key)
        positive = _POSITIVE.get(f.operator, f.operator)
        holds = self.positive(value, positive, f.value)
        if f.operator in NEGATIVE_OPERATORS:
            return f"NOT coalesce(({holds}), false)"
        return f"coalesce(({holds}), false)"

    def positive(self, value: str, operator: str, operand: Any) -> str:
        if operator == "is_set":
            return f"({value}) IS NOT NULL AND jsonb_typeof({value}) <> 'null'"
        if operator == "eq":
            return self.equals(value, operand)
        if operator == "in":
            return " OR ".join(f"({self.equals(value, item)})" for item in operand)
        text = self.json_text(value)
        if operator == "contains":
            return f"strpos(lower({text}), lower({self.bind(operand)})) > 0"
        if operator == "starts_with":
            return f"starts_with(lower({text}), lower({self.bind(operand)}))"
        if operator == "ends_with":
            return f"right(lower({text}), char_length({self.bind(operand)})) = lower({self.bind(operand)})"
        number = self.json_number(value)
        if operator in _SQL_COMPARISON:
            return f"{number} {_SQL_COMPARISON[operator]} {self.number(operand)}"
        if operator == "between":
            low, high = operand
            return f"{number} BETWEEN {self.number(low)} AND {self.number(high)}"
        if operator in ("before", "after"):
            instant = resolve_instant(operand, self.now) if isinstance(operand, Duration | datetime) else operand
            moment = self.json_timestamp(value)
            return f"{moment} {'<' if operator == 'before' else '>'} {self.bind(instant)}"
        raise ValueError(f"unknown operator {operator}")

    def equals(self, value: str, operand: Any) -> str:
        if isinstance(operand, bool):
            return f"({value}) = {self.bind('true' if operand else 'false')}::jsonb"
        if isinstance(operand, int | float):
            return f"{self.json_number(value)} = {self.number(operand)}"
        return f"{self.json_text(value)} = {self.bind(operand)}"

    def extract(self, column: str, key: str) -> str:
        """The property at ``key`` of a JSON column; a dotted key reaches into nested objects only.

        Up to ``MAX_CHAIN_PARTS`` parts (nearly every key): a chain of ``->`` with
        text operands. ``->`` with a text operand answers NULL on anything but an
        object (a list included, whatever the part looks like), which is the
        contract's rule, and it reads one key where ``#>`` first unpacks an array
        of path elements for every row. The text form ends the chain in ``->>``.

        Longer keys: one ``#>``, which would also index into a list where a path
        element reads as an integer (``items.0``); for such elements the value is
        kept only when what it is looked up in is an object, a check linear in the
        key's length.
        """
        parts = key.split(".")
        if len(parts) <= MAX_CHAIN_PARTS:
            steps = [f"{self.bind(part)}::text" for part in parts]
            head = "".join(f" -> {step}" for step in steps[:-1])
            value = f"({column}{head} -> {steps[-1]})"
            self.text_forms[value] = f"({column}{head} ->> {steps[-1]})"
            return value
        path = self.bind(parts)
        value = f"({column} #> {path}::text[])"
        positions = [i for i, part in enumerate(parts) if _INDEX_LIKE.match(part)]
        if not positions:
            self.text_forms[value] = f"({column} #>> {path}::text[])"
            return value
        looked_up_in = f"jsonb_typeof({column} #> ({path}::text[])[1:i])"
        return (
            f"(CASE WHEN 'object' = ALL (SELECT {looked_up_in} FROM unnest({self.bind(positions)}::int[]) AS i) "
            f"THEN {value} END)"
        )

    def number(self, value: float | int) -> str:
        """A numeric operand, compared as numeric (exact, and never overflowing a float)."""
        exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        return f"{self.bind(exact)}::numeric"

    def json_text(self, value: str) -> str:
        """The string form: a string as itself, anything else as its JSON text; NULL for null.

        ``->>``, ``#>>`` and ``#>> '{}'`` give exactly that, JSON null as NULL included.
        """
        return self.text_forms.get(value, f"(({value}) #>> '{{}}')")

    def json_number(self, value: str) -> str:
        """A JSON number or a numeric string (``NUMERIC_RE``) as numeric; else NULL.

        The one reading of a property as a number: numeric operators, ``eq`` with a
        number and aggregates all go through it.
        """
        number = f"WHEN jsonb_typeof({value}) = 'number' THEN ({value})::numeric"
        text = self.json_text(value)
        string = (
            f"WHEN jsonb_typeof({value}) = 'string' AND char_length({text}) <= {self.bind(NUMERIC_MAX_LENGTH)} "
            f"AND {text} ~ {self.bind(NUMERIC_RE)} THEN {text}::numeric"
        )
        return f"(CASE {number} {string} END)"

    def json_timestamp(self, value: str) -> str:
        text = self.json_text(value)
        return (
            f"(CASE WHEN jsonb_typeof({value}) = 'string' AND {text} ~ {self.bind(TIMESTAMP_RE)} "
            f"THEN segmentation_try_timestamptz({text}) END)"
        )

    def comparison(self, expression: str, comparison: Comparison) -> str:
        if comparison.operator == "between":
            low, high = comparison.value
            return f"{expression} BETWEEN {self.number(low)} AND {self.number(high)}"
        operator = _SQL_COMPARISON[comparison.operator]
        return f"{expression} {operator} {self.number(comparison.value)}"


# The sum of an aggregate's values, 0 when it has none.
_SUM = "coalesce(sum(g.value), 0)"
_POSITIVE = {"neq": "eq", "not_in": "in", "not_contains": "contains", "is_not_set": "is_set"}
_SQL_COMPARISON = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _traits_only(node: Node) -> bool:
    """Whether the node reads nothing but the person's traits (a trait, or a group of only those)."""
    if isinstance(node, Trait):
        return True
    if isinstance(node, Not):
        return _traits_only(node.condition)
    if isinstance(node, And | Or):
        return all(_traits_only(child) for child in node.conditions)
    return False


def _complement(node: Node) -> bool:
    """Whether ``_Builder.node`` compiles the node as everyone except some people (``excluded``).

    ``not`` of anything but trait conditions, a count holding at zero, a sum holding at zero.
    """
    if _traits_only(node):
        return False
    if isinstance(node, Not):
        return True
    if isinstance(node, EventCount):
        return _compare(node.count, 0)
    return isinstance(node, Aggregate) and node.function == "sum" and _compare(node.comparison, 0)


def _times_of_people(node: Node) -> bool:
    """Whether the node is first or last performed of any event, unfiltered: a column of the people."""
    return isinstance(node, Performed) and node.event == ANY_EVENT and not node.filters


def _first_of_a_name(node: Node) -> bool:
    """Whether the node is the first time of a named event, unfiltered: a row of tracking's firsts."""
    return isinstance(node, Performed) and node.which == "first" and node.event != ANY_EVENT and not node.filters


def _drawn_from_people(node: Node) -> bool:
    """Whether the node's set is a subset of a scan of the workspace's people, as ``_Builder.node`` compiles it.

    Trait conditions, complements and the first or last time of any event scan
    the people; an intersection is drawn from them when one of its parts is (its
    trait conditions are one part); a union when all of its parts are.
    """
    if _traits_only(node) or _complement(node) or _times_of_people(node):
        return True
    if isinstance(node, And):
        return any(_drawn_from_people(child) for child in node.conditions)
    if isinstance(node, Or):
        return all(_drawn_from_people(child) for child in node.conditions)
    return False


def _compare(comparison: Comparison, value: float) -> bool:
    if comparison.operator == "between":
        low, high = comparison.value
        return bool(low <= value <= high)
    target = comparison.value
    return {
        "eq": value == target,
        "neq": value != target,
        "gt": value > target,
        "gte": value >= target,
        "lt": value < target,
        "lte": value <= target,
    }[comparison.operator]


_NEGATED = {"eq": "neq", "neq": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}


def _negated(node: Node) -> Node | None:
    """A node holding exactly where ``node`` does not, when one exists without a complement.

    A count is defined for everyone (0 without events), so its negation is the
    opposite comparison; ``not`` of a union is the intersection of the negated
    conditions (De Morgan) when each has a negation. Trait conditions stay a
    ``not`` of themselves: they are a filter of the people either way.
    """
    if isinstance(node, Not):
        return node.condition
    if isinstance(node, EventCount):
        operator, value = node.count.operator, node.count.value
        if operator == "between":
            low, high = value
            below = replace(node, count=Comparison("lt", low))
            above = replace(node, count=Comparison("gt", high))
            return Or(conditions=(below, above))
        return replace(node, count=Comparison(_NEGATED[operator], value))
    if isinstance(node, Or):
        children = [Not(child) if _traits_only(child) else _negated(child) for child in node.conditions]
        if all(child is not None for child in children):
            return And(conditions=tuple(child for child in children if child is not None))
    return None


def simplified(tree: Node) -> Node:
    """The same set as ``tree``, with ``not`` pushed down where that avoids a complement.

    "Not (plan is Free or opened fewer than 2 emails)" is "not Free and opened
    at least 2": a filter of a small set, where the complement of a union is an
    anti-join of every person with two sets of up to every person each (figures:
    bench/README.md).
    """
    if isinstance(tree, And | Or):
        return replace(tree, conditions=tuple(simplified(child) for child in tree.conditions))
    if isinstance(tree, Not):
        condition = simplified(tree.condition)
        if _traits_only(condition):
            return Not(condition)
        negated = _negated(condition)
        return simplified(negated) if negated is not None else Not(condition)
    return tree


def compile_members(
    tree: Node,
    *,
    workspace_id: int,
    now: datetime,
    people: Collection[int] | None = None,
    check_people: bool = True,
) -> CompiledQuery:
    """``SELECT person_id`` of the members of ``tree`` in the workspace at ``now``, each once.

    ``people`` (person ids) restricts the answer to those people: the members
    among them, exactly the full answer intersected with them, for the
    real-time re-evaluation of the few people an event touched. Ids of another
    workspace or of nobody are simply not members. The ids are one bound array.
    ``check_people=False``: see ``_Builder.members``.
    """
    tree = simplified(tree)
    builder = _Builder(workspace_id, now, people)
    return builder.finish(builder.members(tree, check_people=check_people))


def compile_count(
    tree: Node, *, workspace_id: int, now: datetime, people: Collection[int] | None = None
) -> CompiledQuery:
    tree = simplified(tree)
    builder = _Builder(workspace_id, now, people)
    return builder.finish(f"SELECT count(*) FROM ({builder.members(tree)}) m")


def compile_preview(
    tree: Node, *, workspace_id: int, now: datetime, sample_size: int, people: Collection[int] | None = None
) -> CompiledQuery:
    """One row: the member count and the ids of ``sample_size`` members, most recently seen first.

    The members are evaluated once for both, where a count and a separate
    sample query would evaluate the definition twice. The order is the one of
    the people list (``last_seen`` descending, then id descending).
    """
    tree = simplified(tree)
    builder = _Builder(workspace_id, now, people)
    members = builder.people_in(tree, "p.id AS person_id, p.last_seen")
    return builder.finish(
        f"WITH members AS MATERIALIZED ({members}) SELECT (SELECT count(*) FROM members), "
        f"ARRAY(SELECT person_id FROM members ORDER BY last_seen DESC, person_id DESC "
        f"LIMIT {builder.bind(sample_size)})"
    )


def compile_measure(node: Node, *, workspace_id: int, now: datetime, person_id: int) -> CompiledQuery | None:
    """What decides a condition of events for one person, read as its compiled set reads it: the
    numbers the page saying why a person is (not) in a segment shows. ``None`` for a node that
    reads no events (a trait, a segment reference, a group: their values are at hand elsewhere).

    - ``event``: one row, the number of matching events in the window;
    - ``aggregate``: one row, the function's value (a sum of nothing is 0, any other function of
      nothing NULL) and how many values it took;
    - ``first_performed`` / ``last_performed``: one row, the first (last) matching instant of all
      time, NULL when never;
    - ``regular``: one row, in how many of the periods a matching event falls;
    - ``sequence``: a row per number of steps reached and whether the run started at least
      ``within`` before ``now``, with the number of such runs.
    """
    builder = _Builder(workspace_id, now, [person_id])
    if isinstance(node, EventCount):
        where = builder.events_where("e", node.event, node.filters, node.window)
        sql = f"SELECT count(*) FROM {EVENTS_TABLE} e WHERE {where}"
    elif isinstance(node, Aggregate):
        where = builder.events_where("e", node.event, node.filters, node.window)
        function = _SUM if node.function == "sum" else f"{node.function}(g.value)"
        sql = (
            f"SELECT {function}, count(g.value) FROM "
            f"(SELECT {builder.aggregated(node)} AS value FROM {EVENTS_TABLE} e WHERE {where}) g"
        )
    elif isinstance(node, Performed):
        if _times_of_people(node):
            column = "first_event_at" if node.which == "first" else "last_event_at"
            sql = (
                f"SELECT {column} FROM {PEOPLE_TABLE} "
                f"WHERE workspace_id = {builder.bind(workspace_id)}{builder.only('id')}"
            )
        elif _first_of_a_name(node):
            sql = (
                f"SELECT max(first_at) FROM {FIRSTS_TABLE} WHERE workspace_id = {builder.bind(workspace_id)}"
                f"{builder.only('person_id')} AND name = {builder.bind(node.event)}"
            )
        else:
            where = builder.events_where("e", node.event, node.filters, None)
            moment = "min" if node.which == "first" else "max"
            sql = f'SELECT {moment}(e."timestamp") FROM {EVENTS_TABLE} e WHERE {where}'
    elif isinstance(node, Regular):
        where, bucket = builder.periods(node)
        sql = f"SELECT count(DISTINCT {bucket}) FROM {EVENTS_TABLE} e WHERE {where}"
    elif isinstance(node, Sequence):
        runs, times = builder.runs(node)
        steps = len(times)  # with dropped_after k, the runs look at steps 1..k+1 only
        reached = " ".join(f"WHEN {times[k]} IS NULL THEN {k}" for k in range(1, steps))
        cutoff = builder.bind(now - node.within.as_timedelta())
        sql = (
            f'SELECT CASE {reached} ELSE {steps} END, s0."timestamp" <= {cutoff}, count(*) {runs} '
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
    else:
        return None
    return builder.finish(sql)


def compile_sequence_furthest(node: Sequence, *, workspace_id: int, now: datetime) -> CompiledQuery:
    """Each person's furthest run of a sequence, the runs as the ``sequence`` condition finds them
    (``_Builder.runs``: one from each step-1 occurrence in the window; ``completed`` plays no part):
    ``person_id``, then ``t0`` .. ``t{n-1}`` of the run that reached the most steps (the earliest
    of those on a tie), for every person of the workspace with a step-1 occurrence in the window."""
    builder = _Builder(workspace_id, now)
    return builder.finish(builder.furthest_runs(node))


def _reached(times: list[str]) -> str:
    """How many steps a run reached, from its instants (NULL from the first step it missed)."""
    return " + ".join(["1"] + [f"({time} IS NOT NULL)::int" for time in times[1:]])
