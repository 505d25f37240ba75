"""Rate limits kept in Redis, each decision in one round trip (a Lua script).

Two kinds:

- Windows (``take``): at most ``count`` units per ``seconds`` per key, in fixed
  windows that start with their first unit. A request over any of its limits is
  refused whole and counts against none of them, so a refused client does not
  use up its next window; the first request of an empty window is always
  admitted, so a request bigger than the whole allowance is not refused forever.
- Failure backoff (``failure_record``, ``failure_wait``): the first
  ``free - 1`` failures of a subject cost nothing; the ``free``-th and every
  further one makes the next attempt wait ``base * 2^(failures - free)``
  seconds, at most ``cap``. The counts are forgotten ``keep`` seconds after the
  last failure. Redis's clock decides, so every server agrees.

Keys live under the cache's ``KEY_PREFIX``, next to the cache's own.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"100/s"``, ``"20/min"``, ``"5/hour"``, ``"10/15m"`` (DRF's form, plus an optional multiple)."""
        match = _RATE.match(text)
        if match is None or int(match[1]) < 1:
            raise ValueError(f"{text!r} is not a rate such as 100/s, 20/min, 5/hour or 10/15m")
        return cls(int(match[1]), int(match[2] or 1) * _PERIODS[match[3].lower()])


@lru_cache(maxsize=64)
def rate(text: str) -> Rate:
    """``Rate.parse``, remembered: settings hold rates as text."""
    return Rate.parse(text)


@dataclass(frozen=True)
class Limit:
    key: str
    rate: Rate


def key(*parts: str) -> str:
    """A rate-limit key; parts that come from clients are hashed, so their length and bytes do not matter."""
    *plain, subject = parts
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "cohortly")
    return ":".join([prefix, "rl", *plain, digest])


# KEYS: the windows. ARGV: amount, then (count, window ms) per key. Answers 0 (admitted
# and counted) or the milliseconds until the fullest window ends (refused, nothing counted).
_TAKE = """
local amount = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
    local used = tonumber(redis.call('GET', key) or '0')
    if used > 0 and used + amount > tonumber(ARGV[2 * i]) then
        local ttl = redis.call('PTTL', key)
        if ttl < 0 then
            redis.call('PEXPIRE', key, ARGV[2 * i + 1])
            ttl = tonumber(ARGV[2 * i + 1])
        end
        if ttl > wait then wait = ttl end
    end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
    if redis.call('INCRBY', key, amount) == amount and redis.call('PTTL', key) < 0 then
        redis.call('PEXPIRE', key, ARGV[2 * i + 1])
    end
end
return 0
"""

# KEYS: the subjects. ARGV: base ms, cap ms, keep ms, then the free failures per key.
# Answers the wait in ms that this failure starts (the longest of the subjects').
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base, cap, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
    local failures = redis.call('HINCRBY', key, 'failures', 1)
    local free = tonumber(ARGV[3 + i])
    local delay = 0
    if failures >= free then delay = math.floor(math.min(cap, base * 2 ^ math.min(failures - free, 40))) end
    if delay > 0 then redis.call('HSET', key, 'until', string.format('%d', now + delay)) end
    redis.call('PEXPIRE', key, math.max(keep, delay))
    if delay > wait then wait = delay end
end
return wait
"""

# KEYS: the subjects. Answers the ms until the last of their waits ends (0: none).
_WAIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
    local left = tonumber(redis.call('HGET', key, 'until') or '0') - now
    if left > wait then wait = left end
end
return wait
"""

_clients: dict[tuple[str, float], tuple[redis.Redis, dict[str, Any]]] = {}


def _script(name: str, source: str, timeout: float) -> Any:
    """The registered script on a client of these timeouts (one per URL and timeout per process)."""
    entry = _clients.get((settings.REDIS_URL, timeout))
    if entry is None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
        entry = _clients[(settings.REDIS_URL, timeout)] = (client, {})
    client, scripts = entry
    if name not in scripts:
        scripts[name] = client.register_script(source)
    return scripts[name]


def _seconds(milliseconds: Any) -> int:
    return math.ceil(int(milliseconds) / 1000)


def take(limits: Sequence[Limit], amount: int = 1, *, timeout: float = 1.0) -> int:
    """Count ``amount`` against every limit, or none: 0 when admitted, else whole seconds to wait."""
    keys = [limit.key for limit in limits]
    args: list[int] = [amount]
    for limit in limits:
        args += [limit.rate.count, limit.rate.seconds * 1000]
    return _seconds(_script("take", _TAKE, timeout)(keys=keys, args=args))


def failure_record(subjects: Sequence[tuple[str, int]], *, base: float, cap: float, keep: float) -> int:
    """Count a failure of each ``(key, free failures)``: the whole seconds the next attempt must wait."""
    args = [round(base * 1000), round(cap * 1000), round(keep * 1000), *(free for _, free in subjects)]
    return _seconds(_script("failure", _FAILURE, 1.0)(keys=[key for key, _ in subjects], args=args))


def failure_wait(keys: Sequence[str]) -> int:
    """Whole seconds until none of these subjects waits any more (0: go ahead)."""
    return _seconds(_script("wait", _WAIT, 1.0)(keys=list(keys)))


def forget(keys: Sequence[str]) -> None:
    """Clear these subjects' failures (a success)."""
    _script("wait", _WAIT, 1.0).registered_client.delete(*keys)


def wait_text(seconds: int) -> str:
    """``"1 second"``, ``"40 seconds"``, ``"3 minutes"`` (rounded up), ``"2 hours"`` (rounded up, once
    the minutes would reach 60: 3,599 seconds is "1 hour", not "60 minutes")."""
    if seconds > 60 * 59:
        hours = math.ceil(seconds / 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
