"""core.kicks: a task queued once per workspace until it clears the mark, never raising, on the real Redis broker."""

from __future__ import annotations

import logging
import uuid

import orjson
import pytest
import redis
from django.conf import settings

from core.kicks import Kick


@pytest.fixture
def queue():
    """A queue of the test's own, emptied after, and a kick onto it with a mark of its own."""
    name = f"test-kicks-{uuid.uuid4().hex}"
    kick = Kick(f"test-kick-{uuid.uuid4().hex}", "segmentation.feed_drain", lambda: name, "Test kicker")
    broker = redis.Redis.from_url(settings.REDIS_URL)
    yield name, kick
    broker.delete(name, *(kick.key(workspace_id) for workspace_id in (1, 2)))


def _queued(name: str) -> list[str]:
    """The tasks' arguments, oldest first (the broker pushes on the left)."""
    messages = reversed(redis.Redis.from_url(settings.REDIS_URL).lrange(name, 0, -1))
    return [orjson.loads(message)["headers"]["argsrepr"] for message in messages]


def test_a_burst_of_kicks_queues_one_task_per_workspace_until_the_task_clears_its_mark(queue):
    name, kick = queue

    for _ in range(5):
        kick(1)
    kick(2)
    assert _queued(name) == ["(1,)", "(2,)"]

    # The task clears the mark before it reads: the next commit's kick queues another.
    kick.clear(1)
    kick(1)
    kick(1)
    assert _queued(name) == ["(1,)", "(2,)", "(1,)"]


def test_with_redis_down_a_kick_logs_and_queues_nothing(queue, settings, caplog):
    name, kick = queue
    broker_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    with caplog.at_level(logging.WARNING, logger="core.kicks"):
        kick(1)
        kick.clear(1)

    assert "Test kicker: could not kick workspace 1" in caplog.text
    assert redis.Redis.from_url(broker_url).llen(name) == 0


def test_a_kick_that_could_not_publish_clears_its_mark_for_the_next_commit(queue, caplog):
    name, kick = queue
    failing = Kick(kick.mark, kick.task, lambda: 1 / 0, kick.label)  # the same mark, a publish that fails

    with caplog.at_level(logging.WARNING, logger="core.kicks"):
        failing(1)

    assert "Test kicker: could not kick workspace 1 (division by zero)" in caplog.text
    assert redis.Redis.from_url(settings.REDIS_URL).exists(kick.key(1)) == 0
    kick(1)
    assert _queued(name) == ["(1,)"]
