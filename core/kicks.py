"""Kicks: ask a Celery task to run soon, queued at most once per workspace, never raising, never waiting.

A writer that committed work for a background task kicks it after the commit. The kick sets a mark
in Redis (``SET NX`` with an expiry) and publishes the task only when it set the mark, so a burst
of commits queues one task. The task clears the mark before it reads (``Kick.clear``), so work
committed after that gets a task of its own and work committed before it is read by that task. A
kick that fails (Redis or the broker down) only logs: the beat's periodic sweep is the retry, and
the committer never waits on a dead service (one round trip, 0.1 s at most, no retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery import current_app
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# A kick is one Redis round trip on loopback; never wait long for it.
KICK_TIMEOUT_SECONDS = 0.1
# A task queued but never run (a lost task) stops suppressing kicks after this; the sweep covers it meanwhile.
KICK_EXPIRES_SECONDS = 60

_clients: dict[str, redis.Redis] = {}


def fast_redis() -> redis.Redis:
    """A client with short timeouts and no retries: a kick never holds up its caller."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url,
            socket_timeout=KICK_TIMEOUT_SECONDS,
            socket_connect_timeout=KICK_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
    return client


@dataclass(frozen=True)
class Kick:
    """``kick(workspace_id)`` queues ``task`` with ``(workspace_id,)`` on ``queue()`` unless it is queued."""

    mark: str  # the mark's part of the Redis key, such as "segment-feed"
    task: str  # Celery's name of the task: kicked by name, so that writers need not import the tasks
    queue: Callable[[], str]
    label: str  # how log lines name the kicker, such as "Change feed"

    def key(self, workspace_id: int) -> str:
        return f"{settings.CACHES['default'].get('KEY_PREFIX', 'cohortly')}:{self.mark}:{workspace_id}:queued"

    def __call__(self, workspace_id: int) -> None:
        """For ``transaction.on_commit``. Never raises."""
        try:
            if not fast_redis().set(self.key(workspace_id), "1", nx=True, ex=KICK_EXPIRES_SECONDS):
                return
        except Exception as error:
            logger.warning("%s: could not kick workspace %s (%s); the sweep drains it", self.label, workspace_id, error)
            return
        try:
            # No publish retries: the sweep is the retry, and the committer must not wait on a dead broker.
            current_app.signature(self.task).apply_async(
                (workspace_id,), queue=self.queue(), retry=False, expires=KICK_EXPIRES_SECONDS
            )
        except Exception as error:
            logger.warning("%s: could not kick workspace %s (%s); the sweep drains it", self.label, workspace_id, error)
            self.clear(workspace_id)

    def clear(self, workspace_id: int) -> None:
        """Let the next commit kick the task again (the task calls it before reading). Never raises."""
        try:
            fast_redis().delete(self.key(workspace_id))
        except Exception as error:
            logger.debug("%s: could not clear the kick of workspace %s: %s", self.label, workspace_id, error)
