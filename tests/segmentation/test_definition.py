from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmentation.definition import (
    And,
    Comparison,
    DefinitionInvalid,
    Duration,
    EventCount,
    Filter,
    Not,
    Sequence,
    Trait,
    Window,
    parse,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def errors_of(document, **kwargs) -> dict[str, str]:
    with pytest.raises(DefinitionInvalid) as caught:
        parse(document, now=NOW, **kwargs)
    return {e.path: e.message for e in caught.value.errors}


def event(**fields):
    return {"type": "event", "event": "Order Completed", **fields}


def test_parses_the_contract_example_into_a_typed_tree():
    tree = parse(
        {
            "type": "and",
            "conditions": [
                event(
                    filters=[{"key": "category", "operator": "eq", "value": "handbags"}],
                    window={"since": "30d"},
                    count={"operator": "gte", "value": 3},
                ),
                {"type": "trait", "key": "plan", "operator": "in", "value": ["Enterprise", "Strategic"]},
            ],
        },
        now=NOW,
    )
    assert tree == And(
        (
            EventCount(
                event="Order Completed",
                filters=(Filter("category", "eq", "handbags"),),
                window=Window(since=Duration(30 * 86400, "30d")),
                count=Comparison("gte", 3),
            ),
            Trait(Filter("plan", "in", ("Enterprise", "Strategic"))),
        )
    )


def test_count_defaults_to_has_done():
    assert parse(event(), now=NOW) == EventCount(event="Order Completed")


def test_sequence_defaults_to_completed():
    tree = parse(
        {"type": "sequence", "within": "48h", "steps": [{"event": "Product Added"}, {"event": "Order Completed"}]},
        now=NOW,
    )
    assert isinstance(tree, Sequence)
    assert tree.completed is True
    assert tree.within.seconds == 48 * 3600


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        ({"type": "nope"}, "type", "unknown node type 'nope'"),
        ({}, "type", "is required"),
        ([], "", "must be an object"),
        ({"type": "and", "conditions": []}, "conditions", "1 to 50"),
        ({"type": "and", "conditions": [event()] * 51}, "conditions", "1 to 50"),
        (
            {"type": "and", "conditions": [event(), event(count={"operator": "most", "value": 1})]},
            "conditions[1].count.operator",
            "unknown operator 'most'",
        ),
        (event(count={"operator": "gte", "value": -1}), "count.value", "whole number"),
        (event(count={"operator": "gte", "value": 1.5}), "count.value", "whole number"),
        (event(window={"since": "7 days"}), "window.since", "duration"),
        (event(window={"since": "0d"}), "window.since", "duration"),
        (event(window={"since": "30d", "until": "60d"}), "window", "before"),
        (event(window={"since": "7d", "until": "7d"}), "window", "before"),
        (event(event=""), "event", "must not be empty"),
        (event(event=5), "event", "must be a string"),
        ({"type": "event"}, "event", "is required"),
        (event(filters=[{"key": "a", "operator": "like", "value": "x"}]), "filters[0].operator", "unknown operator"),
        (event(filters=[{"key": "a", "operator": "gt", "value": "5"}]), "filters[0].value", "needs a number"),
        (event(filters=[{"key": "a", "operator": "eq", "value": None}]), "filters[0].value", "is required"),
        (
            event(filters=[{"key": "a", "operator": "eq", "value": [1]}]),
            "filters[0].value",
            "string, number or boolean",
        ),
        (event(filters=[{"key": "a", "operator": "in", "value": []}]), "filters[0].value", "list of 1 to 1000"),
        (event(filters=[{"key": "a", "operator": "in", "value": list(range(1001))}]), "filters[0].value", "1000"),
        (event(filters=[{"key": "a", "operator": "between", "value": [5, 1]}]), "filters[0].value", "low <= high"),
        (event(filters=[{"key": "a", "operator": "before", "value": "soon"}]), "filters[0].value", "ISO-8601"),
        (event(filters=[{"key": "a", "operator": "is_set", "value": 1}]), "filters[0].value", "takes no value"),
        (event(filters=[{"operator": "is_set"}]), "filters[0].key", "is required"),
        (event(windw={"since": "7d"}), "windw", "unknown field"),
        (
            {"type": "aggregate", "event": "O", "key": "r", "function": "median", "operator": "gte", "value": 1},
            "function",
            "unknown function",
        ),
        (
            {"type": "aggregate", "event": "O", "key": "r", "function": "sum", "operator": "gte", "value": "1"},
            "value",
            "must be a number",
        ),
        (
            {"type": "regular", "event": "Login", "period": "7d", "periods": 4, "min_periods": 5},
            "min_periods",
            "cannot exceed",
        ),
        ({"type": "regular", "event": "Login", "period": "week", "periods": 4, "min_periods": 3}, "period", "duration"),
        ({"type": "sequence", "within": "48h", "steps": [{"event": "A"}]}, "steps", "2 to 5"),
        (
            {"type": "sequence", "within": "48h", "steps": [{"event": "A"}, {"event": "B"}], "completed": "no"},
            "completed",
            "true or false",
        ),
        ({"type": "segment", "segment": "12"}, "segment", "segment id"),
        ({"type": "not"}, "condition", "is required"),
    ],
)
def test_each_invalid_definition_names_its_path(document, path, fragment):
    errors = errors_of(document)
    assert path in errors, errors
    assert fragment in errors[path]


def test_nesting_deeper_than_eight_groups_is_refused():
    def nest(levels):
        node = event()
        for _ in range(levels):
            node = {"type": "not", "condition": node}
        return node

    assert isinstance(parse(nest(8), now=NOW), Not)
    errors = errors_of(nest(9))
    assert any("nest deeper than 8" in message for message in errors.values())


def test_more_than_two_hundred_nodes_is_refused():
    document = {"type": "or", "conditions": [{"type": "and", "conditions": [event()] * 50} for _ in range(4)]}
    errors = errors_of(document)
    assert "" in errors
    assert "limit is 200" in errors[""]


def test_segment_references_are_checked_for_existence_and_cycles():
    references = {1: {2}, 2: {3}, 3: set()}
    exists = references.__contains__
    assert errors_of({"type": "segment", "segment": 9}, segment_exists=exists) == {
        "segment": "segment 9 does not exist in this workspace"
    }
    assert (
        "cycle"
        in errors_of(
            {"type": "or", "conditions": [event(), {"type": "segment", "segment": 1}]},
            segment_exists=exists,
            segment_references=references.__getitem__,
            self_id=3,
        )["conditions[1].segment"]
    )
    assert "itself" in errors_of({"type": "segment", "segment": 3}, segment_exists=exists, self_id=3)["segment"]


def test_timestamps_and_durations_resolve_against_now():
    tree = parse(event(window={"since": "2026-05-01T00:00:00Z", "until": "1w"}), now=NOW)
    assert tree.window.bounds(NOW) == (datetime(2026, 5, 1, tzinfo=UTC), NOW - timedelta(weeks=1))
