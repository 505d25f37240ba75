"""Segment tags ("vip", "q3 launch"): labels for finding segments in the list and the API.

A tag is stored as ``tag_key`` returns it: the normal form of user-given names
(``core.names``: NFKC, one space between words, no zero-width or bidirectional
controls) case folded, so that "VIP " and "vip" are one tag, as a filter by tag
compares them. ``segmentation.services.segments`` refuses what cannot be stored.
"""

from __future__ import annotations

from core.names import normalise_name


def tag_key(raw: str) -> str:
    """The stored form of a tag; raises ``core.names.InvalidName`` for text that cannot be kept."""
    return normalise_name(raw).casefold()
