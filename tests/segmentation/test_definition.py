from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmentation.definition import (
    MAX_COUNT,
    MAX_NUMBER,
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
    referenced_first,
    referenced_segments,
    segment_reference_paths,
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
    assert tree.dropped_after is None
    assert tree.within.seconds == 48 * 3600


@pytest.mark.parametrize("k", [1, 2])
def test_dropped_after_a_step_before_the_last_of_a_run_that_dropped_off(k):
    steps = [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}]
    document = {"type": "sequence", "within": "3d", "steps": steps, "completed": False, "dropped_after": k}
    tree = parse({"type": "not", "condition": document}, now=NOW)
    assert isinstance(tree, Not)
    assert isinstance(tree.condition, Sequence)
    assert (tree.condition.completed, tree.condition.dropped_after) == (False, k)
    # null is the same as leaving it out: a run that stopped at any step
    assert parse({**document, "dropped_after": None}, now=NOW) == parse(
        {k: v for k, v in document.items() if k != "dropped_after"}, now=NOW
    )


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
            {"type": "aggregate", "event": "O", "key": "r", "function": {}, "operator": "gte", "value": 1},
            "function",
            "unknown function",
        ),
        (
            event(filters=[{"key": "a", "operator": "before", "value": "0001-01-01T00:00:00+05:00"}]),
            "filters[0].value",
            "ISO-8601",
        ),
        (event(window={"since": "0001-01-01T00:00:00+05:00"}), "window.since", "duration"),
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


def aggregate(**fields):
    node = {"type": "aggregate", "event": "O", "key": "r", "function": "sum", "operator": "gte", "value": 1, **fields}
    return {k: v for k, v in node.items() if v is not _DROP}


def regular(**fields):
    node = {"type": "regular", "event": "Login", "period": "7d", "periods": 4, "min_periods": 3, **fields}
    return {k: v for k, v in node.items() if v is not _DROP}


def sequence(**fields):
    node = {"type": "sequence", "within": "48h", "steps": [{"event": "A"}, {"event": "B"}], **fields}
    return {k: v for k, v in node.items() if v is not _DROP}


_DROP = object()
DURATION_MESSAGE = 'must be a duration such as "30m", "48h", "7d" or "4w", not '


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            aggregate(operator="most"),
            {"operator": "unknown operator 'most'; one of between, eq, gt, gte, lt, lte, neq"},
        ),
        (aggregate(function=_DROP), {"function": "is required"}),
        (aggregate(key=_DROP), {"key": "is required"}),
        (aggregate(value=_DROP), {"value": "is required"}),
        (
            event(count={"operator": "between", "value": [0, 1.5]}),
            {"count.value": "a count is compared with whole numbers from 0 to 1000000000"},
        ),
        (event(count={"operator": "gte"}), {"count.value": "is required"}),
        (event(count=5), {"count": "count must be an object, not a number"}),
        (event(filters={"key": "a"}), {"filters": "must be a list of filters, not an object"}),
        (
            event(filters=[{"key": "a", "operator": "contains", "value": 5}]),
            {"filters[0].value": "contains needs a string, not a number"},
        ),
        (
            event(filters=[{"key": "a", "operator": "in", "value": ["x", {"a": 1}]}]),
            {"filters[0].value[1]": "must be a string, number or boolean, not an object"},
        ),
        (
            event(filters=[{"key": "a", "operator": "between", "value": ["1", 2]}]),
            {"filters[0].value": "between needs [low, high], two numbers"},
        ),
        (
            event(filters=[{"key": "a", "operator": "eq", "value": "x" * 10_001}]),
            {"filters[0].value": "is longer than 10000 characters"},
        ),
        (
            event(filters=[{"key": "k" * 10_001, "operator": "is_set"}]),
            {"filters[0].key": "is longer than 10000 characters"},
        ),
        (event(window="7d"), {"window": "window must be an object, not a string"}),
        (
            event(window={"until": "soon"}),
            {"window.until": "must be a duration (\"7d\") or an ISO-8601 timestamp, not 'soon'"},
        ),
        (
            event(window={"since": "2026-05-02", "until": "2026-05-01T00:00:00Z"}),
            {"window": 'starts at or after its end: "since" must lie before "until"'},
        ),
        (
            event(window={"since": "99999w"}),
            {"window.since": "is longer than a century (36600 days), the longest duration"},
        ),
        (regular(periods=0), {"periods": "must be between 1 and 365"}),
        (regular(periods=366), {"periods": "must be between 1 and 365"}),
        (regular(periods="4"), {"periods": "must be a whole number, not a string"}),
        (regular(min_periods=0), {"min_periods": "must be between 1 and 365"}),
        (regular(period="200w", periods=30), {"periods": "periods times period reaches back more than a century"}),
        (regular(period=_DROP), {"period": "is required"}),
        (sequence(within="48 hours"), {"within": DURATION_MESSAGE + "'48 hours'"}),
        (sequence(within=_DROP), {"within": "is required"}),
        (sequence(steps=[{"event": s} for s in "ABCDEF"]), {"steps": "must be a list of 2 to 5 steps"}),
        (sequence(steps=[{"event": "A"}, {"filters": []}]), {"steps[1].event": "is required"}),
        (sequence(steps=[{"event": "A"}, "B"]), {"steps[1]": "a step must be an object, not a string"}),
        (
            sequence(dropped_after=1),
            {"dropped_after": 'applies only to a run that dropped off: set "completed" to false'},
        ),
        (
            sequence(completed=True, dropped_after=1),
            {"dropped_after": 'applies only to a run that dropped off: set "completed" to false'},
        ),
        (
            sequence(completed=False, dropped_after=2),
            {"dropped_after": "must be 1 (the step before the last) for 2 steps, not 2"},
        ),
        (
            sequence(steps=[{"event": s} for s in "ABC"], completed=False, dropped_after=3),
            {"dropped_after": "must be a step before the last: 1 to 2 for 3 steps, not 3"},
        ),
        (
            sequence(steps=[{"event": s} for s in "ABC"], completed=False, dropped_after=0),
            {"dropped_after": "must be a step before the last: 1 to 2 for 3 steps, not 0"},
        ),
        (
            sequence(completed=False, dropped_after="1"),
            {"dropped_after": "must be a step number (a whole number), not a string"},
        ),
        (
            sequence(completed=False, dropped_after=True),
            {"dropped_after": "must be a step number (a whole number), not a boolean"},
        ),
        (
            sequence(completed=False, dropped_after=1.0),
            {"dropped_after": "must be a step number (a whole number), not a number"},
        ),
        ({"type": "segment", "segment": 0}, {"segment": "must be a segment id (a positive whole number), not 0"}),
        ({"type": "segment", "segment": True}, {"segment": "must be a segment id (a positive whole number), not True"}),
        ({"type": "segment"}, {"segment": "is required: a segment id"}),
        ({"type": "and", "conditions": "x"}, {"conditions": "must be a list of conditions, not a string"}),
        ({"type": "or"}, {"conditions": "is required: a list of 1 to 50 conditions"}),
        ({"type": "not", "condition": "x"}, {"condition": "a condition must be an object, not a string"}),
        ({"type": "and", "conditions": [event()], "extra": 1}, {"extra": "unknown field 'extra' in an and group"}),
        (event(event="   "), {"event": "must not be empty"}),
        (event(event="E" * 10_001), {"event": "is longer than 10000 characters"}),
        # The database can hold neither: refused when saved, not failing at refresh time.
        (
            event(filters=[{"key": "a", "operator": "eq", "value": "x\x00"}]),
            {"filters[0].value": "must not contain the NUL character (\\u0000)"},
        ),
        (
            event(filters=[{"key": "a", "operator": "in", "value": ["ok", "\ud800"]}]),
            {"filters[0].value[1]": "is not valid Unicode text (it holds a lone surrogate)"},
        ),
        (
            {"type": "trait", "key": "a\x00", "operator": "is_set"},
            {"key": "must not contain the NUL character (\\u0000)"},
        ),
        (event(event="\ud83d"), {"event": "is not valid Unicode text (it holds a lone surrogate)"}),
        (
            sequence(
                steps=[{"event": "A"}, {"event": "B", "filters": [{"key": "x", "operator": "gt", "value": True}]}]
            ),
            {"steps[1].filters[0].value": "gt needs a number, not a boolean"},
        ),
    ],
)
def test_each_contract_error_has_its_path_and_message(document, expected):
    assert errors_of(document) == expected


def test_errors_deep_in_groups_carry_the_full_path_and_all_are_reported():
    document = {
        "type": "and",
        "conditions": [
            event(),
            {"type": "not", "condition": event(filters=[{"key": "a", "operator": "gt", "value": "5"}])},
            {"type": "or", "conditions": [event(window={"since": "7 days"}), {"type": "trait", "key": "p"}]},
        ],
    }
    assert errors_of(document) == {
        "conditions[1].condition.filters[0].value": "gt needs a number, not a string",
        "conditions[2].conditions[0].window.since": (
            "must be a duration (\"7d\") or an ISO-8601 timestamp, not '7 days'"
        ),
        "conditions[2].conditions[1].operator": "is required",
    }


def test_a_cycle_through_nested_groups_names_the_segment_node():
    references = {1: {2}, 2: {3}, 3: set()}
    document = {"type": "and", "conditions": [event(), {"type": "not", "condition": {"type": "segment", "segment": 1}}]}
    errors = errors_of(
        document, segment_exists=references.__contains__, segment_references=references.__getitem__, self_id=3
    )
    assert errors == {"conditions[1].condition.segment": "segment 1 refers back to this segment: a cycle"}


# --- Numbers at the edge of what storage and evaluation hold --------------------------------

# The largest float within MAX_NUMBER (2**63 - 1024); the next one is 2**63.
LARGEST_FLOAT = 9223372036854774784.0
CENTURY = "is longer than a century (36600 days), the longest duration"
RANGE = f"must lie between -{MAX_NUMBER} and {MAX_NUMBER} (a 64-bit integer's range)"


def _count(value):
    return f"a count is compared with a whole number from 0 to {MAX_COUNT}, not {value!r}"


def _trait(operator, value):
    return {"type": "trait", "key": "n", "operator": operator, "value": value}


# (document, path, message) just past each limit, and far past it (where a huge integer used to
# overflow float conversion: a 500, not a 400).
OUTSIDE = [
    (event(count={"operator": "gte", "value": MAX_COUNT + 1}), "count.value", _count(MAX_COUNT + 1)),
    (event(count={"operator": "eq", "value": 10**20}), "count.value", _count(10**20)),
    (event(count={"operator": "gte", "value": 10**400}), "count.value", _count(10**400)),
    (
        event(count={"operator": "between", "value": [0, MAX_COUNT + 1]}),
        "count.value",
        f"a count is compared with whole numbers from 0 to {MAX_COUNT}",
    ),
    (aggregate(value=MAX_NUMBER + 1), "value", RANGE),
    (aggregate(value=-MAX_NUMBER - 1), "value", RANGE),
    (aggregate(value=2.0**63), "value", RANGE),
    (aggregate(value=1e20), "value", RANGE),
    (aggregate(value=-1e300), "value", RANGE),
    (aggregate(value=10**400), "value", RANGE),
    (aggregate(operator="between", value=[0, MAX_NUMBER + 1]), "value[1]", RANGE),
    (_trait("gt", MAX_NUMBER + 1), "value", RANGE),
    (_trait("lte", -(2.0**63)), "value", RANGE),
    (_trait("between", [-1e20, 0]), "value[0]", RANGE),
    (_trait("eq", 1e300), "value", RANGE),
    (_trait("neq", -MAX_NUMBER - 1), "value", RANGE),
    (_trait("in", [1, "x", MAX_NUMBER + 1]), "value[2]", RANGE),
    (event(filters=[{"key": "n", "operator": "gte", "value": 10**400}]), "filters[0].value", RANGE),
    (
        {"type": "segment", "segment": MAX_NUMBER + 1},
        "segment",
        f"must be a segment id (a positive whole number), not {MAX_NUMBER + 1}",
    ),
    (
        event(window={"since": "36601d"}),
        "window.since",
        CENTURY,
    ),
    (
        event(window={"until": "5229w"}),
        "window.until",
        CENTURY,
    ),
    (sequence(within="878401h"), "within", CENTURY),
    (regular(period="52704001m", periods=1, min_periods=1), "period", CENTURY),
    (
        regular(period="18301d", periods=2, min_periods=1),
        "periods",
        "periods times period reaches back more than a century",
    ),
    (
        event(window={"since": "0000-12-31T00:00:00Z"}),
        "window.since",
        "must be a duration (\"7d\") or an ISO-8601 timestamp, not '0000-12-31T00:00:00Z'",
    ),
    (
        _trait("before", "9999-12-31T23:59:59-00:01"),
        "value",
        "must be a duration (\"7d\") or an ISO-8601 timestamp, not '9999-12-31T23:59:59-00:01'",
    ),
]

# Just inside each limit: accepted.
INSIDE = [
    event(count={"operator": "lte", "value": MAX_COUNT}),
    event(count={"operator": "between", "value": [0, MAX_COUNT]}),
    aggregate(value=MAX_NUMBER),
    aggregate(value=-MAX_NUMBER),
    aggregate(value=LARGEST_FLOAT),
    aggregate(value=5e-324),
    aggregate(operator="between", value=[-MAX_NUMBER, MAX_NUMBER]),
    _trait("gt", MAX_NUMBER),
    _trait("lte", -LARGEST_FLOAT),
    _trait("between", [-MAX_NUMBER, MAX_NUMBER]),
    _trait("eq", MAX_NUMBER),
    _trait("in", [1, "x", -MAX_NUMBER]),
    {"type": "segment", "segment": MAX_NUMBER},
    event(window={"since": "36600d"}),
    event(window={"until": "5228w"}),
    sequence(within="878400h"),
    regular(period="52704000m", periods=1, min_periods=1),
    regular(period="100d", periods=365, min_periods=1),
    event(window={"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"}),
    _trait("before", "9999-12-31T23:59:59.999999Z"),
    _trait("after", "0001-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("document", "path", "message"), OUTSIDE)
def test_numbers_past_what_storage_holds_are_refused_with_their_path(document, path, message):
    assert errors_of(document) == {path: message}


@pytest.mark.parametrize("document", INSIDE)
def test_numbers_just_inside_the_limits_are_accepted(document):
    parse(document, now=NOW)


def test_references_are_read_alike_from_the_document_and_from_the_tree():
    document = {
        "type": "and",
        "conditions": [
            {"type": "segment", "segment": 3},
            {"type": "not", "condition": {"type": "or", "conditions": [{"type": "segment", "segment": 4}]}},
            {"type": "trait", "key": "segment", "operator": "eq", "value": 9},
        ],
    }

    from_document = list(segment_reference_paths(document))

    assert from_document == [("conditions[0].segment", 3), ("conditions[1].condition.conditions[0].segment", 4)]
    assert list(segment_reference_paths(parse(document))) == from_document
    assert referenced_segments(document) == referenced_segments(parse(document)) == {3, 4}
    assert referenced_segments({"type": "segment", "segment": True}) == set()
    assert referenced_segments(None) == set()


def test_referenced_segments_come_first_otherwise_in_the_given_order():
    assert referenced_first({5: {1}, 1: {2, 7}, 2: set(), 9: set()}) == [2, 1, 5, 9]
    # A stored cycle (impossible to save) still places each segment once.
    assert referenced_first({1: {2}, 2: {1}}) == [2, 1]
