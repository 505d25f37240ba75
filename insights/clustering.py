"""Suggested segments: K-means over people's behaviour, each cluster described in words and
approximated by a rule of the segment language.

Pure: numpy and scikit-learn, no Django and no database. ``insights.clustering_features``
reads the features, ``insights.clustering_services`` runs this and stores the result, and
docs/insights.md ("Suggested segments") explains the choices to users.

- **Features** per person (``PeopleFeatures``): days since the last event, events, orders
  (the purchase event), revenue (its sum), sessions (distinct session ids) and the event
  mix (each of the workspace's top event names as a share of the person's events, pulled
  toward the workspace's mix by ``MIX_PRIOR_EVENTS``). Counts and money are heavy-tailed,
  so they are taken as ``log1p`` before standardising; every column is then standardised
  (``StandardScaler``), so that no unit outweighs another.
- **K** is chosen by the mean silhouette over ``K_RANGE``: K-means for each k on at most
  ``SCAN_SAMPLE`` people, its silhouette on a fixed ``SILHOUETTE_SAMPLE`` of them (the same for
  every k; the exact silhouette is quadratic); the chosen k is then fitted on everyone.
- **Stability** is the Adjusted Rand Index between the chosen clustering and a second one
  with the same k and another seed: 1 is the same partition, about 0 is chance.
- **Words** come from the centroid against the population: a column whose centroid is at
  least ``NOTABLE_Z`` standard deviations from the mean says something ("buy often").
- **Rules**: a decision tree of depth at most ``TREE_DEPTH`` separates the cluster from the
  rest over the features the segment language can express (``RULE_COLUMNS``), and each
  path to a leaf that predicts the cluster becomes an ``and`` of conditions (``or`` over
  paths). Sessions and shares have no condition in the language: the tree reads counts of
  the same events instead of shares. Thresholds move to round values: exactly the tree's
  split where a round value lies between the people either side of it (``round_number``,
  ``round_duration``), else recency rounds to the day or hour; precision and recall are
  measured on the rule as written (docs/insights.md, "Rules").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    # scikit-learn is imported where it is used: it takes seconds, and these modules load with
    # the URL configuration of every web and worker process.
    from sklearn.tree import DecisionTreeClassifier

PURCHASE_EVENT = "Order Completed"
REVENUE_KEY = "revenue"
ANY_EVENT = "$any"
K_RANGE = range(2, 9)
MIX_NAMES = 5
# The event mix of a person with few events is mostly chance (1 page view of 2 events is "50%"):
# each person's shares count this many more events, in the workspace's own mix.
MIX_PRIOR_EVENTS = 5.0
SILHOUETTE_SAMPLE = 3000
# K is chosen on at most this many people (K-means costs the people times k); the chosen k is
# then fitted on everyone clustered.
SCAN_SAMPLE = 20_000
# K-means restarts per k: the best of them is kept (scikit-learn's n_init).
N_INIT = 2
TREE_DEPTH = 3
# No leaf of a rule's tree holds fewer than this share of the sample (nor fewer than 5 people).
TREE_MIN_LEAF_SHARE = 0.005
NOTABLE_Z = 0.5
MAX_PHRASES = 4
MIN_PEOPLE = 20
# One thread for the numeric libraries: a worker shares its cores with PostgreSQL and other
# workers, and their default of one thread per core, oversubscribed, ran K-means 10x slower.
THREADS = 1
# The segment language's bounds (segmentation.definition.MAX_DURATION_SECONDS, MAX_NUMBER).
_MAX_WEEKS = 100 * 366 // 7
_MAX_NUMBER = 2**63 - 1

Progress = Callable[[float, str], None]


class NotClusterable(ValueError):
    """Too few people, or people too alike, to split into clusters; the message says which."""


@dataclass(frozen=True)
class PeopleFeatures:
    """Behaviour of ``n`` people (one row each), as read from their events at one instant."""

    person_ids: np.ndarray  # int64
    recency_days: np.ndarray  # days since the last event
    events: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray
    sessions: np.ndarray
    mix_names: tuple[str, ...]
    mix_counts: np.ndarray  # (n, len(mix_names)): events of each of those names
    purchase_event: str = PURCHASE_EVENT
    revenue_key: str = REVENUE_KEY
    # The mix the shares are pulled toward, one share per name: these people's own when None; given
    # when the people are read in batches, so that each batch's shares are those of one read.
    mix_prior: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.person_ids)

    def take(self, rows: np.ndarray) -> PeopleFeatures:
        """The same features for some rows only."""
        return PeopleFeatures(
            person_ids=self.person_ids[rows],
            recency_days=self.recency_days[rows],
            events=self.events[rows],
            orders=self.orders[rows],
            revenue=self.revenue[rows],
            sessions=self.sessions[rows],
            mix_names=self.mix_names,
            mix_counts=self.mix_counts[rows],
            purchase_event=self.purchase_event,
            revenue_key=self.revenue_key,
            mix_prior=self.mix_prior,
        )


@dataclass(frozen=True)
class Feature:
    """One clustering column: ``key`` in the stored centroids, ``label`` for people, ``unit`` for
    formatting (days, count, money, share), ``log`` when taken as ``log1p`` before scaling."""

    key: str
    label: str
    unit: str
    log: bool
    event: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "log": self.log, "event": self.event}


def clustering_columns(people: PeopleFeatures) -> tuple[list[Feature], np.ndarray]:
    """The clustering columns and the (n, columns) matrix of raw values."""
    features = [
        Feature("recency_days", "Days since last event", "days", True),
        Feature("events", "Events", "count", True),
        Feature("orders", "Orders", "count", True, people.purchase_event),
        Feature("revenue", "Revenue", "money", True, people.purchase_event),
        Feature("sessions", "Sessions", "count", True),
    ]
    columns = [
        people.recency_days.astype(float),
        people.events.astype(float),
        people.orders.astype(float),
        people.revenue.astype(float),
        people.sessions.astype(float),
    ]
    totals = people.events.astype(float)
    for index, name in enumerate(people.mix_names):
        counts = people.mix_counts[:, index].astype(float)
        overall = counts.sum() / max(totals.sum(), 1.0) if people.mix_prior is None else people.mix_prior[index]
        features.append(Feature(f"mix:{name}", f"Share of {name}", "share", False, name))
        columns.append((counts + MIX_PRIOR_EVENTS * overall) / (totals + MIX_PRIOR_EVENTS))
    return features, np.column_stack(columns)


@dataclass(frozen=True)
class Scaled:
    """The standardised matrix and how to read a point of it back in the features' units."""

    matrix: np.ndarray
    features: list[Feature]
    mean: np.ndarray
    scale: np.ndarray
    raw: np.ndarray

    def values(self, z: np.ndarray) -> np.ndarray:
        """Points of the standardised space in the features' own units."""
        transformed = z * self.scale + self.mean
        logged = np.array([feature.log for feature in self.features])
        return np.where(logged, np.expm1(transformed), transformed)


def standardise(people: PeopleFeatures) -> Scaled:
    features, raw = clustering_columns(people)
    logged = np.array([feature.log for feature in features])
    transformed = np.where(logged, np.log1p(np.clip(raw, 0.0, None)), raw)
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(transformed)
    return Scaled(scaler.transform(transformed), features, scaler.mean_, scaler.scale_, raw)


# --- K-means, k by silhouette, stability ---------------------------------------------------------


@dataclass(frozen=True)
class ClusterSummary:
    index: int
    size: int
    share: float
    centroid: dict[str, float]  # in the features' units
    z: dict[str, float]  # standard deviations from the population's mean
    mean: dict[str, float]  # the plain average of each feature over the cluster
    description: str


@dataclass(frozen=True)
class Clustering:
    silhouette: list[tuple[int, float]]
    k: int
    labels: np.ndarray  # cluster of each person, 0 the largest
    stability_ari: float
    features: list[Feature]
    typical: dict[str, float]  # the population's centre, in the features' units
    mean: dict[str, float]  # the population's plain averages
    constant: set[str]  # features with one value for everyone (no session ids sent, say)
    clusters: list[ClusterSummary] = field(default_factory=list)


def _rounded(value: float) -> float:
    return round(float(value), 4) + 0.0  # + 0.0: no "-0.0" in the stored figures


def _kmeans(matrix: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit_predict(matrix)


def _by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Labels renumbered so that cluster 0 is the largest (ties: the lower old label first)."""
    sizes = np.bincount(labels, minlength=k)
    order = sorted(range(k), key=lambda label: (-sizes[label], label))
    mapping = np.empty(k, dtype=np.int64)
    for new, old in enumerate(order):
        mapping[old] = new
    return mapping[labels]


def cluster(people: PeopleFeatures, *, seed: int, progress: Progress | None = None) -> Clustering:
    """Cluster ``people``: k by silhouette over ``K_RANGE``, stability, words per cluster.

    Raises ``NotClusterable`` with fewer than ``MIN_PEOPLE`` people or when no k gives
    at least two distinct clusters (everyone behaves the same).
    """
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    report = progress or (lambda fraction, stage: None)
    if len(people) < MIN_PEOPLE:
        raise NotClusterable(
            f"Suggested segments need at least {MIN_PEOPLE} people with events; this workspace has {len(people)}."
        )
    scaled = standardise(people)
    matrix = scaled.matrix
    distinct = len(np.unique(matrix, axis=0))
    ks = [k for k in K_RANGE if k < min(len(people), distinct + 1)]
    if not ks:
        raise NotClusterable("Everyone behaves the same way here: there is nothing to split into clusters.")
    rng = np.random.default_rng(seed)
    scan = np.sort(rng.choice(len(people), size=min(len(people), SCAN_SAMPLE), replace=False))
    subsample = np.sort(rng.choice(len(scan), size=min(len(scan), SILHOUETTE_SAMPLE), replace=False))
    scanned = matrix[scan]
    scores: list[tuple[int, float]] = []
    labelled: dict[int, np.ndarray] = {}
    with threadpool_limits(limits=THREADS):
        for step, k in enumerate(ks):
            report(step / (len(ks) + 2), f"Trying {k} clusters")
            labels = _kmeans(scanned, k, seed)
            found = len(np.unique(labels[subsample]))
            if found < 2 or found >= len(subsample):
                continue
            scores.append((k, float(silhouette_score(scanned[subsample], labels[subsample], random_state=seed))))
            labelled[k] = labels
        if not scores:
            raise NotClusterable("Everyone behaves nearly the same way here: no split gives two clusters.")
        best = max(scores, key=lambda pair: (pair[1], -pair[0]))[0]
        if len(scan) < len(people):
            report(len(ks) / (len(ks) + 2), f"Clustering everyone into {best} clusters")
            chosen = _kmeans(matrix, best, seed)
        else:
            chosen = labelled[best]
        report((len(ks) + 1) / (len(ks) + 2), "Checking stability with another seed")
        labels = _by_size(chosen, best)
        stability = float(adjusted_rand_score(labels, _kmeans(matrix, best, seed + 1)))
    typical = dict(zip((f.key for f in scaled.features), scaled.values(np.zeros(len(scaled.features))), strict=True))
    summaries = []
    for index in range(best):
        rows = labels == index
        centre = matrix[rows].mean(axis=0)
        values = scaled.values(centre)
        z = {f.key: _rounded(v) for f, v in zip(scaled.features, centre, strict=True)}
        centroid = {f.key: _rounded(v) for f, v in zip(scaled.features, values, strict=True)}
        mean = {f.key: _rounded(v) for f, v in zip(scaled.features, scaled.raw[rows].mean(axis=0), strict=True)}
        summaries.append(
            ClusterSummary(
                index=index,
                size=int(rows.sum()),
                share=round(float(rows.mean()), 4),
                centroid=centroid,
                z=z,
                mean=mean,
                description=describe(scaled.features, centroid, z),
            )
        )
    return Clustering(
        silhouette=scores,
        k=best,
        labels=labels,
        stability_ari=round(stability, 4),
        features=scaled.features,
        typical={key: _rounded(value) for key, value in typical.items()},
        mean={f.key: _rounded(v) for f, v in zip(scaled.features, scaled.raw.mean(axis=0), strict=True)},
        constant={f.key for f, spread in zip(scaled.features, scaled.raw.std(axis=0), strict=True) if spread == 0},
        clusters=summaries,
    )


# --- words --------------------------------------------------------------------------------------


def _recency_phrase(days: float, z: float) -> str:
    if z < 0:
        if days <= 1:
            return "active today"
        if days <= 7:
            return "active this week"
        if days <= 31:
            return "active this month"
        return "seen more recently than most"
    if days >= 60:
        return f"lapsed (last seen about {round(days)} days ago)"
    return f"not seen for about {max(1, round(days))} days"


def _phrase(feature: Feature, value: float, z: float) -> str | None:
    high = z > 0
    if feature.key == "recency_days":
        return _recency_phrase(value, z)
    if feature.key == "orders":
        if high:
            return "buy often" if value >= 1.5 else "buy more than most"
        return "never buy" if value < 0.5 else "rarely buy"
    if feature.key == "revenue":
        return "spend a lot" if high else "spend little"
    if feature.key == "events":
        return "very active" if high else "few events"
    if feature.key == "sessions":
        return "come back often" if high else "few visits"
    if feature.unit == "share":
        return f"mostly {feature.event}" if high else f"little {feature.event}"
    return None


def describe(features: Sequence[Feature], centroid: dict[str, float], z: dict[str, float]) -> str:
    """A few words from the columns where the centroid stands out (``NOTABLE_Z``): recency,
    frequency, money and sessions first, strongest first, then the event mix; at most
    ``MAX_PHRASES``, recency always among them when it stands out."""
    notable = sorted(
        (feature for feature in features if abs(z[feature.key]) >= NOTABLE_Z),
        key=lambda f: (f.unit == "share", -abs(z[f.key])),
    )
    phrases: list[str] = []
    recency: str | None = None
    for feature in notable:
        phrase = _phrase(feature, centroid[feature.key], z[feature.key])
        if phrase is None or phrase in phrases:
            continue
        if feature.key == "recency_days":
            recency = phrase
        phrases.append(phrase)
    if "never buy" in phrases and "spend little" in phrases:
        phrases.remove("spend little")  # "never buy" says it
    chosen = phrases[:MAX_PHRASES]
    if recency is not None and recency not in chosen:
        chosen = [*chosen[: MAX_PHRASES - 1], recency]
    if not chosen:
        return "close to the workspace's average on every measure"
    return ", ".join(chosen)


# --- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleColumn:
    """A feature the segment language can express: ``kind`` recency, count or revenue."""

    key: str
    kind: str
    event: str


def rule_columns(people: PeopleFeatures) -> tuple[list[RuleColumn], np.ndarray]:
    """The tree's columns: what the segment language can test, in the features' own units."""
    columns = [
        RuleColumn("recency_days", "recency", ANY_EVENT),
        RuleColumn("events", "count", ANY_EVENT),
        RuleColumn("orders", "count", people.purchase_event),
        RuleColumn("revenue", "revenue", people.purchase_event),
    ]
    values = [people.recency_days, people.events, people.orders, people.revenue]
    for index, name in enumerate(people.mix_names):
        columns.append(RuleColumn(f"count:{name}", "count", name))
        values.append(people.mix_counts[:, index])
    return columns, np.column_stack([np.asarray(v, dtype=float) for v in values])


@dataclass(frozen=True)
class _Leaf:
    positive: bool


@dataclass(frozen=True)
class _Split:
    column: int
    threshold: float
    left: _Leaf | _Split  # value <= threshold
    right: _Leaf | _Split  # value > threshold


def _tree(classifier: DecisionTreeClassifier, node: int = 0) -> _Leaf | _Split:
    """The fitted tree with splits whose two sides predict the same thing folded into one leaf."""
    tree = classifier.tree_
    left, right = int(tree.children_left[node]), int(tree.children_right[node])
    if left == -1:
        return _Leaf(bool(classifier.classes_[int(np.argmax(tree.value[node][0]))]))
    low, high = _tree(classifier, left), _tree(classifier, right)
    if isinstance(low, _Leaf) and isinstance(high, _Leaf) and low.positive == high.positive:
        return low
    return _Split(int(tree.feature[node]), float(tree.threshold[node]), low, high)


Bounds = dict[int, tuple[float | None, float | None]]  # column -> (above, at most)


def _paths(node: _Leaf | _Split, bounds: Bounds) -> list[Bounds]:
    """The bounds of every path to a positive leaf."""
    if isinstance(node, _Leaf):
        return [bounds] if node.positive else []
    above, at_most = bounds.get(node.column, (None, None))
    left = {**bounds, node.column: (above, node.threshold if at_most is None else min(at_most, node.threshold))}
    right = {**bounds, node.column: (node.threshold if above is None else max(above, node.threshold), at_most)}
    return _paths(node.left, left) + _paths(node.right, right)


def _gap(values: np.ndarray, threshold: float) -> tuple[float, float]:
    """The data values either side of a threshold: the largest at or below it, the smallest above."""
    below = values[values <= threshold]
    above = values[values > threshold]
    return (float(below.max()) if below.size else threshold), (float(above.min()) if above.size else math.inf)


def round_number(low: float, high: float) -> float | int:
    """The roundest number ``v`` with ``low <= v < high`` (to the cent), else ``low`` itself."""
    if math.isinf(high):
        return low
    for exponent in range(15, -3, -1):
        step = 10.0**exponent
        value = round(math.ceil(low / step - 1e-9) * step, 2)
        if low <= value < high and abs(value) <= _MAX_NUMBER:
            return int(value) if value == int(value) else value
    return low


def round_duration(low_days: float, high_days: float) -> str:
    """A duration between two people's recencies: whole weeks or days ``d`` with ``low <= d < high``
    when there is one (the same split exactly), else the midpoint rounded to the day (from two
    days), the hour (from two hours) or the minute. "914 hours" would split a little more
    exactly than "38 days" and read far worse; the rule's precision and recall are measured
    with the rounded value."""
    for unit, per_day in (("w", 1 / 7), ("d", 1.0)):
        count = max(1, math.ceil(low_days * per_day - 1e-9))
        if low_days <= count / per_day < high_days:
            return f"{min(count, _MAX_WEEKS)}w" if unit == "w" else f"{min(count, _MAX_WEEKS * 7)}d"
    middle = low_days if math.isinf(high_days) else (low_days + high_days) / 2
    if middle >= 2:
        return f"{min(round(middle), _MAX_WEEKS * 7)}d"
    if middle * 24 >= 2:
        return f"{round(middle * 24)}h"
    return f"{max(1, round(middle * 1440))}m"


def _count_condition(event: str, low: int | None, high: int | None) -> dict[str, Any] | None:
    if low is not None and low <= 0:
        low = None
    if low is None and high is None:
        return None
    if low is None and high == 0:
        return {"type": "event", "event": event, "count": {"operator": "eq", "value": 0}}
    if low is not None and high is not None:
        count: dict[str, Any] = (
            {"operator": "eq", "value": low} if low == high else {"operator": "between", "value": [low, high]}
        )
    elif low is not None:
        count = {"operator": "gte", "value": low}
    else:
        count = {"operator": "lte", "value": high}
    return {"type": "event", "event": event, "count": count}


def _conditions(
    column: RuleColumn, values: np.ndarray, above: float | None, at_most: float | None, revenue_key: str
) -> tuple[list[dict[str, Any]], bool]:
    """The conditions for ``above < value <= at_most`` on one column, and whether they imply
    that the person has at least one event."""
    if column.kind == "recency":
        window: dict[str, str] = {}
        if at_most is not None:
            window["since"] = round_duration(*_gap(values, at_most))
        if above is not None:
            window["until"] = round_duration(*_gap(values, above))
        return [{"type": "last_performed", "event": ANY_EVENT, "window": window}], True
    if column.kind == "count":
        low = math.floor(above) + 1 if above is not None else None
        high = math.floor(at_most) if at_most is not None else None
        condition = _count_condition(column.event, low, high)
        return ([condition] if condition else []), low is not None and low >= 1
    conditions = []
    active = False
    if above is not None:
        value = round_number(*_gap(values, above))
        conditions.append(_aggregate(column.event, revenue_key, "gt", value))
        active = value >= 0
    if at_most is not None:
        conditions.append(_aggregate(column.event, revenue_key, "lte", round_number(*_gap(values, at_most))))
    return conditions, active


def _aggregate(event: str, key: str, operator: str, value: float | int) -> dict[str, Any]:
    return {"type": "aggregate", "event": event, "key": key, "function": "sum", "operator": operator, "value": value}


# "Has an event at or before now", the clustered population: the person's first event time, one
# scan of the people (where counting ``$any`` events groups every event of the workspace).
HAS_ANY_EVENT: dict[str, Any] = {"type": "first_performed", "event": ANY_EVENT}


def rule_definition(people: PeopleFeatures, members: np.ndarray, *, seed: int) -> dict[str, Any] | None:
    """A segment definition approximating the people of ``members`` (a boolean per person), or
    None when the tree finds no part of the sample where they are the majority.

    Every path of the tree to a leaf predicting the cluster is an ``and`` of conditions on the
    columns it splits; the definition is the ``or`` of the paths. A path none of whose
    conditions implies an event also requires one: the clustering only ever saw people with
    events. Classes are weighted by their size (``class_weight="balanced"``), so that a small
    cluster is not simply predicted never.
    """
    from sklearn.tree import DecisionTreeClassifier

    columns, matrix = rule_columns(people)
    min_leaf = max(5, math.ceil(len(people) * TREE_MIN_LEAF_SHARE))
    classifier = DecisionTreeClassifier(
        max_depth=TREE_DEPTH, min_samples_leaf=min_leaf, class_weight="balanced", random_state=seed
    )
    with threadpool_limits(limits=THREADS):
        classifier.fit(matrix, members.astype(bool))
    if len(classifier.classes_) < 2:
        return HAS_ANY_EVENT if bool(classifier.classes_[0]) else None
    paths = _paths(_tree(classifier), {})
    if not paths:
        return None
    branches = []
    for bounds in paths:
        conditions: list[dict[str, Any]] = []
        active = False
        for index in sorted(bounds):
            above, at_most = bounds[index]
            made, implies = _conditions(columns[index], matrix[:, index], above, at_most, people.revenue_key)
            conditions.extend(made)
            active = active or implies
        if not active:
            conditions.insert(0, HAS_ANY_EVENT)
        branches.append(conditions[0] if len(conditions) == 1 else {"type": "and", "conditions": conditions})
    return branches[0] if len(branches) == 1 else {"type": "or", "conditions": branches}


def precision_recall(rule_members: set[int], cluster_members: set[int]) -> tuple[float, float]:
    """Of the people the rule holds for, the share in the cluster; of the cluster, the share the rule holds for."""
    hits = len(rule_members & cluster_members)
    precision = hits / len(rule_members) if rule_members else 0.0
    recall = hits / len(cluster_members) if cluster_members else 0.0
    return round(precision, 4), round(recall, 4)
