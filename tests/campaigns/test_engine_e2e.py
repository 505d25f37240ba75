"""The sending engine end to end: a real Celery worker, a real SMTP sink, the beat's tick run by the test.

Slow: each test starts worker processes (``-m "not slow"`` leaves them out).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns.dispatch import IN_FLIGHT
from campaigns.models import CampaignStatus, Run, Send, SendState, Suppression, Variant
from campaigns.progress import campaign_progress
from campaigns.tasks import campaigns_tick
from core.dburl import database_url
from tests.campaigns.engine_support import audience, broadcast, cap

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def until(check: Callable[[], Any], what: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Workers:
    """Celery workers on a queue of their own, started and SIGKILLed by the test."""

    def __init__(self, settings: Any, smtp: Any, tmp_path: Path, *, claim_seconds: int) -> None:
        self.queue = f"test-campaigns-{uuid.uuid4().hex}"
        settings.CAMPAIGNS_QUEUE = self.queue
        settings.CAMPAIGN_CLAIM_SECONDS = claim_seconds
        self.tmp_path = tmp_path
        self.redis_url = settings.REDIS_URL
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
            "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "CAMPAIGNS_QUEUE": self.queue,
            "CAMPAIGN_CLAIM_SECONDS": str(claim_seconds),
            "EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}",
        }
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.started)}.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", self.queue,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            cwd=Path(__file__).resolve().parents[2], env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.started.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def stop(self) -> None:
        for worker in self.started:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
        redis.Redis.from_url(self.redis_url).delete(self.queue)


@contextmanager
def workers(settings: Any, smtp: Any, tmp_path: Path, *, claim_seconds: int = 120) -> Iterator[Workers]:
    pool = Workers(settings, smtp, tmp_path, claim_seconds=claim_seconds)
    try:
        yield pool
    finally:
        pool.stop()


def beat_until(check: Callable[[], Any], what: str, *, every: float = 0.5, timeout: float = 300) -> Any:
    """Run the beat's tick (as beat would, faster) until ``check`` holds."""
    last = 0.0

    def tick_then_check() -> Any:
        nonlocal last
        if time.monotonic() - last >= every:
            campaigns_tick.apply()
            last = time.monotonic()
        return check()

    return until(tick_then_check, what, timeout)


def within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def test_a_broadcast_to_a_thousand_people_reaches_each_eligible_person_once(workspace, settings, smtp, tmp_path):
    # Given 1,000 people: 100 emailed today by another campaign, 50 without an address, 50 unsubscribed
    traits = []
    for n in range(1000):
        person: dict[str, Any] = {"first_name": f"Name{n}"}
        if not 100 <= n < 150:
            person["email"] = f"p{n}@example.com"
        traits.append(person)
    segment, people = audience(workspace, traits)
    emailed_today = people[:100]
    unsubscribed = people[150:200]
    cap(workspace, max=1, per="1d", seconds=86_400)
    earlier, _ = broadcast(workspace, segments=[segment], status=CampaignStatus.SENT, name="Yesterday's news")
    with workspace_scope(workspace):
        Send.objects.bulk_create(
            Send(workspace=workspace, campaign=earlier, person=p, occurrence="run:0", channel="email",
                 state=SendState.SENT, due_at=timezone.now(), sent_at=timezone.now() - timedelta(hours=3))
            for p in emailed_today
        )  # fmt: skip
        Suppression.objects.bulk_create(
            Suppression(workspace=workspace, address=f"p{people.index(p)}@example.com", reason="unsubscribed")
            for p in unsubscribed
        )
    # and a campaign A/B 50/50 with a 10 % holdout, launched now
    name = "{{ person.traits.first_name }}"
    campaign, run = broadcast(
        workspace,
        segments=[segment],
        holdout=10,
        variants=(
            {"name": "A", "weight": 50, "subject": f"A for {name}", "body": f"<p>Hi {name}</p>"},
            {"name": "B", "weight": 50, "subject": f"B for {name}", "body": f"<p>Hey {name}</p>"},
        ),
    )  # fmt: skip

    # When a worker runs what the beat kicks until the run is over
    with workers(settings, smtp, tmp_path) as pool:
        pool.start()
        beat_until(lambda: Run.objects.unscoped().get(pk=run.pk).finished_at, "the run to finish")

    # Then every send has its outcome
    with workspace_scope(workspace):
        rows = {s.person_id: s for s in Send.objects.filter(campaign=campaign)}
        variants = {v.pk: v.name for v in Variant.objects.filter(campaign=campaign)}
        progress = campaign_progress(workspace, campaign)
        campaign.refresh_from_db()
    index = {p.pk: n for n, p in enumerate(people)}
    held = {pk for pk, s in rows.items() if s.state == SendState.HOLDOUT}
    expected_sent = {p.pk for n, p in enumerate(people) if p.pk not in held and n >= 200}
    assert {pk for pk, s in rows.items() if s.state == SendState.SENT} == expected_sent
    assert {pk for pk, s in rows.items() if s.state == SendState.CAPPED} == {p.pk for p in emailed_today} - held
    assert {pk for pk, s in rows.items() if s.reason == "no email address"} == {p.pk for p in people[100:150]} - held
    assert {pk for pk, s in rows.items() if s.reason == "unsubscribed"} == {p.pk for p in unsubscribed} - held
    assert progress == {
        "total": 1000,
        "sent": len(expected_sent),
        "capped": len({p.pk for p in emailed_today} - held),
        "suppressed": len({p.pk for p in people[100:200]} - held),
        "failed": 0,
        "cancelled": 0,
        "pending": 0,
        "holdout": len(held),
    }
    assert campaign.status == CampaignStatus.SENT
    # and the split is within binomial tolerance
    assert within_binomial(len(held), 1000, 0.10)
    names = Counter(variants[s.variant_id] for s in rows.values() if s.variant_id is not None)
    assert within_binomial(names["A"], 1000 - len(held), 0.5)

    # And each eligible person got exactly one message, with their own name, their variant and a one-click unsubscribe
    messages = smtp.messages
    assert len(messages) == len(expected_sent)
    by_address = {m["To"]: m for m in messages}
    assert len(by_address) == len(messages)
    for pk in expected_sent:
        n = index[pk]
        message = by_address[f"p{n}@example.com"]
        assert message["Subject"] == f"{variants[rows[pk].variant_id]} for Name{n}"
        assert f"Name{n}" in message.get_body(preferencelist=("html",)).get_content()
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # the one-click POST of one of them unsubscribes that address
    some = by_address[f"p{index[min(expected_sent)]}@example.com"]
    url = str(some["List-Unsubscribe"]).strip().removeprefix("<").removesuffix(">")
    answer = Client().post(urlsplit(url).path, {"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    with workspace_scope(workspace):
        assert Suppression.objects.filter(address=f"p{index[min(expected_sent)]}@example.com").exists()


def test_a_worker_killed_three_times_mid_send_neither_duplicates_nor_misses(workspace, settings, smtp, tmp_path):
    # Given a broadcast to 5,000 people
    segment, _ = audience(workspace, [{"email": f"p{n}@example.com"} for n in range(5000)])
    campaign, run = broadcast(workspace, segments=[segment])

    with workers(settings, smtp, tmp_path, claim_seconds=3) as pool:
        # When its worker is SIGKILLed after about 800, 2,000 and 3,300 messages, and restarted each time
        for at in (800, 2000, 3300):
            worker = pool.start()
            beat_until(lambda at=at: len(smtp.messages) >= at, f"{at} messages", every=1)
            pool.kill(worker)
        pool.start()
        beat_until(lambda: Run.objects.unscoped().get(pk=run.pk).finished_at, "the run to finish", every=1)

    # Then, counted at the sink by Message-ID (the send id), each person got one message
    with workspace_scope(workspace):
        rows = list(Send.objects.filter(campaign=campaign).values_list("pk", "state"))
    assert Counter(state for _, state in rows) == {SendState.SENT: 5000}
    ids = Counter(m["Message-ID"] for m in smtp.messages)
    expected = {f"<send-{pk}.{workspace.pk}@{urlsplit(settings.PUBLIC_URL).hostname}>" for pk, _ in rows}
    assert set(ids) == expected
    assert {m["To"] for m in smtp.messages} == {f"p{n}@example.com" for n in range(5000)}
    # and at most IN_FLIGHT messages per kill reached the sink twice: handed to the sender threads and
    # accepted by SMTP, their worker killed before the mark; the provider deduplicates them by
    # Message-ID (the raw count is reported)
    raw = len(smtp.messages)
    print(f"raw messages at the sink: {raw} for 5000 sends ({raw - 5000} repeated, {IN_FLIGHT} possible per kill)")
    assert raw - 5000 <= 3 * IN_FLIGHT
