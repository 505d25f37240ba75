"""People with a planted purchase signal (or none), written in bulk, for the tests of propensity.

Three 30-day periods end at ``now``. Each person is *keen* or not, for good: a keen person views
products often (8 a period) and buys in a period with probability 0.75; the others view little (2)
and buy with probability 0.05. With ``signal=False`` everyone views alike and buys with probability
0.3 in each period, whatever they did before: no feature can predict the next period's purchases.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from tracking.models import Event, Person

PERIOD = timedelta(days=30)
PERIODS = 3


def _event(workspace: Workspace, person: Person, name: str, at: datetime, **properties) -> Event:
    return Event(
        workspace=workspace,
        person_id=person.pk,
        name=name,
        properties=properties,
        context={},
        timestamp=at,
        received_at=at,
        message_id=f"prop-{person.pk}-{name}-{at.timestamp()}-{random.random()}",
        user_id=person.user_id,
        session_id=f"s-{person.pk}-{int(at.timestamp()) // 86400}",
        warnings=[],
    )


def propensity_people(
    workspace: Workspace, *, people: int = 600, signal: bool = True, seed: int = 3, now: datetime | None = None
) -> dict[int, bool]:
    """Write the people and their events; answers each person's id -> keen (always False without a signal)."""
    rng = random.Random(seed)
    now = now or timezone.now()
    start = now - PERIODS * PERIOD
    keen: dict[int, bool] = {}
    events: list[Event] = []
    with workspace_scope(workspace):
        made = Person.objects.bulk_create(
            [
                Person(workspace=workspace, user_id=f"p{number}", traits={}, first_seen=start, last_seen=now)
                for number in range(people)
            ]
        )
        for person in made:
            is_keen = signal and rng.random() < 0.4
            keen[person.pk] = is_keen
            views, buy = (8, 0.75) if is_keen else (2, 0.05)
            if not signal:
                views, buy = 4, 0.3
            for period in range(PERIODS):
                begins = start + period * PERIOD
                for _ in range(views):
                    at = begins + timedelta(seconds=rng.uniform(60, PERIOD.total_seconds() - 60))
                    events.append(_event(workspace, person, "Product Viewed", at))
                if rng.random() < buy:
                    at = begins + timedelta(seconds=rng.uniform(60, PERIOD.total_seconds() - 60))
                    events.append(
                        _event(workspace, person, "Order Completed", at, revenue=round(rng.uniform(10, 90), 2))
                    )
        Event.objects.bulk_create(events, batch_size=5000)
    return keen
