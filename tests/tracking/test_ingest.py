"""The tracking API over HTTP: what is stored, what is refused (tracking-api.md)."""

from __future__ import annotations

import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking.conftest import NOTHING_STORED, basic_auth, stored_rows
from tracking.ingest import COPY_MIN_EVENTS
from tracking.ingest_views import MAX_REQUEST_BYTES
from tracking.models import (
    Event,
    Group,
    Person,
    PersonGroup,
    ProcessedMessage,
    QuarantinedMessage,
    QuarantineKind,
    SuppressedId,
)


def _events(workspace):
    with workspace_scope(workspace):
        return list(Event.objects.order_by("id"))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- stored as the contract says -------------------------------------------------


def test_track_stores_one_event_for_a_new_anonymous_person(workspace, send):
    response = send(
        "track",
        {
            "anonymousId": "anon-1",
            "event": "Product Added",
            "properties": {"sku": "B-42", "price": 19.5},
            "context": {"sessionId": "s-9", "library": {"name": "curl"}},
            "messageId": "msg-1",
        },
        write_key=workspace.write_key,
    )

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "accepted": 1,
        "rejected": 0,
        "stored": 1,
        "duplicates": 0,
        "suppressed": 0,
    }
    assert response["Access-Control-Allow-Origin"] == "*"
    [event] = _events(workspace)
    with workspace_scope(workspace):
        person = Person.objects.get()
        assert [(i.kind, i.value) for i in person.identities.all()] == [("anonymous_id", "anon-1")]
    assert person.user_id is None
    assert (event.person_id, event.name, event.properties) == (
        person.pk,
        "Product Added",
        {"sku": "B-42", "price": 19.5},
    )
    assert (event.message_id, event.anonymous_id, event.user_id, event.session_id) == ("msg-1", "anon-1", None, "s-9")
    assert event.context == {"sessionId": "s-9", "library": {"name": "curl"}}
    assert event.warnings == []
    assert event.timestamp == event.received_at == person.first_seen == person.last_seen


def test_page_and_screen_store_named_events_with_page_properties(workspace, send):
    send(
        "page",
        {
            "anonymousId": "a",
            "name": "Pricing",
            "properties": {"title": "Pricing - Acme"},
            "context": {"page": {"url": "https://acme.test/pricing?x=1", "path": "/pricing", "referrer": "", "x": 1}},
        },
        write_key=workspace.write_key,
    )
    send("screen", {"anonymousId": "a", "name": "Home", "properties": {"tab": 2}}, write_key=workspace.write_key)

    page, screen = _events(workspace)
    assert page.name == "$pageview"
    assert page.properties == {
        "url": "https://acme.test/pricing?x=1",
        "path": "/pricing",
        "referrer": "",
        "title": "Pricing - Acme",
        "name": "Pricing",
    }
    assert (screen.name, screen.properties) == ("$screen", {"name": "Home", "tab": 2})


def test_first_touch_traits_come_from_the_first_page(workspace, send):
    send(
        "page",
        {
            "anonymousId": "a",
            "properties": {
                "url": "https://acme.test/landing?utm_source=google&utm_medium=cpc&utm_campaign=spring",
                "path": "/landing",
                "referrer": "https://www.google.com/search?q=acme",
            },
        },
        write_key=workspace.write_key,
    )
    send(
        "page",
        {"anonymousId": "a", "properties": {"url": "https://acme.test/other?utm_source=bing", "referrer": "x"}},
        write_key=workspace.write_key,
    )

    with workspace_scope(workspace):
        person = Person.objects.get()
    assert person.traits == {
        "$initial_referrer": "https://www.google.com/search?q=acme",
        "$initial_referring_domain": "www.google.com",
        "$initial_utm_source": "google",
        "$initial_utm_medium": "cpc",
        "$initial_utm_campaign": "spring",
        "$initial_path": "/landing",
    }


def test_first_touch_without_referrer_is_direct_and_sets_no_utm(workspace, send):
    send("page", {"anonymousId": "a", "properties": {"url": "https://acme.test/a/b"}}, write_key=workspace.write_key)

    with workspace_scope(workspace):
        person = Person.objects.get()
    assert person.traits == {
        "$initial_referrer": "$direct",
        "$initial_referring_domain": "$direct",
        "$initial_path": "/a/b",
    }


def test_batch_with_batch_level_sent_at_corrects_clock_skew(workspace, send):
    # The client's clock runs 1 hour ahead: sent "at" +1h, the event happened 10 minutes before sending.
    client_now = datetime.now(UTC) + timedelta(hours=1)
    before = datetime.now(UTC)
    send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "u", "event": "E", "timestamp": _iso(client_now - timedelta(minutes=10))}
            ],
            "sentAt": _iso(client_now),
        },
        write_key=workspace.write_key,
    )
    after = datetime.now(UTC)

    [event] = _events(workspace)
    assert event.received_at - event.timestamp == timedelta(minutes=10)
    assert before <= event.received_at <= after
    assert event.warnings == []


def test_message_sent_at_wins_over_the_batch_sent_at(workspace, send):
    send(
        "batch",
        {
            "batch": [
                {
                    "type": "track",
                    "userId": "u",
                    "event": "E",
                    "timestamp": "2030-01-01T00:00:00Z",
                    "sentAt": "2030-01-01T00:05:00Z",
                }
            ],
            "sentAt": "1999-01-01T00:00:00Z",
        },
        write_key=workspace.write_key,
    )

    [event] = _events(workspace)
    assert event.received_at - event.timestamp == timedelta(minutes=5)


def test_write_key_in_a_text_plain_body_is_accepted(workspace, send):
    """navigator.sendBeacon: no headers, text/plain, key in the body."""
    response = send(
        "track",
        {"writeKey": workspace.write_key, "anonymousId": "a", "event": "Left"},
        content_type="text/plain;charset=UTF-8",
    )

    assert response.status_code == 200
    assert [e.name for e in _events(workspace)] == ["Left"]


def test_gzip_body_is_inflated(workspace, send):
    response = send(
        "batch",
        {"batch": [{"type": "track", "userId": "u", "event": f"E{i}"} for i in range(30)]},
        write_key=workspace.write_key,
        gzip=True,
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 30
    assert sorted(e.name for e in _events(workspace)) == sorted(f"E{i}" for i in range(30))


def test_preflight_is_answered_for_any_origin_without_credentials(client):
    response = client.options(
        "/v1/batch",
        HTTP_ORIGIN="https://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, authorization",
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"] == "content-type, authorization"
    assert "Access-Control-Allow-Credentials" not in response


def test_group_records_the_group_and_the_persons_link(workspace, send):
    send("group", {"userId": "u", "groupId": "acme", "traits": {"plan": "pro"}}, write_key=workspace.write_key)
    send("group", {"userId": "u", "groupId": "acme", "traits": {"seats": 5}}, write_key=workspace.write_key)

    with workspace_scope(workspace):
        group = Group.objects.get()
        link = PersonGroup.objects.get()
        assert (group.group_id, group.traits) == ("acme", {"plan": "pro", "seats": 5})
        assert link.person.user_id == "u"
        assert link.group_id == group.pk
    assert _events(workspace) == []


def test_identify_is_not_an_event(workspace, send):
    send("identify", {"userId": "u", "traits": {"plan": "pro"}}, write_key=workspace.write_key)

    assert _events(workspace) == []
    with workspace_scope(workspace):
        assert Person.objects.get().traits == {"plan": "pro"}


def test_messages_of_a_suppressed_id_are_dropped_and_counted(workspace, send):
    with workspace_scope(workspace):
        SuppressedId.objects.create(workspace=workspace, kind="user_id", value="erased")

    response = send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "erased", "event": "E"},
                {"type": "identify", "userId": "erased", "anonymousId": "a", "traits": {"email": "x@y.z"}},
                {"type": "track", "userId": "kept", "event": "E"},
            ]
        },
        write_key=workspace.write_key,
    )

    assert response.json()["suppressed"] == 2
    assert response.json()["stored"] == 1
    with workspace_scope(workspace):
        assert list(Person.objects.values_list("user_id", flat=True)) == ["kept"]
        suppressed = SuppressedId.objects.get()
    assert suppressed.dropped_count == 2
    assert suppressed.last_dropped_at is not None


def test_write_key_of_b_never_writes_into_a(workspace, send):
    other = factories.WorkspaceFactory()
    send("track", {"userId": "u", "event": "Mine"}, write_key=workspace.write_key)

    response = send(
        "batch",
        {"writeKey": workspace.write_key, "batch": [{"type": "track", "userId": "u", "event": "Theirs"}]},
        write_key=other.write_key,
    )

    assert response.status_code == 200
    assert [e.name for e in _events(workspace)] == ["Mine"]
    assert [e.name for e in _events(other)] == ["Theirs"]
    with workspace_scope(workspace):
        person_a = Person.objects.get()
    with workspace_scope(other):
        person_b = Person.objects.get()
    assert person_a.pk != person_b.pk


# --- the bad-input table: one test per row --------------------------------------


def test_malformed_json_is_400(workspace, send):
    response = send("batch", None, raw=b'{"batch": [', write_key=workspace.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert stored_rows() == NOTHING_STORED


def test_a_body_that_is_not_an_object_is_400(workspace, send):
    response = send("batch", [{"type": "track", "userId": "u", "event": "E"}], write_key=workspace.write_key)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The body must be a JSON object.",
        "code": "invalid_body",
        "message": "The body must be a JSON object.",
    }
    assert stored_rows() == NOTHING_STORED


def test_batch_that_is_not_a_list_is_400(workspace, send):
    response = send("batch", {"batch": {"type": "track"}}, write_key=workspace.write_key)

    assert response.status_code == 400
    assert response.json()["errors"] == {"batch": ["Must be a list."]}
    assert stored_rows() == NOTHING_STORED


def test_a_message_over_32_kib_is_413(workspace, send):
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * (32 * 1024)}}

    response = send(
        "batch", {"batch": [{"type": "track", "userId": "u", "event": "E"}, big]}, write_key=workspace.write_key
    )

    assert response.status_code == 413
    assert response.json()["errors"] == {"batch[1]": ["Over 32 KiB."]}
    assert stored_rows() == NOTHING_STORED


def test_a_single_message_over_32_kib_is_413(workspace, send):
    response = send(
        "track", {"userId": "u", "event": "E", "properties": {"blob": "x" * (32 * 1024)}}, write_key=workspace.write_key
    )

    assert response.status_code == 413
    assert stored_rows() == NOTHING_STORED


def test_a_body_over_500_kib_is_413(workspace, send):
    batch = [{"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 20_000}} for _ in range(30)]

    response = send("batch", {"batch": batch}, write_key=workspace.write_key)

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert stored_rows() == NOTHING_STORED


def test_a_batch_of_more_than_2500_messages_is_413(workspace, send):
    batch = [{"type": "track", "userId": "u", "event": "E"} for _ in range(2501)]

    response = send("batch", {"batch": batch}, write_key=workspace.write_key)

    assert response.status_code == 413
    assert stored_rows() == NOTHING_STORED


def test_a_gzip_body_inflating_past_the_limit_is_cut_off_while_inflating(workspace, client):
    # 64 MiB of zeros compress to about 64 KiB: a bomb 128 times the limit.
    inflated_size = 64 * 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"0" * (1024 * 1024)
    bomb = b"".join([compressor.compress(chunk) for _ in range(inflated_size // len(chunk))]) + compressor.flush()
    assert len(bomb) < MAX_REQUEST_BYTES

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = client.generic(
            "POST",
            "/v1/batch",
            bomb,
            content_type="application/json",
            HTTP_CONTENT_ENCODING="gzip",
            HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    # The request body itself (~64 KiB, copied by the test client) plus at most the limit once inflated.
    assert peak < 4 * MAX_REQUEST_BYTES < inflated_size // 32
    assert stored_rows() == NOTHING_STORED


def test_a_gzip_body_that_is_not_gzip_is_400(workspace, send):
    response = send(
        "batch", None, raw=b"not gzip at all", write_key=workspace.write_key, headers={"HTTP_CONTENT_ENCODING": "gzip"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_gzip"
    assert stored_rows() == NOTHING_STORED


def test_unknown_write_key_is_401(workspace, send):
    response = send("track", {"userId": "u", "event": "E"}, write_key="cly_wk_nobodyhasthiskey")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_write_key"
    assert stored_rows() == NOTHING_STORED


def test_write_key_holding_a_nul_character_is_401_not_a_storage_error(workspace, send):
    by_header = send("track", {"userId": "u", "event": "E"}, write_key=workspace.write_key + "\x00")
    in_body = send("track", {"writeKey": "cly_wk_\x00", "userId": "u", "event": "E"})

    assert by_header.status_code == in_body.status_code == 401
    assert by_header.json()["code"] == in_body.json()["code"] == "invalid_write_key"
    assert stored_rows() == NOTHING_STORED


def test_missing_write_key_is_401(workspace, send):
    response = send("track", {"userId": "u", "event": "E"})

    assert response.status_code == 401
    assert response.json()["code"] == "no_write_key"
    assert stored_rows() == NOTHING_STORED


def test_a_secret_api_key_as_write_key_is_401(workspace, send):
    _, secret = factories.api_key(workspace)

    by_header = send("track", {"userId": "u", "event": "E"}, write_key=secret)
    in_body = send("track", {"writeKey": secret, "userId": "u", "event": "E"})

    assert by_header.status_code == in_body.status_code == 401
    assert by_header.json()["code"] == in_body.json()["code"] == "secret_key"
    assert stored_rows() == NOTHING_STORED


def test_a_message_with_neither_id_is_quarantined_and_the_rest_stored(workspace, send):
    response = send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "u", "event": "Kept"},
                {"type": "track", "event": "No id", "messageId": "m-bad"},
                {"type": "track", "userId": ["not", "a", "string"], "event": "Wrong type"},
                {"type": "track", "userId": "u", "event": "Also kept"},
            ]
        },
        write_key=workspace.write_key,
    )

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "accepted": 2,
        "rejected": 2,
        "stored": 2,
        "duplicates": 0,
        "suppressed": 0,
    }
    assert [e.name for e in _events(workspace)] == ["Kept", "Also kept"]
    with workspace_scope(workspace):
        quarantined = list(QuarantinedMessage.objects.order_by("id").values_list("reason", "message_id", "raw"))
    assert quarantined == [
        ("userId or anonymousId is required", "m-bad", {"type": "track", "event": "No id", "messageId": "m-bad"}),
        ("userId must be a string", None, {"type": "track", "userId": ["not", "a", "string"], "event": "Wrong type"}),
    ]


# The last two parse, but their UTC time leaves the years 1-9999.
@pytest.mark.parametrize("timestamp", ["next tuesday", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_unparsable_timestamp_uses_received_time_with_a_warning(workspace, send, timestamp):
    response = send("track", {"userId": "u", "event": "E", "timestamp": timestamp}, write_key=workspace.write_key)

    assert response.status_code == 200
    [event] = _events(workspace)
    assert event.timestamp == event.received_at
    assert event.warnings == ["timestamp could not be parsed; the received time was used"]


def test_sent_at_whose_utc_time_leaves_the_calendar_leaves_the_timestamp_uncorrected(workspace, send):
    message = {"userId": "u", "event": "E", "timestamp": "2026-11-30T10:00:00Z", "sentAt": "0001-01-01T00:00:00+01:00"}

    response = send("track", message, write_key=workspace.write_key)

    assert response.status_code == 200
    [event] = _events(workspace)
    assert event.timestamp == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert event.warnings == ["sentAt could not be parsed; the timestamp was not corrected for clock skew"]


def test_timestamp_two_days_in_the_future_uses_received_time_with_a_warning(workspace, send):
    future = datetime.now(UTC) + timedelta(days=2)

    response = send("track", {"userId": "u", "event": "E", "timestamp": _iso(future)}, write_key=workspace.write_key)

    assert response.status_code == 200
    [event] = _events(workspace)
    assert event.timestamp == event.received_at
    assert event.warnings == ["timestamp was more than 23 hours in the future; the received time was used"]


def test_the_same_message_id_twice_is_stored_once(workspace, send):
    message = {"type": "track", "userId": "u", "event": "Order Completed", "messageId": "retry-me"}

    first = send("batch", {"batch": [message, message]}, write_key=workspace.write_key)
    second = send("track", message, write_key=workspace.write_key)

    assert first.json()["stored"] == 1
    assert first.json()["duplicates"] == 1
    assert second.json()["stored"] == 0
    assert second.json()["duplicates"] == 1
    assert [e.message_id for e in _events(workspace)] == ["retry-me"]
    with workspace_scope(workspace):
        assert ProcessedMessage.objects.count() == 1


def test_the_same_message_id_in_two_workspaces_is_stored_in_each(workspace, send):
    other = factories.WorkspaceFactory()
    message = {"userId": "u", "event": "E", "messageId": "same"}

    send("track", message, write_key=workspace.write_key)
    send("track", message, write_key=other.write_key)

    assert len(_events(workspace)) == len(_events(other)) == 1


def test_get_is_refused_with_json(client):
    response = client.get("/v1/track")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["batch", "track", "identify", "page", "screen", "group", "alias"])
def test_every_endpoint_answers_cors_on_success(workspace, send, path):
    body = {"userId": "u", "event": "E", "groupId": "g", "previousId": "p"}
    if path == "batch":
        body = {"batch": [{"type": "track", **body}]}

    response = send(path, body, write_key=workspace.write_key)

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert response["Access-Control-Allow-Origin"] == "*"


def test_a_rejected_single_message_is_quarantined_without_the_write_key(workspace, send):
    response = send("track", {"writeKey": workspace.write_key, "event": "No id"})

    assert response.json()["rejected"] == 1
    with workspace_scope(workspace):
        assert list(QuarantinedMessage.objects.values_list("raw", "reason")) == [
            ({"event": "No id"}, "userId or anonymousId is required")
        ]


def test_a_timestamp_out_of_range_after_skew_correction_uses_received_time(workspace, send):
    response = send(
        "track",
        {"userId": "u", "event": "E", "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
        write_key=workspace.write_key,
    )

    assert response.status_code == 200
    [event] = _events(workspace)
    assert event.timestamp == event.received_at
    assert event.warnings == ["timestamp could not be parsed; the received time was used"]


# --- big groups are written with COPY -------------------------------------------------

TRICKY_PROPERTIES = {
    "quote": 'it\'s "quoted"',
    "backslash": "C:\\new\\table",
    "controls": "tab\there\nnewline\rreturn",
    "nul": "x\u0000y",
    "unicode": "café ☕ 𝄞",
    "nested": {"list": [1, 2.5, None, True, "\\N"], "empty": {}},
    "big": 12345678901234567890,
}


def _tricky_messages(count: int) -> list[dict]:
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    return [
        {
            "type": "track" if i % 3 else "page",
            "event": f"Tricky \\ {i % 4}\t",
            "anonymousId": f"anon-{i % 7}",
            "userId": f"user-{i % 5}" if i % 2 else None,
            "messageId": f"m-{i:05d}",
            "timestamp": _iso(start + timedelta(seconds=i)),
            "properties": {**TRICKY_PROPERTIES, "i": i},
            "context": {"library": {"name": "tricky\\lib"}, "sessionId": f"s\t{i % 3}"},
        }
        for i in range(count)
    ]


STORED_FIELDS = (
    "name",
    "properties",
    "context",
    "timestamp",
    "message_id",
    "anonymous_id",
    "user_id",
    "session_id",
    "warnings",
)


def _stored(workspace) -> list[tuple]:
    events = sorted(_events(workspace), key=lambda e: e.message_id)
    return [tuple(getattr(e, field) for field in STORED_FIELDS) for e in events]


def test_a_big_batch_is_written_with_copy_exactly_as_small_batches_are(db, send):
    copied, inserted = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    messages = _tricky_messages(COPY_MIN_EVENTS + 20)

    assert send("batch", {"batch": messages}, write_key=copied.write_key).json()["stored"] == len(messages)
    for start in range(0, len(messages), 100):
        send("batch", {"batch": messages[start : start + 100]}, write_key=inserted.write_key)

    big, small = _stored(copied), _stored(inserted)
    assert len(big) == len(messages)
    assert big == small
    first = big[0]
    assert first[1]["nul"] == "x\ufffdy"
    assert first[1]["nested"] == {"list": [1, 2.5, None, True, "\\N"], "empty": {}}
    assert first[1]["big"] == 12345678901234567890
    assert first[7] == "s\t0"


# --- nothing is changed quietly ---------------------------------------------------------


def _warned(workspace) -> list[tuple]:
    with workspace_scope(workspace):
        return list(
            QuarantinedMessage.objects.filter(kind=QuarantineKind.WARNED)
            .order_by("id")
            .values_list("message_id", "reason", "raw")
        )


def _rejected(workspace) -> list[tuple]:
    with workspace_scope(workspace):
        return list(
            QuarantinedMessage.objects.filter(kind=QuarantineKind.REJECTED)
            .order_by("id")
            .values_list("message_id", "reason", "raw")
        )


NUL_WARNING = "NUL characters in {} were replaced by U+FFFD"


def test_nul_in_a_property_key_or_value_is_replaced_with_a_warning(workspace, send):
    message = {
        "userId": "u",
        "event": "E",
        "messageId": "m-nul",
        "properties": {"k\u0000ey": "v", "plain": "a\u0000b", "literal": "\\u0000 is text"},
    }

    response = send("track", message, write_key=workspace.write_key)

    warning = NUL_WARNING.format("properties")
    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert response.json()["warnings"] == [{"index": 0, "messageId": "m-nul", "warnings": [warning]}]
    [event] = _events(workspace)
    assert event.properties == {"k\ufffdey": "v", "plain": "a\ufffdb", "literal": "\\u0000 is text"}
    assert event.warnings == [warning]
    [(message_id, reason, raw)] = _warned(workspace)
    assert (message_id, reason) == ("m-nul", warning)
    assert raw["properties"]["plain"] == "a\ufffdb"  # jsonb cannot hold the NUL either
    assert _rejected(workspace) == []


def test_nul_in_traits_and_context_is_named_in_the_warning_of_each_message(workspace, send):
    response = send(
        "batch",
        {
            "batch": [
                {"type": "identify", "userId": "u", "traits": {"name": "A\u0000da"}, "messageId": "m-1"},
                {"type": "track", "userId": "u", "event": "E", "messageId": "m-2"},
                {
                    "type": "page",
                    "userId": "u",
                    "messageId": "m-3",
                    "properties": {"title": "x\u0000"},
                    "context": {"ip\u0000": "1"},
                },
                # Not stored anywhere (a track's traits): nothing was changed, no warning.
                {"type": "track", "userId": "u", "event": "E", "traits": {"x": "\u0000"}, "messageId": "m-4"},
            ]
        },
        write_key=workspace.write_key,
    )

    assert response.json()["warnings"] == [
        {"index": 0, "messageId": "m-1", "warnings": [NUL_WARNING.format("traits")]},
        {"index": 2, "messageId": "m-3", "warnings": [NUL_WARNING.format("properties and context")]},
    ]
    with workspace_scope(workspace):
        assert Person.objects.get().traits["name"] == "A\ufffdda"
    assert [(m, r) for m, r, _ in _warned(workspace)] == [
        ("m-1", NUL_WARNING.format("traits")),
        ("m-3", NUL_WARNING.format("properties and context")),
    ]


def test_an_answer_without_adjusted_messages_has_no_warnings_key(workspace, send):
    response = send(
        "track", {"userId": "u", "event": "E", "properties": {"a": "\\u0000"}}, write_key=workspace.write_key
    )

    assert "warnings" not in response.json()
    assert _warned(workspace) == []


@pytest.mark.parametrize(
    "timestamp", ["0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z"]
)
def test_a_timestamp_before_2000_uses_received_time_with_a_warning(workspace, send, timestamp):
    message = {"type": "track", "userId": "u", "event": "E", "messageId": "m-old", "timestamp": timestamp}

    response = send("batch", {"batch": [message], "sentAt": _iso(datetime.now(UTC))}, write_key=workspace.write_key)

    warning = "timestamp was before 2000-01-01; the received time was used"
    assert response.json()["warnings"] == [{"index": 0, "messageId": "m-old", "warnings": [warning]}]
    [event] = _events(workspace)
    assert event.timestamp == event.received_at
    assert event.warnings == [warning]
    with workspace_scope(workspace):
        person = Person.objects.get()
    assert person.first_seen == person.first_event_at == event.received_at
    assert _warned(workspace) == [("m-old", warning, message)]


def test_a_timestamp_of_2000_is_kept(workspace, send):
    response = send(
        "track", {"userId": "u", "event": "E", "timestamp": "2000-01-01T00:00:00Z"}, write_key=workspace.write_key
    )

    assert "warnings" not in response.json()
    [event] = _events(workspace)
    assert event.timestamp == datetime(2000, 1, 1, tzinfo=UTC)


def test_the_warning_of_an_unparsable_timestamp_is_in_the_answer_and_the_quarantine(workspace, send):
    response = send(
        "track", {"userId": "u", "event": "E", "messageId": "m", "timestamp": "soon"}, write_key=workspace.write_key
    )

    warning = "timestamp could not be parsed; the received time was used"
    assert response.json()["warnings"] == [{"index": 0, "messageId": "m", "warnings": [warning]}]
    assert [(m, r) for m, r, _ in _warned(workspace)] == [("m", warning)]


HUGE_NUMBERS = [b"1e400", b"-1e400", b"9" * 400, b"-" + b"9" * 400]


@pytest.mark.parametrize("number", HUGE_NUMBERS)
def test_a_number_too_large_for_a_double_refuses_only_its_message(workspace, send, number):
    body = (
        b'{"batch": [{"type": "track", "userId": "u", "event": "Kept", "messageId": "m-1"},'
        b' {"type": "track", "userId": "u", "event": "Huge", "messageId": "m-2", "properties": {"n": ' + number + b"}},"
        b' {"type": "track", "userId": "u", "event": "Big but fine", "messageId": "m-3",'
        b' "properties": {"n": 1e308, "i": 123456789012345678901234567890}}]}'
    )

    response = send("batch", None, raw=body, write_key=workspace.write_key)

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "accepted": 2,
        "rejected": 1,
        "stored": 2,
        "duplicates": 0,
        "suppressed": 0,
    }
    kept, big = _events(workspace)
    assert (kept.name, kept.properties, big.name) == ("Kept", {}, "Big but fine")
    # jsonb hands integral numbers back as integers.
    assert (float(big.properties["n"]), float(big.properties["i"])) == (1e308, 1.2345678901234568e29)
    [(message_id, reason, raw)] = _rejected(workspace)
    assert message_id == "m-2"
    assert reason == f"a number is too large for a double: {number.decode()[:40]}"
    assert raw["properties"] == {"n": number.decode()}  # kept as its text


def test_a_single_message_with_a_number_too_large_for_a_double_is_quarantined(workspace, send):
    body = b'{"userId": "u", "event": "E", "messageId": "m-1", "context": {"screen": {"width": 1e999}}}'

    response = send("track", None, raw=body, write_key=workspace.write_key)

    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["rejected"]) == (0, 1)
    assert [(m, r) for m, r, _ in _rejected(workspace)] == [("m-1", "a number is too large for a double: 1e999")]
    assert _events(workspace) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"batch": [{"n": 1e400}], "x": NaN}',  # still not JSON after the number
        b'{"batch": [{"n": 1e400}], "x": "\\ud800"}',  # a lone surrogate, which orjson refuses too
        b'{"batch": [{"n": 1e400}]',
    ],
)
def test_a_body_with_a_huge_number_and_invalid_json_is_still_400(workspace, send, body):
    response = send("batch", None, raw=body, write_key=workspace.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert stored_rows() == NOTHING_STORED


def test_a_message_nested_deeper_than_can_be_stored_is_refused_on_its_own(workspace, send):
    deep = b'{"a":' * 300 + b"1" + b"}" * 300
    body = (
        b'{"batch": [{"type": "track", "userId": "u", "event": "Deep", "messageId": "m-1", "properties": '
        + deep
        + b'}, {"type": "track", "userId": "u", "event": "Kept", "messageId": "m-2"}]}'
    )

    response = send("batch", None, raw=body, write_key=workspace.write_key)

    assert response.status_code == 200
    assert (response.json()["stored"], response.json()["rejected"]) == (1, 1)
    assert [e.name for e in _events(workspace)] == ["Kept"]
    assert _rejected(workspace) == [
        (
            "m-1",
            "message is nested too deeply to be stored",
            {"type": "track", "userId": "u", "event": "Deep", "messageId": "m-1"},
        )
    ]


def test_warnings_of_a_suppressed_message_are_answered_but_nothing_is_kept(workspace, send):
    with workspace_scope(workspace):
        SuppressedId.objects.create(workspace=workspace, kind="user_id", value="gone")

    response = send(
        "track", {"userId": "gone", "event": "E", "properties": {"x": "\u0000"}}, write_key=workspace.write_key
    )

    assert response.json()["suppressed"] == 1
    assert len(response.json()["warnings"]) == 1
    assert _warned(workspace) == []
    assert _events(workspace) == []


def test_identify_cannot_set_reserved_dollar_traits(workspace, send):
    # Given a person whose first page set first-touch traits, and computed traits written by the product
    send("page", {"userId": "u", "properties": {"referrer": "https://a.test/"}}, write_key=workspace.write_key)
    with workspace_scope(workspace):
        Person.objects.filter(user_id="u").update(traits={"$initial_referrer": "https://a.test/", "$rfm_group": "Lost"})

    # When identify tries to set $ traits beside an ordinary one
    response = send(
        "identify",
        {
            "userId": "u",
            "messageId": "m-1",
            "traits": {
                "plan": "Pro",
                "$rfm_group": "Champions",
                "$initial_referrer": "forged",
                "$engagement_score": 100,
            },
        },
        write_key=workspace.write_key,
    )

    # Then only the ordinary trait is written, and the answer and the quarantine name the ignored keys
    warning = (
        "traits starting with $ are reserved for Cohortly and were not set: "
        "$engagement_score, $initial_referrer, $rfm_group"
    )
    assert response.json()["warnings"] == [{"index": 0, "messageId": "m-1", "warnings": [warning]}]
    with workspace_scope(workspace):
        assert Person.objects.get(user_id="u").traits == {
            "$initial_referrer": "https://a.test/",
            "$rfm_group": "Lost",
            "plan": "Pro",
        }
    assert [(m, r) for m, r, _ in _warned(workspace)] == [("m-1", warning)]
