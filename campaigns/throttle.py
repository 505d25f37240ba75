"""Per-workspace, per-channel sending rates: a token bucket in Redis shared by every worker.

``rate_wait(key, per_second=r, amount=n)`` reserves ``n`` sends and answers how long the
caller must sleep before making them (0 when the bucket had them). The bucket holds one
second's worth (a burst of ``r``) and refills continuously; the state is a single
"theoretical arrival time" (GCRA), so a reservation is one script call whatever the rate.
When Redis cannot be reached the send goes ahead unthrottled (logged): a rate limit
protects a provider's quota, and the broker being down stops the engine anyway.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: ms per send, burst in ms, amount. Answers the ms to wait.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per, burst, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + per * amount
redis.call('SET', KEYS[1], string.format('%.3f', after), 'PX', math.ceil(after - now + burst) + 1000)
local wait = after - now - burst
if wait < 0 then wait = 0 end
return math.ceil(wait)
"""

_clients: dict[str, tuple[redis.Redis, Any]] = {}


def _script() -> Any:
    url = settings.REDIS_URL
    entry = _clients.get(url)
    if entry is None:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        entry = _clients[url] = (client, client.register_script(_RESERVE))
    return entry[1]


def bucket_key(workspace_id: int, channel: str) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "cohortly")
    return f"{prefix}:campaign-rate:{workspace_id}:{channel}"


def rate_wait(key: str, *, per_second: int, amount: int) -> float:
    """Reserve ``amount`` sends at ``per_second``; the seconds to sleep before sending them."""
    if per_second <= 0 or amount <= 0:
        return 0.0
    try:
        waited = _script()(keys=[key], args=[1000.0 / per_second, 1000, amount])
    except redis.RedisError as error:
        logger.warning("Campaign rate limit unavailable (%s): sending unthrottled", error)
        return 0.0
    return int(waited) / 1000
