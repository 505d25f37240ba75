"""What tracking tells the apps above it about people: the port they subscribe to.

Tracking publishes and never names who listens. ``settings.TRACKING_SUBSCRIBERS``
lists modules; ``TrackingConfig.ready`` imports each and registers the functions
it defines under the hook names below (a module defines only the hooks it
handles). Hooks run in the order of that list.

Every hook is called inside the transaction that makes the change, so that a
subscriber's rows change with tracking's or not at all (an exception rolls the
whole change back). Work that must follow the commit (Redis, tasks, outgoing
messages) is the subscriber's to defer with ``transaction.on_commit``.

- ``people_touched(workspace_id, changes)``: ingestion stored messages; per
  person id, what changed for them (a ``Change``). On the hottest path: called
  once per workspace of a transaction, and only when someone subscribes.
- ``people_imported(workspace)``: a bulk import stored messages of many people
  at once (not told person by person); called once its chunks are committed.
- ``traits_recomputed(workspace)``: a computation above tracking wrote the
  reserved ``$`` traits of more people than are worth telling one by one (not
  told through ``people_touched``); called once the writes are committed.
- ``person_merged(workspace_id, loser_id, survivor_id)``: identity resolution
  folds the loser into the survivor. Tracking has moved its own rows; the loser's
  row is deleted right after the hooks, so each app moves or removes what it
  keeps about the loser now (nothing cascades from ``Person`` across apps).
- ``person_erased(erased)``: the right to be forgotten. Called before tracking
  deletes the person's events, identities and row, so that a subscriber can
  still read them; it removes everything it keeps keyed by the person or
  holding their values, and answers ``{what: rows erased}`` for the audit log.
- ``person_export(workspace, person)``: what the app stores about the person,
  as ``{section name: JSON-able}`` sections of their export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import Workspace
    from tracking.models import Person

HOOKS = ("people_touched", "people_imported", "traits_recomputed", "person_merged", "person_erased", "person_export")


@dataclass
class Change:
    """What happened to one person: the names of their new events, a trait write, or
    ``everything`` (a new person, or a merge's survivor, whose history grew by the loser's)."""

    events: set[str] = field(default_factory=set)
    traits: bool = False
    everything: bool = False

    def merge(self, other: Change) -> None:
        self.events |= other.events
        self.traits = self.traits or other.traits
        self.everything = self.everything or other.everything


@dataclass(frozen=True)
class ErasedPerson:
    """What ``person_erased`` is told: the person's id and every id they were known by, as (kind, value)."""

    workspace: Workspace
    person_id: int
    identities: list[tuple[str, str]]

    def values(self, kind: str | None = None) -> list[str]:
        return sorted({value for k, value in self.identities if kind is None or k == kind})


_hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOKS}


def subscribers_load(modules: Iterable[str]) -> None:
    """Register the hooks of these modules (dotted paths), replacing any registered before.

    Called from ``TrackingConfig.ready`` with ``settings.TRACKING_SUBSCRIBERS``; a module
    that defines none of the hooks is a mistake in the settings and refused.
    """
    hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOKS}
    for path in modules:
        module = import_module(path)
        found = [name for name in HOOKS if callable(getattr(module, name, None))]
        if not found:
            raise ValueError(f"TRACKING_SUBSCRIBERS: {path} defines none of {', '.join(HOOKS)}")
        for name in found:
            hooks[name].append(getattr(module, name))
    _hooks.update(hooks)


def people_touched_wanted() -> bool:
    """Whether anyone subscribes to ``people_touched`` (ingestion then works out the changes)."""
    return bool(_hooks["people_touched"])


def people_touched(workspace_id: int, changes: Mapping[int, Change]) -> None:
    for hook in _hooks["people_touched"]:
        hook(workspace_id, changes)


def people_imported(workspace: Workspace) -> None:
    for hook in _hooks["people_imported"]:
        hook(workspace)


def traits_recomputed(workspace: Workspace) -> None:
    for hook in _hooks["traits_recomputed"]:
        hook(workspace)


def person_merged(workspace_id: int, loser_id: int, survivor_id: int) -> None:
    for hook in _hooks["person_merged"]:
        hook(workspace_id, loser_id, survivor_id)


def person_erased(erased: ErasedPerson) -> dict[str, int]:
    """Every subscriber's erasure; the rows each erased, by what they were, for the audit log."""
    counts: dict[str, int] = {}
    for hook in _hooks["person_erased"]:
        counts.update(hook(erased))
    return counts


def person_export(workspace: Workspace, person: Person, *, reserved: Iterable[str]) -> dict[str, Any]:
    """The subscribers' sections of a person's export; a name among ``reserved`` (tracking's own) is refused."""
    taken = set(reserved)
    sections: dict[str, Any] = {}
    for hook in _hooks["person_export"]:
        for name, section in hook(workspace, person).items():
            if name in taken or name in sections:
                raise ValueError(f"export section {name!r} is given twice")
            sections[name] = section
    return sections
