"""User-given names (segments, webhooks, keys, campaigns): one normal form everywhere.

A name is stored as :func:`normalise_name` returns it, and two names are the same
when their :func:`name_key` is: NFKC folds look-alike forms, runs of white space
become one space, zero-width and bidirectional controls go (U+202E would render a
name reversed), and case does not count. A lone surrogate is refused rather than
turned into a replacement character.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width characters and the bidirectional embedding, override and isolate controls.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidName(ValueError):
    """The name cannot be stored as given; the message says why, for the user."""


def normalise_name(raw: str) -> str:
    """The stored form of a user-given name; raises :class:`InvalidName` for what cannot be kept."""
    if _SURROGATE.search(raw):
        raise InvalidName("The name contains a character that is not valid text.")
    text = unicodedata.normalize("NFKC", raw)
    text = _INVISIBLE.sub("", text)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return _SPACE.sub(" ", text).strip()


def name_key(raw: str) -> str:
    """What two names are compared by for uniqueness: the normal form, case folded."""
    return normalise_name(raw).casefold()
