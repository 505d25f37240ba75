"""Webhooks of segment entries and exits: recording, signing, sending, retrying, refusing
private targets, and their settings pages. Deliveries go to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
import redis
import yaml
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLogEntry, Role
from accounts.tenancy import workspace_scope
from config.celery import app as celery_app
from core import signing, transport
from core.dburl import database_url
from segmentation import feed
from segmentation.models import (
    ChangeFeedCursor,
    DeliveryStatus,
    MembershipChange,
    MembershipChangeKind,
    Segment,
    WebhookDelivery,
    WebhookEvent,
    WebhookSegment,
    WebhookSubscription,
)
from segmentation.webhooks import services
from segmentation.webhooks.tasks import webhook_deliver, webhooks_sweep
from tests import factories
from tests.accounts.support import api, logged_in_client, state
from tests.accounts.test_security import _dump_database
from tracking.models import Identity, IdentityKind, Person

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


# --- A real receiving server ------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers ``status``."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    location: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cohortly"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _receiver()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    yield from _receiver()


def _receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            me = holder["r"]
            me.requests.append(Received(self.path, dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(me.status)
            if me.location:
                self.send_header("Location", me.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allow_private(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture
def eager():
    """Tasks run in the caller, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


# --- Builders -------------------------------------------------------------------------


def _segment(workspace, name="Churn risk") -> Segment:
    with workspace_scope(workspace):
        return Segment.objects.create(workspace=workspace, name=name, is_static=True)


def _person(workspace, user_id="u-42", anonymous_ids=("anon-1",), traits=None) -> Person:
    with workspace_scope(workspace):
        person = Person.objects.create(
            workspace=workspace, user_id=user_id, traits=traits or {"plan": "pro"}, first_seen=AT, last_seen=AT
        )
        Identity.objects.create(workspace=workspace, person=person, kind=IdentityKind.USER_ID, value=user_id)
        for value in anonymous_ids:
            Identity.objects.create(workspace=workspace, person=person, kind=IdentityKind.ANONYMOUS_ID, value=value)
        return person


def _subscribe(workspace, url, *, segments=None, on_entered=True, on_exited=True) -> tuple[WebhookSubscription, str]:
    with workspace_scope(workspace):
        return services.webhook_create(
            workspace=workspace, actor=None, url=url, segments=segments, on_entered=on_entered, on_exited=on_exited
        )


def _raw_subscription(workspace, url) -> WebhookSubscription:
    """A row written directly, as if saved while private targets were allowed."""
    salt = signing.new_secret_salt()
    with workspace_scope(workspace):
        return WebhookSubscription.objects.create(
            workspace=workspace, url=url, secret_salt=salt, secret_hint=signing.subscription_secret(salt)[:10]
        )


def _pending(workspace, subscription, *, person_id=None, segment_id=None) -> WebhookDelivery:
    now = timezone.now()
    with workspace_scope(workspace):
        return WebhookDelivery.objects.create(
            workspace=workspace,
            subscription=subscription,
            event=WebhookEvent.ENTERED,
            segment_id=segment_id,
            person_id=person_id,
            at=AT,
            next_attempt_at=now,
        )


def _deliver(workspace, delivery) -> WebhookDelivery:
    webhook_deliver(workspace.pk, [delivery.pk])
    with workspace_scope(workspace):
        return WebhookDelivery.objects.get(pk=delivery.pk)


def _changes(workspace, segment, *, entered=(), exited=(), at=AT) -> list[int]:
    """Entries and exits recorded as the membership writers record them; their ids."""
    kinds = [(MembershipChangeKind.ENTERED, entered), (MembershipChangeKind.EXITED, exited)]
    with workspace_scope(workspace):
        rows = MembershipChange.objects.bulk_create(
            MembershipChange(workspace=workspace, segment_id=segment.pk, person_id=person_id, kind=kind, at=at)
            for kind, people in kinds
            for person_id in people
        )
    return [row.pk for row in rows]


def _drain(workspace, capture) -> feed.DrainResult:
    """The feed's drain, as its task runs it; what it leaves for after the commit runs too."""
    with workspace_scope(workspace), capture(execute=True):
        return feed.feed_drain(workspace=workspace)


def _verify(secret: str, received: Received) -> bool:
    parts = dict(item.split("=", 1) for item in received.headers["Cohortly-Signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


# --- Sending --------------------------------------------------------------------------


def test_a_delivery_reaches_the_endpoint_signed_with_the_secret(
    workspace, receiver, allow_private, eager, django_capture_on_commit_callbacks
):
    # Given a subscription to a segment, and a person with ids and traits
    segment = _segment(workspace)
    person = _person(workspace, user_id="u-42", anonymous_ids=("anon-1", "anon-2"), traits={"plan": "pro"})
    subscription, secret = _subscribe(workspace, receiver.url, segments=[segment])

    # When the person enters the segment and the feed is drained
    [change_id] = _changes(workspace, segment, entered=[person.pk])
    _drain(workspace, django_capture_on_commit_callbacks)

    # Then the endpoint got one POST whose signature verifies with the secret
    [received] = receiver.requests
    with workspace_scope(workspace):
        delivery = WebhookDelivery.objects.get()
    assert received.path == "/hooks/cohortly"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Cohortly-Delivery"] == str(delivery.pk)
    assert received.headers["Cohortly-Event"] == "segment.entered"
    assert _verify(secret, received)
    assert not _verify(secret + "x", received)
    timestamp = int(received.headers["Cohortly-Signature"].split(",")[0].removeprefix("t="))
    assert abs(timestamp - timezone.now().timestamp()) < 30
    assert json.loads(received.body) == {
        "type": "segment.entered",
        "workspace": workspace.pk,
        "segment": {"id": segment.pk, "name": "Churn risk"},
        "person": {
            "id": person.pk,
            "user_id": "u-42",
            "anonymous_ids": ["anon-1", "anon-2"],
            "traits": {"plan": "pro"},
        },
        "at": "2026-11-20T09:30:00+00:00",
        "id": delivery.pk,
    }
    # And the log says delivered, in one attempt
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        DeliveryStatus.DELIVERED,
        1,
        200,
        "",
    )
    assert delivery.delivered_at is not None
    assert delivery.change_id == change_id
    assert subscription.secret_hint == secret[:10]


def test_a_delivered_delivery_is_not_sent_again(workspace, receiver, allow_private):
    subscription, _ = _subscribe(workspace, receiver.url)
    delivery = _deliver(workspace, _pending(workspace, subscription))
    assert delivery.status == DeliveryStatus.DELIVERED

    again = _deliver(workspace, delivery)

    assert len(receiver.requests) == 1
    assert (again.status, again.attempts) == (DeliveryStatus.DELIVERED, 1)


def test_a_500_answer_schedules_retries_with_backoff_then_fails(workspace, receiver, allow_private):
    # Given an endpoint answering 500
    receiver.status = 500
    subscription, _ = _subscribe(workspace, receiver.url)
    delivery = _pending(workspace, subscription)

    # When it is sent
    before = timezone.now()
    delivery = _deliver(workspace, delivery)

    # Then the attempt is recorded and a retry is due in a minute
    assert len(receiver.requests) == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        DeliveryStatus.PENDING,
        1,
        500,
        "HTTP 500",
    )
    assert before + timedelta(seconds=60) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=60)

    # And sending before then does nothing
    assert _deliver(workspace, delivery).attempts == 1
    assert len(receiver.requests) == 1

    # And each further failure waits longer: 5 min, 30 min, 2 h, 6 h, then the delivery fails
    waits = []
    for _ in range(5):
        with workspace_scope(workspace):
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        sent_at = timezone.now()
        delivery = _deliver(workspace, delivery)
        if delivery.status == DeliveryStatus.PENDING:
            waits.append(round((delivery.next_attempt_at - sent_at).total_seconds() / 60))
    assert waits == [5, 30, 120, 360]
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == (DeliveryStatus.FAILED, 6, 6)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(workspace, receiver, other_receiver, allow_private):
    # Given an endpoint that redirects to another server
    receiver.status = 302
    receiver.location = other_receiver.url
    subscription, _ = _subscribe(workspace, receiver.url)

    delivery = _deliver(workspace, _pending(workspace, subscription))

    # Then the redirect target received nothing, and the attempt failed
    assert len(receiver.requests) == 1
    assert other_receiver.requests == []
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 302)
    assert delivery.last_error == "HTTP 302: redirects are not followed"


def test_any_2xx_is_success(workspace, receiver, allow_private):
    receiver.status = 204
    subscription, _ = _subscribe(workspace, receiver.url)

    delivery = _deliver(workspace, _pending(workspace, subscription))

    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 204)


def test_an_unreachable_endpoint_is_retried(workspace, allow_private):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subscription, _ = _subscribe(workspace, f"http://127.0.0.1:{port}/closed")

    delivery = _deliver(workspace, _pending(workspace, subscription))

    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, None)
    assert delivery.last_error.startswith("ConnectionRefusedError")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_target_is_refused_at_send_time(workspace, receiver, settings, host):
    # Given private targets are not allowed, and a subscription row pointing at this machine
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    subscription = _raw_subscription(workspace, receiver.url.replace("127.0.0.1", host))

    # When a delivery is sent
    delivery = _deliver(workspace, _pending(workspace, subscription))

    # Then nothing was received and the delivery failed for good, saying why
    assert receiver.requests == []
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.FAILED, 1, None)
    assert delivery.last_error.startswith("Refused: Webhooks cannot be sent to")


def test_a_host_name_resolving_to_loopback_is_refused_at_send_time(workspace, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    name = socket.gethostname()
    resolved = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    assert resolved
    assert all(transport.address_refused(transport.ipaddress.ip_address(a)) for a in resolved)
    subscription = _raw_subscription(workspace, receiver.url.replace("127.0.0.1", name))

    delivery = _deliver(workspace, _pending(workspace, subscription))

    assert receiver.requests == []
    assert delivery.status == DeliveryStatus.FAILED
    assert f"({name} is " in delivery.last_error


# --- Target rules ---------------------------------------------------------------------

REFUSED_URLS = [
    ("http://127.0.0.1:8000/hook", "private, loopback or link-local"),
    ("http://127.9.9.9/hook", "private, loopback or link-local"),
    ("http://2130706433/hook", "private, loopback or link-local"),
    ("http://localhost:8000/hook", "own network (localhost)"),
    ("http://api.localhost/hook", "own network (localhost)"),
    ("http://10.1.2.3/hook", "private, loopback or link-local"),
    ("http://172.16.0.1/hook", "private, loopback or link-local"),
    ("http://192.168.1.10/hook", "private, loopback or link-local"),
    ("http://169.254.169.254/latest/meta-data", "private, loopback or link-local"),
    ("http://100.64.0.1/hook", "private, loopback or link-local"),
    ("http://0.0.0.0/hook", "private, loopback or link-local"),
    ("http://224.0.0.1/hook", "private, loopback or link-local"),
    ("http://[::1]/hook", "private, loopback or link-local"),
    ("http://[::]/hook", "private, loopback or link-local"),
    ("http://[fd12:3456::1]/hook", "private, loopback or link-local"),
    ("http://[fe80::1]/hook", "private, loopback or link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "private, loopback or link-local"),
    ("http://[::ffff:8.8.8.8]/hook", "private, loopback or link-local"),
    ("http://[64:ff9b::a00:1]/hook", "private, loopback or link-local"),
    ("ftp://93.184.215.14/hook", "Only http:// and https://"),
    ("file:///etc/passwd", "Only http:// and https://"),
    ("https://user:pw@93.184.215.14/hook", "Remove the user name and password"),
    ("https:///hook", "Enter a URL with a host name."),
    ("http://93.184.215.14:99999/hook", "Enter a valid URL."),
]


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_the_service_refuses_targets_that_are_not_public_http(workspace, url, message):
    with pytest.raises(services.ValidationError) as raised:
        _subscribe(workspace, url)

    [error] = raised.value.message_dict["url"]
    assert message in error
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hooks/cohortly", "http://93.184.215.14:8080/h?x=1", "https://[2606:4700::1111]/"]
)
def test_public_addresses_are_accepted(workspace, url):
    subscription, secret = _subscribe(workspace, url)

    assert subscription.url == url
    assert secret.startswith("whsec_")


def test_allowing_private_targets_accepts_loopback(workspace, allow_private):
    subscription, _ = _subscribe(workspace, "http://localhost:9000/hook")

    assert subscription.url == "http://localhost:9000/hook"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.1.1",
        "100.100.0.1",
        "::1",
        "fc00::1",
        "fe80::9",
    ],
)
def test_address_refused(address):
    assert transport.address_refused(transport.ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_address_not_refused(address):
    assert not transport.address_refused(transport.ipaddress.ip_address(address))


# --- The change feed's consumer ------------------------------------------------------


def test_changes_create_deliveries_only_for_matching_subscriptions(
    workspace, receiver, allow_private, eager, django_capture_on_commit_callbacks
):
    # Given subscriptions listening to different segments and events, and another workspace's
    churn, vip = _segment(workspace, "Churn risk"), _segment(workspace, "VIP")
    p1, p2, p3 = (_person(workspace, user_id=f"u{i}", anonymous_ids=()) for i in range(3))
    every, _ = _subscribe(workspace, receiver.url + "/every")
    churn_entries, _ = _subscribe(workspace, receiver.url + "/churn", segments=[churn], on_exited=False)
    vip_only, _ = _subscribe(workspace, receiver.url + "/vip", segments=[vip])
    exits, _ = _subscribe(workspace, receiver.url + "/exits", on_entered=False)
    elsewhere = factories.WorkspaceFactory()
    foreign, _ = _subscribe(elsewhere, receiver.url + "/foreign")

    # When p1 and p2 enter churn and p3 leaves it
    _changes(workspace, churn, entered=[p1.pk, p2.pk], exited=[p3.pk])
    _drain(workspace, django_capture_on_commit_callbacks)

    # Then exactly the matching deliveries exist, and were sent
    with workspace_scope(workspace):
        made = set(WebhookDelivery.objects.values_list("subscription_id", "event", "person_id", "segment_id", "status"))
    entered, exited, sent = WebhookEvent.ENTERED, WebhookEvent.EXITED, DeliveryStatus.DELIVERED
    assert made == {
        (every.pk, entered, p1.pk, churn.pk, sent),
        (every.pk, entered, p2.pk, churn.pk, sent),
        (every.pk, exited, p3.pk, churn.pk, sent),
        (churn_entries.pk, entered, p1.pk, churn.pk, sent),
        (churn_entries.pk, entered, p2.pk, churn.pk, sent),
        (exits.pk, exited, p3.pk, churn.pk, sent),
    }
    with workspace_scope(elsewhere):
        assert list(WebhookDelivery.objects.values_list("subscription_id", flat=True)) == []
    assert vip_only.pk not in {row[0] for row in made}
    assert foreign.pk not in {row[0] for row in made}
    got = sorted((r.path, json.loads(r.body)["type"], json.loads(r.body)["person"]["id"]) for r in receiver.requests)
    assert got == sorted(
        [
            ("/hooks/cohortly/every", "segment.entered", p1.pk),
            ("/hooks/cohortly/every", "segment.entered", p2.pk),
            ("/hooks/cohortly/every", "segment.exited", p3.pk),
            ("/hooks/cohortly/churn", "segment.entered", p1.pk),
            ("/hooks/cohortly/churn", "segment.entered", p2.pk),
            ("/hooks/cohortly/exits", "segment.exited", p3.pk),
        ]
    )


def test_changes_without_subscriptions_cost_one_query(workspace, django_assert_num_queries):
    segment = _segment(workspace)
    _changes(workspace, segment, entered=[1, 2, 3], exited=[4])
    with workspace_scope(workspace), transaction.atomic():
        batch = feed.feed_read(workspace=workspace, consumer="webhooks", limit=10)

        with django_assert_num_queries(1):
            services.deliveries_from_changes(workspace=workspace, changes=batch.changes)

    with workspace_scope(workspace):
        assert WebhookDelivery.objects.count() == 0


@pytest.fixture
def broker_down():
    """The broker is unreachable."""
    saved = celery_app.conf.broker_url
    _reset_connections()
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    yield
    _reset_connections()
    celery_app.conf.broker_url = saved


def _reset_connections() -> None:
    """Forget the cached pools so the next publish connects to ``broker_url`` anew.

    Not closed: kombu keeps producer pools per broker URL, and the real broker's is used again after the test.
    """
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_with_the_broker_down_deliveries_stay_pending_for_the_sweep(
    workspace, receiver, allow_private, broker_down, django_capture_on_commit_callbacks
):
    # Given a subscription and an unreachable broker
    segment = _segment(workspace)
    person = _person(workspace)
    _subscribe(workspace, receiver.url)

    # When a person enters: the drain does not raise
    _changes(workspace, segment, entered=[person.pk])
    _drain(workspace, django_capture_on_commit_callbacks)

    # Then the delivery waits, not queued, for the sweep
    with workspace_scope(workspace):
        delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.queued_at) == (DeliveryStatus.PENDING, 0, None)
    assert receiver.requests == []


def test_the_sweep_sends_due_deliveries_and_takes_back_interrupted_ones(workspace, receiver, allow_private, eager):
    # Given a delivery never enqueued, one interrupted mid-send long ago, and one not yet due
    subscription, _ = _subscribe(workspace, receiver.url)
    never_queued = _pending(workspace, subscription)
    interrupted = _pending(workspace, subscription)
    later = _pending(workspace, subscription)
    long_ago = timezone.now() - timedelta(minutes=30)
    with workspace_scope(workspace):
        WebhookDelivery.objects.filter(pk=interrupted.pk).update(
            status=DeliveryStatus.SENDING, attempts=1, claimed_at=long_ago
        )
        WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    # When the sweep runs
    sent = webhooks_sweep()

    # Then the due ones were sent, the later one waits
    assert sent == 2
    with workspace_scope(workspace):
        rows = dict(WebhookDelivery.objects.values_list("pk", "status"))
        attempts = WebhookDelivery.objects.get(pk=interrupted.pk).attempts
    assert rows == {
        never_queued.pk: DeliveryStatus.DELIVERED,
        interrupted.pk: DeliveryStatus.DELIVERED,
        later.pk: DeliveryStatus.PENDING,
    }
    assert attempts == 2
    assert sorted(int(r.headers["Cohortly-Delivery"]) for r in receiver.requests) == sorted(
        [never_queued.pk, interrupted.pk]
    )


def test_the_secret_is_not_stored(workspace):
    _, secret = _subscribe(workspace, "https://93.184.215.14/hooks")

    dump = _dump_database()

    assert "93.184.215.14" in dump
    assert secret not in dump
    assert secret[len("whsec_") :] not in dump


# --- Settings pages -------------------------------------------------------------------


def test_admin_creates_a_webhook_and_sees_the_secret_once(workspace, owner, allow_private, receiver):
    churn = _segment(workspace, "Churn risk")
    client = logged_in_client(owner)

    response = client.post(
        reverse("settings_webhooks"),
        {"url": receiver.url, "description": "CRM", "events": "entered", "scope": "chosen", "segments": [churn.pk]},
    )

    with workspace_scope(workspace):
        subscription = WebhookSubscription.objects.get()
        chosen = list(WebhookSegment.objects.values_list("segment_id", flat=True))
        audit = list(AuditLogEntry.objects.values_list("action", "target", "details"))
    detail = reverse("settings_webhook_detail", args=[subscription.pk])
    assert response.status_code == 302
    assert response["Location"] == detail
    assert (subscription.url, subscription.description, subscription.all_segments) == (receiver.url, "CRM", False)
    assert (subscription.on_entered, subscription.on_exited) == (True, False)
    assert chosen == [churn.pk]
    # The audit log, which every member reads, records where deliveries go, not the whole URL
    assert audit == [
        ("webhook.created", f"http://127.0.0.1:{receiver.server.server_address[1]}/…", {"webhook": subscription.pk})
    ]
    page = client.get(detail)
    secret = page.context["created_secret"]
    assert secret == signing.subscription_secret(subscription.secret_salt)
    assert secret in page.content.decode()
    again = client.get(detail)
    assert again.context["created_secret"] is None
    assert secret not in again.content.decode()
    listing = client.get(reverse("settings_webhooks")).content.decode()
    assert receiver.url in listing
    assert "Churn risk" in listing
    assert secret not in listing


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "http://127.0.0.1:8000/h"}, "url", "private, loopback or link-local"),
        ({"url": "http://localhost/h"}, "url", "own network (localhost)"),
        ({"url": "http://169.254.169.254/"}, "url", "private, loopback or link-local"),
        ({"url": "http://[::1]/"}, "url", "private, loopback or link-local"),
        ({"url": "javascript:alert(1)"}, "url", "Only http:// and https://"),
        ({"url": ""}, "url", "required"),
        ({"url": "https://93.184.215.14/", "scope": "chosen"}, "segments", "Choose at least one segment"),
        ({"url": "https://93.184.215.14/", "events": "sometimes"}, "events", "Select a valid choice"),
    ],
)
def test_the_form_refuses_bad_input_inline_and_saves_nothing(workspace, owner, data, field, message):
    client = logged_in_client(owner)
    body = {"events": "both", "scope": "all", **data}

    response = client.post(reverse("settings_webhooks"), body)

    assert response.status_code == 400
    errors = response.context["form"].errors[field]
    assert any(message in error for error in errors), errors
    assert message in response.content.decode()
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0
        assert AuditLogEntry.objects.filter(action="webhook.created").count() == 0


def test_a_segment_of_another_workspace_cannot_be_chosen(workspace, owner):
    foreign = _segment(factories.WorkspaceFactory(), "Theirs")
    client = logged_in_client(owner)

    response = client.post(
        reverse("settings_webhooks"),
        {"url": "https://93.184.215.14/", "events": "both", "scope": "chosen", "segments": [foreign.pk]},
    )

    assert response.status_code == 400
    assert "segments" in response.context["form"].errors
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0


def test_test_delivery_is_sent_and_logged(
    workspace, owner, receiver, allow_private, eager, django_capture_on_commit_callbacks
):
    subscription, secret = _subscribe(workspace, receiver.url)
    client = logged_in_client(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("settings_webhook_test", args=[subscription.pk]))

    assert response.status_code == 302
    [received] = receiver.requests
    body = json.loads(received.body)
    assert (body["type"], body["segment"], body["person"], body["workspace"]) == (
        "webhook.test",
        None,
        None,
        workspace.pk,
    )
    assert _verify(secret, received)
    page = client.get(reverse("settings_webhook_detail", args=[subscription.pk])).content.decode()
    assert f"#{body['id']}" in page
    assert "Delivered" in page


def test_rotating_the_secret_shows_the_new_one_once(workspace, owner):
    subscription, old = _subscribe(workspace, "https://93.184.215.14/")
    client = logged_in_client(owner)

    response = client.post(reverse("settings_webhook_rotate", args=[subscription.pk]), follow=True)

    new = response.context["created_secret"]
    subscription.refresh_from_db()
    assert new != old
    assert new == signing.subscription_secret(subscription.secret_salt)
    assert subscription.secret_rotated_at is not None


def test_deleting_a_webhook_removes_it_and_its_log(workspace, owner):
    subscription, _ = _subscribe(workspace, "https://93.184.215.14/")
    _pending(workspace, subscription)
    client = logged_in_client(owner)

    response = client.post(reverse("settings_webhook_delete", args=[subscription.pk]))

    assert response.status_code == 302
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0
        assert WebhookDelivery.objects.count() == 0
        assert AuditLogEntry.objects.filter(action="webhook.deleted").count() == 1


def test_the_delivery_log_is_paginated_with_pinned_queries(workspace, owner, django_assert_num_queries):
    segment = _segment(workspace, "Churn risk")
    subscription, _ = _subscribe(workspace, "https://93.184.215.14/")
    for _ in range(30):
        _pending(workspace, subscription, person_id=7, segment_id=segment.pk)
    client = logged_in_client(owner)
    url = reverse("settings_webhook_detail", args=[subscription.pk])
    client.get(url)

    with django_assert_num_queries(9):
        first = client.get(url)
    second = client.get(url + "?page=2")

    assert len(first.context["deliveries"]) == 25
    assert len(second.context["deliveries"]) == 5
    assert "Page 1 of 2" in first.content.decode()
    assert "Churn risk" in first.content.decode()
    assert "Pending" in first.content.decode()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_viewers_read_but_cannot_change_webhooks(workspace, role):
    subscription, _ = _subscribe(workspace, "https://93.184.215.14/")
    client = logged_in_client(factories.member(workspace, role=role))

    listing = client.get(reverse("settings_webhooks"))
    detail = client.get(reverse("settings_webhook_detail", args=[subscription.pk]))
    create = client.post(reverse("settings_webhooks"), {"url": "https://93.184.215.15/", "events": "both"})
    test = client.post(reverse("settings_webhook_test", args=[subscription.pk]))
    rotate = client.post(reverse("settings_webhook_rotate", args=[subscription.pk]))
    delete = client.post(reverse("settings_webhook_delete", args=[subscription.pk]))

    assert (listing.status_code, detail.status_code) == (200, 200)
    assert "Add a webhook" not in listing.content.decode()
    assert "Send a test delivery" not in detail.content.decode()
    assert [r.status_code for r in (create, test, rotate, delete)] == [403, 403, 403, 403]
    with workspace_scope(workspace):
        assert list(WebhookSubscription.objects.values_list("pk", "secret_salt")) == [
            (subscription.pk, subscription.secret_salt)
        ]
        assert WebhookDelivery.objects.count() == 0


def test_a_host_name_is_sent_as_the_host_header_to_the_checked_address(workspace, receiver, allow_private):
    # Given a URL naming this machine by its host name (allowed here)
    name = socket.gethostname()
    port = receiver.server.server_address[1]
    subscription, _ = _subscribe(workspace, f"http://{name}:{port}/by-name?source=cohortly")

    delivery = _deliver(workspace, _pending(workspace, subscription))

    # Then the request reached the resolved address with the URL's host, path and query
    [received] = receiver.requests
    assert delivery.status == DeliveryStatus.DELIVERED
    assert received.headers["Host"] == f"{name}:{port}"
    assert received.path == "/by-name?source=cohortly"
    assert received.headers["User-Agent"] == "Cohortly-Webhooks/1"


# --- REST API -------------------------------------------------------------------------


def test_api_creates_a_webhook_and_returns_the_secret_once(workspace):
    churn = _segment(workspace, "Churn risk")
    _, key = factories.api_key(workspace)

    created = api(
        Client(),
        "POST",
        reverse("webhook-list"),
        {"url": "https://93.184.215.14/hooks", "events": ["segment.exited"], "segments": [churn.pk]},
        key=key,
    )

    assert created.status_code == 201, created.content
    body = created.json()
    with workspace_scope(workspace):
        subscription = WebhookSubscription.objects.get()
    assert body["secret"] == signing.subscription_secret(subscription.secret_salt)
    assert {k: body[k] for k in ("id", "url", "events", "segments", "secret_hint")} == {
        "id": subscription.pk,
        "url": "https://93.184.215.14/hooks",
        "events": ["segment.exited"],
        "segments": [churn.pk],
        "secret_hint": body["secret"][:10],
    }
    listed = api(Client(), "GET", reverse("webhook-list"), key=key).json()
    assert [(w["id"], w["segments"], w["events"]) for w in listed["results"]] == [
        (subscription.pk, [churn.pk], ["segment.exited"])
    ]
    assert "secret" not in listed["results"][0]
    detail = api(Client(), "GET", reverse("webhook-detail", args=[subscription.pk]), key=key).json()
    assert "secret" not in detail
    assert detail["segments"] == [churn.pk]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "http://127.0.0.1/h"}, "url", "private, loopback or link-local"),
        ({"url": "http://localhost/h"}, "url", "own network (localhost)"),
        ({"url": "gopher://93.184.215.14/"}, "url", "Only http:// and https://"),
        ({"url": "https://93.184.215.14/", "events": []}, "events", "at least 1"),
        ({"url": "https://93.184.215.14/", "events": ["segment.moved"]}, "events[0]", "not a valid choice"),
        ({"url": "https://93.184.215.14/", "segments": [999999]}, "segments", "No segment with id 999999."),
        ({"url": "https://93.184.215.14/", "secret": "mine"}, "secret", "Unknown field."),
    ],
)
def test_api_refuses_bad_input_naming_the_field(workspace, body, field, message):
    _, key = factories.api_key(workspace)

    response = api(Client(), "POST", reverse("webhook-list"), body, key=key)

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert any(message in error for error in errors[field]), errors
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0


def _named(workspace, description):
    with workspace_scope(workspace):
        return services.webhook_create(
            workspace=workspace,
            actor=None,
            url="https://93.184.215.14/",
            segments=None,
            on_entered=True,
            on_exited=True,
            description=description,
        )[0]


@pytest.mark.parametrize("look_alike", ["crm sync", "CRM  sync", "CRM sync\u200b", "\u202eCRM SYNC"])
def test_a_webhook_name_in_another_form_is_refused_by_api_and_form_and_nothing_written(workspace, owner, look_alike):
    _named(workspace, "CRM sync")
    _, key = factories.api_key(workspace)
    before = state(workspace)
    message = (
        "A webhook named 'CRM sync' already exists in this workspace."
        " Names that differ only in case, spacing or invisible characters count as the same."
    )

    by_api = api(
        Client(), "POST", reverse("webhook-list"), {"url": "https://93.184.215.15/", "description": look_alike}, key=key
    )
    by_form = logged_in_client(owner).post(
        reverse("settings_webhooks"),
        {"url": "https://93.184.215.15/", "description": look_alike, "events": "both", "scope": "all"},
    )

    assert by_api.status_code == 400
    assert by_api.json()["errors"] == {"description": [message]}
    assert by_form.status_code == 400
    assert by_form.context["form"].errors["description"] == [message]
    assert state(workspace) == before


def test_webhook_names_are_stored_normalised_and_may_be_left_empty_by_many(workspace):
    named = _named(workspace, "\u202e Zapier\u00a0 hook\u200b")
    unnamed = [_named(workspace, ""), _named(workspace, " \u200b ")]

    assert named.description == "Zapier hook"
    assert [subscription.description for subscription in unnamed] == ["", ""]


def test_api_refuses_another_workspaces_segment(workspace):
    foreign = _segment(factories.WorkspaceFactory(), "Theirs")
    _, key = factories.api_key(workspace)

    response = api(
        Client(), "POST", reverse("webhook-list"), {"url": "https://93.184.215.14/", "segments": [foreign.pk]}, key=key
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"segments": [f"No segment with id {foreign.pk}."]}
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0


def test_api_deletes_a_webhook(workspace):
    subscription, _ = _subscribe(workspace, "https://93.184.215.14/")
    _, key = factories.api_key(workspace)

    response = api(Client(), "DELETE", reverse("webhook-detail", args=[subscription.pk]), key=key)

    assert response.status_code == 204
    with workspace_scope(workspace):
        assert WebhookSubscription.objects.count() == 0


def test_an_endpoint_dripping_its_answer_is_cut_off_at_the_deadline():
    # Given a server that answers one header byte every 0.1 s, forever
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.is_set():
                try:
                    conn.sendall(b"a")
                except OSError:
                    return
                stop.wait(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"

    # When a webhook is posted with a 0.5 s deadline (each read alone would never time out)
    try:
        with pytest.raises(TimeoutError) as raised:
            transport.post(url, b"{}", {}, allow_private=True, timeout=0.5)
    finally:
        stop.set()
        listener.close()

    # Then the whole exchange is cut off
    assert str(raised.value) == "no complete answer within 0.5 s"


# --- URLs that could never be sent are refused when saved ------------------------------------

CONTROL = "The URL must not contain line breaks, tabs or other control characters."
SPACES = "The URL must not contain spaces; write a space as %20."
NOT_A_URI = (
    'Enter a valid URL: characters such as < > " { } | \\ ^ ` and non-ASCII letters must be '
    "percent-encoded (%XX), and a % must be followed by two hex digits."
)
UNSENDABLE_URLS = [
    pytest.param("https://93.184.215.14/hook\r\nX-Injected: 1", CONTROL, id="crlf-inside"),
    pytest.param("https://93.184.215.14/hook\n", CONTROL, id="trailing-lf"),
    pytest.param("https://93.184.215.14/hook\r", CONTROL, id="trailing-cr"),
    pytest.param("https://93.184.215.14/ho\tok", CONTROL, id="tab"),
    pytest.param("https://93.184.215.14/ho\x01ok", CONTROL, id="control"),
    pytest.param("https://93.184.215.14/ho\x7fok", CONTROL, id="del"),
    pytest.param("https://93.184.215.14/my hook", SPACES, id="space-in-path"),
    pytest.param("https://exa mple.com/", SPACES, id="space-in-host"),
    pytest.param("https://93.184.215.14/a\u00a0b", SPACES, id="no-break-space"),
    pytest.param("https://93.184.215.14/<script>", NOT_A_URI, id="angle-brackets"),
    pytest.param('https://93.184.215.14/"q"', NOT_A_URI, id="double-quote"),
    pytest.param("https://93.184.215.14/{id}", NOT_A_URI, id="braces"),
    pytest.param("https://93.184.215.14/a|b", NOT_A_URI, id="pipe"),
    pytest.param("https://93.184.215.14/a\\b", NOT_A_URI, id="backslash"),
    pytest.param("https://93.184.215.14/a^b", NOT_A_URI, id="caret"),
    pytest.param("https://93.184.215.14/caf\u00e9", NOT_A_URI, id="non-ascii"),
    pytest.param("https://93.184.215.14/100%", NOT_A_URI, id="bare-percent"),
    pytest.param("https://93.184.215.14/%zz", NOT_A_URI, id="bad-percent-escape"),
]


@pytest.mark.parametrize(("url", "message"), UNSENDABLE_URLS)
def test_the_api_refuses_a_url_that_could_never_be_sent(workspace, url, message):
    _, key = factories.api_key(workspace)
    before = state(workspace)

    response = api(Client(), "POST", reverse("webhook-list"), {"url": url}, key=key)

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {"url": [message]}
    assert state(workspace) == before


@pytest.mark.parametrize(("url", "message"), UNSENDABLE_URLS)
def test_the_form_refuses_a_url_that_could_never_be_sent_inline(workspace, owner, url, message):
    client = logged_in_client(owner)
    before = state(workspace)

    response = client.post(reverse("settings_webhooks"), {"url": url, "events": "both", "scope": "all"})

    assert response.status_code == 400
    assert response.context["form"].errors["url"] == [message]
    assert 'class="field-error"' in response.content.decode()
    assert state(workspace) == before


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://93.184.215.14/caf%C3%A9?q=a%20b&x=%7Bid%7D", "https://93.184.215.14/caf%C3%A9?q=a%20b&x=%7Bid%7D"),
        ("https://93.184.215.14/h-._~!$&'()*+,;=:@/?/x", "https://93.184.215.14/h-._~!$&'()*+,;=:@/?/x"),
        ("  https://93.184.215.14/pasted  ", "https://93.184.215.14/pasted"),
    ],
)
def test_encoded_urls_are_accepted_and_surrounding_spaces_dropped(workspace, given, stored):
    _, key = factories.api_key(workspace)

    response = api(Client(), "POST", reverse("webhook-list"), {"url": given}, key=key)

    assert response.status_code == 201, response.content
    with workspace_scope(workspace):
        assert list(WebhookSubscription.objects.values_list("url", flat=True)) == [stored]


def test_the_schema_says_a_webhook_url_is_a_uri(tmp_path, db):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--fail-on-warn", "--file", str(target))

    schemas = yaml.safe_load(target.read_text())["components"]["schemas"]
    assert schemas["WebhookCreate"]["properties"]["url"]["format"] == "uri"
    assert schemas["WebhookCreate"]["properties"]["url"]["maxLength"] == 2000
    assert "format" not in schemas["Webhook"]["properties"]["url"]  # viewers read "https://host/…"


# --- What viewers read of a webhook URL ------------------------------------------------------

SLACK = "https://hooks.slack.com/services/T0001/B0002/s3cr3tT0k3n"
SLACK_HOST = "https://hooks.slack.com/…"


def _slack_hook(workspace) -> tuple[WebhookSubscription, Segment]:
    segment = _segment(workspace, "Churn risk")
    return _raw_subscription(workspace, SLACK), segment


@pytest.mark.parametrize(
    ("role", "shown"),
    [(Role.VIEWER, SLACK_HOST), (Role.MEMBER, SLACK), (Role.ADMIN, SLACK), (Role.OWNER, SLACK)],
)
def test_the_api_shows_viewers_only_the_host_of_a_webhook_url(workspace, role, shown):
    subscription, _ = _slack_hook(workspace)
    client = logged_in_client(factories.member(workspace, role=role))

    listed = api(client, "GET", reverse("webhook-list"))
    detail = api(client, "GET", reverse("webhook-detail", args=[subscription.pk]))

    assert (listed.status_code, detail.status_code) == (200, 200)
    assert [w["url"] for w in listed.json()["results"]] == [shown]
    assert detail.json()["url"] == shown
    if shown == SLACK_HOST:
        assert "s3cr3t" not in listed.content.decode() + detail.content.decode()


def test_an_api_key_without_a_membership_reads_the_whole_url(workspace):
    subscription, _ = _slack_hook(workspace)
    _, key = factories.api_key(workspace)

    detail = api(Client(), "GET", reverse("webhook-detail", args=[subscription.pk]), key=key)

    assert detail.json()["url"] == SLACK


@pytest.mark.parametrize(("role", "full"), [(Role.VIEWER, False), (Role.ADMIN, True)])
def test_the_pages_show_viewers_only_the_host_of_a_webhook_url(workspace, role, full):
    subscription, segment = _slack_hook(workspace)
    _pending(workspace, subscription, person_id=7, segment_id=segment.pk)
    client = logged_in_client(factories.member(workspace, role=role))

    pages = [
        client.get(reverse("settings_webhooks")),
        client.get(reverse("settings_webhook_detail", args=[subscription.pk])),
        client.get(reverse("segment_detail", args=[segment.pk])),
    ]

    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert (SLACK in html) is full
        assert ("s3cr3t" in html) is full
        assert "https://hooks.slack.com/" in html
    if not full:
        assert all(SLACK_HOST in page.content.decode() for page in pages)


def test_the_audit_log_records_only_the_host_of_a_webhook_url(workspace, owner):
    subscription, _ = _raw_subscription(workspace, SLACK), None
    client = logged_in_client(owner)

    client.post(reverse("settings_webhook_rotate", args=[subscription.pk]))
    client.post(reverse("settings_webhook_delete", args=[subscription.pk]))

    with workspace_scope(workspace):
        audit = sorted(AuditLogEntry.objects.values_list("action", "target", "details"))
    assert audit == [
        ("webhook.deleted", SLACK_HOST, {"webhook": subscription.pk}),
        ("webhook.secret_rotated", SLACK_HOST, {"webhook": subscription.pk}),
    ]


# --- Through the change feed: failures, Redis down, dead workers ------------------------------


def test_a_change_read_again_makes_no_second_delivery(workspace, receiver, allow_private):
    # Given a subscription and a change already turned into its delivery
    segment = _segment(workspace)
    person = _person(workspace)
    subscription, _ = _subscribe(workspace, receiver.url)
    _changes(workspace, segment, entered=[person.pk])
    with workspace_scope(workspace), transaction.atomic():
        batch = feed.feed_read(workspace=workspace, consumer="webhooks", limit=10)
        services.deliveries_from_changes(workspace=workspace, changes=batch.changes)

        # When the consumer is handed the same change again (a read repeated after a failure)
        services.deliveries_from_changes(workspace=workspace, changes=batch.changes)

        # Then there is still one delivery for the subscription and the change
        rows = list(WebhookDelivery.objects.values_list("subscription_id", "change_id"))
    assert rows == [(subscription.pk, batch.changes[0].id)]


def test_a_failed_consumer_transaction_retries_from_its_cursor_with_nothing_lost(
    workspace, receiver, allow_private, eager, django_capture_on_commit_callbacks
):
    # Given two entries, a subscription, and a database that refuses to store deliveries
    segment = _segment(workspace)
    people = [_person(workspace, user_id=f"u{n}", anonymous_ids=()) for n in range(2)]
    _subscribe(workspace, receiver.url)
    ids = _changes(workspace, segment, entered=[p.pk for p in people])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_deliveries() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON segmentation_webhookdelivery "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_deliveries()"
        )

    # When the feed is drained: the consumer's transaction fails inside PostgreSQL
    failed = _drain(workspace, django_capture_on_commit_callbacks)

    # Then nothing was kept, the cursor did not move, nothing was sent
    assert (failed.failed, failed.read) == (["webhooks"], {"webhooks": 0})
    with workspace_scope(workspace):
        assert WebhookDelivery.objects.count() == 0
        assert list(ChangeFeedCursor.objects.values_list("last_id", flat=True)) in ([], [0])
    assert receiver.requests == []

    # And once the database accepts them again, the next drain delivers each change once
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse ON segmentation_webhookdelivery")
    again = _drain(workspace, django_capture_on_commit_callbacks)
    assert (again.failed, again.read) == ([], {"webhooks": 2})
    with workspace_scope(workspace):
        rows = sorted(WebhookDelivery.objects.values_list("change_id", "status"))
        assert ChangeFeedCursor.objects.get(consumer="webhooks").last_id == ids[-1]
    assert rows == [(ids[0], DeliveryStatus.DELIVERED), (ids[1], DeliveryStatus.DELIVERED)]
    assert sorted(json.loads(r.body)["person"]["id"] for r in receiver.requests) == sorted(p.pk for p in people)


def test_with_redis_down_a_change_commits_and_the_beat_sweep_delivers_it_later(
    workspace, receiver, allow_private, settings, django_capture_on_commit_callbacks
):
    # Given a static segment, a person and a subscription, and Redis (cache and broker) down
    from segmentation import services as segment_services
    from segmentation.tasks import segment_feed_sweep

    with workspace_scope(workspace):
        segment = segment_services.segment_create(
            workspace=workspace, actor=None, name="Beta", definition=None, static=True
        )
    person = _person(workspace, user_id="u-42")
    _subscribe(workspace, receiver.url)
    redis_url, broker_url = settings.REDIS_URL, celery_app.conf.broker_url
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    _reset_connections()
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        # When the person is added: the kick after the commit finds no Redis, and says nothing
        with workspace_scope(workspace), django_capture_on_commit_callbacks(execute=True):
            change = segment_services.segment_static_change(segment=segment, actor=None, add=["u-42"], remove=[])
    finally:
        settings.REDIS_URL = redis_url
        _reset_connections()
        celery_app.conf.broker_url = broker_url

    # Then the entry is stored and nothing was sent
    assert change.added == 1
    assert receiver.requests == []
    with workspace_scope(workspace):
        assert WebhookDelivery.objects.count() == 0
        [entry] = MembershipChange.objects.filter(segment=segment).values_list("pk", flat=True)

    # And once Redis is back, the beat's sweep drains the workspace and the delivery goes out once
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert segment_feed_sweep.apply().get() == 1
    finally:
        celery_app.conf.task_always_eager = False
    [received] = receiver.requests
    assert json.loads(received.body)["person"]["id"] == person.pk
    with workspace_scope(workspace):
        delivery = WebhookDelivery.objects.get()
    assert (delivery.change_id, delivery.status, received.headers["Cohortly-Delivery"]) == (
        entry,
        DeliveryStatus.DELIVERED,
        str(delivery.pk),
    )


@dataclass
class Ledger:
    """What a receiving endpoint saw: every request's delivery id, and those it answered 200."""

    server: ThreadingHTTPServer
    hold_at: int = 0  # the n-th request (1-based) is held unanswered until ``release``; 0: none
    arrived: list[int] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/in"


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    holder: dict[str, Ledger] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder["l"]
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            delivery_id = int(self.headers["Cohortly-Delivery"])
            with me.lock:
                me.arrived.append(delivery_id)
                hold = len(me.arrived) == me.hold_at
            if hold:
                me.held.set()
                me.release.wait(60)
                self.close_connection = True
                return  # never answered: the sender died waiting
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with me.lock:
                me.acknowledged.append(delivery_id)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["l"] = Ledger(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["l"]
    finally:
        holder["l"].release.set()
        server.shutdown()
        server.server_close()


def _until(check, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _deliveries(workspace) -> dict[str, int]:
    # unscoped: the test reads what the workers wrote, from outside any request.
    rows = WebhookDelivery.objects.unscoped().filter(workspace=workspace).values_list("status", flat=True)
    counts: dict[str, int] = {}
    for status in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_webhook_consumer_killed_mid_delivery_resumes_from_its_cursor_and_delivers_every_change_once(
    ledger, settings, tmp_path
):
    from segmentation import services as segment_services
    from segmentation.tasks import segment_feed_sweep
    from tests.segmentation.support import shopper

    # Given 30 people entering a static segment in three commits, and a subscription
    queue = f"test-feed-worker-{uuid.uuid4().hex}"
    settings.SEGMENT_FEED_QUEUE = queue
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    workspace = factories.WorkspaceFactory()
    with workspace_scope(workspace):
        segment = segment_services.segment_create(
            workspace=workspace, actor=None, name="Beta", definition=None, static=True
        )
        for n in range(30):
            shopper(workspace, f"u{n:02}")
    _subscribe(workspace, ledger.url)
    for start in (0, 10, 20):
        with workspace_scope(workspace):
            segment_services.segment_static_change(
                segment=segment, actor=None, add=[f"u{n:02}" for n in range(start, start + 10)], remove=[]
            )
    changes = set(MembershipChange.objects.unscoped().filter(segment=segment).values_list("pk", flat=True))
    assert len(changes) == 30
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "SEGMENT_FEED_QUEUE": queue,
        "SEGMENT_FEED_BATCH_SIZE": "10",
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    }
    workers: list[subprocess.Popen] = []

    def start_worker() -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(workers)}.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queue,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        workers.append(worker)
        return worker

    def kill(worker: subprocess.Popen) -> None:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def cursor() -> tuple[int, int] | None:
        row = ChangeFeedCursor.objects.unscoped().filter(workspace=workspace, consumer="webhooks").first()
        return (row.last_txid, row.last_id) if row else None

    blocker = psycopg.connect(database_url(connection.settings_dict))
    # Watches in autocommit: pg_stat_activity is read once per transaction and kept until its end,
    # so a watcher inside one transaction would never see the dead worker's backend go.
    watcher = psycopg.connect(database_url(connection.settings_dict), autocommit=True)
    try:
        # When a worker dies inside the consumer's transaction (its deliveries written, uncommitted)
        blocker.execute("LOCK TABLE segmentation_webhookdelivery IN EXCLUSIVE MODE")
        first = start_worker()
        waiting = (
            "SELECT array_agg(pid) FROM pg_locks "
            "WHERE relation = 'segmentation_webhookdelivery'::regclass AND NOT granted"
        )
        consumer_pids = _until(lambda: watcher.execute(waiting).fetchone()[0], "the consumer to wait for the table")
        kill(first)
        blocker.rollback()
        # the server ends the dead worker's transaction once it notices the client gone
        _until(
            lambda: (
                not watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [consumer_pids]
                ).fetchone()[0]
            ),
            "the dead worker's backend",
        )

        # Then nothing of it remains: no delivery, the cursor where it was, nothing sent
        assert _deliveries(workspace) == {}
        assert cursor() in (None, (0, 0))
        assert ledger.arrived == []

        # When a new worker drains (the beat's sweep kicks it) and dies while the 15th delivery is in flight
        ledger.hold_at = 15
        second = start_worker()
        assert segment_feed_sweep.apply().get() == 1
        assert _until(lambda: ledger.held.wait(0.1), "the 15th delivery")
        kill(second)
        ledger.release.set()

        # Then every change was read once, 14 deliveries are done, one is claimed by the dead worker
        in_order = MembershipChange.objects.unscoped().filter(segment=segment).order_by("txid", "id")
        assert cursor() == in_order.values_list("txid", "pk").last()
        assert _deliveries(workspace) == {"delivered": 14, "sending": 1, "pending": 15}

        # When a third worker runs what the beat runs: the feed's sweep (nothing left to read) and the
        # webhooks' sweep, ten minutes on, which takes back the interrupted send
        start_worker()
        assert segment_feed_sweep.apply().get() == 0
        later = timezone.now() + services.STALE_AFTER + timedelta(seconds=1)
        for workspace_id, ids in services.deliveries_sweep(now=later).items():
            webhook_deliver.apply_async((workspace_id, ids), queue=queue)
        _until(lambda: _deliveries(workspace) == {"delivered": 30}, "every delivery")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
        blocker.close()
        watcher.close()
        redis.Redis.from_url(settings.REDIS_URL).delete(queue)

    # Then the receiver acknowledged every change exactly once, by delivery id and by change id
    delivered = dict(WebhookDelivery.objects.unscoped().filter(workspace=workspace).values_list("pk", "change_id"))
    assert sorted(ledger.acknowledged) == sorted(delivered)
    assert len(set(ledger.acknowledged)) == 30
    assert set(delivered.values()) == changes
    # the only delivery that arrived twice is the one in flight when its worker died, sent again with its id
    interrupted = ledger.arrived[14]
    assert sorted(ledger.arrived) == sorted([*delivered, interrupted])
    assert WebhookDelivery.objects.unscoped().get(pk=interrupted).attempts == 2
