"""Track calls checked against the tracking plan, through the real ingestion endpoints."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tenancy import workspace_scope
from tests import factories
from tests.tracking.builders import person as make_person
from tracking import plan, plan_services
from tracking.models import Event, PlanViolation, QuarantinedMessage, QuarantineKind
from tracking.people_services import person_erase

PLAN = {
    "events": {
        "Order Completed": {
            "properties": {
                "revenue": {"type": "number", "required": True},
                "currency": {"type": "string", "required": True},
                "items": {"type": "list"},
                "gift": {"type": "boolean"},
            }
        },
        "Signed Up": {"quarantine_violations": True, "properties": {"plan": {"type": "string", "required": True}}},
    }
}


def _save(workspace, document) -> None:
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(workspace=workspace, actor=None, document=plan.parse(document))


def _counts(workspace) -> dict[tuple[str, str, str], tuple[int, int]]:
    with workspace_scope(workspace):
        return {
            (row.event, row.kind, row.property): (row.count, row.quarantined)
            for row in PlanViolation.objects.filter(workspace=workspace)
        }


def _stored(workspace) -> list[tuple[str, dict]]:
    with workspace_scope(workspace):
        return [(e.name, e.properties) for e in Event.objects.order_by("id")]


def _quarantined(workspace, kind=QuarantineKind.PLAN) -> list[tuple[str, str]]:
    with workspace_scope(workspace):
        return [(q.reason, q.raw.get("event")) for q in QuarantinedMessage.objects.filter(kind=kind).order_by("id")]


def test_without_a_plan_nothing_is_checked_or_counted(workspace, send):
    response = send(
        "track", {"userId": "u", "event": "Anything", "properties": {"x": 1}}, write_key=workspace.write_key
    )

    assert response.json()["stored"] == 1
    assert _counts(workspace) == {}


def test_an_emptied_plan_checks_nothing_and_keeps_no_counts(workspace, send):
    _save(workspace, PLAN)
    send("track", {"userId": "u", "event": "Unplanned"}, write_key=workspace.write_key)
    assert _counts(workspace) == {("Unplanned", "unknown_event", ""): (1, 0)}

    _save(workspace, {"block_unplanned_events": True, "events": {}})
    response = send("track", {"userId": "u", "event": "Unplanned"}, write_key=workspace.write_key)

    assert response.json()["stored"] == 1, "an empty plan blocks nothing, whatever its switch"
    assert _counts(workspace) == {}


def test_every_kind_of_violation_is_counted_and_the_calls_stored(workspace, send):
    # Given a plan where Order Completed does not quarantine its violations
    _save(workspace, PLAN)

    # When track calls break it in every way, in one batch and one by one
    response = send(
        "batch",
        {
            "batch": [
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "Order Completed",
                    "properties": {"revenue": "12.50", "currency": "EUR"},
                },
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "Order Completed",
                    "properties": {"revenue": 5, "colour": "red"},
                },
                {
                    "type": "track",
                    "userId": "u2",
                    "event": "Order Completed",
                    "properties": {"revenue": 7, "currency": "EUR", "gift": "yes", "items": [1]},
                },
                {"type": "track", "userId": "u2", "event": "Prodcut Viewed", "properties": {"sku": "A"}},
                {
                    "type": "track",
                    "userId": "u2",
                    "event": "Order Completed",
                    "properties": {"revenue": 1, "currency": "EUR"},
                },
            ]
        },
        write_key=workspace.write_key,
    )
    send(
        "track",
        {"userId": "u3", "event": "Order Completed", "properties": {"revenue": None, "currency": "USD"}},
        write_key=workspace.write_key,
    )

    # Then every call is stored and each violation counted by event, kind and property
    assert response.json() == {
        "success": True,
        "accepted": 5,
        "rejected": 0,
        "stored": 5,
        "duplicates": 0,
        "suppressed": 0,
    }
    assert len(_stored(workspace)) == 6
    assert _counts(workspace) == {
        ("Order Completed", "wrong_type", "revenue"): (1, 0),
        ("Order Completed", "missing_property", "currency"): (1, 0),
        ("Order Completed", "unknown_property", "colour"): (1, 0),
        ("Order Completed", "wrong_type", "gift"): (1, 0),
        ("Order Completed", "missing_property", "revenue"): (1, 0),
        ("Prodcut Viewed", "unknown_event", ""): (1, 0),
    }
    assert _quarantined(workspace) == []


def test_examples_keep_the_latest_calls_with_their_problems(workspace, send):
    _save(workspace, PLAN)
    for index in range(5):
        send(
            "track",
            {
                "userId": f"u{index}",
                "event": "Order Completed",
                "messageId": f"m{index}",
                "properties": {"revenue": "x" * 500, "currency": "EUR"},
            },
            write_key=workspace.write_key,
        )

    with workspace_scope(workspace):
        row = PlanViolation.objects.get(event="Order Completed", kind="wrong_type", property="revenue")
    assert row.count == 5
    assert [example["message_id"] for example in row.examples] == ["m4", "m3", "m2"]
    latest = row.examples[0]
    assert latest["user_id"] == "u4"
    assert latest["anonymous_id"] is None
    assert latest["quarantined"] is False
    assert latest["problems"] == ["property “revenue” should be a number, not a string"]
    assert latest["properties"] == {"revenue": "x" * 199 + "…", "currency": "EUR"}


def test_an_event_that_quarantines_violations_keeps_violating_calls_out(workspace, send):
    # Given Signed Up quarantines its violations
    _save(workspace, PLAN)

    # When one call follows the plan and two break it, in one batch
    response = send(
        "batch",
        {
            "batch": [
                {"type": "track", "userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}},
                {"type": "track", "userId": "u2", "event": "Signed Up", "properties": {"plan": 3}},
                {"type": "track", "userId": "u3", "event": "Signed Up", "properties": {}},
            ]
        },
        write_key=workspace.write_key,
    )

    # Then the good call is stored and the others quarantined with their reasons, counted as rejected
    assert response.json() == {
        "success": True,
        "accepted": 1,
        "rejected": 2,
        "stored": 1,
        "duplicates": 0,
        "suppressed": 0,
    }
    assert _stored(workspace) == [("Signed Up", {"plan": "pro"})]
    assert _quarantined(workspace) == [
        ("Tracking plan: property “plan” should be a string, not a number", "Signed Up"),
        ("Tracking plan: required property “plan” is missing", "Signed Up"),
    ]
    assert _counts(workspace) == {
        ("Signed Up", "wrong_type", "plan"): (1, 1),
        ("Signed Up", "missing_property", "plan"): (1, 1),
    }
    with workspace_scope(workspace):
        kept = QuarantinedMessage.objects.filter(kind=QuarantineKind.PLAN).order_by("id").first()
        assert kept is not None
        assert kept.raw == {"type": "track", "userId": "u2", "event": "Signed Up", "properties": {"plan": 3}}, (
            "as received"
        )
        from tracking.models import Person

        assert list(Person.objects.values_list("user_id", flat=True)) == ["u1"], "nobody made for a kept-out call"


def test_a_quarantined_call_sent_again_is_a_duplicate(workspace, send):
    _save(workspace, PLAN)
    message = {"userId": "u", "event": "Signed Up", "messageId": "once", "properties": {}}

    first = send("track", message, write_key=workspace.write_key).json()
    again = send("track", message, write_key=workspace.write_key).json()

    assert (first["rejected"], again["duplicates"], again["rejected"]) == (1, 1, 0)
    assert len(_quarantined(workspace)) == 1
    assert _counts(workspace) == {("Signed Up", "missing_property", "plan"): (1, 1)}


def test_unplanned_events_are_counted_and_blocked_only_when_the_workspace_says_so(workspace, send):
    _save(workspace, PLAN)
    assert send("track", {"userId": "u", "event": "Cart Viewed"}, write_key=workspace.write_key).json()["stored"] == 1

    _save(workspace, {**PLAN, "block_unplanned_events": True})
    blocked = send("track", {"userId": "u", "event": "Cart Viewed"}, write_key=workspace.write_key).json()

    assert (blocked["stored"], blocked["rejected"], blocked["accepted"]) == (0, 1, 0)
    assert _quarantined(workspace) == [
        ("Tracking plan: event “Cart Viewed” is not in the tracking plan", "Cart Viewed")
    ]
    assert _counts(workspace) == {("Cart Viewed", "unknown_event", ""): (2, 1)}
    assert [name for name, _ in _stored(workspace)] == ["Cart Viewed"]


def test_page_screen_and_identify_calls_are_not_checked(workspace, send):
    _save(workspace, {**PLAN, "block_unplanned_events": True})

    send("page", {"userId": "u", "name": "Home", "properties": {"x": 1}}, write_key=workspace.write_key)
    send("screen", {"userId": "u", "name": "Home"}, write_key=workspace.write_key)
    send("identify", {"userId": "u", "traits": {"anything": True}}, write_key=workspace.write_key)

    assert [name for name, _ in _stored(workspace)] == ["$pageview", "$screen"]
    assert _counts(workspace) == {}


def test_a_saved_plan_applies_to_the_next_call(workspace, send):
    # Given a plan read (and cached) by a first call
    _save(workspace, PLAN)
    send(
        "track",
        {"userId": "u", "event": "Order Completed", "properties": {"revenue": 1, "currency": "EUR"}},
        write_key=workspace.write_key,
    )
    assert _counts(workspace) == {}

    # When the plan changes: revenue becomes a string
    document = plan.property_set(
        plan.parse(PLAN), event="Order Completed", name="revenue", type="string", required=True
    )
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(workspace=workspace, actor=None, document=document)
    send(
        "track",
        {"userId": "u", "event": "Order Completed", "properties": {"revenue": 1, "currency": "EUR"}},
        write_key=workspace.write_key,
    )

    # Then the very next call is checked against the new plan
    assert _counts(workspace) == {("Order Completed", "wrong_type", "revenue"): (1, 0)}


def test_the_plan_is_read_once_per_version_and_counts_take_one_statement_per_request(workspace, send, monkeypatch):
    _save(workspace, PLAN)
    recorded = []
    record = plan_services.violations_record

    def counting(cursor, workspace_id, tally):
        recorded.append(len(tally.rows()))
        record(cursor, workspace_id, tally)

    monkeypatch.setattr(plan_services, "violations_record", counting)
    plan_services._checkers.clear()

    def batch(tag):
        messages = [
            {
                "type": "track",
                "userId": f"u{i}",
                "event": "Order Completed",
                "messageId": f"{tag}-{i}",
                "properties": {"revenue": "1", "colour": i},
            }
            for i in range(20)
        ]
        with CaptureQueriesContext(connection) as queries:
            send("batch", {"batch": messages}, write_key=workspace.write_key)
        return sum('"tracking_trackingplan"."document"' in q["sql"] for q in queries.captured_queries)

    # The first request reads the plan; the next ones find it in memory, until it changes
    assert batch("first") == 1
    assert batch("second") == 0
    _save(workspace, {**PLAN, "block_unplanned_events": True})
    assert batch("third") == 1
    assert batch("fourth") == 0
    # and each request's 60 violations were written by one statement of 3 rows
    assert recorded == [3, 3, 3, 3]
    assert _counts(workspace) == {
        ("Order Completed", "wrong_type", "revenue"): (80, 0),
        ("Order Completed", "unknown_property", "colour"): (80, 0),
        ("Order Completed", "missing_property", "currency"): (80, 0),
    }


def test_counts_start_again_for_an_event_whose_plan_changes(workspace, send):
    _save(workspace, PLAN)
    send(
        "track", {"userId": "u", "event": "Order Completed", "properties": {"colour": 1}}, write_key=workspace.write_key
    )
    send(
        "track",
        {"userId": "u", "event": "Signed Up", "properties": {"plan": "pro", "x": 1}},
        write_key=workspace.write_key,
    )

    changed = plan.property_set(plan.parse(PLAN), event="Order Completed", name="colour", type="number", required=False)
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(workspace=workspace, actor=None, document=changed)

    assert _counts(workspace) == {("Signed Up", "unknown_property", "x"): (1, 1)}


def test_a_plan_applies_to_its_own_workspace_only(workspace, send):
    other = factories.WorkspaceFactory()
    _save(workspace, {**PLAN, "block_unplanned_events": True})

    response = send("track", {"userId": "u", "event": "Cart Viewed"}, write_key=other.write_key)

    assert response.json()["stored"] == 1
    assert _counts(other) == {}
    assert _counts(workspace) == {}


def test_property_names_and_values_from_the_wild_are_stored_safely(workspace, send):
    _save(workspace, PLAN)
    key = "k\x00" + "y" * 400

    response = send(
        "track",
        {"userId": "u", "event": "Order Completed", "properties": {"revenue": 1, "currency": "EUR", key: "v\x00"}},
        write_key=workspace.write_key,
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    [(event, kind, prop)] = _counts(workspace)
    assert (event, kind, prop) == ("Order Completed", "unknown_property", "k\ufffd" + "y" * 198)


def test_erasing_a_person_drops_the_examples_of_their_calls(workspace, send, owner):
    _save(workspace, PLAN)
    send(
        "track",
        {"userId": "ada", "event": "Order Completed", "properties": {"email": "ada@example.com"}},
        write_key=workspace.write_key,
    )
    send(
        "track",
        {"userId": "bob", "event": "Order Completed", "properties": {"email": "bob@example.com"}},
        write_key=workspace.write_key,
    )
    with workspace_scope(workspace):
        from tracking.models import Person

        ada = Person.objects.get(user_id="ada")
        person_erase(workspace=workspace, person=ada, actor=owner)
        row = PlanViolation.objects.get(kind="unknown_property", property="email")

    assert row.count == 2, "the counts stay"
    assert [example["user_id"] for example in row.examples] == ["bob"]


@pytest.mark.parametrize("endpoint", ["track", "batch"])
def test_a_request_with_violations_still_answers_with_the_contracts_counts(workspace, send, endpoint):
    _save(workspace, {**PLAN, "block_unplanned_events": True})
    message = {"type": "track", "userId": "u", "event": "Nope", "timestamp": "not a time"}
    body = message if endpoint == "track" else {"batch": [message, {"type": "track", "event": "no id"}]}

    answer = send(endpoint, body, write_key=workspace.write_key).json()

    assert answer["accepted"] + answer["rejected"] == (1 if endpoint == "track" else 2)
    assert answer["accepted"] == 0
    assert answer["stored"] == 0
    assert answer["warnings"][0]["warnings"] == ["timestamp could not be parsed; the received time was used"]


def test_a_person_made_before_a_plan_is_unaffected(workspace, send):
    make_person(workspace, user_id="u")
    _save(workspace, PLAN)

    assert (
        send(
            "track", {"userId": "u", "event": "Signed Up", "properties": {"plan": "pro"}}, write_key=workspace.write_key
        ).json()["stored"]
        == 1
    )
