"""The definition read as one sentence: each kind of condition, windows in words, groups and negation."""

from __future__ import annotations

import pytest

from segmentation.definition import parse
from segmentation.sentence import sentence, sentence_text

EXAMPLE = {
    "type": "and",
    "conditions": [
        {
            "type": "event",
            "event": "Order Completed",
            "count": {"operator": "gte", "value": 3},
            "window": {"since": "30d"},
        },
        {"type": "trait", "key": "plan", "operator": "in", "value": ["Enterprise", "Strategic"]},
    ],
}


FUNNEL = {
    "type": "sequence",
    "steps": [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}],
    "within": "3d",
}


def test_the_issue_example_reads_as_written():
    assert sentence_text(parse(EXAMPLE)) == (
        "People who performed Order Completed at least 3 times in the last 30 days"
        " and whose plan is Enterprise or Strategic"
    )


@pytest.mark.parametrize(
    ("node", "text"),
    [
        ({"type": "event", "event": "Login"}, "performed Login"),
        ({"type": "event", "event": "$any", "window": {"since": "7d"}}, "performed any event in the last 7 days"),
        (
            {"type": "event", "event": "Login", "count": {"operator": "eq", "value": 0}, "window": {"since": "1d"}},
            "did not perform Login in the last 1 day",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "between", "value": [2, 5]}},
            "performed Login between 2 and 5 times",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "eq", "value": 1}},
            "performed Login exactly 1 time",
        ),
        (
            {
                "type": "event",
                "event": "Product Viewed",
                "filters": [
                    {"key": "category", "operator": "eq", "value": "shoes"},
                    {"key": "price", "operator": "gte", "value": 50},
                ],
                "window": {"since": "60d", "until": "30d"},
            },
            "performed Product Viewed where category is shoes and price is at least 50 between 60 and 30 days ago",
        ),
        (
            {"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}},
            "last performed Order Completed more than 90 days ago",
        ),
        (
            {"type": "first_performed", "event": "$any", "window": {"since": "2w"}},
            "first performed any event in the last 2 weeks",
        ),
        (
            {"type": "event", "event": "Login", "window": {"since": "48h", "until": "1d"}},
            "performed Login between 48 hours and 1 day ago",
        ),
        (
            {"type": "event", "event": "Login", "window": {"since": "2026-05-01", "until": "2026-06-01T10:30:00Z"}},
            "performed Login between 1 May 2026 and 1 Jun 2026, 10:30 UTC",
        ),
        (
            {
                "type": "aggregate",
                "event": "Order Completed",
                "key": "revenue",
                "function": "sum",
                "operator": "gte",
                "value": 500,
                "window": {"since": "90d"},
            },
            "whose total revenue on Order Completed in the last 90 days is at least 500",
        ),
        (
            {
                "type": "aggregate",
                "event": "Order Completed",
                "key": "revenue",
                "function": "avg",
                "operator": "between",
                "value": [10, 20.5],
            },
            "whose average revenue on Order Completed is between 10 and 20.5",
        ),
        (
            {"type": "regular", "event": "Login", "period": "7d", "periods": 4, "min_periods": 3},
            "performed Login in at least 3 of the last 4 weeks",
        ),
        (
            {"type": "regular", "event": "Login", "period": "3d", "periods": 5, "min_periods": 2},
            "performed Login in at least 2 of the last 5 periods of 3 days",
        ),
        (
            {"type": "sequence", "steps": [{"event": "Product Added"}, {"event": "Order Completed"}], "within": "48h"},
            "performed Product Added, then Order Completed within 48 hours",
        ),
        (
            {
                "type": "sequence",
                "steps": [{"event": "Product Added"}, {"event": "Order Completed"}],
                "within": "24h",
                "window": {"since": "7d"},
                "completed": False,
            },
            "performed Product Added but did not perform Order Completed within 24 hours in the last 7 days",
        ),
        (
            {**FUNNEL, "completed": False, "dropped_after": 2},
            "performed Product Viewed, then Product Added, but did not perform Order Completed within 3 days"
            " (dropped off after step 2: Product Added)",
        ),
        (
            {**FUNNEL, "completed": False, "dropped_after": 1},
            "performed Product Viewed but did not perform Product Added within 3 days"
            " (dropped off after step 1: Product Viewed)",
        ),
        (
            {**FUNNEL, "completed": False},
            "performed Product Viewed but did not complete Product Added, then Order Completed within 3 days",
        ),
        (
            {
                **FUNNEL,
                "steps": [
                    {"event": "Product Viewed", "filters": [{"key": "category", "operator": "eq", "value": "shoes"}]},
                    *FUNNEL["steps"][1:],
                ],
                "completed": False,
                "dropped_after": 1,
            },
            "performed Product Viewed where category is shoes but did not perform Product Added within 3 days"
            " (dropped off after step 1: Product Viewed)",
        ),
        ({"type": "event", "event": "Login", "count": {"operator": "lt", "value": 1}}, "did not perform Login"),
        ({"type": "event", "event": "Login", "count": {"operator": "gt", "value": 0}}, "performed Login"),
        ({"type": "trait", "key": "plan", "operator": "not_in", "value": ["Free"]}, "whose plan is not Free"),
        (
            {"type": "trait", "key": "plan", "operator": "not_in", "value": ["Free", "Pro"]},
            "whose plan is none of Free and Pro",
        ),
        ({"type": "trait", "key": "vip", "operator": "eq", "value": True}, "whose vip is true"),
        ({"type": "trait", "key": "email", "operator": "is_set"}, "whose email is set"),
        ({"type": "trait", "key": "age", "operator": "between", "value": [18, 30]}, "whose age is between 18 and 30"),
        (
            {"type": "trait", "key": "signed_up", "operator": "before", "value": "30d"},
            "whose signed_up is before 30 days ago",
        ),
        ({"type": "trait", "key": "plan", "operator": "in", "value": ["A", "B", "C"]}, "whose plan is A, B or C"),
    ],
)
def test_each_condition_in_words(node, text):
    prefix = "People " if text.startswith("whose ") else "People who "
    assert sentence_text(parse(node)) == prefix + text


def test_nested_groups_and_negations():
    document = {
        "type": "and",
        "conditions": [
            {"type": "event", "event": "Login"},
            {
                "type": "or",
                "conditions": [
                    {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"},
                    {"type": "event", "event": "Order Completed"},
                ],
            },
            {
                "type": "not",
                "condition": {
                    "type": "or",
                    "conditions": [{"type": "event", "event": "Refund"}, {"type": "event", "event": "Chargeback"}],
                },
            },
            {"type": "not", "condition": {"type": "trait", "key": "churned", "operator": "is_set"}},
        ],
    }
    assert sentence_text(parse(document)) == (
        "People who performed Login and (whose plan is Pro or who performed Order Completed)"
        " and did not perform Refund and did not perform Chargeback and whose churned is not set"
    )


def test_the_issue_examples_in_plain_english():
    document = {
        "type": "and",
        "conditions": [
            {"type": "event", "event": "Product Viewed", "count": {"operator": "gte", "value": 3}},
            {"type": "event", "event": "Order Completed", "count": {"operator": "eq", "value": 0}},
            {"type": "not", "condition": {"type": "segment", "segment": 4}},
        ],
    }
    assert sentence_text(parse(document), {4: "Big spenders"}) == (
        "People who performed Product Viewed at least 3 times and did not perform Order Completed"
        " and are not in Big spenders"
    )
    text = sentence_text(parse(document), {4: "Big spenders"})
    for jargon in ("did Product", "did not do", "do not match", "(are in"):
        assert jargon not in text


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        ({"type": "event", "event": "Login"}, "did not perform Login"),
        ({"type": "event", "event": "Login", "count": {"operator": "eq", "value": 0}}, "performed Login"),
        (
            {"type": "event", "event": "Login", "count": {"operator": "gte", "value": 3}},
            "performed Login fewer than 3 times",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "lt", "value": 3}},
            "performed Login at least 3 times",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "eq", "value": 2}},
            "performed Login not exactly 2 times",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "between", "value": [2, 5]}},
            "performed Login fewer than 2 or more than 5 times",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "between", "value": [1, 5]}},
            "did not perform Login or performed Login more than 5 times",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "between", "value": [0, 5]}},
            "performed Login more than 5 times",
        ),
        ({"type": "segment", "segment": 4}, "are not in Big spenders"),
        ({"type": "segment", "segment": 9}, "are not in segment #9"),
        ({"type": "trait", "key": "age", "operator": "gt", "value": 30}, "whose age is not greater than 30"),
        (
            {"type": "trait", "key": "age", "operator": "between", "value": [18, 30]},
            "whose age is not between 18 and 30",
        ),
        (
            {"type": "trait", "key": "email", "operator": "ends_with", "value": ".org"},
            "whose email does not end with .org",
        ),
        ({"type": "trait", "key": "plan", "operator": "in", "value": ["A", "B"]}, "whose plan is none of A and B"),
        (
            {"type": "regular", "event": "Login", "period": "7d", "periods": 4, "min_periods": 3},
            "did not perform Login in at least 3 of the last 4 weeks",
        ),
        (
            {"type": "sequence", "steps": [{"event": "A"}, {"event": "B"}], "within": "1h"},
            "did not perform A, then B within 1 hour",
        ),
        (
            {**FUNNEL, "completed": False, "dropped_after": 2},
            "are not among those who performed Product Viewed, then Product Added, but did not perform"
            " Order Completed within 3 days (dropped off after step 2: Product Added)",
        ),
        (
            {"type": "aggregate", "event": "O", "key": "revenue", "function": "sum", "operator": "gte", "value": 500},
            "are not among those whose total revenue on O is at least 500",
        ),
        (
            {"type": "first_performed", "event": "$any", "window": {"since": "7d"}},
            "are not among those who first performed any event in the last 7 days",
        ),
        ({"type": "not", "condition": {"type": "event", "event": "Login"}}, "performed Login"),
        (
            {"type": "and", "conditions": [{"type": "event", "event": "A"}, {"type": "segment", "segment": 4}]},
            "did not perform A or are not in Big spenders",
        ),
    ],
)
def test_negations_read_as_the_opposite(condition, text):
    tree = parse({"type": "not", "condition": condition})
    prefix = "People " if text.startswith("whose ") else "People who "
    assert sentence_text(tree, {4: "Big spenders"}) == prefix + text


def test_negations_inside_groups_keep_their_who_and_parentheses():
    document = {
        "type": "or",
        "conditions": [
            {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"},
            {"type": "not", "condition": {"type": "event", "event": "Login"}},
            {
                "type": "not",
                "condition": {
                    "type": "or",
                    "conditions": [
                        {"type": "segment", "segment": 4},
                        {"type": "trait", "key": "vip", "operator": "is_set"},
                    ],
                },
            },
        ],
    }
    assert sentence_text(parse(document), {4: "Big spenders"}) == (
        "People whose plan is Pro or who did not perform Login"
        " or who (are not in Big spenders and whose vip is not set)"
    )


def test_segment_references_use_their_names_and_fall_back_to_the_id():
    document = {"type": "or", "conditions": [{"type": "segment", "segment": 4}, {"type": "segment", "segment": 9}]}
    assert sentence_text(parse(document), {4: "VIPs"}) == "People who are in VIPs or are in segment #9"


def test_data_is_marked_as_data_for_the_template_to_escape():
    hostile = {
        "type": "event",
        "event": "<img src=x onerror=alert(1)>",
        "filters": [{"key": "<b>", "operator": "eq", "value": "<script>"}],
    }
    parts = sentence(parse(hostile))
    assert [(p.text, p.kind) for p in parts] == [
        ("People who ", ""),
        ("performed ", ""),
        ("<img src=x onerror=alert(1)>", "event"),
        (" where ", ""),
        ("<b>", "key"),
        (" ", ""),
        ("is ", ""),
        ("<script>", "value"),
    ]
