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


def test_the_issue_example_reads_as_written():
    assert sentence_text(parse(EXAMPLE)) == (
        "People who did Order Completed at least 3 times in the last 30 days and whose plan is Enterprise or Strategic"
    )


@pytest.mark.parametrize(
    ("node", "text"),
    [
        ({"type": "event", "event": "Login"}, "did Login"),
        ({"type": "event", "event": "$any", "window": {"since": "7d"}}, "did any event in the last 7 days"),
        (
            {"type": "event", "event": "Login", "count": {"operator": "eq", "value": 0}, "window": {"since": "1d"}},
            "did not do Login in the last 1 day",
        ),
        (
            {"type": "event", "event": "Login", "count": {"operator": "between", "value": [2, 5]}},
            "did Login between 2 and 5 times",
        ),
        ({"type": "event", "event": "Login", "count": {"operator": "eq", "value": 1}}, "did Login exactly 1 time"),
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
            "did Product Viewed where category is shoes and price is at least 50 between 60 and 30 days ago",
        ),
        (
            {"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}},
            "last did Order Completed more than 90 days ago",
        ),
        (
            {"type": "first_performed", "event": "$any", "window": {"since": "2w"}},
            "first did any event in the last 2 weeks",
        ),
        (
            {"type": "event", "event": "Login", "window": {"since": "48h", "until": "1d"}},
            "did Login between 48 hours and 1 day ago",
        ),
        (
            {"type": "event", "event": "Login", "window": {"since": "2026-05-01", "until": "2026-06-01T10:30:00Z"}},
            "did Login between 1 May 2026 and 1 Jun 2026, 10:30 UTC",
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
            "did Login in at least 3 of the last 4 weeks",
        ),
        (
            {"type": "regular", "event": "Login", "period": "3d", "periods": 5, "min_periods": 2},
            "did Login in at least 2 of the last 5 periods of 3 days",
        ),
        (
            {"type": "sequence", "steps": [{"event": "Product Added"}, {"event": "Order Completed"}], "within": "48h"},
            "did Product Added, then Order Completed within 48 hours",
        ),
        (
            {
                "type": "sequence",
                "steps": [{"event": "Product Added"}, {"event": "Order Completed"}],
                "within": "24h",
                "window": {"since": "7d"},
                "completed": False,
            },
            "did Product Added but not then Order Completed within 24 hours in the last 7 days",
        ),
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
        "People who did Login and (whose plan is Pro or who did Order Completed)"
        " and neither did Refund nor did Chargeback and whose churned is not set"
    )


def test_negations_read_as_the_opposite_or_as_do_not_match():
    document = {
        "type": "and",
        "conditions": [
            {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"},
            {"type": "not", "condition": {"type": "event", "event": "Login"}},
            {"type": "not", "condition": {"type": "trait", "key": "age", "operator": "gt", "value": 30}},
        ],
    }
    assert sentence_text(parse(document)) == (
        "People whose plan is Pro and who did not do Login and who do not match (whose age is greater than 30)"
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
        ("did ", ""),
        ("<img src=x onerror=alert(1)>", "event"),
        (" where ", ""),
        ("<b>", "key"),
        (" ", ""),
        ("is ", ""),
        ("<script>", "value"),
    ]
