"""Writes on people outside ingestion: erasure (the right to be forgotten).

Apps above tracking keep rows about people that do not cascade from ``Person``
(a log that outlives people, say). Tracking never imports them: each registers
an erasure handler from its ``AppConfig.ready`` with ``erasure_handler_register``,
and ``person_erase`` calls every handler inside its transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q

from accounts.models import User, Workspace
from accounts.services import audit_record
from tracking.models import Event, Identity, IdentityKind, Person, QuarantinedMessage, SuppressedId


@dataclass(frozen=True)
class Erasure:
    person_id: int
    events: int
    identities: int
    quarantined: int


@dataclass(frozen=True)
class ErasedPerson:
    """What an erasure handler is told: the person's id and every id they were known by, as (kind, value)."""

    workspace: Workspace
    person_id: int
    identities: list[tuple[str, str]]

    def values(self, kind: str | None = None) -> list[str]:
        return sorted({value for k, value in self.identities if kind is None or k == kind})


# Returns how many rows it erased (for the audit log).
ErasureHandler = Callable[[ErasedPerson], int]
_erasure_handlers: dict[str, ErasureHandler] = {}


def erasure_handler_register(name: str, handler: ErasureHandler) -> None:
    """Register ``handler`` under ``name`` (its count goes to the audit log under that name).

    Called from an ``AppConfig.ready``; registering the same name again replaces it
    (``ready`` may run more than once in tests).
    """
    _erasure_handlers[name] = handler


def _json_ids(values: list[str]) -> list[Any]:
    """The ids as a message may carry them in JSON: strings, or integers for ids SDKs send as numbers."""
    numbers = [int(value) for value in values if value.isascii() and value.isdigit()]
    return [*values, *numbers]


def person_erase(*, workspace: Workspace, person: Person, actor: User | None) -> Erasure | None:
    """Erase ``person``: events, identities, traits, group links, and every row that points at
    the person (segment memberships and message history cascade from ``Person``); quarantined
    messages that carry their ids go too, and the rows the registered erasure handlers erase.

    Their ids are suppressed first, in the same transaction, so that ingestion drops and
    counts any later message that carries one of them instead of re-creating the person.
    Each id is suppressed as a user id and as an anonymous id: an alias stores a ``previousId``
    it does not know as an anonymous id, though it may be a user id, and a later message may
    carry it in either field (an id of an erased person is dropped whichever field carries it).
    None when the person is gone by the time their row is locked (erased by a concurrent
    request, or merged into another person): nothing is written.
    """
    with transaction.atomic():
        locked = Person.objects.select_for_update().filter(workspace=workspace, pk=person.pk).first()
        if locked is None:
            return None
        identities = list(Identity.objects.filter(workspace=workspace, person=locked).values_list("kind", "value"))
        values = sorted({value for _, value in identities})
        SuppressedId.objects.bulk_create(
            [SuppressedId(workspace=workspace, kind=kind, value=value) for value in values for kind in IdentityKind],
            ignore_conflicts=True,
        )
        events, _ = Event.objects.filter(workspace=workspace, person_id=locked.pk).delete()
        quarantined = 0
        if values:
            carried = _json_ids(values)
            carries_ids = Q(raw__userId__in=carried) | Q(raw__anonymousId__in=carried) | Q(raw__previousId__in=carried)
            quarantined, _ = QuarantinedMessage.objects.filter(carries_ids, workspace=workspace).delete()
        erased = ErasedPerson(workspace=workspace, person_id=locked.pk, identities=identities)
        handled = {name: handler(erased) for name, handler in sorted(_erasure_handlers.items())}
        person_id = locked.pk
        locked.delete()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="person.erased",
            target=f"person {person_id}",
            details={"events": events, "identities": len(identities), "quarantined": quarantined, **handled},
        )
    return Erasure(person_id=person_id, events=events, identities=len(identities), quarantined=quarantined)
