"""Property: a funnel's step counts are the sequence condition's members, on generated data.

Each example loads a few people with events over few names and few instants (so that steps sharing
an instant, events serving steps in either order and repeated step names are common), computes the
funnel, and evaluates with the real segment engine (the compiler) the completed ``sequence`` of the
first *k* steps for each *k*: the people reaching step *k* must be exactly its members. A breakdown
by a trait unique to each person shows each person's furthest step, so sets are compared, not only
counts, and the seconds between that person's steps, which must be those of their furthest run (the
earliest of those), found here by trying every choice of events. The same data in another workspace
must change nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from accounts.tenancy import workspace_scope
from insights import funnels
from segmentation.compiler import compile_members
from segmentation.definition import EventCount, Sequence
from tests import factories
from tests.insights.support import NOW, load
from tests.segmentation.oracle import OEvent, duration, in_window, matches

PEOPLE = ["a", "b", "c", "d"]
INSTANTS = [NOW - timedelta(minutes=m) for m in (600, 300, 240, 240, 180, 120, 60, 30, 0)]

filters = st.sampled_from(
    [[], [], [{"key": "x", "operator": "eq", "value": True}], [{"key": "y", "operator": "gte", "value": 1}]]
)
steps = st.lists(
    st.builds(
        lambda name, f: {"event": name, **({"filters": f} if f else {})},
        st.sampled_from(["A", "B", "C", "$any"]),
        filters,
    ),
    min_size=2,
    max_size=7,
)
funnels_ = st.builds(
    lambda s, within, window: {"steps": s, "within": within, **window},
    steps,
    st.sampled_from(["30m", "1h", "3h", "1d"]),
    st.sampled_from([{"since": None}, {"since": "5h"}, {"since": "7h", "until": "2h"}]),
)
events = st.lists(
    st.tuples(
        st.sampled_from(PEOPLE),
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from(INSTANTS),
        st.fixed_dictionaries({}, optional={"x": st.booleans(), "y": st.sampled_from([0, 1, "2"])}),
    ),
    max_size=14,
)


@pytest.fixture
def workspaces(db):
    return factories.WorkspaceFactory(), factories.WorkspaceFactory()


def _members(workspace, tree) -> set[int]:
    query = compile_members(tree, workspace_id=workspace.pk, now=NOW)
    with connection.cursor() as cursor:
        query.execute(cursor)
        return {pk for (pk,) in cursor.fetchall()}


_TWO_RUNS = [("a", "A", 300), ("a", "B", 240), ("a", "A", 60), ("a", "B", 30)]


def _furthest_gaps(document: dict, mine: list[OEvent]) -> list[float | None] | None:
    """Seconds from each step to the next in the person's furthest run, the earliest of those on a tie
    (None past the last step it reached), by trying every choice of distinct events; None when no
    step-1 event is in the window.

    Each step's instant is the earliest at which some run from the same step-1 instant matches it
    (the compiler takes each step at the earliest instant it can, and so gets the same instants).
    """
    steps, within = document["steps"], duration(document["within"])
    window = {key: document.get(key) for key in ("since", "until")}

    def earliest(step: int, used: list[OEvent], previous, deadline, last: int):
        """The earliest instant of step ``last - 1`` over the choices of events for steps[step:last]."""
        best = None
        for e in mine:
            if any(e is u for u in used) or not previous <= e.timestamp <= deadline:
                continue
            if not matches(e, steps[step]["event"], steps[step].get("filters"), NOW):
                continue
            found = e.timestamp if step + 1 == last else earliest(step + 1, [*used, e], e.timestamp, deadline, last)
            if found is not None and (best is None or found < best):
                best = found
        return best

    runs = []
    for first in sorted(mine, key=lambda e: e.timestamp):
        if not matches(first, steps[0]["event"], steps[0].get("filters"), NOW):
            continue
        if not in_window(first.timestamp, window, NOW):
            continue
        times = [first.timestamp]
        for last in range(2, len(steps) + 1):
            # The step-1 event may be any of the step-1 events at its instant.
            at = [
                earliest(1, [f], f.timestamp, f.timestamp + within, last)
                for f in mine
                if f.timestamp == first.timestamp and matches(f, steps[0]["event"], steps[0].get("filters"), NOW)
            ]
            reached = [t for t in at if t is not None]
            if not reached:
                break
            times.append(min(reached))
        runs.append(times)
    if not runs:
        return None
    best = max(runs, key=lambda times: (len(times), -times[0].timestamp()))
    return [None] + [(best[k] - best[k - 1]).total_seconds() if k < len(best) else None for k in range(1, len(steps))]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=funnels_, history=events, other_history=events)
# Steps of distinct names (the compiler's own construction for them): two runs reach the last step,
# the earlier one counts; then a later run reaching further than an earlier one.
@example(
    document={"steps": [{"event": "A"}, {"event": "B"}], "within": "1d", "since": None},
    history=[(who, name, NOW - timedelta(minutes=m), {}) for who, name, m in _TWO_RUNS],
    other_history=[],
)
@example(
    document={"steps": [{"event": "A"}, {"event": "B"}, {"event": "C"}], "within": "1h", "since": None},
    history=[(who, name, NOW - timedelta(minutes=m), {}) for who, name, m in [*_TWO_RUNS, ("a", "C", 0)]],
    other_history=[],
)
def test_funnel_steps_count_the_members_of_each_completed_prefix_sequence(workspaces, document, history, other_history):
    workspace, other = workspaces
    with transaction.atomic():
        people = load(workspace, {name: {"who": name} for name in PEOPLE}, history)
        load(other, {name: {"who": name} for name in PEOPLE}, other_history)
        spec = funnels.funnel_parse({**document, "breakdown": {"type": "trait", "key": "who"}}, now=NOW)
        with workspace_scope(workspace):
            result = funnels.funnel_compute(workspace=workspace, spec=spec, now=NOW)
        furthest = {people[group.value].pk: sum(1 for step in group.steps if step.count) for group in result.breakdown}
        for k in range(1, len(spec.steps) + 1):
            if k == 1:
                first = spec.steps[0]
                tree = EventCount(event=first.event, filters=first.filters, window=spec.window)
            else:
                tree = Sequence(steps=spec.steps[:k], within=spec.within, window=spec.window, completed=True)
            expected = _members(workspace, tree)
            assert {pk for pk, reached in furthest.items() if reached >= k} == expected, (k, document, history)
            assert result.steps[k - 1].count == len(expected)
        for group in result.breakdown:
            person = people[group.value]
            mine = [OEvent(person.pk, name, at, props) for who, name, at, props in history if who == group.value]
            gaps = [step.median_seconds_from_previous for step in group.steps]
            assert gaps == _furthest_gaps(document, mine), (group.value, document, history)
        transaction.set_rollback(True)
