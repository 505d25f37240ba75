"""The development outbox: the last emails this installation sent, when it sends none for real.

With no ``EMAIL_URL`` and no ``EMAIL_BACKEND`` configured, settings use
:class:`ConsoleOutboxBackend`: Django's console backend (each message printed to the process's
standard output, as before) that also keeps the message in a Redis list trimmed to the last
``OUTBOX_SIZE``. Redis because the messages are sent by the Celery worker, a process other than
the web server's: an in-process list would be empty on the page. Under Django's locmem backend
(the test runner's), the page reads ``django.core.mail.outbox`` of its own process instead.

A message belongs to a workspace by its ``Message-ID`` (``<send-<id>.<workspace id>@host>``, see
``campaigns.channels``) or, for a test message, by the campaign its ``X-Cohortly-Test`` header
names; the outbox page shows the workspace's messages only. Any other message (a password reset)
is kept but shown to nobody. Recording never stops a send: a Redis error is logged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

import redis
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.console import EmailBackend as ConsoleBackend

logger = logging.getLogger(__name__)

OUTBOX_SIZE = 200
CONSOLE_BACKENDS = frozenset(
    {"campaigns.outbox.ConsoleOutboxBackend", "django.core.mail.backends.console.EmailBackend"}
)
LOCMEM_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
_MESSAGE_ID = re.compile(r"<send-(\d+)\.(\d+)@")
_TEST = re.compile(r"^campaign (\d+)$")
# The open pixel (``/e/o/<token>/``): not loaded in the outbox, where looking would count an open.
_PIXEL = re.compile(r"<img\b[^>]*/e/o/[^>]*>", re.IGNORECASE)


def enabled() -> bool:
    """Whether this installation sends mail nowhere real (console or locmem): the page exists then only."""
    return settings.EMAIL_BACKEND in CONSOLE_BACKENDS or settings.EMAIL_BACKEND == LOCMEM_BACKEND


def _key() -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "cohortly")
    return f"{prefix}:campaigns:outbox"


_clients: dict[str, redis.Redis] = {}


def _client() -> redis.Redis:
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


def entry(message: EmailMessage, *, at: datetime | None = None) -> dict[str, Any]:
    """What the outbox keeps of a message: who, what, when, both bodies and its workspace's marks."""
    html = ""
    if isinstance(message, EmailMultiAlternatives):
        for content, mimetype in message.alternatives:
            if mimetype == "text/html":
                html = content if isinstance(content, str) else str(content)
                break
    headers = {key.lower(): str(value) for key, value in (message.extra_headers or {}).items()}
    found = _MESSAGE_ID.search(headers.get("message-id", ""))
    test = _TEST.match(headers.get("x-cohortly-test", ""))
    return {
        "at": (at or datetime.now(UTC)).isoformat(),
        "subject": str(message.subject),
        "from": str(message.from_email),
        "to": [address for _, address in getaddresses([str(a) for a in message.to])],
        "text": str(message.body),
        "html": html,
        "send_id": int(found.group(1)) if found else None,
        "workspace_id": int(found.group(2)) if found else None,
        "test_campaign_id": int(test.group(1)) if test else None,
    }


def record(messages: Sequence[EmailMessage]) -> None:
    if not messages:
        return
    now = datetime.now(UTC)
    try:
        pipe = _client().pipeline()
        for message in messages:
            pipe.lpush(_key(), json.dumps(entry(message, at=now)))
        pipe.ltrim(_key(), 0, OUTBOX_SIZE - 1)
        pipe.execute()
    except redis.RedisError:
        logger.warning("The development outbox could not record %d message(s)", len(messages), exc_info=True)


class ConsoleOutboxBackend(ConsoleBackend):
    """Django's console backend that also records what it printed in the development outbox."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = super().send_messages(email_messages)
        if sent:
            record(list(email_messages))
        return int(sent)


def recent() -> list[dict[str, Any]]:
    """The last messages, newest first: locmem's of this process, else the recorded ones."""
    if settings.EMAIL_BACKEND == LOCMEM_BACKEND:
        return [entry(message) for message in reversed(getattr(mail, "outbox", []))][:OUTBOX_SIZE]
    try:
        raw = _client().lrange(_key(), 0, OUTBOX_SIZE - 1)
    except redis.RedisError:
        logger.warning("The development outbox could not be read", exc_info=True)
        return []
    return [json.loads(item) for item in raw]


def without_pixel(html: str) -> str:
    return _PIXEL.sub("", html)
