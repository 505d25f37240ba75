"""Identity resolution, planned: which person each message belongs to, before any write.

Pure: no database, no ORM. ``Plan`` takes the people the caller already knows
(``known``: each id of the messages found in the database, with its person)
and, fed the messages one by one in processing order (``Plan.add``), decides
who each message belongs to, which new people and new identities to create,
which people merge into which (``merges``: loser, survivor), which traits
``identify`` writes, the page calls that may set first-touch traits, the group
links, and what changed per person (``Plan.touched``).

What the caller must know:
- People not yet created have negative refs; existing people keep their row id.
  After writing, a ref resolves to a row id through ``Plan.final`` (a merged
  person's ref leads to its survivor's).
- ``known`` must hold every person an id of the messages belongs to, and the
  caller must keep them from changing until it writes (ingestion locks their
  rows), or the plan may link an id already taken or merge a deleted person.
- Messages carrying a suppressed id must not be added: the plan does not know
  about suppression (``message_keys`` gives the ids to check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracking.events import Change
from tracking.messages import EVENT_TYPES, Message

# The kinds of ``tracking.models.IdentityKind`` (kept as text here: no ORM in the plan).
USER = "user_id"
ANONYMOUS = "anonymous_id"

Key = tuple[str, str]
"""An id as (kind, value)."""


def message_keys(message: Message) -> list[Key]:
    """The ids the message names: its user and anonymous ids, and an alias's previous id as either kind."""
    keys: list[Key] = []
    if message.user_id is not None:
        keys.append((USER, message.user_id))
    if message.anonymous_id is not None:
        keys.append((ANONYMOUS, message.anonymous_id))
    if message.previous_id is not None:
        keys.extend(((USER, message.previous_id), (ANONYMOUS, message.previous_id)))
    return keys


def keys_of(messages: Iterable[Message]) -> list[Key]:
    """Every id the messages name, once each, sorted (the order of the lookup)."""
    return sorted({key for message in messages for key in message_keys(message)})


@dataclass(slots=True)
class PlannedPerson:
    """A person as the plan sees it. ``ref`` is the row id, or negative until created."""

    ref: int
    user_id: str | None
    has_first_touch: bool
    user_id_set: bool = False


@dataclass
class Plan:
    """Identity resolution of one request, in processing order, before any write."""

    known: dict[Key, PlannedPerson]
    people: dict[int, PlannedPerson] = field(default_factory=dict)
    by_key: dict[Key, int] = field(default_factory=dict)
    merged_into: dict[int, int] = field(default_factory=dict)
    new_people: list[int] = field(default_factory=list)
    new_identities: list[tuple[str, str, int]] = field(default_factory=list)
    merges: list[tuple[int, int]] = field(default_factory=list)
    trait_writes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # Page calls as (ref, timestamp, properties); first-touch traits are worked out only for the
    # earliest page of a person that has none yet (``tracking.ingest``'s people update).
    first_touches: list[tuple[int, datetime, dict[str, Any]]] = field(default_factory=list)
    seen: list[tuple[int, datetime]] = field(default_factory=list)
    events: list[tuple[int, Message]] = field(default_factory=list)
    group_links: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key, person in self.known.items():
            self.people[person.ref] = person
            self.by_key[key] = person.ref

    def final(self, ref: int) -> int:
        while ref in self.merged_into:
            ref = self.merged_into[ref]
        return ref

    def find(self, key: Key) -> PlannedPerson | None:
        ref = self.by_key.get(key)
        return None if ref is None else self.people[self.final(ref)]

    def _new(self, user_id: str | None) -> PlannedPerson:
        ref = -(len(self.new_people) + 1)
        person = self.people[ref] = PlannedPerson(ref, None, has_first_touch=False)
        self.new_people.append(ref)
        if user_id is not None:
            self._set_user_id(person, user_id)
        return person

    def _set_user_id(self, person: PlannedPerson, user_id: str) -> None:
        person.user_id = user_id
        person.user_id_set = True

    def _link(self, key: Key, person: PlannedPerson) -> None:
        self.by_key[key] = person.ref
        self.new_identities.append((key[0], key[1], person.ref))

    def _merge(self, loser: PlannedPerson, survivor: PlannedPerson) -> None:
        self.merged_into[loser.ref] = survivor.ref
        self.merges.append((loser.ref, survivor.ref))
        survivor.has_first_touch = survivor.has_first_touch or loser.has_first_touch
        if survivor.user_id is None and loser.user_id is not None:
            self._set_user_id(survivor, loser.user_id)

    def resolve(self, user_id: str | None, anonymous_id: str | None) -> PlannedPerson:
        """The message's person; links its two ids, creating or merging as the contract says."""
        by_user = self.find((USER, user_id)) if user_id is not None else None
        by_anonymous = self.find((ANONYMOUS, anonymous_id)) if anonymous_id is not None else None
        if user_id is None:
            assert anonymous_id is not None
            if by_anonymous is None:
                by_anonymous = self._new(None)
                self._link((ANONYMOUS, anonymous_id), by_anonymous)
            return by_anonymous
        if by_user is None:
            if by_anonymous is not None and by_anonymous.user_id is None:
                person = by_anonymous
                self._set_user_id(person, user_id)
            else:
                # Unknown anonymous id, or one already tied to another identified person
                # (a shared device): the user id gets its own person.
                person = self._new(user_id)
                if by_anonymous is None and anonymous_id is not None:
                    self._link((ANONYMOUS, anonymous_id), person)
            self._link((USER, user_id), person)
            return person
        if anonymous_id is not None:
            if by_anonymous is None:
                self._link((ANONYMOUS, anonymous_id), by_user)
            elif by_anonymous.ref != by_user.ref and by_anonymous.user_id is None:
                # The anonymous history now belongs to the identified person.
                self._merge(by_anonymous, by_user)
        return by_user

    def alias(self, previous_id: str, user_id: str | None, anonymous_id: str | None) -> PlannedPerson:
        """``alias``: the person of ``previous_id`` merges into the person of the new id."""
        target_key: Key = (USER, user_id) if user_id is not None else (ANONYMOUS, anonymous_id or "")
        survivor = self.find(target_key)
        loser = self.find((USER, previous_id)) or self.find((ANONYMOUS, previous_id))
        if survivor is None:
            if loser is None:
                survivor = self._new(user_id)
                self._link((ANONYMOUS, previous_id), survivor)
            else:
                survivor = loser
                if user_id is not None and survivor.user_id is None:
                    self._set_user_id(survivor, user_id)
            self._link(target_key, survivor)
        elif loser is None:
            self._link((ANONYMOUS, previous_id), survivor)
        elif loser.ref != survivor.ref:
            self._merge(loser, survivor)
        return survivor

    def touched(self, row_id: Callable[[int], int]) -> dict[int, Change]:
        """Per final person id, what the request changed that a segment can read.

        New events by name; traits written by ``identify`` or first-touch traits
        set now; everything for a new person (a "has not done" segment holds for
        them at once) and for a merge's survivor (the loser's history moved in).
        Merges' losers are gone: ``person_merged`` told the subscribers.
        """
        changes: dict[int, Change] = {}

        def change(ref: int) -> Change:
            person_id = row_id(ref)
            found = changes.get(person_id)
            if found is None:
                found = changes[person_id] = Change()
            return found

        for ref in self.new_people:
            change(ref).everything = True
        for _, survivor in self.merges:
            change(survivor).everything = True
        for ref, message in self.events:
            change(ref).events.add(message.event or "")
        for ref, _ in self.trait_writes:
            change(ref).traits = True
        for ref, _, _ in self.first_touches:
            if not self.people[self.final(ref)].has_first_touch:
                change(ref).traits = True
        return changes

    def add(self, message: Message) -> None:
        if message.type == "alias":
            assert message.previous_id is not None
            person = self.alias(message.previous_id, message.user_id, message.anonymous_id)
        else:
            person = self.resolve(message.user_id, message.anonymous_id)
        self.seen.append((person.ref, message.timestamp))
        if message.type in EVENT_TYPES:
            self.events.append((person.ref, message))
            if message.type == "page":
                self.first_touches.append((person.ref, message.timestamp, message.properties))
        elif message.type == "identify" and message.traits:
            self.trait_writes.append((person.ref, message.traits))
        elif message.type == "group":
            assert message.group_id is not None
            self.group_links.append((person.ref, message.group_id, message.traits))
