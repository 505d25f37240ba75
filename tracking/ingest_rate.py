"""Messages per second per write key on the tracking API (``INGEST_RATE_PER_WRITE_KEY``).

Every message counts (a batch of 100 counts 100, rejected ones too: they are
stored in the quarantine). One Redis round trip per request: a fixed one-second
window per write key, counted and checked by one script (``core.ratelimit``).
A request over the limit is refused whole with 429 and ``Retry-After``, which
Segment's SDKs honour, and counts against nothing.

The limit guards capacity, not durability: when Redis fails or is slow, the
request is admitted, and Redis is left alone for a few seconds (a circuit
breaker, as ``segmentation.realtime`` does), so a down Redis costs ingestion
one short timeout every few seconds at most.
"""

from __future__ import annotations

import logging
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


class _Breaker:
    failing_until = 0.0


breaker = _Breaker()


def write_key_wait(write_key: str, messages: int) -> int:
    """Count ``messages`` against the key's second: 0 when admitted, else whole seconds to wait."""
    per_second = settings.INGEST_RATE_PER_WRITE_KEY
    if per_second <= 0 or messages <= 0 or time.monotonic() < breaker.failing_until:
        return 0
    limit = ratelimit.Limit(ratelimit.key("ingest", write_key), ratelimit.Rate(per_second, 1))
    try:
        return ratelimit.take([limit], messages, timeout=TIMEOUT_SECONDS)
    except redis.RedisError as error:
        breaker.failing_until = time.monotonic() + BACKOFF_SECONDS
        logger.warning("ingest: rate limit not checked (%s); admitting without it for %.0f s", error, BACKOFF_SECONDS)
        return 0
