"""People with planted behaviour groups, written in bulk, for the tests of suggested segments.

Three groups that a shop would tell apart, each person's figures drawn from the group's ranges:

- ``buyers``: active in the last 3 days, 3-6 orders of 40-160 each, a few page views, 4-8 sessions;
- ``browsers``: active in the last 5 days, many page and product views, never an order, 3-6 sessions;
- ``lapsed``: last seen 60-100 days ago, a handful of page views and one small order, 1-3 sessions.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from tracking.models import Event, Identity, IdentityKind, Person

GROUPS = ("buyers", "browsers", "lapsed")


def _event(workspace: Workspace, person: Person, name: str, at: datetime, session: str, **properties) -> Event:
    return Event(
        workspace=workspace,
        person_id=person.pk,
        name=name,
        properties=properties,
        context={},
        timestamp=at,
        received_at=at,
        message_id=f"planted-{person.pk}-{name}-{at.timestamp()}-{random.random()}",
        user_id=person.user_id,
        session_id=session,
        warnings=[],
    )


def planted_people(
    workspace: Workspace,
    *,
    per_group: int = 40,
    seed: int = 7,
    anonymous_share: float = 0.25,
    now: datetime | None = None,
) -> dict[int, str]:
    """Write the three groups; answers each person's id -> group. A quarter of the people are
    anonymous (no user id), as visitors are."""
    rng = random.Random(seed)
    now = now or timezone.now()
    planted: dict[int, str] = {}
    events: list[Event] = []
    with workspace_scope(workspace):
        for group in GROUPS:
            for number in range(per_group):
                user_id = None if rng.random() < anonymous_share else f"{group}-{number}"
                person = Person.objects.create(
                    workspace=workspace, user_id=user_id, traits={}, first_seen=now - timedelta(days=120), last_seen=now
                )
                if user_id is not None:
                    Identity.objects.create(
                        workspace=workspace, person=person, kind=IdentityKind.USER_ID, value=user_id
                    )
                planted[person.pk] = group
                events.extend(_behaviour(workspace, person, group, rng, now))
        Event.objects.bulk_create(events, batch_size=2000)
    return planted


def _behaviour(workspace: Workspace, person: Person, group: str, rng: random.Random, now: datetime) -> list[Event]:
    out: list[Event] = []
    if group == "buyers":
        last = rng.uniform(0.1, 3)
        sessions = rng.randint(4, 8)
        for s in range(sessions):
            at = now - timedelta(days=last + s * rng.uniform(2, 5))
            views = rng.randint(1, 4)
            out += [_event(workspace, person, "$pageview", at + timedelta(minutes=m), f"s{s}") for m in range(views)]
        for o in range(rng.randint(3, 6)):
            at = now - timedelta(days=last + o * rng.uniform(3, 6), minutes=-5)
            out.append(
                _event(workspace, person, "Order Completed", at, f"s{o}", revenue=round(rng.uniform(40, 160), 2))
            )
    elif group == "browsers":
        last = rng.uniform(0.1, 5)
        sessions = rng.randint(3, 6)
        for s in range(sessions):
            at = now - timedelta(days=last + s * rng.uniform(2, 6))
            views = rng.randint(3, 7)
            out += [_event(workspace, person, "$pageview", at + timedelta(minutes=m), f"s{s}") for m in range(views)]
            out += [
                _event(workspace, person, "Product Viewed", at + timedelta(minutes=m, seconds=30), f"s{s}")
                for m in range(rng.randint(2, 4))
            ]
    else:
        last = rng.uniform(60, 100)
        sessions = rng.randint(1, 3)
        for s in range(sessions):
            at = now - timedelta(days=last + s * rng.uniform(5, 15))
            views = rng.randint(1, 4)
            out += [_event(workspace, person, "$pageview", at + timedelta(minutes=m), f"s{s}") for m in range(views)]
        at = now - timedelta(days=last, minutes=-3)
        out.append(_event(workspace, person, "Order Completed", at, "s0", revenue=round(rng.uniform(20, 60), 2)))
    return out
