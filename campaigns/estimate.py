"""Who a campaign would reach now: the audience picker's live estimate, and the REST API's.

The numbers follow the engine step by step, each taken from the one before:

- ``audience``: people in any included segment (segmentation's memberships as they are now);
- ``after_exclusions``: of those, people in no excluded segment (what a broadcast's fan-out writes);
- ``no_email``: of those, an email campaign's people without a usable ``traits.email`` (the
  dispatcher suppresses them, "no email address"); 0 for other channels;
- ``unsubscribed``: of those with an address, addresses on the workspace's suppression list
  (unsubscribed, bounced, complained, added by hand); 0 for other channels;
- ``capped_now``: of the rest, people whom a frequency cap of the channel would stop if the
  message went now (their recent sends, by ``campaigns.capping.cap_decide``);
- ``will_receive``: the rest.

The holdout is not deducted: its people are part of the audience, measured but not sent to,
and which of them fall in it is decided at the fan-out. Quiet hours delay, they do not remove.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Workspace
from campaigns.capping import cap_decide
from campaigns.channels import email_normalise
from campaigns.models import Channel, FrequencyCap, Send, SendState, Suppression
from segmentation.models import Membership, Segment
from tracking.models import Person

CHUNK = 5000


@dataclass(frozen=True)
class AudienceEstimate:
    audience: int
    after_exclusions: int
    no_email: int
    unsubscribed: int
    capped_now: int
    will_receive: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _people(workspace: Workspace, segments: Iterable[int]) -> QuerySet[Person]:
    members = Membership.objects.filter(workspace=workspace, segment_id__in=list(segments)).values("person_id")
    return Person.objects.filter(workspace=workspace, pk__in=members)


def _chunks(rows: Iterable[tuple[int, object]]) -> Iterable[list[tuple[int, object]]]:
    batch: list[tuple[int, object]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _capped(workspace: Workspace, channel: str, people: set[int], now: datetime) -> int:
    rules: Sequence[FrequencyCap] = list(FrequencyCap.objects.filter(workspace=workspace, channel=channel))
    if not rules or not people:
        return 0
    widest = max(rule.per_seconds for rule in rules)
    recent: dict[int, list[datetime]] = {}
    rows = Send.objects.filter(
        workspace=workspace,
        channel=channel,
        state__in=[SendState.SENT, SendState.CLAIMED],
        sent_at__gt=now - timedelta(seconds=widest),
    ).values_list("person_id", "sent_at")
    for person_id, sent_at in rows.iterator(chunk_size=CHUNK):
        if person_id in people and sent_at is not None:
            recent.setdefault(person_id, []).append(sent_at)
    return sum(1 for times in recent.values() if cap_decide(rules, times, now) is not None)


def audience_estimate(
    workspace: Workspace,
    include: Sequence[int],
    exclude: Sequence[int],
    channel: str,
    *,
    now: datetime | None = None,
) -> AudienceEstimate:
    """The estimate for these segments (ids of ``workspace``'s segments; others count as empty)."""
    now = now or timezone.now()
    if not include:
        return AudienceEstimate(0, 0, 0, 0, 0, 0)
    everyone = _people(workspace, include)
    audience = everyone.count()
    kept = (
        everyone.exclude(
            pk__in=Membership.objects.filter(workspace=workspace, segment_id__in=list(exclude)).values("person_id")
        )
        if exclude
        else everyone
    )
    after = kept.count() if exclude else audience
    no_email = unsubscribed = 0
    reachable: set[int] = set()
    if channel == Channel.EMAIL:
        rows = kept.order_by().values_list("pk", "traits__email").iterator(chunk_size=CHUNK)
        for batch in _chunks(rows):
            addresses: dict[int, str] = {}
            for pk, value in batch:
                address = email_normalise(value)
                if address is None:
                    no_email += 1
                else:
                    addresses[pk] = address
            suppressed = set(
                Suppression.objects.filter(workspace=workspace, address__in=set(addresses.values())).values_list(
                    "address", flat=True
                )
            )
            for pk, address in addresses.items():
                if address in suppressed:
                    unsubscribed += 1
                else:
                    reachable.add(pk)
    else:
        reachable = set(kept.order_by().values_list("pk", flat=True).iterator(chunk_size=CHUNK))
    capped = _capped(workspace, channel, reachable, now)
    return AudienceEstimate(
        audience=audience,
        after_exclusions=after,
        no_email=no_email,
        unsubscribed=unsubscribed,
        capped_now=capped,
        will_receive=after - no_email - unsubscribed - capped,
    )


def estimate_audience_errors(
    workspace: Workspace, include: Sequence[int], exclude: Sequence[int]
) -> dict[str, list[str]]:
    """Why these segment lists cannot be estimated, by path as a campaign body's (empty: they can)."""

    errors: dict[str, list[str]] = {}
    known = set(Segment.objects.filter(workspace=workspace, pk__in={*include, *exclude}).values_list("pk", flat=True))
    for key, ids in (("segments", include), ("exclude", exclude)):
        for index, pk in enumerate(ids):
            if pk not in known:
                errors.setdefault(f"audience.{key}[{index}]", []).append(f"No segment with id {pk} in this workspace.")
            elif key == "exclude" and pk in include:
                errors.setdefault(f"audience.{key}[{index}]", []).append(f"Segment {pk} is both included and excluded.")
    return errors
