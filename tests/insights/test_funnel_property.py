"""Property: a funnel's step counts are the sequence condition's members, on generated data.

Each example loads a few people with events over few names and few instants (so that steps sharing
an instant, events serving steps in either order and repeated step names are common), computes the
funnel, and evaluates with the real segment engine (the compiler) the completed ``sequence`` of the
first *k* steps for each *k*: the people reaching step *k* must be exactly its members. A breakdown
by a trait unique to each person shows each person's furthest step, so sets are compared, not only
counts. The same data in another workspace must change nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.tenancy import workspace_scope
from insights import funnels
from segmentation.compiler import compile_members
from segmentation.definition import EventCount, Sequence
from tests import factories
from tests.insights.support import NOW, load

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


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=funnels_, history=events, other_history=events)
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
        transaction.set_rollback(True)
