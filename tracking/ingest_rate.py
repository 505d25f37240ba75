"""Messages per second per write key on the tracking API (``INGEST_RATE_PER_WRITE_KEY``).

Every message counts (a batch of 100 counts 100, rejected ones too: they are
stored in the quarantine). The count is a fixed one-second window per write
key in Redis, counted and checked by one script (``core.ratelimit``). A request
over the limit is refused whole with 429 and ``Retry-After``, which Segment's
SDKs honour, and counts against nothing.

A process does not ask Redis for every request: it takes a lease of
``LEASE_SHARE`` of the key's rate at a time and admits requests from it until it
is used up or a second has passed (a Redis round trip per request cost the
tracking API's single-message requests about a third of their rate). Near the
limit, when a lease cannot be had, it asks for exactly the request's messages,
so small rates stay exact. The price: each process may admit up to one lease
more than the rate across a window's end, or leave up to one lease unused.

The limit guards capacity, not durability: when Redis fails or is slow, the
request is admitted, and Redis is left alone for a few seconds (a circuit
breaker, as ``segmentation.realtime`` does), so a down Redis costs ingestion
one short timeout every few seconds at most.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings

from core import ratelimit

logger = logging.getLogger(__name__)

# A loopback Redis answers in well under a millisecond; a loaded machine can take tens, and the
# first call of a process connects and loads the script. The breaker bounds what a hung Redis costs.
TIMEOUT_SECONDS = 0.25
# After a failure, requests are admitted without asking Redis this long.
BACKOFF_SECONDS = 5.0


# The share of a write key's rate that one process takes from Redis at a time.
LEASE_SHARE = 0.02
# How long a process may admit from a lease.
LEASE_SECONDS = 1.0


class _Breaker:
    failing_until = 0.0


breaker = _Breaker()


class _Leases:
    """Messages this process may still admit per write key, and until when (monotonic)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.left: dict[str, tuple[float, int]] = {}

    def use(self, write_key: str, messages: int, now: float) -> bool:
        with self.lock:
            until, left = self.left.get(write_key, (0.0, 0))
            if now >= until or left < messages:
                return False
            self.left[write_key] = (until, left - messages)
            return True

    def grant(self, write_key: str, messages: int, now: float) -> None:
        with self.lock:
            self.left[write_key] = (now + LEASE_SECONDS, messages)


leases = _Leases()


def write_key_wait(write_key: str, messages: int) -> int:
    """Count ``messages`` against the key's second: 0 when admitted, else whole seconds to wait."""
    per_second = settings.INGEST_RATE_PER_WRITE_KEY
    if per_second <= 0 or messages <= 0 or time.monotonic() < breaker.failing_until:
        return 0
    now = time.monotonic()
    if leases.use(write_key, messages, now):
        return 0
    limit = ratelimit.Limit(ratelimit.key("ingest", write_key), ratelimit.Rate(per_second, 1))
    lease = max(messages, int(per_second * LEASE_SHARE))
    try:
        wait = ratelimit.take([limit], lease, timeout=TIMEOUT_SECONDS)
        if wait and lease > messages:
            lease = messages
            wait = ratelimit.take([limit], messages, timeout=TIMEOUT_SECONDS)
    except redis.RedisError as error:
        breaker.failing_until = time.monotonic() + BACKOFF_SECONDS
        logger.warning("ingest: rate limit not checked (%s); admitting without it for %.0f s", error, BACKOFF_SECONDS)
        return 0
    if not wait:
        leases.grant(write_key, lease - messages, now)
    return wait
