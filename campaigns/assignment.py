"""Who gets which variant: a stable hash of (campaign, person), the same in Python and in SQL.

A person's bucket is the first 60 bits of ``md5("<campaign_id>:<person_id>:<salt>")`` read as a
fraction of 2**60, so it is in [0, 1), depends on nothing but the two ids (not on the order of
the audience, not on who else is in it) and is the same on every retry. Two salts keep the two
questions independent: ``"holdout"`` (is the person held out?) and ``"variant"`` (which variant
of the rest?).

The broadcast fan-out asks the same question of a whole audience in one ``INSERT ... SELECT``;
``variant_sql`` gives that expression. The thresholds are computed here, in Python, and passed
as parameters, so both forms compare the same float bucket to the same float thresholds: the
bucket itself is exact in both (a 60-bit integer rounded once to a double, then scaled by a
power of two).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Protocol, TypeVar

SCALE = 2**60
HOLDOUT_SALT = "holdout"
VARIANT_SALT = "variant"


class _Campaign(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def holdout_percent(self) -> int: ...


class _Variant(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def weight(self) -> int: ...


V = TypeVar("V", bound=_Variant)


def bucket(campaign_id: int, person_id: int, salt: str) -> float:
    """The person's place in [0, 1) for this campaign and question."""
    digest = hashlib.md5(f"{campaign_id}:{person_id}:{salt}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:15], 16) / SCALE


def holdout_threshold(holdout_percent: int) -> float:
    return holdout_percent / 100


def variant_thresholds(weights: Sequence[int]) -> list[float]:
    """The upper end of each variant's share of [0, 1), by cumulative weight."""
    total = sum(weights)
    return [cumulative / total for cumulative in accumulate(weights)]


def variant_for(*, campaign: _Campaign, variants: Sequence[V], person_id: int) -> V | None:
    """The person's variant, or None when they are in the holdout. ``variants`` in position order."""
    if not variants:
        raise ValueError("a campaign has at least one variant")
    if campaign.holdout_percent and bucket(campaign.id, person_id, HOLDOUT_SALT) < holdout_threshold(
        campaign.holdout_percent
    ):
        return None
    point = bucket(campaign.id, person_id, VARIANT_SALT)
    for variant, upper in zip(variants, variant_thresholds([v.weight for v in variants]), strict=True):
        if point < upper:
            return variant
    return variants[-1]  # the last threshold is 1.0 exactly; kept for safety


def _bucket_sql(campaign_param: str, person_column: str, salt: str) -> str:
    # ('x' || 15 hex digits)::bit(60)::bigint is the integer of the first 15 hex digits.
    return (
        f"(('x' || substr(md5(%({campaign_param})s::bigint::text || ':' || ({person_column})::text"
        f" || ':{salt}'), 1, 15))::bit(60)::bigint::float8 / {float(SCALE)!r}::float8)"
    )


def variant_sql(
    *, campaign: _Campaign, variants: Sequence[_Variant], person_column: str, prefix: str = "assign"
) -> tuple[str, dict[str, Any]]:
    """An SQL expression giving the variant id of the person in ``person_column`` (NULL: holdout),
    and its parameters (named ``<prefix>_...``, to merge into the statement's). Same answers as
    ``variant_for``."""
    if not variants:
        raise ValueError("a campaign has at least one variant")
    if not all(c.isalnum() or c in "._" for c in person_column):
        raise ValueError("person_column must be a column reference")
    campaign_param = f"{prefix}_campaign"
    params: dict[str, Any] = {campaign_param: int(campaign.id)}
    thresholds = variant_thresholds([v.weight for v in variants])
    arms = []
    for index, (variant, upper) in enumerate(zip(variants[:-1], thresholds[:-1], strict=True)):
        params[f"{prefix}_t{index}"] = upper
        params[f"{prefix}_v{index}"] = int(variant.id)
        arms.append(f"WHEN b.v < %({prefix}_t{index})s::float8 THEN %({prefix}_v{index})s::bigint")
    params[f"{prefix}_vlast"] = int(variants[-1].id)
    choice = f"%({prefix}_vlast)s::bigint"
    if arms:
        choice = f"CASE {' '.join(arms)} ELSE {choice} END"
    holdout = "false"
    if campaign.holdout_percent:
        params[f"{prefix}_holdout"] = holdout_threshold(campaign.holdout_percent)
        holdout = f"b.h < %({prefix}_holdout)s::float8"
    # Each bucket is computed once per person, in a one-row subquery.
    # Fixed fragments and a checked column name; every value is bound.
    return (
        f"(SELECT CASE WHEN {holdout} THEN NULL::bigint ELSE {choice} END FROM (SELECT"
        f" {_bucket_sql(campaign_param, person_column, HOLDOUT_SALT)} AS h,"
        f" {_bucket_sql(campaign_param, person_column, VARIANT_SALT)} AS v) AS b)"
    ), params


def bucket_sql(*, campaign_param: str, person_column: str, salt: str) -> str:
    """``bucket(campaign, person, salt)`` as an SQL expression: the campaign id bound as
    ``%(<campaign_param>)s``, the person read from ``person_column`` (a column reference)."""
    if not all(c.isalnum() or c in "._" for c in person_column) or not salt.isidentifier():
        raise ValueError("person_column must be a column reference and salt a plain word")
    return _bucket_sql(campaign_param, person_column, salt)
