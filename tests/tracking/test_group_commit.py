"""Several requests in one transaction (tracking.ingest.submissions_ingest, tracking.group_commit)
and the production WSGI entry that routes /v1/* to them (tracking.ingest_wsgi)."""

from __future__ import annotations

import base64
import io
import threading
from datetime import UTC, datetime
from wsgiref.util import setup_testing_defaults

import orjson
import pytest

from accounts.tenancy import workspace_scope
from config.wsgi import application
from tests import factories
from tracking.group_commit import GroupCommitter
from tracking.ingest import Submission, submissions_ingest
from tracking.messages import Message, parse_message
from tracking.models import Event, ProcessedMessage


def _submission(write_key: str, *raws: dict, received_at: datetime | None = None) -> Submission:
    received_at = received_at or datetime.now(UTC)
    parsed = [parse_message(raw, kind=None, batch_sent_at=None, received_at=received_at) for raw in raws]
    return Submission(
        write_key,
        [p for p in parsed if isinstance(p, Message)],
        [p for p in parsed if not isinstance(p, Message)],
        received_at,
    )


def _track(message_id: str, user: str = "u-1") -> dict:
    return {"type": "track", "userId": user, "event": "Signed Up", "messageId": message_id}


def _event_ids(workspace) -> list[str]:
    with workspace_scope(workspace):
        return sorted(Event.objects.values_list("message_id", flat=True))


@pytest.mark.django_db
def test_one_transaction_answers_each_request_with_its_own_counts():
    a, b = factories.WorkspaceFactory(), factories.WorkspaceFactory()

    results = submissions_ingest(
        [
            _submission(a.write_key, _track("m-1"), _track("m-2")),
            _submission(a.write_key, _track("m-2"), _track("m-3"), {"type": "track", "event": "No id"}),
            _submission("cly_wk_unknown", _track("m-9")),
            _submission(b.write_key, _track("m-1")),
        ]
    )

    counts = [None if r is None else r.as_dict(accepted=0) for r in results]
    assert counts == [
        {"success": True, "accepted": 0, "rejected": 0, "stored": 2, "duplicates": 0, "suppressed": 0},
        {"success": True, "accepted": 0, "rejected": 1, "stored": 1, "duplicates": 1, "suppressed": 0},
        None,
        {"success": True, "accepted": 0, "rejected": 0, "stored": 1, "duplicates": 0, "suppressed": 0},
    ]
    assert _event_ids(a) == ["m-1", "m-2", "m-3"]
    assert _event_ids(b) == ["m-1"]
    assert not ProcessedMessage.objects.unscoped().filter(message_id="m-9").exists()


@pytest.mark.django_db
def test_each_event_keeps_the_received_time_of_its_own_request():
    workspace = factories.WorkspaceFactory()
    first, second = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC), datetime(2026, 11, 22, 8, 0, 1, tzinfo=UTC)

    submissions_ingest(
        [
            _submission(workspace.write_key, _track("m-1"), received_at=first),
            _submission(workspace.write_key, _track("m-2"), received_at=second),
        ]
    )

    with workspace_scope(workspace):
        stored = dict(Event.objects.values_list("message_id", "received_at"))
    assert stored == {"m-1": first, "m-2": second}


@pytest.mark.django_db(transaction=True)
def test_the_committer_answers_every_waiting_request_after_its_commit():
    workspace = factories.WorkspaceFactory()
    committer = GroupCommitter()
    answers: dict[int, object] = {}

    def send(number: int) -> None:
        result = committer.submit(_submission(workspace.write_key, _track(f"c-{number}", user=f"u-{number % 3}")))
        # Answered only once committed: visible from this thread's own connection.
        with workspace_scope(workspace):
            visible = Event.objects.filter(message_id=f"c-{number}").exists()
        answers[number] = (result.stored if result else None, visible)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert answers == {n: (1, True) for n in range(12)}
    assert _event_ids(workspace) == sorted(f"c-{n}" for n in range(12))
    assert committer.submit(_submission("cly_wk_unknown", _track("c-x"))) is None


def _call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body)}
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["CONTENT_TYPE"] = "application/json"
    environ.update(headers or {})
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = status
        answer["headers"] = dict(response_headers)

    answer["body"] = b"".join(application(environ, start_response))
    return answer


@pytest.mark.django_db(transaction=True)
def test_the_production_entry_serves_v1_directly_and_everything_else_through_django():
    workspace = factories.WorkspaceFactory()
    auth = "Basic " + base64.b64encode(f"{workspace.write_key}:".encode()).decode()

    stored = _call("POST", "/v1/track", orjson.dumps(_track("w-1")), {"HTTP_AUTHORIZATION": auth})
    unknown = _call("POST", "/v1/track", orjson.dumps(_track("w-2")), {"HTTP_AUTHORIZATION": "Basic Y2x5X3drX25vOg=="})
    malformed = _call("POST", "/v1/batch", b"{", {"HTTP_AUTHORIZATION": auth})
    login = _call("GET", "/login/")

    assert stored["status"] == "200 OK"
    assert stored["headers"]["Access-Control-Allow-Origin"] == "*"
    assert orjson.loads(stored["body"])["stored"] == 1
    assert unknown["status"] == "401 Unauthorized"
    assert orjson.loads(unknown["body"])["code"] == "invalid_write_key"
    assert malformed["status"] == "400 Bad Request"
    assert login["status"] == "200 OK"
    assert b"<form" in login["body"]
    assert _event_ids(workspace) == ["w-1"]
