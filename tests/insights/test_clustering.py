"""The pure part of suggested segments: features to clusters, words, and trees to definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from insights import clustering
from insights.clustering import (
    HAS_ANY_EVENT,
    NotClusterable,
    PeopleFeatures,
    _by_size,
    cluster,
    clustering_columns,
    describe,
    precision_recall,
    round_duration,
    round_number,
    rule_definition,
    standardise,
)
from insights.clustering_charts import silhouette_chart


def _people(recency, events, orders, revenue, sessions=None, mix_names=(), mix_counts=None) -> PeopleFeatures:
    n = len(recency)
    return PeopleFeatures(
        person_ids=np.arange(1, n + 1),
        recency_days=np.asarray(recency, dtype=float),
        events=np.asarray(events),
        orders=np.asarray(orders),
        revenue=np.asarray(revenue, dtype=float),
        sessions=np.asarray(sessions if sessions is not None else [1] * n),
        mix_names=tuple(mix_names),
        mix_counts=np.asarray(mix_counts if mix_counts is not None else np.zeros((n, 0)), dtype=np.int64).reshape(
            n, len(mix_names)
        ),
    )


def _two_groups(n: int = 30) -> tuple[PeopleFeatures, np.ndarray]:
    """Buyers (recent, 4-7 orders) and the rest (old, no orders); answers who buys."""
    rng = np.random.default_rng(3)
    buyers = np.arange(2 * n) < n
    recency = np.where(buyers, rng.uniform(0, 3, 2 * n), rng.uniform(40, 90, 2 * n))
    orders = np.where(buyers, rng.integers(4, 8, 2 * n), 0)
    events = orders + rng.integers(5, 15, 2 * n)
    revenue = orders * rng.uniform(30, 90, 2 * n)
    return _people(recency, events, orders, revenue), buyers


def test_counts_and_money_are_logged_and_shares_pulled_toward_the_workspace_mix():
    people = _people([1, 2], [10, 2], [0, 1], [0.0, 99.0], mix_names=("Viewed",), mix_counts=[[10], [0]])

    features, raw = clustering_columns(people)

    assert [f.key for f in features] == ["recency_days", "events", "orders", "revenue", "sessions", "mix:Viewed"]
    assert [f.log for f in features] == [True, True, True, True, True, False]
    overall = 10 / 12
    assert raw[:, 5].tolist() == pytest.approx([(10 + 5 * overall) / 15, (0 + 5 * overall) / 7])
    scaled = standardise(people)
    assert scaled.matrix.mean(axis=0) == pytest.approx([0] * 6)
    # read back: the centre of the two, on the log scale for counts and money
    centre = scaled.values(np.zeros(6))
    assert centre[3] == pytest.approx(math.expm1((math.log1p(0) + math.log1p(99)) / 2))


def test_two_planted_groups_give_two_clusters_with_a_stable_split():
    people, buyers = _two_groups()

    found = cluster(people, seed=0)

    assert found.k == 2
    assert [k for k, _ in found.silhouette] == list(range(2, 9))
    assert sorted(np.bincount(found.labels).tolist()) == [30, 30]
    assert abs(np.corrcoef(found.labels, buyers)[0, 1]) == pytest.approx(1.0)
    assert found.stability_ari == 1.0
    words = {summary.description for summary in found.clusters}
    assert any("buy often" in w and "spend a lot" in w and "active" in w for w in words)
    assert any("never buy" in w for w in words)


def test_k_is_chosen_on_a_scan_sample_and_fitted_on_everyone(monkeypatch):
    monkeypatch.setattr(clustering, "SCAN_SAMPLE", 24)
    people, buyers = _two_groups()

    found = cluster(people, seed=0)

    assert found.k == 2
    assert len(found.labels) == 60
    assert abs(np.corrcoef(found.labels, buyers)[0, 1]) == pytest.approx(1.0)
    assert sum(summary.size for summary in found.clusters) == 60


def test_too_few_people_or_all_alike_cannot_be_clustered():
    with pytest.raises(NotClusterable, match="at least 20 people with events; this workspace has 3"):
        cluster(_people([1, 2, 3], [1, 1, 1], [0, 0, 0], [0, 0, 0]), seed=0)
    same = _people([1] * 25, [4] * 25, [0] * 25, [0] * 25)
    with pytest.raises(NotClusterable, match="nothing to split"):
        cluster(same, seed=0)


def test_clusters_are_numbered_largest_first():
    labels = np.array([2, 2, 0, 1, 1, 1, 2, 1])

    assert _by_size(labels, 3).tolist() == [1, 1, 2, 0, 0, 0, 1, 0]


def test_words_come_from_the_columns_that_stand_out_strongest_first():
    people, _ = _two_groups()
    features, _ = clustering_columns(people)
    centroid = {"recency_days": 2.0, "events": 20.0, "orders": 5.0, "revenue": 300.0, "sessions": 1.0}
    z = {"recency_days": -1.0, "events": 0.2, "orders": 1.5, "revenue": 1.2, "sessions": 0.0}

    assert describe(features, centroid, z) == "buy often, spend a lot, active this week"
    assert describe(features, centroid, dict.fromkeys(z, 0.1)) == "close to the workspace's average on every measure"
    lapsed = {**z, "recency_days": 2.0, "orders": -0.9, "revenue": -0.8, "events": -0.6}
    assert (
        describe(features, {**centroid, "recency_days": 80.0, "orders": 0.0}, lapsed)
        == "lapsed (last seen about 80 days ago), never buy, few events"
    )


def test_round_numbers_split_exactly_where_the_data_allows():
    assert round_number(37.2, 41.0) == 40
    assert round_number(0.0, 12.5) == 0
    assert round_number(99.99, 100.01) == 100
    assert round_number(12.341, 12.345) == 12.341  # no round value between: the value itself
    assert round_number(250.5, math.inf) == 250.5


def test_round_durations_prefer_weeks_and_days_then_round_the_middle():
    assert round_duration(5.5, 9.0) == "1w"
    assert round_duration(2.2, 3.5) == "3d"
    assert round_duration(2.2, 2.9) == "3d"  # the middle, 2.55 days, rounded to the day
    assert round_duration(0.2, 0.3) == "6h"
    assert round_duration(0.001, 0.002) == "2m"
    assert round_duration(400.0, math.inf) == "58w"


def _days(duration: str) -> float:
    return int(duration[:-1]) * {"m": 1 / 1440, "h": 1 / 24, "d": 1, "w": 7}[duration[-1]]


def _compare(value: float, comparison: dict) -> bool:
    operator, operand = comparison["operator"], comparison["value"]
    return {
        "eq": lambda: value == operand,
        "gt": lambda: value > operand,
        "gte": lambda: value >= operand,
        "lt": lambda: value < operand,
        "lte": lambda: value <= operand,
        "between": lambda: operand[0] <= value <= operand[1],
    }[operator]()


def _holds(node: dict, people: PeopleFeatures, i: int) -> bool:
    """A reading of the few node types rules use, over the features themselves (the engine's own
    evaluation is checked against the database in test_clustering_services)."""
    kind = node["type"]
    if kind in ("and", "or"):
        results = [_holds(child, people, i) for child in node["conditions"]]
        return all(results) if kind == "and" else any(results)
    if kind == "event":
        name = node["event"]
        if name == "$any":
            count = people.events[i]
        elif name == people.purchase_event:
            count = people.orders[i]
        else:
            count = people.mix_counts[i, people.mix_names.index(name)]
        return _compare(count, node.get("count", {"operator": "gte", "value": 1}))
    if kind == "aggregate":
        return _compare(people.revenue[i], node)
    if kind == "first_performed":
        return node == HAS_ANY_EVENT  # everyone here has an event
    if kind == "last_performed":
        window = node["window"]
        since = "since" not in window or people.recency_days[i] <= _days(window["since"])
        until = "until" not in window or people.recency_days[i] > _days(window["until"])
        return since and until
    raise AssertionError(f"unexpected node {node}")


def test_a_clean_split_becomes_a_rule_that_holds_for_exactly_the_cluster():
    people, buyers = _two_groups()

    for members in (buyers, ~buyers):
        definition = rule_definition(people, members, seed=0)
        assert definition is not None
        assert [_holds(definition, people, i) for i in range(len(people))] == members.tolist()


def test_a_rule_that_holds_without_events_asks_for_one():
    people, buyers = _two_groups()
    # non-buyers told apart by their orders alone: "no order" also holds for people with no events
    people = _people(np.full(60, 5.0), people.events, people.orders, np.zeros(60))

    definition = rule_definition(people, ~buyers, seed=0)

    assert definition == {
        "type": "and",
        "conditions": [
            HAS_ANY_EVENT,
            {"type": "event", "event": "Order Completed", "count": {"operator": "lte", "value": 2}},
        ],
    }  # the tree splits halfway between 0 and 4 orders


def test_a_deeper_tree_becomes_an_or_of_and_paths_with_round_thresholds():
    rng = np.random.default_rng(5)
    n = 400
    revenue = np.round(rng.uniform(0, 1000, n), 2)
    recency = rng.uniform(0, 60, n)
    # big spenders seen in the last fortnight, or anyone spending over 900
    members = ((revenue > 500) & (recency <= 14)) | (revenue > 900)
    people = _people(recency, np.full(n, 5), np.ones(n, dtype=int), revenue)

    definition = rule_definition(people, members, seed=0)

    assert definition is not None
    assert definition["type"] == "or"
    held = np.array([_holds(definition, people, i) for i in range(n)])
    assert (held == members).mean() >= 0.97
    for path in definition["conditions"]:
        for condition in path["conditions"] if path["type"] == "and" else [path]:
            if condition["type"] == "aggregate":
                assert condition["operator"] in ("gt", "lte")
                assert condition["value"] == round(condition["value"], 2)


def test_no_rule_when_nothing_tells_the_cluster_apart():
    people = _people([3.0] * 40, [6] * 40, [1] * 40, [50.0] * 40)
    half = np.arange(40) % 2 == 0

    assert rule_definition(people, half, seed=0) is None


def test_precision_and_recall():
    assert precision_recall({1, 2, 3, 4}, {3, 4, 5}) == (0.5, 0.6667)
    assert precision_recall(set(), {1}) == (0.0, 0.0)


def test_the_silhouette_chart_marks_the_chosen_k_and_draws_negative_scores_below_zero():
    chart = silhouette_chart([{"k": 2, "score": 0.4}, {"k": 3, "score": 0.6}, {"k": 4, "score": -0.1}], 3)

    assert chart is not None
    assert [bar.chosen for bar in chart.bars] == [False, True, False]
    low, zero, *_ = sorted(chart.ticks, key=lambda t: -t.y)
    assert (low.label, zero.label) == ("-0.25", "0")
    assert chart.bars[2].y == chart.baseline  # the negative bar hangs from the zero line
    assert chart.bars[1].height > chart.bars[0].height > 0
    assert silhouette_chart([], None) is None
