"""The ``ago`` filter of every list: short, in its largest unit (number and unit joined by a no-break space)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone


def _render(value):
    return Template("{% load time_tags %}{{ value|ago }}").render(Context({"value": value}))


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=20), "just now"),
        (timedelta(minutes=5, seconds=10), "5\xa0minutes ago"),
        (timedelta(hours=1, minutes=13), "1\xa0hour ago"),
        (timedelta(days=3, hours=5), "3\xa0days ago"),
    ],
)
def test_ago_names_the_largest_unit_only(delta, expected):
    assert _render(timezone.now() - delta) == expected


def test_ago_of_nothing_is_empty():
    assert _render(None) == ""
