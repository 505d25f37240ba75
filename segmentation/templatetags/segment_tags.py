"""Small template filters of the segment pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def magnitude(value: int) -> int:
    return abs(value)
