"""Frequency caps: at most ``max`` messages of a channel per person in any rolling window.

A cap is checked at send time, for a whole chunk of claimed sends at once, and enforced
atomically across workers and campaigns:

1. in one short transaction, take a transaction-scoped advisory lock per (workspace,
   person) of the chunk, in ascending key order (two chunks sharing people cannot
   deadlock);
2. count each person's *counted* sends of the channel in the largest window of the
   workspace's rules: state ``sent``, or ``claimed`` with ``sent_at`` set (a send that
   passed its check and is on its way: ``sent_at`` is its reservation), excluding the
   chunk's own sends;
3. decide each send in order (a person twice in the chunk sees the first one's
   reservation); a send over some rule becomes ``capped`` with that rule, the others get
   their reservation (``sent_at = now``) before the transaction commits and the locks go.

So a second worker checking the same person waits for the first one's commit and then sees
its reservation: concurrent campaigns can never exceed a cap. A send whose delivery then
fails loses its reservation (``sent_at`` cleared), and a reclaimed send (its worker died)
has it cleared before it is checked again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from accounts.sql import execute_scoped, execute_session, prepared_cursor, with_tables
from campaigns.models import FrequencyCap, Send, SendState


@dataclass(frozen=True)
class Candidate:
    """A claimed send about to go out: its id, person and channel."""

    send_id: int
    person_id: int
    channel: str


def cap_reason(rule: FrequencyCap) -> str:
    return f"frequency cap: {rule}"


def cap_decide(rules: Sequence[FrequencyCap], recent: Iterable[datetime], now: datetime) -> FrequencyCap | None:
    """The first rule (in id order) that one more message now would break, or None.

    ``recent``: the times of the person's counted messages of the rules' channel."""
    times = list(recent)
    for rule in sorted(rules, key=lambda r: r.pk):
        since = now - timedelta(seconds=rule.per_seconds)
        if sum(1 for at in times if at > since) >= rule.max:
            return rule
    return None


def lock_key(workspace_id: int, person_id: int) -> int:
    """A signed 64-bit advisory lock key for the person (a collision only serialises two people)."""
    digest = hashlib.blake2b(f"campaign-cap:{workspace_id}:{person_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Each person's counted sends of the checked channels in the widest window, the chunk's own excepted.
_RECENT = with_tables(
    "SELECT person_id, channel, sent_at FROM {send}"
    " WHERE workspace_id = %(workspace_id)s AND person_id = ANY(%(people)s::bigint[])"
    " AND channel = ANY(%(channels)s::text[]) AND state = ANY(%(counted)s::text[])"
    " AND sent_at > %(since)s AND NOT (id = ANY(%(own)s::bigint[]))",
    send=Send,
)
# The reservation of the sends that passed: their ``sent_at``.
_RESERVE = with_tables(
    "UPDATE {send} SET sent_at = %(now)s WHERE workspace_id = %(workspace_id)s AND id = ANY(%(ids)s::bigint[])",
    send=Send,
)


def caps_reserve(
    *, workspace_id: int, candidates: Sequence[Candidate], rules: Sequence[FrequencyCap], now: datetime
) -> dict[int, FrequencyCap]:
    """Check ``candidates`` (claimed sends of one workspace) against ``rules`` and record the outcome.

    Capped sends are written ``capped`` with their rule; the others get their reservation.
    Answers the capped ones by send id. The caller's connection must not be in a transaction
    (the locks are released at this function's commit).
    """
    if not candidates:
        return {}
    by_channel: dict[str, list[FrequencyCap]] = {}
    for rule in rules:
        by_channel.setdefault(rule.channel, []).append(rule)
    checked = [c for c in candidates if by_channel.get(c.channel)]
    capped: dict[int, FrequencyCap] = {}
    if not checked:
        return capped
    with transaction.atomic(), prepared_cursor() as cursor:
        keys = sorted({lock_key(workspace_id, c.person_id) for c in checked})
        # Locks taken one by one in key order (the subquery's order): no deadlock between chunks.
        execute_session(
            cursor,
            "SELECT count(pg_advisory_xact_lock(k)) FROM"
            " (SELECT k FROM unnest(%s::bigint[]) AS k ORDER BY k) AS ordered",
            [keys],
            prepare=True,
        )
        widest = max(rule.per_seconds for rule in rules)
        execute_scoped(
            cursor,
            _RECENT,
            {
                "people": sorted({c.person_id for c in checked}),
                "channels": sorted({c.channel for c in checked}),
                "counted": [SendState.SENT, SendState.CLAIMED],
                "since": now - timedelta(seconds=widest),
                "own": [c.send_id for c in candidates],
            },
            workspace_id=workspace_id,
            prepare=True,
        )
        recent: dict[tuple[int, str], list[datetime]] = {}
        for person_id, channel, sent_at in cursor.fetchall():
            recent.setdefault((person_id, channel), []).append(sent_at)
        passed: list[int] = []
        for candidate in checked:
            times = recent.setdefault((candidate.person_id, candidate.channel), [])
            broken = cap_decide(by_channel[candidate.channel], times, now)
            if broken is None:
                times.append(now)
                passed.append(candidate.send_id)
            else:
                capped[candidate.send_id] = broken
        for rule in {rule.pk: rule for rule in capped.values()}.values():
            Send.objects.filter(
                workspace_id=workspace_id, pk__in=[s for s, r in capped.items() if r.pk == rule.pk]
            ).update(
                state=SendState.CAPPED,
                cap=rule,
                reason=cap_reason(rule),
                sent_at=None,
                claim_expires_at=None,
            )
        if passed:
            execute_scoped(cursor, _RESERVE, {"ids": passed, "now": now}, workspace_id=workspace_id, prepare=True)
    return capped
