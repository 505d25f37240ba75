"""How pages name a person: their name trait, else their user id, else a short form of their
anonymous id ("Anonymous 3f2a9c…"). Never the row id: a number such as "#972" reads like part of a
user id ("user-1-000972") and means nothing outside the database.

Pure functions over a person already loaded; callers that list people load each one's first
anonymous id with the list (``people_selectors.with_first_anonymous_id``, or ``identity_list``).
"""

from __future__ import annotations

from typing import Any

from tracking.models import IdentityKind, Person

# Characters of an anonymous id kept in a label; a UUID's first six hex digits tell people apart.
ANONYMOUS_SHOWN = 6


def short_anonymous_id(value: str) -> str:
    """The first characters of an anonymous id, with an ellipsis when some were left out."""
    return value if len(value) <= ANONYMOUS_SHOWN + 2 else f"{value[:ANONYMOUS_SHOWN]}\u2026"


def anonymous_label(anonymous_id: str | None) -> str:
    return f"Anonymous {short_anonymous_id(anonymous_id)}" if anonymous_id else "Anonymous visitor"


def first_anonymous_id(person: Person) -> str | None:
    """The person's earliest anonymous id, from what the caller loaded with the person: the
    ``first_anonymous_id`` annotation or ``identity_list`` (no query here)."""
    annotated: Any = getattr(person, "first_anonymous_id", None)
    if isinstance(annotated, str):
        return annotated
    for identity in getattr(person, "identity_list", None) or []:
        if identity.kind == IdentityKind.ANONYMOUS_ID:
            return str(identity.value)
    return None


def person_label(person: Person) -> str:
    traits = person.traits if isinstance(person.traits, dict) else {}
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name
    return person.user_id or anonymous_label(first_anonymous_id(person))
