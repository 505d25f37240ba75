"""Writes of tracking outside the ingestion hot path (which is ``tracking.ingest``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from tracking import ingest
from tracking.models import Person, ProcessedMessage

# A retry with the same messageId within this long is stored once.
DEDUPE_WINDOW = timedelta(days=7)
# Monthly event partitions created ahead of time, counting the current month.
PARTITION_MONTHS_AHEAD = 3


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def event_partitions_ensure(*, now: datetime | None = None, months: int = PARTITION_MONTHS_AHEAD) -> list[str]:
    """Create the events partitions of the current month and the next ones; idempotent.

    Returns the names of the partitions it created. Rows that landed in the
    DEFAULT partition for one of these months move into the new partition.
    """
    today = (now or timezone.now()).date()
    created: list[str] = []
    with connection.cursor() as cursor:
        for offset in range(months):
            month = _add_months(today, offset)
            cursor.execute("SELECT tracking_event_partition_ensure(%s)", [month])
            if cursor.fetchone()[0]:
                created.append(f"tracking_event_{month:%Y_%m}")
    return created


def processed_messages_purge(*, now: datetime | None = None) -> int:
    """Forget message ids older than the dedupe window; returns how many."""
    cutoff = (now or timezone.now()) - DEDUPE_WINDOW
    # Maintenance over every workspace: the window is the same for all.
    deleted, _ = ProcessedMessage.objects.unscoped().filter(received_at__lt=cutoff).delete()
    return deleted


def person_merge(*, workspace: Workspace, loser: Person, survivor: Person) -> None:
    """Fold ``loser`` into ``survivor`` (identities, events, groups, traits), as ``alias`` does."""
    if loser.workspace_id != workspace.pk or survivor.workspace_id != workspace.pk:
        raise ValueError("both people must belong to the workspace")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM tracking_person WHERE workspace_id = %s AND id = ANY(%s) ORDER BY id FOR UPDATE",
            [workspace.pk, [loser.pk, survivor.pk]],
        )
        ingest.people_merge(cursor, workspace_id=workspace.pk, loser_id=loser.pk, survivor_id=survivor.pk)
