"""Which changes to a person can change a segment's membership: pure, no Django.

Real-time membership re-evaluates a person only for the segments that a change
of theirs can affect. A definition depends on:

- the event names it mentions anywhere, under ``not`` and in ``count eq 0``
  conditions too: a new event can make someone leave as well as enter;
- any event at all, when it mentions ``$any``;
- the person's traits, when it holds a ``trait`` condition (first-touch
  ``$initial_*`` traits included);
- the stored membership of the segments it references: when one of those
  changes for a person, the dependent is re-evaluated for that person.

Nothing here depends on time. A membership that flips only because time passed
(an event leaving a 30-day window, a sequence's ``within`` running out) is left
to the periodic full refresh: no event marks the moment.

A ``Change`` is what tracking says happened to one person (``tracking.events``):
the names of their new events, a trait write, or ``everything`` (a new person,
who may now match any "has not done" segment, or a merge, which moved another
person's whole history in).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from segmentation.definition import ANY_EVENT, Node, Trait, event_names, referenced_segments, walk
from tracking.events import Change


@dataclass(frozen=True)
class Dependencies:
    event_names: frozenset[str]
    any_event: bool
    traits: bool
    segments: frozenset[int]

    def affected_by(self, change: Change) -> bool:
        """Whether ``change`` can alter membership for its person (references aside: see ``segments``)."""
        if change.everything:
            return True
        if change.traits and self.traits:
            return True
        if not change.events:
            return False
        return self.any_event or not self.event_names.isdisjoint(change.events)


def dependencies(tree: Node) -> Dependencies:
    names = event_names(tree)
    return Dependencies(
        event_names=frozenset(names - {ANY_EVENT}),
        any_event=ANY_EVENT in names,
        traits=any(isinstance(node, Trait) for node in walk(tree)),
        segments=frozenset(referenced_segments(tree)),
    )


# How a person's change travels through Redis: one set member per fact, so that
# recording is a plain SADD (no read-modify-write) and a batch is a plain SPOP.
# ``<person id>|e|<event name>``, ``<person id>|t`` (traits), ``<person id>|*`` (everything).
_EVENT, _TRAITS, _EVERYTHING = "e", "t", "*"


def encode(person_id: int, change: Change) -> list[str]:
    if change.everything:
        return [f"{person_id}|{_EVERYTHING}"]
    members = [f"{person_id}|{_EVENT}|{name}" for name in sorted(change.events)]
    if change.traits:
        members.append(f"{person_id}|{_TRAITS}")
    return members


def decode(members: Iterable[bytes | str]) -> dict[int, Change]:
    """The changes per person of popped members; malformed members are ignored."""
    changes: dict[int, Change] = {}
    for raw in members:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        person, _, rest = text.partition("|")
        kind, _, name = rest.partition("|")
        if not person.isdigit():
            continue
        change = changes.setdefault(int(person), Change())
        if kind == _EVENT:
            change.events.add(name)
        elif kind == _TRAITS:
            change.traits = True
        elif kind == _EVERYTHING:
            change.everything = True
    return changes
