"""Celery tasks of the sending engine: the beat's tick, a run's fan-out, the dispatch chains.

``campaigns_tick`` (beat, every few seconds) fans out due broadcast runs (one task per
run), closes runs with nothing left to send, and keeps dispatch going: it starts a chain
in each free slot (``CAMPAIGN_DISPATCH_CHAINS``) when sends are due. A chain
(``campaigns.dispatch_kick`` with a slot) handles a share of due sends in chunks and, when
it handled a full share, queues its successor; a slot is taken while its Redis key lives,
and the key is refreshed at each link, so a chain lost with its worker frees its slot
when its claims expire and the next tick starts another. Others (launch, triggers) may send
``campaigns.dispatch_kick`` by name, without a slot, on commit: it handles one share.

Tasks are acknowledged late and rejected when their worker is lost (the settings' default,
stated here too): a message is redelivered rather than dropped. Nothing is lost when it is
not: every send is a row, and a dead worker's claims expire and are claimed again. Delays
are ``due_at`` times, never Celery countdowns.
"""

from __future__ import annotations

import logging

import redis
from celery import current_app, shared_task
from django.conf import settings
from django.utils import timezone

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from campaigns import active_hours, dispatch, fanout, winner

logger = logging.getLogger(__name__)

DISPATCH_TASK = "campaigns.dispatch_kick"
FAN_OUT_TASK = "campaigns.run_fan_out"
WINNER_TASK = "campaigns.winner_decide"
ACTIVE_HOURS_TASK = "campaigns.active_hours_refresh"
STATISTICS_TASK = "campaigns.send_statistics_refresh"
# Sends one link of a dispatch chain handles before handing over to its successor.
SHARE = 5 * dispatch.CHUNK


def chain_ttl() -> int:
    """How long a dispatch chain's slot holds without news of it: as long as its claims do."""
    return dispatch.claim_seconds()


def campaigns_queue() -> str:
    """The Celery queue of the engine's tasks (``CAMPAIGNS_QUEUE``)."""
    return str(getattr(settings, "CAMPAIGNS_QUEUE", "celery"))


def _slot_key(slot: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'cohortly')}:campaign-dispatch:{slot}"


_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[url]


def _enqueue(name: str, args: tuple[object, ...]) -> None:
    current_app.tasks[name].apply_async(args, queue=campaigns_queue(), retry=False)


@shared_task(base=WorkspaceTask, name=FAN_OUT_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run_fan_out_task(workspace_id: int, run_id: int) -> int | None:
    """Write a due run's sends (idempotent: the run is locked, and fanned out once), then kick dispatch."""
    workspace = Workspace.objects.get(pk=workspace_id)
    written = fanout.run_fan_out(workspace=workspace, run_id=run_id)
    if written:
        _enqueue(DISPATCH_TASK, ())
    if written and written >= fanout.ANALYZE_AFTER:
        _enqueue(STATISTICS_TASK, ())
    return written


@shared_task(name=STATISTICS_TASK, ignore_result=True)
def send_statistics_refresh_task() -> None:
    """The send table's statistics, after a large fan-out (``fanout.send_statistics_refresh``)."""
    fanout.send_statistics_refresh()


@shared_task(name=DISPATCH_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def dispatch_kick(slot: int | None = None) -> int:
    """Handle a share of due sends; a chain's link (``slot``) queues its successor after a full share."""
    if slot is not None:
        _redis().set(_slot_key(slot), "1", ex=chain_ttl())
    handled = dispatch.dispatch_due(limit=SHARE)
    if slot is not None:
        if handled >= SHARE:
            _redis().set(_slot_key(slot), "1", ex=chain_ttl())
            _enqueue(DISPATCH_TASK, (slot,))
        else:
            _redis().delete(_slot_key(slot))
    return handled


@shared_task(ignore_result=True)
def campaigns_tick() -> int:
    """Fan out due runs, close finished ones, start dispatch chains in free slots; what it started."""
    now = timezone.now()
    started = 0
    for workspace_id, run_id in fanout.runs_due(now=now):
        _enqueue(FAN_OUT_TASK, (workspace_id, run_id))
        started += 1
    for workspace_id, campaign_id in winner.winners_due(now=now):
        _enqueue(WINNER_TASK, (workspace_id, campaign_id))
        started += 1
    fanout.runs_finish(now=now)
    if dispatch.sends_due_exist(now=now):
        for slot in range(int(getattr(settings, "CAMPAIGN_DISPATCH_CHAINS", 2))):
            if _redis().set(_slot_key(slot), "1", nx=True, ex=chain_ttl()):
                _enqueue(DISPATCH_TASK, (slot,))
                started += 1
    return started


@shared_task(base=WorkspaceTask, name=WINNER_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def winner_decide_task(workspace_id: int, campaign_id: int) -> bool:
    """Choose an automatic winner and write its sends to the rest (idempotent: decided once, locked)."""
    workspace = Workspace.objects.get(pk=workspace_id)
    decided = winner.winner_decide(workspace=workspace, campaign_id=campaign_id) is not None
    if decided:
        _enqueue(DISPATCH_TASK, ())
        # The rest of the audience was just written: usually a large share of it.
        _enqueue(STATISTICS_TASK, ())
    return decided


@shared_task(base=WorkspaceTask, name=ACTIVE_HOURS_TASK, ignore_result=True, acks_late=True)
def active_hours_refresh_task(workspace_id: int) -> int:
    """Count a workspace's new events into its people's active hours (idempotent: a locked watermark)."""
    workspace = Workspace.objects.get(pk=workspace_id)
    return active_hours.active_hours_refresh(workspace=workspace).people


@shared_task(ignore_result=True)
def active_hours_tick() -> int:
    """Beat (hourly): one refresh per workspace."""
    ids = list(Workspace.objects.order_by("pk").values_list("pk", flat=True))
    for workspace_id in ids:
        _enqueue(ACTIVE_HOURS_TASK, (workspace_id,))
    return len(ids)
