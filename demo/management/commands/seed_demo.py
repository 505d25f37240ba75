"""``seed_demo``: a demo workspace with its owner, filled with generated shop behaviour.

The behaviour comes from ``demo.demo_shop`` (loyal buyers, browsers, cart
abandoners, lapsed customers, new sign-ups, email engagers) and is fed through
the ingestion path real traffic uses (``tracking.bulk_import``: the message
checks and ``submissions_ingest``, in batches of 2,500 as ``/v1/batch`` takes).

Deterministic: the same ``--seed``, ``--people``, ``--days`` and ``--now``
give the same people, traits and events. ``--now`` defaults to the start of
the current UTC hour, so two runs within the same hour agree; pass it to
reproduce a data set exactly. Message ids are derived from the seed, so
running again with the same arguments stores nothing twice.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from accounts import services
from accounts.models import User, Workspace
from accounts.tenancy import workspace_scope
from demo.demo_shop import DemoShop
from tracking.bulk_import import events_import

DEMO_EMAIL = "demo@cohortly.localhost"
DEMO_PASSWORD = "cohortly-demo"
DEMO_WORKSPACE = "Demo Shop"
# The largest batch /v1/batch accepts: the demo arrives as an SDK would send it.
BATCH_SIZE = 2500
# Twice the longest window of the builder's templates (90 days): "Lapsed customers", who ordered
# before the last 90 days and not since, exist only in a longer history.
DEFAULT_DAYS = 180


def _now(value: str | None) -> datetime:
    if value is None:
        return timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--now: not an ISO 8601 timestamp: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > timezone.now():
        raise CommandError("--now must not be in the future (ingestion replaces future timestamps)")
    return moment


class Command(BaseCommand):
    help = "Create the demo workspace (if missing) filled with generated shop behaviour."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=1000, help="people to generate (default 1000)")
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"days of history before --now (default {DEFAULT_DAYS}: every builder template finds people)",
        )
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--now", help="ISO 8601 end of the history (default: start of the current UTC hour)")
        parser.add_argument("--if-missing", action="store_true", help="do nothing when the demo workspace exists")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["people"] < 0 or options["days"] < 1:
            raise CommandError("--people must be >= 0 and --days >= 1")
        user = User.objects.filter(email=DEMO_EMAIL).first()
        existing = Workspace.objects.filter(name=DEMO_WORKSPACE).first()
        if existing is not None and options["if_missing"]:
            self.stdout.write(f"Demo workspace exists (id {existing.pk}).")
            return
        now = _now(options["now"])
        with transaction.atomic():
            if user is None:
                user = User.objects.create_user(email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo Owner")
            if existing is None:
                existing = services.workspace_create(name=DEMO_WORKSPACE, owner=user)

        shop = DemoShop(people=options["people"], days=options["days"], seed=options["seed"], now=now)
        bar = tqdm(
            total=options["people"],
            unit=" people",
            desc="Demo shop",
            disable=options["no_progress"],
            file=getattr(self.stderr, "_out", sys.stderr),
        )

        def messages() -> Iterator[dict[str, Any]]:
            for _, person_messages in shop.people_iter():
                yield from person_messages
                bar.update(1)

        try:
            with workspace_scope(existing):
                totals = events_import(workspace=existing, items=messages(), chunk_size=BATCH_SIZE)
        finally:
            bar.close()
        self.stdout.write(
            f"Demo workspace {existing.pk}: sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
            f"{options['people']} people generated, {totals.accepted} messages stored "
            f"({totals.duplicates} already there), history up to {now.isoformat()}."
        )
