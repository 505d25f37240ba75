"""Why a person is (not) in a segment: each condition evaluated for them by the engine, with the numbers.

The property test draws definitions and histories as the compiler's own property test does
(tests/segmentation/test_compiler.py) and checks every node of every explanation against the
plain-Python oracle, and each condition's numbers against its verdict: the page can never say
"met" next to numbers that fail the condition, nor disagree with what a refresh decides.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.tenancy import workspace_scope
from segmentation.definition import parse
from segmentation.explain import Explained, person_explain
from segmentation.models import Membership, Segment
from tests.segmentation import oracle
from tests.segmentation.test_compiler import (
    NOW,
    PEOPLE,
    Event,
    _resolve_segments,
    ago,
    documents,
    histories,
    load,
    sequence,
    trait,
    world,
)
from tests.tracking import builders
from tracking.models import Person

__all__ = ["world"]  # the fixture, used by name


def _explain(world, document: dict, person_id: int, *, name: str = "Explained") -> Any:
    resolved = _resolve_segments(document, world.segments)
    with workspace_scope(world.workspace):
        segment = Segment.objects.create(workspace=world.workspace, name=name, definition=resolved)
        person = Person.objects.get(pk=person_id)
        return person_explain(workspace=world.workspace, segment=segment, person=person, now=NOW)


def _leaf_texts(explained: Explained) -> list[tuple[bool, str, str]]:
    """(holds, clause, detail) of every condition, depth first."""
    if explained.group or explained.children:
        rows = [] if explained.group else [(explained.holds, _text(explained), explained.detail)]
        for child in explained.children:
            rows += _leaf_texts(child)
        return rows
    return [(explained.holds, _text(explained), explained.detail)]


def _text(explained: Explained) -> str:
    return "".join(part.text for part in explained.clause)


# --- every kind of condition, with its numbers -----------------------------------------------


def test_a_count_says_how_many_times_in_the_window_and_what_it_needs(world):
    ids, _ = load(
        world,
        {"ann": {}, "bob": {}},
        [Event("ann", "Order Completed", ago(days=d)) for d in (1, 2, 3, 40)]
        + [Event("bob", "Order Completed", ago(days=1))],
    )
    node = {
        "type": "event",
        "event": "Order Completed",
        "window": {"since": "30d"},
        "count": {"operator": "gte", "value": 3},
    }

    ann = _explain(world, node, ids["ann"], name="a")
    bob = _explain(world, node, ids["bob"], name="b")

    assert (ann.holds, ann.tree.holds, ann.tree.measure) == (True, True, ((3,),))
    assert ann.tree.detail == "Performed Order Completed 3 times in the last 30 days; needs at least 3 times."
    assert (bob.holds, bob.tree.detail) == (
        False,
        "Performed Order Completed 1 time in the last 30 days; needs at least 3 times.",
    )
    assert not ann.member, "nothing stored: the segment was never refreshed"
    assert ann.disagrees
    assert not bob.disagrees


def test_has_not_done_holds_without_any_event_and_says_none_is_needed(world):
    ids, _ = load(world, {"ann": {}}, [])
    explanation = _explain(
        world, {"type": "event", "event": "Login", "count": {"operator": "eq", "value": 0}}, ids["ann"]
    )

    assert explanation.holds is True
    assert explanation.tree.detail == "Performed Login 0 times; needs none."


def test_an_aggregate_gives_its_value_and_how_many_numbers_it_took(world):
    ids, _ = load(
        world,
        {"ann": {}, "bob": {}, "cy": {}},
        [
            Event("ann", "Order Completed", ago(days=1), {"revenue": 400}),
            Event("ann", "Order Completed", ago(days=2), {"revenue": 212.5}),
            Event("ann", "Order Completed", ago(days=3), {"revenue": None}),
            Event("ann", "Order Completed", ago(days=200), {"revenue": 1000}),
            Event("bob", "Order Completed", ago(days=1), {"currency": "EUR"}),
        ],
    )
    total = {
        "type": "aggregate",
        "event": "Order Completed",
        "key": "revenue",
        "function": "sum",
        "window": {"since": "90d"},
        "operator": "gte",
        "value": 500,
    }
    average = {**total, "function": "avg", "operator": "lt", "value": 10}

    ann = _explain(world, total, ids["ann"], name="total ann")
    bob = _explain(world, total, ids["bob"], name="total bob")
    bob_avg = _explain(world, average, ids["bob"], name="avg bob")

    assert ann.holds is True
    assert ann.tree.measure == ((Decimal("612.5"), 2),)
    assert ann.tree.detail == (
        "Total of revenue on Order Completed in the last 90 days: 612.5, from 2 events with a number; "
        "needs at least 500."
    )
    assert bob.tree.detail == (
        "Total of revenue on Order Completed in the last 90 days: 0, no event with a number; needs at least 500."
    )
    assert (bob_avg.holds, bob_avg.tree.measure) == (False, ((None, 0),)), "an average of nothing fails"
    assert "Average of revenue" in bob_avg.tree.detail
    assert ": none, no event with a number" in bob_avg.tree.detail


def test_first_and_last_performed_give_the_moment(world):
    ids, _ = load(
        world,
        {"ann": {}, "bob": {}},
        [Event("ann", "Order Completed", ago(days=100)), Event("ann", "Order Completed", ago(days=95))],
    )
    lapsed = {"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}}

    ann = _explain(world, lapsed, ids["ann"], name="a")
    bob = _explain(world, lapsed, ids["bob"], name="b")

    moment = ago(days=95)
    assert (ann.holds, ann.tree.measure) == (True, ((moment,),))
    assert ann.tree.detail == f"Last performed {moment.day} {moment:%b %Y, %H:%M} UTC; needs it more than 90 days ago."
    assert (bob.holds, bob.tree.detail) == (False, "Never performed Order Completed.")


def test_new_this_week_reads_the_person_times_as_the_compiler_does(world):
    ids, _ = load(world, {"ann": {}}, [Event("ann", "Login", ago(days=2))])
    with workspace_scope(world.workspace):
        Person.objects.filter(pk=ids["ann"]).update(first_event_at=ago(days=2), last_event_at=ago(days=2))

    explanation = _explain(world, {"type": "first_performed", "event": "$any", "window": {"since": "7d"}}, ids["ann"])

    assert explanation.holds is True
    assert explanation.tree.measure == ((ago(days=2),),)
    assert explanation.tree.detail.startswith("First performed ")
    assert explanation.tree.detail.endswith("; needs it in the last 7 days.")


def test_regular_counts_the_periods_hit(world):
    ids, _ = load(
        world,
        {"ann": {}},
        [Event("ann", "Login", ago(days=1)), Event("ann", "Login", ago(days=2)), Event("ann", "Login", ago(days=9))],
    )
    node = {"type": "regular", "event": "Login", "period": "1w", "periods": 4, "min_periods": 3}

    explanation = _explain(world, node, ids["ann"])

    assert (explanation.holds, explanation.tree.measure) == (False, ((2,),))
    assert explanation.tree.detail == "In 2 of the last 4 periods of 1 week; needs at least 3."


def test_a_sequence_tells_its_runs_and_where_each_stopped(world):
    ids, _ = load(
        world,
        {"ann": {}},
        [
            # a run that completes
            Event("ann", "Viewed", ago(days=6)),
            Event("ann", "Added", ago(days=6, hours=-1)),
            Event("ann", "Ordered", ago(days=6, hours=-2)),
            # a run that stops after step 2, long ago enough
            Event("ann", "Viewed", ago(days=4)),
            Event("ann", "Added", ago(days=4, hours=-1)),
            # a run that stops after step 1, too recent to count as dropped
            Event("ann", "Viewed", ago(hours=2)),
        ],
    )
    completed = sequence("Viewed", "Added", "Ordered", within="2d", window={"since": "7d"})
    dropped = {**completed, "completed": False}

    done = _explain(world, completed, ids["ann"], name="done")
    off = _explain(world, dropped, ids["ann"], name="off")

    assert done.holds is True
    assert off.holds is True
    assert sorted(done.tree.measure) == [(1, False, 1), (2, True, 1), (3, True, 1)]
    assert done.tree.detail == (
        "3 runs started in the last 7 days; 1 completed all 3 steps within 2 days; "
        "1 stopped after step 2 (Added); 1 still within 2 days of their start."
    )
    assert off.tree.measure == done.tree.measure


def test_a_segment_condition_reads_the_stored_membership(world):
    ids, _ = load(world, {"ann": {}, "bob": {}}, [], memberships={0: {"ann"}})
    with workspace_scope(world.workspace):
        Segment.objects.filter(pk=world.segments[0]).update(name="VIP")
        entered = Membership.objects.get(segment_id=world.segments[0], person_id=ids["ann"]).entered_at

    ann = _explain(world, {"type": "segment", "segment": 0}, ids["ann"], name="a")
    bob = _explain(world, {"type": "segment", "segment": 0}, ids["bob"], name="b")

    assert (ann.holds, ann.tree.detail) == (True, f"In VIP since {entered.day} {entered:%b %Y, %H:%M} UTC.")
    assert (bob.holds, bob.tree.detail) == (False, "Not in VIP at its last refresh.")
    assert _text(bob.tree) == "are in VIP"


def test_traits_show_the_persons_value(world):
    ids, _ = load(world, {"ann": {"plan": "Pro", "address": {"zip": 75001}}, "bob": {"address": [1]}}, [])
    node = {"type": "and", "conditions": [trait("plan", "in", ["Pro", "Team"]), trait("address.zip", "gte", 70000)]}

    ann = _explain(world, node, ids["ann"], name="a")
    bob = _explain(world, node, ids["bob"], name="b")

    assert ann.tree.group == "and"
    assert ann.tree.group_words == "All of these"
    assert _leaf_texts(ann.tree) == [
        (True, "whose plan is Pro or Team", "plan is “Pro”."),
        (True, "whose address.zip is at least 70000", "address.zip is 75001."),
    ]
    assert [detail for _, _, detail in _leaf_texts(bob.tree)] == ["plan is not set.", "address.zip is not set."]
    assert bob.holds is False


def test_negations_read_as_one_condition_and_groups_under_not_as_none_of(world):
    ids, _ = load(world, {"ann": {"plan": "Free"}}, [Event("ann", "Login", ago(days=1))])
    node = {
        "type": "and",
        "conditions": [
            {"type": "not", "condition": {"type": "event", "event": "Order Completed"}},
            {
                "type": "not",
                "condition": {
                    "type": "or",
                    "conditions": [trait("plan", "eq", "Free"), {"type": "event", "event": "Login"}],
                },
            },
        ],
    }

    explanation = _explain(world, node, ids["ann"])

    negation, none_of = explanation.tree.children
    assert (negation.holds, negation.detail) == (True, "Performed Order Completed 0 times; needs at least 1 time.")
    assert negation.measure == ((0,),), "the negation shows its condition's numbers"
    assert (none_of.group, none_of.group_words, none_of.holds) == ("none", "None of these", False)
    assert [child.holds for child in none_of.children] == [True, True]
    assert explanation.holds is False


def test_a_static_segment_has_no_conditions_to_explain(world):
    ids, _ = load(world, {"ann": {}}, [])
    with workspace_scope(world.workspace):
        segment = Segment.objects.create(workspace=world.workspace, name="Beta", is_static=True)
        person = Person.objects.get(pk=ids["ann"])
        explanation = person_explain(workspace=world.workspace, segment=segment, person=person, now=NOW)

    assert (explanation.holds, explanation.tree, explanation.member, explanation.problem) == (None, None, False, "")


def test_a_stored_definition_that_no_longer_parses_says_so(world):
    ids, _ = load(world, {"ann": {}}, [])
    explanation = _explain(
        world, {"type": "event", "event": "A", "count": {"operator": "between", "value": [3, 1]}}, ids["ann"]
    )

    assert explanation.tree is None
    assert explanation.holds is None
    assert "no longer reads as valid" in explanation.problem


def test_the_explanation_never_reads_another_workspace(world):
    # The same person name and events in the other workspace; the person of ours has none.
    ours, theirs = load(world, {"ann": {}}, [])
    builders.event(world.other, Person.objects.unscoped().get(pk=theirs["ann"]), "Login", at=ago(days=1))
    explanation = _explain(world, {"type": "event", "event": "Login"}, ours["ann"])

    assert explanation.holds is False
    assert explanation.tree.measure == ((0,),)


# --- against the oracle ------------------------------------------------------------------------


def _check(world, explained: Explained, node: dict, judge: oracle.Oracle, person: int) -> int:
    """Every node's verdict is the oracle's, and each condition's numbers decide it the same way."""
    assert explained.holds == judge.holds(node, person), (node, explained)
    checked = 1
    kind = node["type"]
    if kind in ("and", "or"):
        assert explained.group == kind
        for child, child_node in zip(explained.children, node["conditions"], strict=True):
            checked += _check(world, child, child_node, judge, person)
        return checked
    if kind == "not":
        inner = node["condition"]
        if inner["type"] in ("and", "or"):
            assert explained.group == ("none" if inner["type"] == "or" else "not all")
            for child, child_node in zip(explained.children, inner["conditions"], strict=True):
                checked += _check(world, child, child_node, judge, person)
        elif inner["type"] == "not":
            checked += _check(world, explained.children[0], inner, judge, person)
        else:
            _numbers_decide(explained, inner, not explained.holds, judge, person)
        return checked
    _numbers_decide(explained, node, explained.holds, judge, person)
    return checked


def _numbers_decide(explained: Explained, node: dict, holds: bool, judge: oracle.Oracle, person: int) -> None:
    kind = node["type"]
    tree = parse(node, now=NOW)
    rows = explained.measure
    if kind == "event":
        count = rows[0][0]
        matching = [
            e
            for e in judge.events_of(person)
            if oracle.matches(e, node["event"], node.get("filters"), NOW)
            and oracle.in_window(e.timestamp, node.get("window"), NOW)
        ]
        assert count == len(matching)
        spec = node.get("count") or {"operator": "gte", "value": 1}
        assert holds == oracle.compare(count, spec["operator"], spec["value"])
    elif kind == "aggregate":
        value, numbers = rows[0]
        if value is None:
            assert not holds
            assert numbers == 0
        else:
            assert holds == oracle.compare(value, node["operator"], node["value"])
    elif kind in ("first_performed", "last_performed"):
        moment = rows[0][0] if rows else None
        assert holds == (moment is not None and oracle.in_window(moment, node.get("window"), NOW))
    elif kind == "regular":
        assert holds == (rows[0][0] >= node["min_periods"])
    elif kind == "sequence":
        steps = len(node["steps"])
        if node.get("completed", True):
            assert holds == any(reached == steps for reached, _, _ in rows)
        else:
            stop = node.get("dropped_after")
            assert holds == any(
                old and reached < steps and (stop is None or reached == stop) for reached, old, _ in rows
            )
    else:
        assert rows == ()
    assert tree is not None


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=documents, history=histories(), person=st.sampled_from(PEOPLE))
def test_every_node_of_an_explanation_is_the_oracles_verdict(world, document, history, person):
    people, events, memberships = history
    with transaction.atomic():
        ids, _ = load(world, people, events, memberships)
        resolved = _resolve_segments(document, world.segments)
        judge = oracle.Oracle(
            {ids[name]: traits for name, traits in world.people.items()},
            [oracle.OEvent(ids[e.person], e.name, e.at, e.properties or {}, i) for i, e in enumerate(world.events)],
            {world.segments[i]: {ids[n] for n in names} for i, names in world.memberships.items()},
            NOW,
        )
        explanation = _explain(world, document, ids[person])
        assert explanation.problem == ""
        _check(world, explanation.tree, resolved, judge, ids[person])
        transaction.set_rollback(True)
    world.forget()


def test_the_check_itself_fails_on_a_wrong_verdict(world):
    """The property test's checker is not vacuous: a verdict flipped by hand is caught."""
    ids, _ = load(world, {"ann": {}}, [Event("ann", "A", ago(days=1))])
    node = {"type": "event", "event": "A"}
    explanation = _explain(world, node, ids["ann"])
    judge = oracle.Oracle({ids["ann"]: {}}, [oracle.OEvent(ids["ann"], "A", ago(days=1), {}, 0)], {}, NOW)
    flipped = Explained(explanation.tree.path, not explanation.tree.holds, [], measure=explanation.tree.measure)

    assert _check(world, explanation.tree, node, judge, ids["ann"]) == 1
    with pytest.raises(AssertionError):
        _check(world, flipped, node, judge, ids["ann"])


def test_the_measures_bind_every_value_and_filter_every_where_on_the_workspace_and_person():
    from segmentation.compiler import compile_measure
    from tests.segmentation.test_compiler import HOSTILE

    text = HOSTILE[0]
    filters = [{"key": text, "operator": "contains", "value": text}]
    nodes = [
        {"type": "event", "event": text, "filters": filters, "window": {"since": "7d"}},
        {"type": "aggregate", "event": text, "key": text, "function": "avg", "operator": "gt", "value": 1},
        {"type": "last_performed", "event": text, "filters": filters},
        {"type": "first_performed", "event": "$any", "window": {"since": "7d"}},
        {"type": "regular", "event": text, "period": "1d", "periods": 3, "min_periods": 2},
        {"type": "sequence", "within": "1h", "steps": [{"event": text, "filters": filters}, {"event": "$any"}]},
    ]
    for node in nodes:
        query = compile_measure(parse(node, now=NOW), workspace_id=123, now=NOW, person_id=77)
        assert query is not None, node
        assert text not in query.sql.replace("%s", ""), node
        assert query.sql.count("%s") == len(query.params)
        wheres = re.findall(r"WHERE (\S+ = %s)", query.sql)
        assert len(wheres) == query.sql.count("WHERE "), node
        assert {where.rpartition(".")[2] for where in wheres} == {"workspace_id = %s"}, node
        restrictions = re.findall(r"WHERE \S+ = %s AND (\S+) = ANY\(%s::bigint\[\]\)", query.sql)
        assert len(restrictions) == len(wheres), "every read is of the one person"
        assert 123 in query.params
        assert [77] in query.params
    for node in ({"type": "trait", "key": "plan", "operator": "is_set"}, {"type": "segment", "segment": 3}):
        assert compile_measure(parse(node, now=NOW), workspace_id=123, now=NOW, person_id=77) is None
