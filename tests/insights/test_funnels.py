"""Funnels on a small fixed dataset, counted by hand; the same data in another workspace changes nothing."""

from __future__ import annotations

import pytest

from accounts.tenancy import workspace_scope
from insights import funnels
from insights.inputs import InputInvalid
from segmentation.compiler import compile_members
from segmentation.definition import parse
from tests import factories
from tests.insights.support import DAY, HOUR, NOW, load, static_segment

VIEW, ADD, ORDER = "Product Viewed", "Product Added", "Order Completed"
PEOPLE = {
    "p1": {"plan": "Pro"},
    "p2": {"plan": "Pro"},
    "p3": {"plan": "Free"},
    "p4": {},
    "p5": {"plan": "Pro"},
    "p6": {"plan": "Free"},
    "p7": {"plan": 5},
}
EVENTS = [
    # p1: all three steps: 1 h then 2 h.
    ("p1", VIEW, NOW - 10 * DAY, {}),
    ("p1", ADD, NOW - 10 * DAY + HOUR, {"category": "shoes"}),
    ("p1", ORDER, NOW - 10 * DAY + 3 * HOUR, {}),
    # p2: viewed, added 2 h later, never ordered.
    ("p2", VIEW, NOW - 5 * DAY, {}),
    ("p2", ADD, NOW - 5 * DAY + 2 * HOUR, {"category": "hats"}),
    # p3: viewed; added 49 h later, past the 48 h.
    ("p3", VIEW, NOW - 3 * DAY, {}),
    ("p3", ADD, NOW - 3 * DAY + 49 * HOUR, {"category": "shoes"}),
    # p4: a whole run before the 30 days, and a view yesterday.
    ("p4", VIEW, NOW - 40 * DAY, {}),
    ("p4", ADD, NOW - 40 * DAY + HOUR, {"category": "shoes"}),
    ("p4", ORDER, NOW - 40 * DAY + 2 * HOUR, {}),
    ("p4", VIEW, NOW - DAY, {}),
    # p5: never viewed.
    ("p5", ADD, NOW - 4 * DAY, {"category": "shoes"}),
    ("p5", ORDER, NOW - 4 * DAY + HOUR, {}),
    # p6: a run that stopped at step 2, then one that completed (4 h, then 1 h).
    ("p6", VIEW, NOW - 20 * DAY, {}),
    ("p6", ADD, NOW - 20 * DAY + HOUR, {"category": "shoes"}),
    ("p6", VIEW, NOW - 8 * DAY, {}),
    ("p6", ADD, NOW - 8 * DAY + 4 * HOUR, {"category": "shoes"}),
    ("p6", ORDER, NOW - 8 * DAY + 5 * HOUR, {}),
    # p7: ordered before adding: steps must be in order.
    ("p7", VIEW, NOW - 6 * DAY, {}),
    ("p7", ORDER, NOW - 6 * DAY + HOUR, {}),
    ("p7", ADD, NOW - 6 * DAY + 2 * HOUR, {"category": "shoes"}),
]
FUNNEL = {"steps": [{"event": VIEW}, {"event": ADD}, {"event": ORDER}], "within": "48h", "since": "30d"}


@pytest.fixture
def shop(db):
    workspace, other = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    people = load(workspace, PEOPLE, EVENTS)
    # The same people and events elsewhere, and more of them: never counted here.
    load(other, PEOPLE, [*EVENTS, ("p5", VIEW, NOW - 4 * DAY - HOUR, {})])
    return workspace, people, other


def compute(workspace, document):
    with workspace_scope(workspace):
        return funnels.funnel_compute(workspace=workspace, spec=funnels.funnel_parse(document, now=NOW), now=NOW)


def table(steps):
    return [(s.event, s.count, s.conversion, s.conversion_from_previous, s.median_seconds_from_previous) for s in steps]


def test_counts_conversions_and_median_times_by_hand(shop):
    workspace, _, _ = shop
    result = compute(workspace, FUNNEL)
    assert table(result.steps) == [
        (VIEW, 6, 1.0, 1.0, None),  # p1 p2 p3 p4 p6 p7
        (ADD, 4, 0.6667, 0.6667, 7200.0),  # p1 1 h, p2 2 h, p6 4 h (its furthest run), p7 2 h
        (ORDER, 2, 0.3333, 0.5, 5400.0),  # p1 2 h, p6 1 h
    ]
    assert result.conversion == 0.3333
    assert result.breakdown is None
    assert result.since == NOW - 30 * DAY
    assert result.until == NOW


def test_last_step_counts_the_members_of_the_completed_sequence(shop):
    workspace, people, _ = shop
    sequence = {"type": "sequence", **{k: FUNNEL[k] for k in ("steps", "within")}, "window": {"since": "30d"}}
    query = compile_members(parse(sequence, now=NOW), workspace_id=workspace.pk, now=NOW)
    from django.db import connection

    with connection.cursor() as cursor:
        query.execute(cursor)
        members = {pk for (pk,) in cursor.fetchall()}
    assert members == {people["p1"].pk, people["p6"].pk}
    assert compute(workspace, FUNNEL).steps[-1].count == len(members)


def test_step_filters_and_a_shorter_window(shop):
    workspace, _, _ = shop
    shoes = {
        **FUNNEL,
        "steps": [
            {"event": VIEW},
            {"event": ADD, "filters": [{"key": "category", "operator": "eq", "value": "shoes"}]},
        ],
    }
    assert [s.count for s in compute(workspace, shoes).steps] == [6, 3]  # p2 added hats
    recent = {**FUNNEL, "since": "7d"}
    assert [s.count for s in compute(workspace, recent).steps] == [4, 2, 0]  # p2 p3 p4 p7; p2 p7
    older = {**FUNNEL, "since": "30d", "until": "7d"}
    assert [s.count for s in compute(workspace, older).steps] == [2, 2, 2]  # p1 and p6 only


def test_breakdown_by_trait(shop):
    workspace, _, _ = shop
    result = compute(workspace, {**FUNNEL, "breakdown": {"type": "trait", "key": "plan"}})
    assert [(g.kind, g.value, [s.count for s in g.steps]) for g in result.breakdown] == [
        ("value", "Free", [2, 1, 1]),  # p3, p6
        ("value", "Pro", [2, 2, 1]),  # p1, p2
        ("value", "5", [1, 1, 0]),  # p7: a number, by its text
        ("none", None, [1, 0, 0]),  # p4
    ]
    assert [s.count for s in result.steps] == [6, 4, 2]


def test_breakdown_by_trait_sums_values_past_the_top(shop, monkeypatch):
    workspace, _, _ = shop
    monkeypatch.setattr(funnels, "BREAKDOWN_TOP_VALUES", 1)
    result = compute(workspace, {**FUNNEL, "breakdown": {"type": "trait", "key": "plan"}})
    assert [(g.kind, g.label, [s.count for s in g.steps]) for g in result.breakdown] == [
        ("value", "Free", [2, 1, 1]),
        ("other", "Other values", [3, 3, 1]),
        ("none", "(not set)", [1, 0, 0]),
    ]


def test_breakdown_by_segment_membership(shop):
    workspace, people, other = shop
    segment = static_segment(workspace, "VIP", [people["p1"], people["p3"], people["p5"]])
    result = compute(workspace, {**FUNNEL, "breakdown": {"type": "segment", "segments": [segment.pk]}})
    assert [(g.kind, g.value, g.label, [s.count for s in g.steps]) for g in result.breakdown] == [
        ("segment", segment.pk, "VIP", [2, 1, 1]),  # p1, p3 (p5 never viewed)
        ("no_segment", None, "In none of them", [4, 3, 1]),
    ]
    theirs = static_segment(other, "Theirs", [])
    with pytest.raises(InputInvalid) as refused:
        compute(workspace, {**FUNNEL, "breakdown": {"type": "segment", "segments": [theirs.pk]}})
    assert refused.value.errors == {"breakdown.segments": [f"segment {theirs.pk} does not exist in this workspace"]}


def test_eight_steps_and_the_same_event_twice(shop):
    workspace, _, _ = shop
    twice = {**FUNNEL, "steps": [{"event": VIEW}, {"event": VIEW}]}
    assert [s.count for s in compute(workspace, twice).steps] == [6, 0]  # p6 viewed twice, 12 days apart
    twice["within"] = "14d"
    assert [s.count for s in compute(workspace, twice).steps] == [6, 1]
    long = {**FUNNEL, "steps": [{"event": VIEW}, {"event": ADD}] * 4, "within": "30d", "since": None}
    counts = [s.count for s in compute(workspace, long).steps]
    # Without since, p4's old run counts too; only p6 viewed again (12 days later) and added again.
    assert counts == [6, 6, 1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("document", "errors"),
    [
        ({"steps": [{"event": VIEW}]}, {"steps": ["must be a list of 2 to 8 steps"]}),
        ({"steps": [{"event": VIEW}] * 9}, {"steps": ["must be a list of 2 to 8 steps"]}),
        (
            {"steps": [{"event": VIEW}, {"event": ADD, "filters": [{"key": "x", "operator": "nope", "value": 1}]}]},
            {
                "steps[1].filters[0].operator": [
                    "unknown operator 'nope'; one of "
                    + ", ".join(sorted(__import__("segmentation.definition", fromlist=["x"]).FILTER_OPERATORS))
                ]
            },
        ),
        ({"steps": [{"event": VIEW}, {"event": ""}]}, {"steps[1].event": ["must not be empty"]}),
        (
            {"steps": [{"event": VIEW}, {"name": ADD}]},
            {"steps[1].name": ["unknown field 'name'"], "steps[1].event": ["is required"]},
        ),
        (
            {**FUNNEL, "within": "2 days"},
            {"within": ['must be a duration such as "30m", "48h", "7d" or "4w", not \'2 days\'']},
        ),
        (
            {**FUNNEL, "since": "7d", "until": "30d"},
            {"since": ['starts at or after its end: "since" must lie before "until"']},
        ),
        (
            {**FUNNEL, "since": "yesterday"},
            {"since": ["must be a duration (\"7d\") or an ISO-8601 timestamp, not 'yesterday'"]},
        ),
        (
            {**FUNNEL, "breakdown": {"type": "cohort"}},
            {"breakdown.type": ['must be "trait" or "segment", not \'cohort\'']},
        ),
        ({**FUNNEL, "colour": "red"}, {"colour": ["unknown field 'colour'"]}),
    ],
)
def test_invalid_funnels_name_the_faulty_path(document, errors):
    with pytest.raises(InputInvalid) as refused:
        funnels.funnel_parse(document, now=NOW)
    assert refused.value.errors == errors


def test_dropoff_definition_is_the_sequence_with_dropped_after():
    spec = funnels.funnel_parse(
        {**FUNNEL, "steps": [{"event": VIEW, "filters": []}, {"event": ADD}, {"event": ORDER}]}, now=NOW
    )
    assert funnels.dropoff_definition(spec, 2) == {
        "type": "sequence",
        "steps": [{"event": VIEW}, {"event": ADD}, {"event": ORDER}],
        "within": "48h",
        "window": {"since": "30d"},
        "completed": False,
        "dropped_after": 2,
    }
    long = funnels.funnel_parse({**FUNNEL, "steps": [{"event": f"E{i}"} for i in range(7)], "since": None}, now=NOW)
    assert funnels.dropoff_definition(long, 4)["steps"] == [{"event": f"E{i}"} for i in range(5)]
    assert "window" not in funnels.dropoff_definition(long, 4)
    with pytest.raises(InputInvalid) as refused:
        funnels.dropoff_definition(long, 5)
    assert list(refused.value.errors) == ["dropped_after"]
    with pytest.raises(InputInvalid):
        funnels.dropoff_definition(spec, 3)
