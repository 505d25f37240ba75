"""User-given names (segments, webhooks, keys, campaigns): one normal form everywhere.

A name is stored as :func:`normalise_name` returns it, and two names are the same
when their :func:`name_key` is: NFKC folds look-alike forms, runs of white space
become one space, zero-width and bidirectional controls go (U+202E would render a
name reversed), and case does not count. A lone surrogate is refused rather than
turned into a replacement character.

A service takes a name through :func:`name_clean` (normal form, length, not
taken by another of the workspace's names); the table backs it with a unique
constraint on ``(workspace, Lower(name))`` for the race between two saves.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from django.core.exceptions import ValidationError

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


def name_clash(name: str, existing: Iterable[str]) -> str | None:
    """The first of ``existing`` that is the same name as ``name`` (equal :func:`name_key`), else None."""
    key = name_key(name)
    return next((other for other in existing if name_key(other) == key), None)


def name_clean(
    raw: str,
    *,
    noun: str,
    max_length: int,
    existing: Iterable[str] = (),
    field: str = "name",
    required: bool = True,
) -> str:
    """The stored form of a name a user gave, or ``ValidationError({field: [message]})`` saying why not.

    ``noun`` starts the messages ("A segment"). ``existing``: the names it must differ from (the
    workspace's other segments, say), read only once the name is otherwise valid; a lazy queryset
    of names is fine. The length is checked on the normal form, which is what is stored.
    """
    try:
        name = normalise_name(raw)
    except InvalidName as error:
        raise ValidationError({field: [str(error)]}) from error
    if not name:
        if required:
            raise ValidationError({field: [f"{noun} needs a name."]})
        return name
    if len(name) > max_length:
        raise ValidationError({field: [f"At most {max_length} characters (this has {len(name)})."]})
    clash = name_clash(name, existing)
    if clash is not None:
        raise ValidationError({field: [name_taken_message(noun, clash, given=raw.strip())]})
    return name


def name_taken_message(noun: str, taken: str, *, given: str | None = None) -> str:
    """Why a name is refused as a duplicate; says how when the two differ in their letters."""
    message = f"{noun} named {taken!r} already exists in this workspace."
    if given is not None and given != taken:
        message += " Names that differ only in case, spacing or invisible characters count as the same."
    return message


def name_constraint_violated(error: BaseException, constraint: str) -> bool:
    """Whether ``error`` (an ``IntegrityError``) is ``constraint``'s: another save took the name
    between the check and the insert. Other integrity errors must not read as a taken name."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint


def names_made_unique(
    names: Iterable[tuple[int, str]], *, max_length: int, fallback: str = "Untitled", unique: bool = True
) -> dict[int, str]:
    """Normal forms for names stored before :func:`normalise_name` existed (data migrations).

    ``names``: ``(id, name)`` of one workspace's rows, the one to keep a shared name first (the
    oldest). Answers the ids whose name changes and their new name. A name that normalises to
    nothing becomes ``fallback``; with ``unique``, a later row whose name is the same as an
    earlier one's gets the first free " (2)", " (3)"..., cut to ``max_length`` with its suffix.
    """
    taken: set[str] = set()
    changed: dict[int, str] = {}
    for pk, raw in names:
        try:
            name = normalise_name(raw)[:max_length].rstrip()
        except InvalidName:
            name = ""
        name = name or fallback
        if unique:
            base, number = name, 1
            while name_key(name) in taken:
                number += 1
                suffix = f" ({number})"
                name = base[: max_length - len(suffix)].rstrip() + suffix
            taken.add(name_key(name))
        if name != raw:
            changed[pk] = name
    return changed
