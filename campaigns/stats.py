"""The arithmetic of a campaign's results: conversion rates with their 95 % interval, the test of
whether the groups differ, lift over the holdout, and a verdict in plain words. No Django.

- Interval: Wilson's score interval, which stays inside [0, 1] and behaves at 0 or n
  conversions where the normal approximation does not.
- Test: two groups, the two-proportion z-test with the pooled proportion (two-sided); more
  than two, Pearson's chi-square on the groups x (converted, not converted) table, without
  continuity correction (scipy's ``chi2_contingency``). Both are undefined when no group or
  every group converted (no variance): the p-value is then None.
- Lift: the relative difference of a rate over the holdout's, ``(rate - holdout) / holdout``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the standard normal quantile of 0.975
ALPHA = 0.05
NO_DIFFERENCE = "no significant difference yet"
NOT_ENOUGH = "not enough data yet"


@dataclass(frozen=True)
class Group:
    name: str
    converted: int
    exposed: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.exposed if self.exposed else None


def wilson_interval(converted: int, exposed: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson's score interval of ``converted / exposed``; None without any exposure."""
    if exposed <= 0:
        return None
    p = converted / exposed
    z2 = z * z
    centre = (p + z2 / (2 * exposed)) / (1 + z2 / exposed)
    half = z / (1 + z2 / exposed) * math.sqrt(p * (1 - p) / exposed + z2 / (4 * exposed * exposed))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(a: Group, b: Group) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None when it is undefined."""
    if not a.exposed or not b.exposed:
        return None
    pooled = (a.converted + b.converted) / (a.exposed + b.exposed)
    variance = pooled * (1 - pooled) * (1 / a.exposed + 1 / b.exposed)
    if variance <= 0:
        return None
    z = (a.converted / a.exposed - b.converted / b.exposed) / math.sqrt(variance)
    from scipy.stats import norm  # imported when used: scipy.stats takes seconds to import

    return float(2 * norm.sf(abs(z)))


def chi_square_p(groups: Sequence[Group]) -> float | None:
    """p-value of Pearson's chi-square test of independence over the groups; None when undefined."""
    if any(not group.exposed for group in groups):
        return None
    converted = sum(group.converted for group in groups)
    exposed = sum(group.exposed for group in groups)
    if converted == 0 or converted == exposed:
        return None
    table = [[group.converted, group.exposed - group.converted] for group in groups]
    from scipy.stats import chi2_contingency  # imported when used, as above

    result = chi2_contingency(table, correction=False)
    return float(result.pvalue)


def p_value(groups: Sequence[Group]) -> float | None:
    """The z-test for two groups, chi-square for more; None for fewer than two."""
    if len(groups) < 2:
        return None
    if len(groups) == 2:
        return two_proportion_p(groups[0], groups[1])
    return chi_square_p(groups)


def lift(rate: float | None, holdout_rate: float | None) -> float | None:
    """``(rate - holdout_rate) / holdout_rate``; None when either is unknown or the holdout's is 0."""
    if rate is None or holdout_rate is None or holdout_rate == 0:
        return None
    return (rate - holdout_rate) / holdout_rate


def percent(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def p_text(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def verdict(groups: Sequence[Group], p: float | None, *, alpha: float = ALPHA) -> str:
    """In words: which group converts better and by how much, or that no difference shows yet.

    "B converts better than A: 4.1 % vs 3.2 %, p = 0.01"; with more than two groups, "C converts
    best: 5.0 % vs A 3.2 %, B 3.1 %, p = 0.004".
    """
    if len(groups) < 2 or any(group.rate is None for group in groups):
        return NOT_ENOUGH
    if p is None or p >= alpha:
        return NO_DIFFERENCE
    ranked = sorted(groups, key=lambda group: group.rate or 0.0, reverse=True)
    best, rest = ranked[0], ranked[1:]
    assert best.rate is not None
    if len(rest) == 1:
        other = rest[0]
        assert other.rate is not None
        rates = f"{percent(best.rate)} vs {percent(other.rate)}"
        return f"{best.name} converts better than {other.name}: {rates}, {p_text(p)}"
    others = ", ".join(f"{group.name} {percent(group.rate or 0.0)}" for group in rest)
    return f"{best.name} converts best: {percent(best.rate)} vs {others}, {p_text(p)}"
