"""Variant assignment: Python and SQL give the same answers, the split is fair, order plays no part."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
from django.db import connection

from accounts.sql import execute_session
from campaigns.assignment import bucket, variant_for, variant_sql


@dataclass(frozen=True)
class Arm:
    id: int
    weight: int


@dataclass(frozen=True)
class Plan:
    id: int
    holdout_percent: int


PEOPLE = 10_000


def sql_assignments(plan: Plan, arms: list[Arm], person_ids: list[int]) -> dict[int, int | None]:
    expression, params = variant_sql(campaign=plan, variants=arms, person_column="p.id")
    with connection.cursor() as cursor:
        execute_session(
            cursor,
            f"SELECT p.id, {expression} FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS p(id, n) ORDER BY p.n",
            {**params, "ids": person_ids},
        )
        return {int(person): (None if variant is None else int(variant)) for person, variant in cursor.fetchall()}


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_bucket_is_the_first_60_bits_of_the_md5_as_a_fraction():
    # Given md5("7:42:variant") = 1ac3f6c1...
    import hashlib

    digest = hashlib.md5(b"7:42:variant").hexdigest()
    # Then the bucket is its first 15 hex digits over 2**60, in [0, 1)
    assert bucket(7, 42, "variant") == int(digest[:15], 16) / 2**60
    assert 0 <= bucket(7, 42, "variant") < 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("holdout", "weights"),
    [(10, [50, 50]), (0, [1]), (0, [1, 2, 3]), (25, [10, 20, 30, 25, 15]), (90, [3, 1])],
)
def test_sql_and_python_agree_on_every_person(holdout, weights):
    # Given a campaign with a holdout and weighted variants
    plan = Plan(id=4321, holdout_percent=holdout)
    arms = [Arm(id=100 + i, weight=w) for i, w in enumerate(weights)]
    person_ids = list(range(1, PEOPLE + 1))
    # When both forms assign 10,000 people
    in_sql = sql_assignments(plan, arms, person_ids)
    in_python = {
        p: (None if (v := variant_for(campaign=plan, variants=arms, person_id=p)) is None else v.id) for p in person_ids
    }
    # Then every answer is the same
    assert in_sql == in_python


@pytest.mark.django_db
def test_split_is_within_binomial_tolerance_and_independent_of_audience_order():
    # Given A/B 50/50 with a 10 % holdout over 10,000 people
    plan = Plan(id=99, holdout_percent=10)
    arms = [Arm(id=1, weight=50), Arm(id=2, weight=50)]
    person_ids = list(range(5_000, 5_000 + PEOPLE))
    # When the audience is assigned in order and again shuffled
    ordered = sql_assignments(plan, arms, person_ids)
    shuffled_ids = person_ids[:]
    random.Random(7).shuffle(shuffled_ids)
    shuffled = sql_assignments(plan, arms, shuffled_ids)
    # Then each person gets the same answer either way
    assert shuffled == ordered
    # And the holdout is about 10 %, the rest split about evenly
    held = sum(1 for v in ordered.values() if v is None)
    a = sum(1 for v in ordered.values() if v == 1)
    assert within_binomial(held, PEOPLE, 0.10)
    assert within_binomial(a, PEOPLE - held, 0.5)
    assert held + a + sum(1 for v in ordered.values() if v == 2) == PEOPLE


def test_holdout_and_variant_questions_are_independent():
    # Given the people held out of one campaign
    plan = Plan(id=5, holdout_percent=50)
    arms = [Arm(id=1, weight=1), Arm(id=2, weight=1)]
    answers = [variant_for(campaign=plan, variants=arms, person_id=p) for p in range(PEOPLE)]
    # Then among those not held out, the variant split is still even
    kept = [a for a in answers if a is not None]
    assert within_binomial(sum(1 for a in kept if a.id == 1), len(kept), 0.5)
    # And another campaign holds out a different half (about a quarter of people in both)
    other = Plan(id=6, holdout_percent=50)
    both = sum(
        1
        for p in range(PEOPLE)
        if answers[p] is None and variant_for(campaign=other, variants=arms, person_id=p) is None
    )
    assert within_binomial(both, PEOPLE, 0.25)
