"""Writes on people outside ingestion: erasure (the right to be forgotten).

Apps above tracking keep rows about people, and nothing of theirs cascades from
``Person``. Tracking never imports them: ``person_erase`` publishes
``person_erased`` through its port (``tracking.events``) inside its transaction,
before deleting its own rows, and each subscriber erases what it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from accounts.models import User, Workspace
from accounts.services import audit_record
from tracking import events, plan_services
from tracking.events import ErasedPerson
from tracking.models import Event, Identity, IdentityKind, Person, QuarantinedMessage, SuppressedId


@dataclass(frozen=True)
class Erasure:
    person_id: int
    events: int
    identities: int
    quarantined: int


def _json_ids(values: list[str]) -> list[Any]:
    """The ids as a message may carry them in JSON: strings, or integers for ids SDKs send as numbers."""
    numbers = [int(value) for value in values if value.isascii() and value.isdigit()]
    return [*values, *numbers]


def person_erase(*, workspace: Workspace, person: Person, actor: User | None) -> Erasure | None:
    """Erase ``person``: events, identities, traits, group links, quarantined messages and
    tracking-plan violation examples that carry their ids, and, through ``person_erased``,
    what every app above keeps about them.

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
        # The subscribers first: they may read the person's traits and events before these go.
        erased = ErasedPerson(workspace=workspace, person_id=locked.pk, identities=identities)
        handled = events.person_erased(erased)
        erased_events, _ = Event.objects.filter(workspace=workspace, person_id=locked.pk).delete()
        quarantined = 0
        if values:
            carried = _json_ids(values)
            carries_ids = Q(raw__userId__in=carried) | Q(raw__anonymousId__in=carried) | Q(raw__previousId__in=carried)
            quarantined, _ = QuarantinedMessage.objects.filter(carries_ids, workspace=workspace).delete()
            with connection.cursor() as cursor:
                plan_services.violation_examples_erase(workspace=workspace, ids=values, cursor=cursor)
        person_id = locked.pk
        locked.delete()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="person.erased",
            target=f"person {person_id}",
            details={"events": erased_events, "identities": len(identities), "quarantined": quarantined, **handled},
        )
    return Erasure(person_id=person_id, events=erased_events, identities=len(identities), quarantined=quarantined)
