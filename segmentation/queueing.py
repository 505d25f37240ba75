"""Queueing segment work: the refresh of one segment, the real-time drain of one workspace.

The code that decides to queue (``segmentation.services.refresh``,
``segmentation.realtime``) calls these; the tasks (``segmentation.tasks``) import
that code and are looked up here by name when a message is sent. So the imports
point one way, tasks -> services and realtime -> this module, and never back.
``SegmentationConfig.ready`` imports the tasks, so that every process that
queues has them registered.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings

REFRESH_TASK = "segmentation.tasks.segment_refresh_task"
DRAIN_TASK = "segmentation.tasks.segment_realtime_drain"


def drain_queue() -> str:
    """The Celery queue of the drain tasks (``SEGMENTS_REALTIME_QUEUE``)."""
    return str(getattr(settings, "SEGMENTS_REALTIME_QUEUE", "celery"))


def refresh_enqueue(*, workspace_id: int, segment_id: int) -> None:
    """Queue one segment's refresh; raises when the broker does (no publish retries)."""
    current_app.tasks[REFRESH_TASK].apply_async((workspace_id, segment_id), retry=False)


def drain_enqueue(*, workspace_id: int, expires: float | None = None) -> None:
    """Queue one workspace's real-time drain on its queue; raises when the broker does (no publish
    retries: the beat's sweep is the retry). ``expires``: a kick not picked up by then is dropped."""
    options: dict[str, Any] = {"queue": drain_queue(), "retry": False}
    if expires is not None:
        options["expires"] = expires
    current_app.tasks[DRAIN_TASK].apply_async((workspace_id,), **options)
