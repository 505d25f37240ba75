"""Writes on people outside ingestion: erasure (the right to be forgotten)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from accounts.models import User, Workspace
from accounts.services import audit_record
from tracking.models import Event, Identity, Person, QuarantinedMessage, SuppressedId


@dataclass(frozen=True)
class Erasure:
    person_id: int
    events: int
    identities: int
    quarantined: int


def person_erase(*, workspace: Workspace, person: Person, actor: User | None) -> Erasure | None:
    """Erase ``person``: events, identities, traits, group links, and every row that points at
    the person (segment memberships and message history cascade from ``Person``); quarantined
    messages that carry their ids go too.

    Their ids are suppressed first, in the same transaction, so that ingestion drops and
    counts any later message that carries one of them instead of re-creating the person.
    None when the person is gone by the time their row is locked (erased by a concurrent
    request, or merged into another person): nothing is written.
    """
    with transaction.atomic():
        locked = Person.objects.select_for_update().filter(workspace=workspace, pk=person.pk).first()
        if locked is None:
            return None
        identities = list(Identity.objects.filter(workspace=workspace, person=locked).values_list("kind", "value"))
        SuppressedId.objects.bulk_create(
            [SuppressedId(workspace=workspace, kind=kind, value=value) for kind, value in identities],
            ignore_conflicts=True,
        )
        events, _ = Event.objects.filter(workspace=workspace, person_id=locked.pk).delete()
        values_by_key = {
            "userId": [value for kind, value in identities if kind == "user_id"],
            "anonymousId": [value for kind, value in identities if kind == "anonymous_id"],
        }
        carries_ids = Q()
        for key, values in values_by_key.items():
            if values:
                carries_ids |= Q(**{f"raw__{key}__in": values})
        quarantined = 0
        if carries_ids:
            quarantined, _ = QuarantinedMessage.objects.filter(carries_ids, workspace=workspace).delete()
        person_id = locked.pk
        locked.delete()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="person.erased",
            target=f"person {person_id}",
            details={"events": events, "identities": len(identities), "quarantined": quarantined},
        )
    return Erasure(person_id=person_id, events=events, identities=len(identities), quarantined=quarantined)
