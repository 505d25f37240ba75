"""Campaigns' subscriber to tracking's port (``tracking.events``; listed in ``TRACKING_SUBSCRIBERS``).

Nothing cascades from tracking's ``Person`` (the person keys here carry no constraint), so a
merge or an erasure is handled here for this app's tables:

- ``person_merged``: the loser's sends become the survivor's, except a send for a (campaign,
  occurrence) the survivor already has (the unique row of that occurrence is theirs): the
  loser's is deleted. Suppressions and noted triggers follow the survivor. Active hours: both
  histograms, decayed to the later of the two, are added up (the events behind them are one
  person's now); a lone loser's row becomes the survivor's.
- ``person_erased``: the person's sends (where messages went, their engagement), the
  suppressions naming them or one of their addresses (the ``email`` trait, ids that are
  addresses), their noted triggers, their active hours.
- ``person_export``: the messages campaigns sent them (``campaign_messages``; segmentation's
  webhook deliveries already have ``messages``), their suppressed addresses and their active
  hours (``active_hours``: the histogram and the best hour learned from their events).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q

from accounts.models import Workspace
from campaigns.active_hours import half_life, hour_label
from campaigns.models import ActiveHours, Send, Suppression, TriggerInbox
from tracking.events import ErasedPerson
from tracking.models import Person


def _addresses(traits: Any, ids: list[str]) -> list[str]:
    found = set()
    email = traits.get("email") if isinstance(traits, dict) else None
    for value in [email, *ids]:
        if isinstance(value, str) and "@" in value:
            found.add(value.strip().lower())
    return sorted(found)


def person_merged(workspace_id: int, loser_id: int, survivor_id: int) -> None:
    loser_sends = Send.objects.filter(workspace_id=workspace_id, person_id=loser_id)
    survivor_has = Send.objects.filter(
        workspace_id=workspace_id,
        person_id=survivor_id,
        campaign_id=OuterRef("campaign_id"),
        occurrence=OuterRef("occurrence"),
    )
    loser_sends.filter(Exists(survivor_has)).delete()
    loser_sends.update(person_id=survivor_id)
    Suppression.objects.filter(workspace_id=workspace_id, person_id=loser_id).update(person_id=survivor_id)
    TriggerInbox.objects.filter(workspace_id=workspace_id, person_id=loser_id).update(person_id=survivor_id)
    _merge_active_hours(workspace_id, loser_id, survivor_id)


def _merge_active_hours(workspace_id: int, loser_id: int, survivor_id: int) -> None:
    rows = {
        row.person_id: row
        for row in ActiveHours.objects.select_for_update().filter(
            workspace_id=workspace_id, person_id__in=[loser_id, survivor_id]
        )
    }
    loser, survivor = rows.get(loser_id), rows.get(survivor_id)
    if loser is None:
        return
    if survivor is None:
        ActiveHours.objects.filter(workspace_id=workspace_id, pk=loser.pk).update(person_id=survivor_id)
        return
    as_of = max(loser.as_of, survivor.as_of)
    half = half_life().total_seconds()

    def decayed(row: ActiveHours) -> list[float]:
        factor = 0.5 ** ((as_of - row.as_of).total_seconds() / half)
        return [weight * factor for weight in row.histogram]

    histogram = [a + b for a, b in zip(decayed(loser), decayed(survivor), strict=True)]
    total = sum(histogram)
    best = max(range(len(histogram)), key=lambda hour: (histogram[hour], -hour))
    survivor.histogram = histogram
    survivor.best_hour = best
    survivor.confidence = histogram[best] / total if total else 0.0
    survivor.events += loser.events
    survivor.as_of = as_of
    survivor.save(update_fields=["histogram", "best_hour", "confidence", "events", "as_of"])
    ActiveHours.objects.filter(workspace_id=workspace_id, pk=loser.pk).delete()


def person_erased(erased: ErasedPerson) -> dict[str, int]:
    workspace = erased.workspace
    traits = Person.objects.filter(workspace=workspace, pk=erased.person_id).values_list("traits", flat=True).first()
    addresses = _addresses(traits, erased.values())
    sends, _ = Send.objects.filter(workspace=workspace, person_id=erased.person_id).delete()
    suppressions, _ = Suppression.objects.filter(
        Q(person_id=erased.person_id) | Q(address__in=addresses), workspace=workspace
    ).delete()
    triggers, _ = TriggerInbox.objects.filter(workspace=workspace, person_id=erased.person_id).delete()
    active, _ = ActiveHours.objects.filter(workspace=workspace, person_id=erased.person_id).delete()
    return {
        "campaign_sends": sends,
        "email_suppressions": suppressions,
        "campaign_triggers": triggers,
        "active_hours": active,
    }


def person_export(workspace: Workspace, person: Person) -> dict[str, Any]:
    sends = (
        Send.objects.filter(workspace=workspace, person_id=person.pk)
        .select_related("campaign", "variant")
        .order_by("created_at", "id")
    )
    messages = [
        {
            "id": send.pk,
            "campaign": send.campaign.name,
            "campaign_id": send.campaign_id,
            "variant": send.variant.name if send.variant is not None else None,
            "channel": send.channel,
            "occurrence": send.occurrence,
            "state": send.state,
            "reason": send.reason,
            "recipient": send.recipient,
            "due_at": send.due_at,
            "sent_at": send.sent_at,
            "opened_at": send.opened_at,
            "clicked_at": send.clicked_at,
        }
        for send in sends
    ]
    addresses = _addresses(person.traits, [person.user_id or ""])
    suppressions = Suppression.objects.filter(
        Q(person_id=person.pk) | Q(address__in=addresses), workspace=workspace
    ).order_by("created_at", "id")
    active = ActiveHours.objects.filter(workspace=workspace, person_id=person.pk).first()
    return {
        "active_hours": None
        if active is None
        else {
            "best_hour": active.best_hour,
            "in_words": hour_label(active.best_hour),
            "confidence": active.confidence,
            "events": active.events,
            "histogram": list(active.histogram),
            "as_of": active.as_of,
        },
        "campaign_messages": messages,
        "email_suppressions": [
            {"address": s.address, "reason": s.reason, "campaign_id": s.campaign_id, "created_at": s.created_at}
            for s in suppressions
        ],
    }
