"""Small template filters of the segment pages."""

from __future__ import annotations

from django import template

from accounts.models import Membership
from segmentation.webhooks.selectors import url_readable_in_full, url_shown

register = template.Library()


@register.filter
def grouped(value: int) -> str:
    """``2630`` -> ``"2,630"``: thousands grouped, as the builder's live count shows them."""
    return f"{value:,}"


@register.filter
def magnitude(value: int) -> int:
    return abs(value)


@register.filter
def webhook_url(url: str, membership: Membership | None) -> str:
    """A webhook's URL as this member may read it: viewers see the scheme and host only."""
    return url_shown(url, full=membership is not None and url_readable_in_full(membership))
