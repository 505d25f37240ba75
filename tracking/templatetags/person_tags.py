"""Template filters naming people (``tracking.labels``)."""

from __future__ import annotations

from django import template

from tracking import labels
from tracking.models import Person

register = template.Library()


@register.filter
def person_label(person: Person) -> str:
    return labels.person_label(person)


@register.filter
def anonymous_id(person: Person) -> str:
    """The person's first anonymous id in full (for a tooltip next to its short form), or ""."""
    return labels.first_anonymous_id(person) or ""


@register.filter(name="anonymous_label")
def anonymous_label_filter(anonymous_id: str | None) -> str:
    """``"Anonymous 3f2a9c…"`` from an anonymous id (an event's, say)."""
    return labels.anonymous_label(anonymous_id)
