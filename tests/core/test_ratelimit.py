"""Rates as settings write them, and waits as the forms say them (core/ratelimit.py)."""

from __future__ import annotations

import pytest

from core.ratelimit import Rate, wait_text


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/s", Rate(100, 1)), ("20/min", Rate(20, 60)), ("3/hour", Rate(3, 3600)), ("10/15m", Rate(10, 900))],
)
def test_rates_parse(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "100", "0/s", "ten/s", "5/week", "-1/s"])
def test_a_bad_rate_is_refused(text):
    with pytest.raises(ValueError, match="is not a rate"):
        Rate.parse(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (40, "40 seconds"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (3540, "59 minutes"),
        (3541, "1 hour"),
        (3599, "1 hour"),
        (3600, "1 hour"),
        (3601, "2 hours"),
        (7200, "2 hours"),
    ],
)
def test_wait_text(seconds, text):
    assert wait_text(seconds) == text
