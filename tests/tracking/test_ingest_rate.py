"""Messages per second per write key on the tracking API (tracking/ingest_rate.py), with real Redis."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings as django_settings

from accounts.tenancy import workspace_scope
from core import ratelimit
from tests import factories
from tests.tracking.conftest import stored_rows
from tracking import ingest_rate
from tracking.models import Event


@pytest.fixture
def rate(settings):
    settings.INGEST_RATE_PER_WRITE_KEY = 5
    ingest_rate.breaker.failing_until = 0.0
    ingest_rate.leases.left.clear()
    yield settings
    ingest_rate.breaker.failing_until = 0.0
    ingest_rate.leases.left.clear()


def open_window(write_key: str, *, used: int = 0, seconds: int = 30) -> None:
    """Start the key's window now and make it last ``seconds`` (one second in production), so that a
    test's requests fall in the same window however slow the machine is."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.set(ratelimit.key("ingest", write_key), used, px=seconds * 1000)


def _events(workspace) -> int:
    with workspace_scope(workspace):
        return Event.objects.count()


def _batch(count: int, start: int = 0) -> dict:
    return {
        "batch": [{"type": "track", "userId": "u", "event": "E", "messageId": f"m-{start + n}"} for n in range(count)]
    }


def test_messages_over_the_write_key_rate_are_429_with_retry_after_and_nothing_is_stored(rate, workspace, send):
    open_window(workspace.write_key)
    assert send("batch", _batch(3), write_key=workspace.write_key).status_code == 200
    before = stored_rows()

    # A batch counts its messages: 3 + 3 is over 5
    response = send("batch", _batch(3, start=10), write_key=workspace.write_key)

    assert response.status_code == 429
    wait = response["Retry-After"]
    assert 1 <= int(wait) <= 30
    assert response["Access-Control-Allow-Origin"] == "*"
    detail = f"Over the limit of 5 messages per second for this write key; nothing was stored. Retry after {wait} s."
    assert response.json() == {"detail": detail, "code": "throttled", "message": detail}
    assert stored_rows() == before
    # The refused batch used up nothing: 3 + 2 fit, one more does not
    assert send("batch", _batch(2, start=20), write_key=workspace.write_key).status_code == 200
    assert send("track", _batch(1, start=30)["batch"][0], write_key=workspace.write_key).status_code == 429
    assert _events(workspace) == 5
    # Another workspace's key is not held back
    other = factories.WorkspaceFactory()
    assert send("batch", _batch(3, start=40), write_key=other.write_key).status_code == 200


def test_a_window_lasts_one_second(rate, workspace, send):
    assert send("batch", _batch(5), write_key=workspace.write_key).status_code == 200

    time.sleep(1.0)

    assert send("batch", _batch(5, start=10), write_key=workspace.write_key).status_code == 200
    assert _events(workspace) == 10


def test_a_batch_bigger_than_the_whole_rate_is_admitted_into_an_empty_window(rate, workspace, send):
    open_window(workspace.write_key)
    assert send("batch", _batch(8), write_key=workspace.write_key).status_code == 200

    assert send("batch", _batch(1, start=10), write_key=workspace.write_key).status_code == 429
    assert _events(workspace) == 8


def test_when_redis_fails_messages_are_admitted_and_redis_is_left_alone_for_a_while(rate, workspace, send):
    rate.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    responses = [send("batch", _batch(3, start=10 * n), write_key=workspace.write_key) for n in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert _events(workspace) == 9
    assert ingest_rate.breaker.failing_until > time.monotonic()


def test_an_unknown_write_key_over_the_rate_is_refused_before_the_database(rate, db, send):
    open_window("cly_wk_unknown")
    before = stored_rows()
    assert send("batch", _batch(5), write_key="cly_wk_unknown").status_code == 401

    response = send("batch", _batch(1, start=10), write_key="cly_wk_unknown")

    assert response.status_code == 429
    assert stored_rows() == before


def _window_count(write_key: str) -> int:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    return int(client.get(ratelimit.key("ingest", write_key)) or 0)


def test_a_process_counts_a_lease_of_the_rate_at_a_time_and_admits_from_it(rate, workspace, send):
    # Given a rate of 250 messages a second: a lease is 2 % of it, 5 messages
    rate.INGEST_RATE_PER_WRITE_KEY = 250
    open_window(workspace.write_key)

    # When five single messages arrive, then a sixth
    first = [send("track", _batch(1, start=n)["batch"][0], write_key=workspace.write_key) for n in range(5)]
    counted_after_five = _window_count(workspace.write_key)
    sixth = send("track", _batch(1, start=10)["batch"][0], write_key=workspace.write_key)

    # Then the window counted one lease for the five (one Redis round trip), a second for the sixth
    assert [r.status_code for r in first] == [200] * 5
    assert sixth.status_code == 200
    assert (counted_after_five, _window_count(workspace.write_key)) == (5, 10)
    assert _events(workspace) == 6


def test_near_the_limit_a_request_takes_exactly_its_messages(rate, workspace, send):
    # Given a rate of 250 with 248 already counted in this window: no lease of 5 fits
    rate.INGEST_RATE_PER_WRITE_KEY = 250
    open_window(workspace.write_key, used=248)

    # When single messages arrive
    answers = [send("track", _batch(1, start=n)["batch"][0], write_key=workspace.write_key) for n in range(3)]

    # Then the two that fit are admitted one by one, and the third is refused
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert _window_count(workspace.write_key) == 250
    assert _events(workspace) == 2
