"""A person's clock: their timezone, and when quiet hours in it end.

A person's timezone is their trait ``timezone`` when it is an IANA name this server knows,
else the workspace's (``CampaignSettings.timezone``), else UTC. The broadcast fan-out
resolves the same rule in SQL (``pg_timezone_names``) for local-time sends.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = ZoneInfo("UTC")


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_named(name: Any) -> ZoneInfo | None:
    """The zone of an IANA name, or None when ``name`` is not one."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith("/") or ".." in name:
        return None
    return _zone(name)


def person_zone(traits: Any, default: str) -> ZoneInfo:
    """The person's timezone: their ``timezone`` trait, else ``default``, else UTC."""
    own = zone_named(traits.get("timezone")) if isinstance(traits, dict) else None
    return own or zone_named(default) or UTC


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Whether wall-clock ``local`` is inside [start, end); a window may span midnight (22:00-08:00)."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_until(now: datetime, zone: ZoneInfo, start: time | None, end: time | None) -> datetime | None:
    """When the quiet hours ``now`` falls in end, in the person's ``zone``; None when not quiet."""
    if start is None or end is None:
        return None
    local = now.astimezone(zone)
    if not in_quiet_hours(local.timetz().replace(tzinfo=None), start, end):
        return None
    ends = datetime.combine(local.date(), end, tzinfo=zone)
    if ends <= local:
        ends = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=zone)
    # A wall-clock time skipped by a DST change resolves forward through UTC; never before now.
    return max(ends.astimezone(UTC), now)
