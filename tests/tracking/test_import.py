from __future__ import annotations

import gzip
import io
import threading

import orjson
import pytest
from django.core.management import CommandError, call_command

from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking.conftest import stored_rows
from tracking.bulk_import import _read_ahead
from tracking.import_files import ImportFileError
from tracking.models import Event, Person, QuarantinedMessage, SuppressedId

MESSAGES = [
    {
        "type": "track",
        "userId": "u-1",
        "anonymousId": "a-1",
        "event": "Product Viewed",
        "messageId": "m-1",
        "timestamp": "2026-11-01T10:00:00Z",
        "properties": {"price": 10},
    },
    {
        "type": "page",
        "anonymousId": "a-2",
        "messageId": "m-2",
        "timestamp": "2026-11-01T10:01:00Z",
        "properties": {"url": "https://shop.example/?utm_source=news", "referrer": "https://www.google.com/search"},
    },
    {
        "type": "track",
        "userId": "u-1",
        "event": "Order Completed",
        "messageId": "m-3",
        "timestamp": "2026-11-01T10:02:00Z",
        "properties": {"revenue": 42.5},
    },
    {"type": "identify", "userId": "u-1", "anonymousId": "a-1", "traits": {"plan": "Pro"}, "messageId": "m-4"},
]


def _ndjson(lines) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


BAD_LINES = [
    MESSAGES[0],  # the same messageId again: a duplicate
    b'{"type": "track", "userId": ',  # cut off: invalid JSON
    {"type": "track", "event": "No ids", "messageId": "m-5"},  # neither userId nor anonymousId
    b"[1, 2]",  # not an object
    b"",  # blank lines are skipped
]


def _import(path, workspace, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_events", str(path), workspace=workspace.pk, no_progress=True, stdout=out, stderr=err, **options
    )
    return out.getvalue(), err.getvalue()


def _summary(output: str) -> str:
    return output.split(": ", 1)[1].split(" in ")[0]


def test_ndjson_import_stores_through_the_ingestion_rules_and_counts(workspace, tmp_path):
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson(MESSAGES + BAD_LINES))

    output, errors = _import(path, workspace)

    assert _summary(output) == "8 read, 4 accepted, 1 duplicate, 3 rejected, 0 suppressed"
    assert "rejected line 6: invalid JSON" in errors
    assert "rejected line 8: message must be a JSON object (list)" in errors
    assert "rejected message m-5: userId or anonymousId is required" in errors
    with workspace_scope(workspace):
        assert sorted(Event.objects.values_list("name", flat=True)) == [
            "$pageview",
            "Order Completed",
            "Product Viewed",
        ]
        ada = Person.objects.get(user_id="u-1")
        assert ada.traits == {"plan": "Pro"}
        assert sorted(ada.identities.values_list("value", flat=True)) == ["a-1", "u-1"]
        visitor = Person.objects.get(identities__value="a-2")
        assert visitor.traits["$initial_referring_domain"] == "www.google.com"
        assert visitor.traits["$initial_utm_source"] == "news"
        assert sorted(QuarantinedMessage.objects.values_list("reason", flat=True)) == [
            "invalid JSON",
            "message must be a JSON object",
            "userId or anonymousId is required",
        ]
        order = Event.objects.get(name="Order Completed")
    assert order.timestamp.isoformat() == "2026-11-01T10:02:00+00:00"
    assert order.person_id == ada.pk


def test_importing_the_same_file_again_stores_nothing_twice(workspace, tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_bytes(_ndjson(MESSAGES))
    _import(path, workspace)

    output, _ = _import(path, workspace)

    assert _summary(output) == "4 read, 0 accepted, 4 duplicate, 0 rejected, 0 suppressed"
    with workspace_scope(workspace):
        assert Event.objects.count() == 3


def test_gzip_ndjson_is_recognised_by_its_bytes(workspace, tmp_path):
    path = tmp_path / "export.ndjson.gz"
    path.write_bytes(gzip.compress(_ndjson(MESSAGES + BAD_LINES)))
    unnamed = tmp_path / "export.bin"
    unnamed.write_bytes(gzip.compress(_ndjson([{**MESSAGES[0], "messageId": "other"}])))

    output, _ = _import(path, workspace)
    second, _ = _import(unnamed, workspace)

    assert _summary(output) == "8 read, 4 accepted, 1 duplicate, 3 rejected, 0 suppressed"
    assert _summary(second) == "1 read, 1 accepted, 0 duplicate, 0 rejected, 0 suppressed"
    with workspace_scope(workspace):
        assert Event.objects.count() == 4


def test_exported_times_are_kept_not_moved_to_the_import(workspace, tmp_path):
    path = tmp_path / "old.ndjson"
    path.write_bytes(
        _ndjson(
            [
                # No receivedAt: sentAt is ignored rather than shifting the event to now.
                {
                    "type": "track",
                    "userId": "u",
                    "event": "A",
                    "timestamp": "2024-01-01T00:00:00Z",
                    "sentAt": "2024-01-01T00:00:05Z",
                },
                # With receivedAt: the clock-skew correction of the contract, against that time.
                {
                    "type": "track",
                    "userId": "u",
                    "event": "B",
                    "timestamp": "2024-01-01T00:00:00Z",
                    "sentAt": "2024-01-01T00:01:00Z",
                    "receivedAt": "2024-01-01T00:00:30Z",
                },
            ]
        )
    )

    _import(path, workspace)

    with workspace_scope(workspace):
        times = dict(Event.objects.values_list("name", "timestamp"))
    assert times["A"].isoformat() == "2024-01-01T00:00:00+00:00"
    assert times["B"].isoformat() == "2023-12-31T23:59:30+00:00"


def test_csv_of_people_sets_traits_with_the_identity_rules(workspace, tmp_path):
    # A person the site already knows by user id gets the CRM's traits.
    events = tmp_path / "events.ndjson"
    events.write_bytes(_ndjson(MESSAGES))
    _import(events, workspace)
    path = tmp_path / "crm.csv"
    path.write_text(
        "user_id,email,plan,lifetime_value\n"
        "u-1,ada@example.com,Enterprise,1200\n"
        "u-2,bob@example.com,,15\n"
        ",nobody@example.com,Free,0\n"
        "u-3,too,many,columns,here\n"
        "\n",
        encoding="utf-8",
    )

    output, errors = _import(path, workspace)

    assert _summary(output) == "4 read, 2 accepted, 0 duplicate, 2 rejected, 0 suppressed"
    assert "user_id is empty" in errors
    with workspace_scope(workspace):
        ada = Person.objects.get(user_id="u-1")
        bob = Person.objects.get(user_id="u-2")
        assert Person.objects.filter(user_id="u-3").count() == 0
    assert ada.traits == {"plan": "Enterprise", "email": "ada@example.com", "lifetime_value": "1200"}
    assert bob.traits == {"email": "bob@example.com", "lifetime_value": "15"}
    again, _ = _import(path, workspace)
    assert _summary(again) == "4 read, 0 accepted, 2 duplicate, 2 rejected, 0 suppressed"


def test_gzip_csv(workspace, tmp_path):
    path = tmp_path / "crm.csv.gz"
    path.write_bytes(gzip.compress("\ufeffuser_id,country\nu-9,NL\n".encode()))

    output, _ = _import(path, workspace)

    assert _summary(output) == "1 read, 1 accepted, 0 duplicate, 0 rejected, 0 suppressed"
    with workspace_scope(workspace):
        assert Person.objects.get(user_id="u-9").traits == {"country": "NL"}


def test_csv_without_user_id_column_is_refused_and_nothing_stored(workspace, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("email,plan\nada@example.com,Pro\n")
    before = stored_rows()

    with pytest.raises(CommandError, match="user_id"):
        _import(path, workspace)

    assert stored_rows() == before


def test_events_of_suppressed_ids_are_counted(workspace, tmp_path):
    with workspace_scope(workspace):
        SuppressedId.objects.create(workspace=workspace, kind="user_id", value="u-1")
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson(MESSAGES))

    output, _ = _import(path, workspace)

    assert _summary(output) == "4 read, 1 accepted, 0 duplicate, 0 rejected, 3 suppressed"
    with workspace_scope(workspace):
        assert list(Event.objects.values_list("name", flat=True)) == ["$pageview"]


def test_chunks_are_independent_transactions_with_the_same_result(workspace, tmp_path):
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson(MESSAGES + BAD_LINES))

    output, _ = _import(path, workspace, chunk_size=2)

    assert _summary(output) == "8 read, 4 accepted, 1 duplicate, 3 rejected, 0 suppressed"
    with workspace_scope(workspace):
        assert Person.objects.get(user_id="u-1").traits == {"plan": "Pro"}


def test_import_goes_to_the_named_workspace_only(workspace, tmp_path):
    other = factories.WorkspaceFactory()
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson(MESSAGES))

    _import(path, other)

    with workspace_scope(workspace):
        assert Event.objects.count() == 0
    with workspace_scope(other):
        assert Event.objects.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"workspace": 999999}, "no such workspace"),
        ({}, "give --workspace"),
        ({"chunk_size": 0}, "--chunk-size"),
    ],
)
def test_bad_command_arguments(workspace, tmp_path, args, message):
    factories.WorkspaceFactory()  # two workspaces: --workspace is needed
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson(MESSAGES))
    before = stored_rows()

    with pytest.raises(CommandError, match=message):
        call_command("import_events", str(path), no_progress=True, stdout=io.StringIO(), **args)

    assert stored_rows() == before


def test_missing_file(workspace, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        _import(tmp_path / "nope.ndjson", workspace)


def test_read_ahead_keeps_the_order_and_raises_what_the_reader_raised_where_it_raised_it():
    def lines():
        yield from range(5)
        raise ImportFileError("line 6: broken")

    seen = []

    def consume():
        for item in _read_ahead(lines(), depth=2):
            seen.append(item)

    with pytest.raises(ImportFileError, match="line 6"):
        consume()
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_stops_its_reader_when_storing_fails():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    def store():
        for item in _read_ahead(endless(), depth=2):
            if item == 3:
                raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        store()
    assert not [t for t in threading.enumerate() if t.name == "import-read-ahead"]
    # At most depth items beyond the one being stored, plus the one waiting to be queued.
    assert len(produced) <= 3 + 1 + 2 + 1


def test_import_refuses_a_huge_number_on_its_line_and_warns_about_what_it_changes(workspace, tmp_path):
    path = tmp_path / "export.ndjson"
    path.write_bytes(
        _ndjson(
            [
                b'{"type": "track", "userId": "u", "event": "Huge", "messageId": "m-1", "properties": {"n": 1e400}}',
                {"type": "track", "userId": "u", "event": "Nul", "messageId": "m-2", "properties": {"a\u0000": 1}},
                {
                    "type": "track",
                    "userId": "u",
                    "event": "Old",
                    "messageId": "m-3",
                    "timestamp": "1900-01-01T00:00:00Z",
                },
                {
                    "type": "track",
                    "userId": "u",
                    "event": "Reset clock",
                    "messageId": "m-4",
                    "receivedAt": "1970-01-01T00:00:00Z",
                },
                MESSAGES[0],
            ]
        )
    )

    output, errors = _import(path, workspace)

    assert _summary(output) == "5 read, 4 accepted, 0 duplicate, 1 rejected, 0 suppressed, 3 with warnings"
    assert "rejected message m-1: a number is too large for a double: 1e400" in errors
    assert "accepted with warnings message m-2: NUL characters in properties were replaced by U+FFFD" in errors
    with workspace_scope(workspace):
        rows = list(QuarantinedMessage.objects.order_by("id").values_list("kind", "message_id", "reason"))
        events = {e.name: e for e in Event.objects.all()}
    assert rows == [
        ("rejected", "m-1", "a number is too large for a double: 1e400"),
        ("warned", "m-2", "NUL characters in properties were replaced by U+FFFD"),
        ("warned", "m-3", "timestamp was before 2000-01-01; the received time was used"),
        ("warned", "m-4", "receivedAt was before 2000-01-01; the time of the import was used"),
    ]
    assert events["Nul"].properties == {"a\ufffd": 1}
    assert events["Old"].timestamp == events["Old"].received_at
    assert events["Reset clock"].timestamp.year >= 2026
    assert events["Product Viewed"].warnings == []
