"""Predictive propensity: the probability that a person purchases (or churns) in the next N days.

Pure: numpy and scikit-learn, no Django and no database. ``insights.propensity_services`` reads
the features and labels, runs this and writes the score as a computed trait; docs/insights.md
("Propensity") explains the choices to users.

- **Features** are clustering's (``insights.clustering.clustering_columns``): days since the last
  event, events, orders, revenue, sessions and the event mix, read as of an instant from the events
  at or before it only. Gradient boosting splits on thresholds, so no scaling is needed.
- **Time split**, with ``now`` and the horizon N (``Windows``): the model is trained on the
  features as of ``now - 2N`` with what happened in the N days after, and validated on the
  features as of ``now - N`` with what happened from then to ``now``. The holdout AUC is that
  validation's: how a model trained one window ago ranks the next window's people.
- **Scoring**: the same model is then fitted again on the validation window (the latest complete
  one) and scores everyone as of ``now``; the AUC above measures exactly that situation, a model
  one window older than the people it scores.
- **Refusals**: a window with fewer than ``MIN_PEOPLE`` people, or fewer than ``MIN_CLASS``
  positives or negatives, gives no model (``Insufficient``); a holdout AUC under ``AUC_FLOOR``
  gives a model whose score is not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    # scikit-learn is imported where it is used: it takes seconds, and these modules load with
    # the URL configuration of every web and worker process.
    from sklearn.ensemble import HistGradientBoostingClassifier

from insights.clustering import THREADS, PeopleFeatures, clustering_columns

PURCHASE, CHURN = "purchase", "churn"
TARGETS = (PURCHASE, CHURN)
TRAIT_KEYS = {PURCHASE: "$purchase_propensity", CHURN: "$churn_propensity"}
DEFAULT_HORIZON_DAYS = 30
MIN_HORIZON_DAYS, MAX_HORIZON_DAYS = 7, 90
# Each window needs this many people, and this many with each outcome, for a model to be trained
# (with fewer, a holdout AUC swings by several points from one run to the next).
MIN_PEOPLE = 500
MIN_CLASS = 50
# Below this holdout AUC the score ranks people little better than chance: it is not written.
AUC_FLOOR = 0.6
# Each window reads at most this many people (a uniform sample, as clustering draws it).
MAX_SAMPLE = 100_000
GROUPS = 10

# Shallow, regularised trees at a fixed number of rounds: the same data gives the same model, and
# a few hundred people cannot be memorised tree by tree.
_MODEL: dict[str, Any] = {
    "max_iter": 80,
    "learning_rate": 0.05,
    "max_leaf_nodes": 8,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,
}


@dataclass(frozen=True)
class Windows:
    """The instants of a run: features as of ``train_at`` are labelled by (``train_at``,
    ``validation_at``], features as of ``validation_at`` by (``validation_at``, ``now``]."""

    train_at: datetime
    validation_at: datetime
    now: datetime

    @classmethod
    def ending(cls, now: datetime, horizon_days: int) -> Windows:
        horizon = timedelta(days=horizon_days)
        return cls(train_at=now - 2 * horizon, validation_at=now - horizon, now=now)


@dataclass(frozen=True)
class Labelled:
    """The people of one window (features as of its start) with whether the target happened."""

    people: PeopleFeatures
    labels: np.ndarray  # bool, one per person
    population: int  # people with an event at or before the window's start (before sampling)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    @property
    def negatives(self) -> int:
        return len(self.labels) - self.positives

    @property
    def base_rate(self) -> float | None:
        return self.positives / len(self.labels) if len(self.labels) else None

    def summary(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "sample_size": len(self.labels),
            "positives": self.positives,
            "base_rate": None if self.base_rate is None else round(self.base_rate, 4),
        }


class Insufficient(ValueError):
    """Too few people, or too few of one outcome, in a window to train and validate a model."""


def sufficiency(window: str, labelled: Labelled, target: str) -> None:
    """Raise ``Insufficient`` with a message naming the window, the counts and the threshold."""
    outcome, opposite = ("purchased", "did not purchase") if target == PURCHASE else ("churned", "stayed active")
    people = len(labelled.labels)
    if people < MIN_PEOPLE:
        raise Insufficient(
            f"Not enough data: the {window} window has {people:,} people with events before it, and a model "
            f"needs at least {MIN_PEOPLE:,} in each window."
        )
    for count, what in ((labelled.positives, outcome), (labelled.negatives, opposite)):
        if count < MIN_CLASS:
            raise Insufficient(
                f"Not enough data: in the {window} window {count:,} of {people:,} people {what}, and a model "
                f"needs at least {MIN_CLASS} who did and {MIN_CLASS} who did not."
            )


def matrix(people: PeopleFeatures) -> np.ndarray:
    """Clustering's feature columns, raw (trees need no scaling)."""
    return clustering_columns(people)[1]


def feature_names(people: PeopleFeatures) -> list[str]:
    return [feature.label for feature in clustering_columns(people)[0]]


def fit(labelled: Labelled, *, seed: int) -> HistGradientBoostingClassifier:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=seed, **_MODEL)
    with threadpool_limits(limits=THREADS):
        model.fit(matrix(labelled.people), labelled.labels.astype(int))
    return model


def predict(model: HistGradientBoostingClassifier, people: PeopleFeatures) -> np.ndarray:
    """The probability of the target for each person (an empty array for nobody)."""
    if len(people) == 0:
        return np.zeros(0)
    with threadpool_limits(limits=THREADS):
        return np.asarray(model.predict_proba(matrix(people))[:, 1], dtype=float)


@dataclass(frozen=True)
class Validation:
    auc: float
    groups: list[dict[str, Any]]  # GROUPS groups of the holdout, highest scores first


def validate(train: Labelled, validation: Labelled, *, seed: int) -> Validation:
    """Fit on the train window, score the validation window: its ROC AUC and its score groups."""
    scores = predict(fit(train, seed=seed), validation.people)
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(validation.labels.astype(int), scores))
    return Validation(auc, score_groups(scores, validation.labels))


def score_groups(scores: np.ndarray, labels: np.ndarray, groups: int = GROUPS) -> list[dict[str, Any]]:
    """The people ranked by score (highest first, ties by position) in ``groups`` groups of equal size
    (the first ones one larger when it does not divide): each group's mean predicted probability and
    actual rate. A useful score has actual rates falling from the first group to the last (lift), and
    close to the predicted ones (calibration)."""
    order = np.argsort(-scores, kind="stable")
    out = []
    for number, rows in enumerate(np.array_split(order, min(groups, len(order))), start=1):
        out.append(
            {
                "group": number,
                "people": len(rows),
                "predicted": round(float(scores[rows].mean()), 4),
                "actual": round(float(labels[rows].mean()), 4),
            }
        )
    return out


def as_trait(probability: float) -> float:
    """The trait's value: the probability in percent, to one decimal (0 to 100)."""
    return round(100.0 * float(probability), 1) + 0.0
