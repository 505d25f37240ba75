"""Periodic upkeep of tracking storage (see CELERY_BEAT_SCHEDULE in settings)."""

from __future__ import annotations

from celery import shared_task

from tracking import services


@shared_task
def tracking_maintenance() -> dict[str, object]:
    """Create event partitions ahead and forget message ids past the dedupe window.

    Not a WorkspaceTask: partitions and the dedupe window are shared by every
    workspace. Idempotent: running it twice changes nothing the second time.
    """
    created = services.event_partitions_ensure()
    purged = services.processed_messages_purge()
    return {"partitions_created": created, "message_ids_purged": purged}
