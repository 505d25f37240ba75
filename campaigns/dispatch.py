"""The dispatcher: claims due sends in chunks and sends them, each exactly once.

A send is due when it is ``pending`` with ``due_at`` passed, or ``claimed`` by a worker whose
claim expired (the worker died: its sends come back). Only sends of ``sending`` and
``listening`` campaigns are claimed; a paused campaign's wait.

One chunk (``CHUNK`` sends, across workspaces) is claimed with ``FOR UPDATE SKIP LOCKED``
(workers never wait on each other, never take the same send), then handled per workspace
and channel:

1. sends that will not go: the person is gone; a triggered send whose exit event came
   (``cancelled``); no address (``suppressed`` "no email address"); an address in the
   suppression list (``suppressed`` with its reason); quiet hours in the person's timezone
   (back to ``pending``, due when they end);
2. frequency caps for the rest, atomically (``campaigns.capping``): ``capped`` with the rule;
3. the rest are built here and sent by a few threads (``sender_threads(channel)``), each over its own
   connection (SMTP, or kept-alive HTTP), through the workspace's rate limit
   (``campaigns.throttle``): a template failing for one person fails that send, with its
   reason; what the provider accepted is marked ``sent`` by one statement per small group
   (``MARK_GROUP`` messages or ``MARK_SECONDS``), and the chunk never lets more than
   ``IN_FLIGHT`` messages be handed over and unmarked, so that a worker killed between the
   provider's acceptance and the mark repeats at most that many messages, each carrying the
   send id as its ``Message-ID`` / idempotency key;
4. a failure is retried with a growing delay (``RETRY_DELAYS``, through ``due_at``) up to
   ``MAX_ATTEMPTS`` claims, a permanent one fails the send at once.

A chunk stops sending when half of its claim has gone by (a slow provider, a low rate
limit) and hands the rest back as ``pending``: no send is ever sent by two workers because
its claim expired while it was still queued behind the others.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.sql import (
    dangerously_execute_across_workspaces,
    execute_scoped,
    execute_session,
    prepared_cursor,
    with_tables,
)
from accounts.tenancy import workspace_scope
from campaigns import capping, throttle
from campaigns.channels import Outgoing, SendFailed, channel_sender, message_build, recipient_for
from campaigns.fanout import settings_for
from campaigns.localtime import person_zone, quiet_until
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignSettings,
    CampaignStatus,
    Channel,
    FrequencyCap,
    Send,
    SendState,
    Suppression,
    Variant,
)
from campaigns.rendering import PersonContext, RenderFailed
from tracking.models import Event, Person

logger = logging.getLogger(__name__)

CHUNK = 500
DISPATCHED_STATUSES = (CampaignStatus.SENDING, CampaignStatus.LISTENING)
MAX_ATTEMPTS = 5
# Seconds before the next attempt after a transient failure of attempt 1, 2, 3, 4.
RETRY_DELAYS = (60, 300, 1800, 7200)
# Sends reserved from the rate limit at a time.
RATE_BATCH = 50
# Messages handed to the sender threads and not yet marked, at most: what a worker killed at the
# wrong moment may have had accepted without marking (sent again after its claim expires).
IN_FLIGHT = 16
# Accepted messages are marked ``sent`` by one statement per group of this many, or sooner when
# the oldest waits longer than MARK_SECONDS.
MARK_GROUP = 8
MARK_SECONDS = 0.05


# Sender threads per chunk when ``CAMPAIGN_SENDER_THREADS`` is 0 (unset), by channel: a webhook's
# exchange waits on the endpoint more than an SMTP one on the mail server, and costs less CPU.
SENDER_THREADS: dict[str, int] = {Channel.EMAIL: 4, Channel.WEBHOOK: 8}


def sender_threads(channel: str) -> int:
    """Threads sending a chunk's messages in parallel, each over its own connection
    (``CAMPAIGN_SENDER_THREADS``, else the channel's default)."""
    configured = int(getattr(settings, "CAMPAIGN_SENDER_THREADS", 0) or 0)
    return max(1, configured or SENDER_THREADS.get(channel, 1))


def claim_seconds() -> int:
    """How long a claim holds (``CAMPAIGN_CLAIM_SECONDS``): after it, a dead worker's sends come back."""
    return int(getattr(settings, "CAMPAIGN_CLAIM_SECONDS", 120))


@dataclass(frozen=True)
class Claimed:
    """A send this worker claimed, as the claim returned it."""

    send: Send

    @property
    def send_id(self) -> int:
        return int(self.send.pk)

    @property
    def workspace_id(self) -> int:
        return int(self.send.workspace_id)

    @property
    def channel(self) -> str:
        return str(self.send.channel)


# The columns a chunk reads of a claimed send, returned by the claim itself.
_CLAIM_COLUMNS = (
    "id", "workspace_id", "campaign_id", "variant_id", "person_id", "occurrence", "channel",
    "triggered_at", "context", "attempts", "recipient",
)  # fmt: skip

# One statement: for each campaign that is sending or listening, its oldest due sends along
# ``send_campaign_due_idx`` (an ordered walk that stops at ``limit`` rows: a paused campaign's
# sends, however many, are never read, nor is the rest of a large run), locked skipping those
# another worker holds; the oldest ``limit`` of them claimed, and answered. The planner is told
# not to bitmap-scan: right after a large fan-out the table's statistics still describe a small
# table, for which reading a campaign's due sends and sorting them looks cheaper.
_CLAIM_SQL = with_tables(
    "UPDATE {send} AS s SET state = %(claimed)s, claimed_at = %(now)s, claim_expires_at = %(expires)s,"
    " attempts = s.attempts + 1, sent_at = NULL"
    " FROM (SELECT due.id FROM {campaign} AS c CROSS JOIN LATERAL"
    " (SELECT d.id, d.due_at FROM {send} AS d"
    " WHERE d.campaign_id = c.id AND d.state IN (%(pending)s, %(claimed)s) AND d.due_at <= %(now)s"
    " AND (d.state = %(pending)s OR d.claim_expires_at < %(now)s)"
    " ORDER BY d.due_at LIMIT %(limit)s::integer FOR UPDATE OF d SKIP LOCKED) AS due"
    " WHERE c.status = ANY(%(statuses)s::text[])"
    " ORDER BY due.due_at LIMIT %(limit)s::integer) AS picked"
    " WHERE s.id = picked.id"
    f" RETURNING {', '.join(f's.{column}' for column in _CLAIM_COLUMNS)}",
    send=Send,
    campaign=Campaign,
)


def sends_claim(*, now: datetime, limit: int = CHUNK) -> list[Claimed]:
    """Claim up to ``limit`` due sends of active campaigns, oldest due first, across workspaces."""
    expires = now + timedelta(seconds=claim_seconds())
    with transaction.atomic(), prepared_cursor() as cursor:
        execute_session(
            cursor,
            "SELECT set_config('enable_bitmapscan', 'off', true)",
            prepare=True,
        )
        dangerously_execute_across_workspaces(
            cursor,
            _CLAIM_SQL,
            {
                "pending": SendState.PENDING,
                "claimed": SendState.CLAIMED,
                "now": now,
                "expires": expires,
                "statuses": list(DISPATCHED_STATUSES),
                "limit": limit,
            },
            why="the dispatcher serves every workspace; each chunk is then handled in its own scope",
            prepare=True,
        )
        rows = cursor.fetchall()
    claimed = []
    # In id order: the order the sends were written in (a run's fan-out, then the triggers').
    for row in sorted(rows):
        values = dict(zip(_CLAIM_COLUMNS, row, strict=True))
        values |= {"state": SendState.CLAIMED, "claimed_at": now, "claim_expires_at": expires}
        if isinstance(values["context"], str):  # jsonb as text, as Django's connection loads it
            values["context"] = json.loads(values["context"])
        send = Send(**values)
        send._state.adding = False
        send._state.db = "default"
        claimed.append(Claimed(send))
    return claimed


# Whether any active campaign has a due send: its first one along ``send_campaign_due_idx``, as the
# claim reads them (not along the campaign's other indexes, through every message it ever sent).
_DUE_EXIST_SQL = with_tables(
    "SELECT EXISTS (SELECT 1 FROM {campaign} AS c CROSS JOIN LATERAL"
    " (SELECT 1 FROM {send} AS d WHERE d.campaign_id = c.id AND d.state IN (%(pending)s, %(claimed)s)"
    " AND d.due_at <= %(now)s AND (d.state = %(pending)s OR d.claim_expires_at < %(now)s)"
    " ORDER BY d.due_at LIMIT 1) AS due WHERE c.status = ANY(%(statuses)s::text[]))",
    send=Send,
    campaign=Campaign,
)


def sends_due_exist(*, now: datetime | None = None) -> bool:
    """Whether a dispatch would find work (the beat asks before starting chains)."""
    now = now or timezone.now()
    with prepared_cursor() as cursor:
        dangerously_execute_across_workspaces(
            cursor,
            _DUE_EXIST_SQL,
            {
                "pending": SendState.PENDING,
                "claimed": SendState.CLAIMED,
                "now": now,
                "statuses": list(DISPATCHED_STATUSES),
            },
            why="the beat asks whether any workspace has work",
            prepare=True,
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def dispatch_due(*, now: datetime | None = None, limit: int = 10 * CHUNK, chunk: int = CHUNK) -> int:
    """Claim and handle due sends chunk by chunk until ``limit`` were handled or none is due.

    ``now``: the time to act at (tests move the clock); by default the real time, read
    again for each chunk. Answers the number of sends handled.
    """
    handled = 0
    while handled < limit:
        at = now or timezone.now()
        claimed = sends_claim(now=at, limit=min(chunk, limit - handled))
        if not claimed:
            break
        groups: dict[tuple[int, str], list[Send]] = {}
        for claim in claimed:
            groups.setdefault((claim.workspace_id, claim.channel), []).append(claim.send)
        for (workspace_id, channel), sends in groups.items():
            with workspace_scope(workspace_id):
                _Chunk(workspace_id=workspace_id, channel=channel, sends=sends, now=at, fixed=now is not None).run()
        handled += len(claimed)
    return handled


def retry_delay(attempts: int) -> timedelta | None:
    """The wait before the next attempt after ``attempts`` claims, or None when they are spent."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return timedelta(seconds=RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])


@dataclass
class _Done:
    """A message the provider accepted (``error`` None) or refused, and when."""

    send: Send
    recipient: str
    error: SendFailed | None
    at: datetime


class _SenderPool:
    """Sender threads for one chunk: each opens its own ``channel_sender`` (one SMTP connection, or
    kept-alive HTTP connections) at its first message and closes it at the end.

    The threads touch no database: they send what ``submit`` hands them and put the outcome on a
    queue; the chunk's thread records the outcomes (``results``).
    """

    def __init__(self, *, channel: str, workspace_id: int, threads: int) -> None:
        self.channel = channel
        self.workspace_id = workspace_id
        self.outstanding = 0
        self.recorded_at = time.monotonic()
        self._todo: queue.Queue[tuple[Send, str, Outgoing] | None] = queue.Queue()
        self._done: queue.Queue[_Done] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        self._started = 0

    def submit(self, send: Send, recipient: str, outgoing: Outgoing) -> None:
        if self._started < len(self._threads) and self.outstanding >= self._started:
            self._threads[self._started].start()
            self._started += 1
        self.outstanding += 1
        self._todo.put((send, recipient, outgoing))

    def waiting(self) -> int:
        return self._done.qsize()

    def results(self, *, wait_for: int = 0) -> list[_Done]:
        """The outcomes so far, after waiting for ``wait_for`` of them (at most the outstanding ones)."""
        done: list[_Done] = []
        for _ in range(min(wait_for, self.outstanding)):
            done.append(self._done.get())
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.outstanding -= len(done)
        self.recorded_at = time.monotonic()
        return done

    def close(self) -> None:
        # Whatever was not picked up yet is not sent (the chunk is unwinding: it stays claimed).
        while True:
            try:
                self._todo.get_nowait()
            except queue.Empty:
                break
        for _ in range(self._started):
            self._todo.put(None)
        for thread in self._threads[: self._started]:
            thread.join()

    def _work(self) -> None:
        with channel_sender(channel=self.channel, workspace=self.workspace_id) as sender:
            while (item := self._todo.get()) is not None:
                send, recipient, outgoing = item
                error: SendFailed | None = None
                try:
                    sender.send(outgoing)
                except SendFailed as failure:
                    error = failure
                except Exception as failure:
                    logger.exception("Send %s of campaign %s failed unexpectedly", send.pk, send.campaign_id)
                    error = SendFailed(f"{type(failure).__name__}: {failure}", permanent=False)
                self._done.put(_Done(send, recipient, error, timezone.now()))


class _Chunk:
    """One workspace's claimed sends of one channel."""

    def __init__(self, *, workspace_id: int, channel: str, sends: list[Send], now: datetime, fixed: bool) -> None:
        self.workspace_id = workspace_id
        self.channel = channel
        self.now = now
        self.fixed = fixed
        # As the claim returned them (claimed at ``now`` by this worker).
        self.sends = sends
        self.deadline = time.monotonic() + claim_seconds() / 2

    def clock(self) -> datetime:
        return self.now if self.fixed else timezone.now()

    def run(self) -> None:
        if not self.sends:
            return
        with connection.cursor() as cursor:
            # The chunk's writes (outcomes, reservations, one mark per message) commit without waiting
            # for the WAL flush: a worker killed after a commit loses nothing; only a crash of PostgreSQL
            # itself can lose the last fraction of a second of marks (docs/campaigns.md, "Sending engine").
            execute_session(cursor, "SET synchronous_commit TO off")
        try:
            self._run()
        finally:
            with connection.cursor() as cursor:
                execute_session(cursor, "RESET synchronous_commit")

    def _run(self) -> None:
        ws = self.workspace_id
        self.settings_row: CampaignSettings = settings_for(ws)
        self.campaigns = {
            c.pk: c for c in Campaign.objects.filter(workspace_id=ws, pk__in={s.campaign_id for s in self.sends})
        }
        variant_ids = {s.variant_id for s in self.sends if s.variant_id is not None}
        self.variants = {v.pk: v for v in Variant.objects.filter(workspace_id=ws, pk__in=variant_ids)}
        people = Person.objects.filter(workspace_id=ws, pk__in={s.person_id for s in self.sends})
        self.people = {
            pk: PersonContext(id=pk, user_id=user_id, traits=traits if isinstance(traits, dict) else {})
            for pk, user_id, traits in people.values_list("pk", "user_id", "traits")
        }
        going = self._screen()
        rules = list(FrequencyCap.objects.filter(workspace_id=ws, channel=self.channel).order_by("pk"))
        if rules and going:
            capped = capping.caps_reserve(
                workspace_id=ws,
                candidates=[capping.Candidate(s.pk, s.person_id, s.channel) for s, _ in going],
                rules=rules,
                now=self.clock(),
            )
            going = [(s, r) for s, r in going if s.pk not in capped]
        if going:
            self._deliver(going)

    # --- 1. sends that will not go --------------------------------------------------------

    def _screen(self) -> list[tuple[Send, str]]:
        """Record the sends that will not go now; answers the others with their recipient."""
        outcomes: dict[tuple[str, str], list[int]] = {}
        deferred: list[tuple[int, datetime]] = []
        candidates: list[tuple[Send, str]] = []
        for send in self.sends:
            campaign = self.campaigns.get(send.campaign_id)
            person = self.people.get(send.person_id)
            variant = self.variants.get(send.variant_id) if send.variant_id is not None else None
            if campaign is None or person is None:
                outcomes.setdefault((SendState.CANCELLED, "the person or campaign was deleted"), []).append(send.pk)
                continue
            if variant is None:
                outcomes.setdefault((SendState.FAILED, "no variant"), []).append(send.pk)
                continue
            if self._exited(campaign, send):
                outcomes.setdefault((SendState.CANCELLED, "exit event"), []).append(send.pk)
                continue
            recipient = recipient_for(self.channel, person, variant)
            if not recipient:
                reason = "no email address" if self.channel == Channel.EMAIL else "no recipient"
                outcomes.setdefault((SendState.SUPPRESSED, reason), []).append(send.pk)
                continue
            zone = person_zone(person.traits, self.settings_row.timezone)
            until = quiet_until(self.now, zone, self.settings_row.quiet_start, self.settings_row.quiet_end)
            if until is not None:
                deferred.append((send.pk, until))
                continue
            candidates.append((send, recipient))
        if self.channel == Channel.EMAIL and candidates:
            addresses = {r.lower() for _, r in candidates}
            suppressed = dict(
                Suppression.objects.filter(workspace_id=self.workspace_id, address__in=addresses).values_list(
                    "address", "reason"
                )
            )
            kept: list[tuple[Send, str]] = []
            for send, address in candidates:
                why = suppressed.get(address.lower())
                if why is None:
                    kept.append((send, address))
                else:
                    outcomes.setdefault((SendState.SUPPRESSED, str(why)), []).append(send.pk)
            candidates = kept
        for (state, reason), ids in outcomes.items():
            self._settle(ids, state=state, reason=reason)
        for pk, until in deferred:
            # Quiet hours: not an attempt; due again when they end.
            self._mine(pk).update(
                state=SendState.PENDING,
                due_at=until,
                attempts=F("attempts") - 1,
                claim_expires_at=None,
                reason="quiet hours",
            )
        return candidates

    def _exited(self, campaign: Campaign, send: Send) -> bool:
        if campaign.kind != CampaignKind.TRIGGERED or not campaign.exit_event or send.triggered_at is None:
            return False
        return Event.objects.filter(
            workspace_id=self.workspace_id,
            person_id=send.person_id,
            name=campaign.exit_event,
            timestamp__gte=send.triggered_at,
            timestamp__lte=self.now,
        ).exists()

    # --- 3. sending ---------------------------------------------------------------------------

    def _deliver(self, going: list[tuple[Send, str]]) -> None:
        """Build each message here, send it from one of ``sender_threads(channel)`` threads (each with its own
        connection), and mark what the provider accepted in groups, never more than ``IN_FLIGHT``
        messages behind."""
        rate = (
            self.settings_row.emails_per_second
            if self.channel == Channel.EMAIL
            else self.settings_row.webhooks_per_second
        )
        bucket = throttle.bucket_key(self.workspace_id, self.channel)
        reserved = 0
        left = list(going)
        left.reverse()
        pool = _SenderPool(channel=self.channel, workspace_id=self.workspace_id, threads=sender_threads(self.channel))
        try:
            while left:
                if time.monotonic() > self.deadline:
                    self._release([s.pk for s, _ in left])
                    left = []
                    break
                if reserved == 0:
                    reserved = min(RATE_BATCH, len(left))
                    wait = throttle.rate_wait(bucket, per_second=rate, amount=reserved)
                    if wait:
                        time.sleep(wait)
                send, recipient = left.pop()
                reserved -= 1
                outgoing = self._build(send)
                if outgoing is None:
                    continue
                # At most IN_FLIGHT messages between the hand-over and the mark: what a killed worker
                # can have sent without marking (each carries its send id for the provider to dedupe).
                if pool.outstanding >= IN_FLIGHT:
                    self._record(pool.results(wait_for=MARK_GROUP))
                pool.submit(send, recipient, outgoing)
                waiting = pool.waiting()
                if waiting >= MARK_GROUP or (waiting and time.monotonic() - pool.recorded_at >= MARK_SECONDS):
                    self._record(pool.results())
            while pool.outstanding:
                self._record(pool.results(wait_for=MARK_GROUP))
        finally:
            # Stops the threads (their connections closed); anything submitted and not yet recorded
            # stays claimed and comes back when the claim expires.
            pool.close()

    def _build(self, send: Send) -> Outgoing | None:
        campaign = self.campaigns[send.campaign_id]
        variant = self.variants[send.variant_id] if send.variant_id is not None else None
        assert variant is not None
        person = self.people[send.person_id]
        try:
            return message_build(
                send=send, campaign=campaign, variant=variant, person=person, settings_row=self.settings_row
            )
        except RenderFailed as error:
            self._settle([send.pk], state=SendState.FAILED, reason=error.reason)
        except SendFailed as error:
            self._failed(send, error.reason, permanent=error.permanent)
        return None

    def _record(self, done: list[_Done]) -> None:
        """Mark the accepted messages ``sent`` (one statement) and the failed ones for retry or failure."""
        accepted = [d for d in done if d.error is None]
        if accepted:
            with prepared_cursor() as cursor:
                execute_scoped(
                    cursor,
                    with_tables(
                        "UPDATE {send} AS s SET state = %(sent)s, sent_at = %(sent_at)s, recipient = v.recipient,"
                        " reason = '', claim_expires_at = NULL"
                        " FROM unnest(%(ids)s::bigint[], %(recipients)s::text[]) AS v(id, recipient)"
                        " WHERE s.workspace_id = %(workspace_id)s AND s.id = ANY(%(ids)s::bigint[]) AND s.id = v.id"
                        " AND s.state = %(claimed)s"
                        " AND s.claimed_at = %(claimed_at)s",
                        send=Send,
                    ),
                    {
                        "sent": SendState.SENT,
                        "claimed": SendState.CLAIMED,
                        "claimed_at": self.now,
                        "ids": [d.send.pk for d in accepted],
                        # One instant for the group (its messages were accepted within MARK_SECONDS):
                        # the last acceptance.
                        "sent_at": self.now if self.fixed else max(d.at for d in accepted),
                        "recipients": [d.recipient[:2000] for d in accepted],
                    },
                    workspace_id=self.workspace_id,
                    prepare=True,
                )
        for failed in done:
            if failed.error is not None:
                self._failed(failed.send, failed.error.reason, permanent=failed.error.permanent)

    # --- outcomes --------------------------------------------------------------------------------

    def _mine(self, pk: int | Iterable[int]) -> QuerySet[Send]:
        """The send(s), still claimed by this chunk (a reclaimed send is another worker's now)."""
        ids = [pk] if isinstance(pk, int) else list(pk)
        return Send.objects.filter(
            workspace_id=self.workspace_id, pk__in=ids, state=SendState.CLAIMED, claimed_at=self.now
        )

    def _settle(self, ids: list[int], *, state: str, reason: str) -> None:
        self._mine(ids).update(state=state, reason=reason[:500], sent_at=None, claim_expires_at=None)

    def _failed(self, send: Send, reason: str, *, permanent: bool) -> None:
        delay = None if permanent else retry_delay(send.attempts)
        if delay is None:
            self._settle([send.pk], state=SendState.FAILED, reason=reason)
            return
        self._mine(send.pk).update(
            state=SendState.PENDING,
            due_at=self.clock() + delay,
            reason=reason[:500],
            sent_at=None,
            claim_expires_at=None,
        )

    def _release(self, ids: list[int]) -> None:
        """Hand back sends this chunk could not reach in time: pending again, not an attempt."""
        self._mine(ids).update(state=SendState.PENDING, attempts=F("attempts") - 1, sent_at=None, claim_expires_at=None)
