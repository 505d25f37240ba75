"""campaigns.stats against values worked out by hand (other forms of the formulas, and published values)."""

from __future__ import annotations

import math

import pytest

from campaigns import stats
from campaigns.stats import Group

Z = 1.959963984540054


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """The same interval in its other textbook form: (2k + z² ± z·sqrt(z² + 4k(n-k)/n)) / (2(n + z²))."""
    root = Z * math.sqrt(Z * Z + 4 * k * (n - k) / n)
    return (2 * k + Z * Z - root) / (2 * (n + Z * Z)), (2 * k + Z * Z + root) / (2 * (n + Z * Z))


@pytest.mark.parametrize(("k", "n"), [(3, 10), (0, 20), (20, 20), (41, 1000), (1, 1)])
def test_wilson_interval_matches_the_other_form(k, n):
    low, high = stats.wilson_interval(k, n)

    expected_low, expected_high = _wilson_by_hand(k, n)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, expected_high), abs=1e-12)


def test_wilson_interval_published_value_and_edges():
    # 3 of 10: [0.1078, 0.6032] (Newcombe 1998, table I's method 3 gives 0.1078 to 0.6032).
    low, high = stats.wilson_interval(3, 10)

    assert (round(low, 4), round(high, 4)) == (0.1078, 0.6032)
    assert stats.wilson_interval(0, 20)[0] == 0.0
    assert stats.wilson_interval(20, 20)[1] == pytest.approx(1.0)
    assert stats.wilson_interval(0, 0) is None


def test_two_proportion_z_test():
    a, b = Group("A", 30, 1000), Group("B", 45, 1000)
    pooled = 75 / 2000
    z = (0.045 - 0.030) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))
    by_hand = math.erfc(abs(z) / math.sqrt(2))  # two-sided normal tail: 2·(1 - Φ(|z|))

    p = stats.two_proportion_p(a, b)

    assert z == pytest.approx(1.7655, abs=1e-4)
    assert p == pytest.approx(by_hand, rel=1e-9)
    assert p == pytest.approx(0.07748, abs=1e-5)
    assert stats.two_proportion_p(b, a) == pytest.approx(p)


def test_two_groups_chi_square_is_the_z_test():
    a, b = Group("A", 30, 1000), Group("B", 45, 1000)

    assert stats.chi_square_p([a, b]) == pytest.approx(stats.two_proportion_p(a, b), rel=1e-9)


def test_chi_square_for_three_groups():
    groups = [Group("A", 10, 100), Group("B", 20, 100), Group("C", 30, 100)]
    # Expected converted per group 20, not converted 80: x² = Σ (o - e)² / e.
    observed = [(10, 90), (20, 80), (30, 70)]
    statistic = sum((c - 20) ** 2 / 20 + (nc - 80) ** 2 / 80 for c, nc in observed)
    # With 2 degrees of freedom the chi-square tail is exp(-x/2).
    by_hand = math.exp(-statistic / 2)

    p = stats.chi_square_p(groups)

    assert statistic == pytest.approx(12.5)
    assert p == pytest.approx(by_hand, rel=1e-9)
    assert stats.p_value(groups) == p


def test_undefined_tests_answer_none():
    assert stats.two_proportion_p(Group("A", 0, 100), Group("B", 0, 100)) is None
    assert stats.two_proportion_p(Group("A", 0, 0), Group("B", 1, 10)) is None
    assert stats.chi_square_p([Group("A", 5, 5), Group("B", 5, 5), Group("C", 5, 5)]) is None
    assert stats.p_value([Group("A", 1, 2)]) is None


def test_lift():
    assert stats.lift(0.045, 0.03) == pytest.approx(0.5)
    assert stats.lift(0.02, 0.04) == pytest.approx(-0.5)
    assert stats.lift(0.02, 0.0) is None
    assert stats.lift(None, 0.02) is None


def test_verdicts():
    a, b, c = Group("A", 32, 1000), Group("B", 41, 1000), Group("C", 60, 1000)

    assert stats.verdict([a, b], 0.0123) == "B converts better than A: 4.1 % vs 3.2 %, p = 0.01"
    assert stats.verdict([a, b], 0.004) == "B converts better than A: 4.1 % vs 3.2 %, p = 0.004"
    assert stats.verdict([a, b], 0.0001) == "B converts better than A: 4.1 % vs 3.2 %, p < 0.001"
    assert stats.verdict([a, b], 0.3) == "no significant difference yet"
    assert stats.verdict([a, b], None) == "no significant difference yet"
    assert stats.verdict([a, b, c], 0.002) == "C converts best: 6.0 % vs B 4.1 %, A 3.2 %, p = 0.002"
    assert stats.verdict([a, Group("B", 0, 0)], None) == "not enough data yet"
