"""The tracking API under uvicorn (``config.asgi``), over real HTTP: the same answers as the
Django views for what its own code does (reading the body, the headers, the other paths).

The bad-input table itself is tested on the view logic both servers share
(``test_ingest_errors``); here, what the ASGI entry adds.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from django.db import connection

from accounts.tenancy import workspace_scope
from core.dburl import database_url
from tests import factories
from tests.tracking.conftest import basic_auth, stored_rows
from tests.tracking.live_servers import Server
from tests.tracking.test_ingest_rate import open_window
from tracking.models import Event, Person, QuarantinedMessage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def uvicorn(django_db_setup, django_db_blocker) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="cohortly-asgi-") as directory:
        with django_db_blocker.unblock():
            url = database_url(connection.settings_dict)
        server = Server("uvicorn", url, Path(directory) / "uvicorn.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _auth(write_key: str) -> dict[str, str]:
    return {"Authorization": basic_auth(write_key)}


def _track(number: int) -> dict:
    return {"type": "track", "userId": "u-1", "event": "Viewed", "messageId": f"asgi-{number}"}


@pytest.mark.django_db(transaction=True)
def test_a_track_is_stored_before_the_answer(uvicorn):
    workspace = factories.WorkspaceFactory()
    response = requests.post(f"{uvicorn.url}/v1/track", json=_track(1), headers=_auth(workspace.write_key), timeout=10)
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    with workspace_scope(workspace):
        event = Event.objects.get()
        assert (event.name, event.message_id) == ("Viewed", "asgi-1")
        assert Person.objects.get().user_id == "u-1"


@pytest.mark.django_db(transaction=True)
def test_a_gzip_batch_is_inflated(uvicorn):
    workspace = factories.WorkspaceFactory()
    body = gzip.compress(orjson.dumps({"batch": [_track(n) for n in range(3)]}))
    headers = {**_auth(workspace.write_key), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = requests.post(f"{uvicorn.url}/v1/batch", data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    with workspace_scope(workspace):
        assert Event.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_body_over_the_limit_is_refused_and_nothing_is_stored(uvicorn):
    workspace = factories.WorkspaceFactory()
    padding = "x" * 1000
    batch = [{**_track(n), "properties": {"padding": padding}} for n in range(600)]  # ~650 KiB
    body = orjson.dumps({"batch": batch})
    before = stored_rows()
    response = requests.post(f"{uvicorn.url}/v1/batch", data=body, headers={**_auth(workspace.write_key)}, timeout=10)
    assert response.status_code == 413
    assert "500 KiB" in response.json()["detail"]
    assert stored_rows() == before


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_limit_is_refused_and_nothing_is_stored(uvicorn):
    """No Content-Length: the entry stops keeping the body at the limit and the view refuses it."""
    workspace = factories.WorkspaceFactory()
    body = orjson.dumps({"batch": [{**_track(n), "properties": {"padding": "y" * 1000}} for n in range(600)]})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    before = stored_rows()
    response = requests.post(f"{uvicorn.url}/v1/batch", data=chunks(), headers=_auth(workspace.write_key), timeout=10)
    assert response.status_code == 413
    assert stored_rows() == before


@pytest.mark.django_db(transaction=True)
def test_a_gzip_bomb_is_refused_and_nothing_is_stored(uvicorn):
    workspace = factories.WorkspaceFactory()
    inflated = b'{"batch": [' + b" " * (20 * 1024 * 1024) + b"]}"
    headers = {**_auth(workspace.write_key), "Content-Encoding": "gzip"}
    before = stored_rows()
    response = requests.post(f"{uvicorn.url}/v1/batch", data=gzip.compress(inflated), headers=headers, timeout=10)
    assert response.status_code == 413
    assert stored_rows() == before


@pytest.mark.django_db(transaction=True)
def test_an_unknown_write_key_is_refused_and_nothing_is_stored(uvicorn):
    before = stored_rows()
    response = requests.post(f"{uvicorn.url}/v1/track", json=_track(2), headers=_auth("cly_wk_nobody"), timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_write_key"
    assert stored_rows() == before


@pytest.mark.django_db(transaction=True)
def test_malformed_json_is_refused(uvicorn):
    workspace = factories.WorkspaceFactory()
    before = stored_rows()
    response = requests.post(
        f"{uvicorn.url}/v1/batch", data=b"{not json", headers=_auth(workspace.write_key), timeout=10
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert stored_rows() == before


@pytest.mark.django_db(transaction=True)
def test_a_huge_number_refuses_its_message_and_changes_are_warned_through_the_group_committer(uvicorn):
    workspace = factories.WorkspaceFactory()
    body = (
        b'{"batch": [{"type": "track", "userId": "u", "event": "Huge", "messageId": "m-1", "properties": {"n": 1e400}},'
        b' {"type": "track", "userId": "u", "event": "Nul", "messageId": "m-2", "properties": {"a": "x\\u0000"},'
        b' "timestamp": "1900-01-01T00:00:00Z"}]}'
    )
    response = requests.post(f"{uvicorn.url}/v1/batch", data=body, headers=_auth(workspace.write_key), timeout=10)
    assert response.status_code == 200, response.text
    warnings = [
        "timestamp was before 2000-01-01; the received time was used",
        "NUL characters in properties were replaced by U+FFFD",
    ]
    assert response.json()["warnings"] == [{"index": 1, "messageId": "m-2", "warnings": warnings}]
    assert (response.json()["stored"], response.json()["rejected"]) == (1, 1)
    with workspace_scope(workspace):
        event = Event.objects.get()
        quarantined = list(QuarantinedMessage.objects.order_by("kind").values_list("kind", "message_id", "reason"))
    assert (event.name, event.properties, event.warnings) == ("Nul", {"a": "x\ufffd"}, warnings)
    assert event.timestamp == event.received_at
    assert quarantined == [
        ("rejected", "m-1", "a number is too large for a double: 1e400"),
        ("warned", "m-2", "; ".join(warnings)),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_preflight_gets_the_cors_answer(uvicorn):
    headers = {"Origin": "https://shop.example", "Access-Control-Request-Headers": "Content-Type"}
    response = requests.options(f"{uvicorn.url}/v1/batch", headers=headers, timeout=10)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"


@pytest.mark.django_db(transaction=True)
def test_other_paths_are_the_site(uvicorn):
    response = requests.get(f"{uvicorn.url}/login/", timeout=10)
    assert response.status_code == 200
    assert 'name="password"' in response.text


@pytest.mark.django_db(transaction=True)
def test_messages_over_the_write_key_rate_are_429_with_retry_after_and_nothing_is_stored(settings):
    """With Redis up (the shared server above has none): the same limit as the Django view."""
    workspace = factories.WorkspaceFactory()
    with tempfile.TemporaryDirectory(prefix="cohortly-asgi-") as directory:
        server = Server("uvicorn", database_url(connection.settings_dict), Path(directory) / "uvicorn.log")
        server.env.update(
            REDIS_URL=settings.REDIS_URL,
            CACHE_KEY_PREFIX=settings.CACHES["default"]["KEY_PREFIX"],
            INGEST_RATE_PER_WRITE_KEY="4",
        )
        server.start()
        try:
            url = f"{server.url}/v1/batch"
            open_window(workspace.write_key, used=3)
            before = stored_rows()
            response = requests.post(
                url, json={"batch": [_track(n) for n in range(2)]}, headers=_auth(workspace.write_key), timeout=10
            )
            after_refused = stored_rows()
            admitted = requests.post(url, json={"batch": [_track(9)]}, headers=_auth(workspace.write_key), timeout=10)
        finally:
            server.stop()

    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert response.json()["code"] == "throttled"
    assert after_refused == before
    # 3 + 1 fits
    assert admitted.status_code == 200


def test_the_entry_keeps_no_more_of_a_body_than_the_view_can_refuse():
    """A client streaming without end makes the entry hold at most the limit plus one byte."""
    import asyncio

    from tracking.ingest_asgi import KEPT_BODY_BYTES, _body

    sent = 0

    async def receive():
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": b"z" * (256 * 1024), "more_body": sent < 1000}

    body = asyncio.run(_body(receive))
    assert len(body) == KEPT_BODY_BYTES
    assert sent < 10  # it stopped reading at the limit instead of taking 250 MB
