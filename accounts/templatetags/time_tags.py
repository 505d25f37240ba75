"""Time filters shared by every page."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """How long ago, in its largest unit: "just now" under a minute, else "3 hours ago".

    Lists keep it short (``timesince`` alone says "0 minutes" and "1 hour, 13 minutes");
    the exact time belongs in the element's title.
    """
    if value is None:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"
