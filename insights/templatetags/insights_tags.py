"""Template filters of the insights pages: durations and shares as people read them."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()
# Shown for no value: an en dash.
NONE = "\u2013"


@register.filter
def seconds(value: Any) -> str:
    """A duration in seconds as "45 s", "12 min", "3 h 20 min", "2 d 4 h"; an en dash for none."""
    if value is None:
        return NONE
    total = round(float(value))
    if total < 60:
        return f"{total} s"
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 3600:
        return f"{minutes} min"
    if total < 86400:
        rest = minutes - hours * 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours - days * 24
    return f"{days} d {rest} h" if rest else f"{days} d"


@register.filter
def share(value: Any) -> str:
    """A share (0..1) as a percentage; an en dash for none."""
    if value is None:
        return NONE
    percent = 100 * float(value)
    return f"{percent:.0f}%" if percent >= 10 or percent == 0 else f"{percent:.1f}%"
