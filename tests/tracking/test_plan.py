"""tracking.plan: the plan's JSON document, its edits, the check of one track call, the batch's tally."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracking import plan
from tracking.plan import (
    MISSING_PROPERTY,
    UNKNOWN_EVENT,
    UNKNOWN_PROPERTY,
    WRONG_TYPE,
    PlanDocument,
    PlanInvalid,
    Violation,
)

ORDER = {
    "block_unplanned_events": True,
    "events": {
        "Order Completed": {
            "description": "A customer paid.",
            "quarantine_violations": True,
            "properties": {
                "revenue": {"type": "number", "required": True},
                "coupon": {"type": "string"},
                "items": {"type": "list"},
                "address": {"type": "object"},
                "gift": {"type": "boolean"},
            },
        },
        "Signed Up": {},
    },
}


def _errors(data) -> dict[str, list[str]]:
    with pytest.raises(PlanInvalid) as refused:
        plan.parse(data)
    return refused.value.errors


# --- the document ------------------------------------------------------------------------


def test_a_document_parses_with_defaults_and_writes_back_in_one_form():
    document = plan.parse(ORDER)

    assert [event.name for event in document.events] == ["Order Completed", "Signed Up"]
    assert document.block_unplanned_events is True
    order = document.event("Order Completed")
    assert order is not None
    assert order.quarantine_violations is True
    assert [(p.name, p.type, p.required) for p in order.properties] == [
        ("address", "object", False),
        ("coupon", "string", False),
        ("gift", "boolean", False),
        ("items", "list", False),
        ("revenue", "number", True),
    ]
    written = document.as_json()
    assert written["events"]["Signed Up"] == {"description": "", "quarantine_violations": False, "properties": {}}
    assert written["events"]["Order Completed"]["properties"]["coupon"] == {
        "type": "string",
        "required": False,
        "description": "",
    }
    assert plan.parse(written) == document


def test_an_empty_plan_is_no_plan():
    document = plan.parse({"events": {}})

    assert document == PlanDocument()
    assert plan.compile_plan(document) is None


def test_every_problem_is_named_by_its_path():
    errors = _errors(
        {
            "block_unplanned_events": "yes",
            "colour": 1,
            "events": {
                "Order Completed": {
                    "quarantine": True,
                    "description": 5,
                    "properties": {
                        "revenue": {"type": "integer", "required": 1},
                        "coupon": {},
                        "items": "list",
                        "": {"type": "string"},
                    },
                },
                "$pageview": {},
                "Bad\x00Name": {},
                "Listed": [],
            },
        }
    )

    assert errors == {
        "colour": ["Unknown field; one of block_unplanned_events, events is expected."],
        "block_unplanned_events": ["Must be true or false, not string."],
        'events["Order Completed"].quarantine': [
            "Unknown field; one of description, quarantine_violations, properties is expected."
        ],
        'events["Order Completed"].description': ["Must be a string, not number."],
        'events["Order Completed"].properties["revenue"].type': [
            'One of string, number, boolean, object, list, not "integer".'
        ],
        'events["Order Completed"].properties["revenue"].required': ["Must be true or false, not number."],
        'events["Order Completed"].properties["coupon"].type': [
            "Required: one of string, number, boolean, object, list."
        ],
        'events["Order Completed"].properties["items"]': ["Must be an object, not string."],
        'events["Order Completed"].properties[""]': ["A property name cannot be empty."],
        'events["$pageview"]': [
            "$pageview is where page and screen calls are stored; the plan checks track calls only."
        ],
        'events["Bad\\u0000Name"]': ["An event name cannot contain the NUL character."],
        'events["Listed"]': ["Must be an object, not list."],
    }


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ([], "", "Must be an object, not list."),
        ({}, "events", "Required: an object of events by name ({} for an empty plan)."),
        ({"events": []}, "events", "Must be an object, not list."),
        ({"events": {"A": {"properties": []}}}, 'events["A"].properties', "Must be an object, not list."),
        (
            {"events": {"A": {"description": "x" * 1001}}},
            'events["A"].description',
            "At most 1000 characters; this one has 1001.",
        ),
        (
            {"events": {"A": {"description": "\ud800"}}},
            'events["A"].description',
            "The description contains a character that is not valid text (a lone surrogate).",
        ),
        ({"events": {"": {}}}, 'events[""]', "An event name cannot be empty."),
        ({"events": {'a.b["c"]': 1}}, 'events["a.b[\\"c\\"]"]', "Must be an object, not number."),
    ],
)
def test_refusals_name_their_path(data, path, message):
    assert _errors(data) == {path: [message]}


def test_the_limits_are_exact():
    events = {f"E{i}": {} for i in range(plan.MAX_EVENTS)}
    assert len(plan.parse({"events": events}).events) == plan.MAX_EVENTS
    assert _errors({"events": {**events, "one more": {}}})["events"] == [
        f"At most {plan.MAX_EVENTS} events; this plan has {plan.MAX_EVENTS + 1}."
    ]
    properties = {f"p{i}": {"type": "string"} for i in range(plan.MAX_PROPERTIES)}
    assert len(plan.parse({"events": {"A": {"properties": properties}}}).events[0].properties) == plan.MAX_PROPERTIES
    properties["one more"] = {"type": "string"}
    assert _errors({"events": {"A": {"properties": properties}}}) == {
        'events["A"].properties': [f"At most {plan.MAX_PROPERTIES} properties per event; this one has 101."]
    }


def test_a_document_with_many_problems_reports_the_first_fifty():
    errors = _errors({"events": {f"E{i}": {"properties": {"p": {}}} for i in range(80)}})

    assert len(errors) == plan.MAX_ERRORS


def test_json_text_that_is_not_json_is_refused_as_such():
    with pytest.raises(PlanInvalid) as refused:
        plan.parse_json_text("{'events': {}}")

    assert list(refused.value.errors) == [""]
    assert refused.value.errors[""][0].startswith("Not valid JSON: ")


# --- edits ---------------------------------------------------------------------------------


def test_edits_add_change_and_remove_events_and_properties():
    document = plan.event_add(PlanDocument(), name="Signed Up", description="New account")
    document = plan.event_add(document, name="Order Completed", quarantine_violations=True)
    document = plan.property_set(document, event="Order Completed", name="revenue", type="number", required=True)
    document = plan.property_set(document, event="Order Completed", name="coupon", type="string", required=False)
    document = plan.property_set(document, event="Order Completed", name="revenue", type="string", required=False)
    document = plan.event_update(document, name="Signed Up", description="", quarantine_violations=True)
    document = plan.property_remove(document, event="Order Completed", name="coupon")

    assert document.as_json() == {
        "block_unplanned_events": False,
        "events": {
            "Order Completed": {
                "description": "",
                "quarantine_violations": True,
                "properties": {"revenue": {"type": "string", "required": False, "description": ""}},
            },
            "Signed Up": {"description": "", "quarantine_violations": True, "properties": {}},
        },
    }
    assert plan.event_remove(document, name="Signed Up").as_json()["events"].keys() == {"Order Completed"}


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: plan.event_add(d, name="Signed Up"), "name", "“Signed Up” is already in the plan."),
        (
            lambda d: plan.event_add(d, name="$screen"),
            "name",
            "$screen is where page and screen calls are stored; the plan checks track calls only.",
        ),
        (
            lambda d: plan.event_add(d, name="x" * 201),
            "name",
            "Track calls carry event names of at most 200 characters.",
        ),
        (
            lambda d: plan.event_remove(d, name="Gone"),
            "event",
            "“Gone” is not in the plan (any more): reload the page.",
        ),
        (
            lambda d: plan.property_set(d, event="Signed Up", name="p", type="integer", required=False),
            "type",
            "One of string, number, boolean, object, list.",
        ),
        (
            lambda d: plan.property_remove(d, event="Signed Up", name="p"),
            "name",
            "“p” is not a property of “Signed Up” (any more): reload the page.",
        ),
        (
            lambda d: plan.event_update(d, name="Signed Up", description="x" * 1001, quarantine_violations=False),
            "description",
            "At most 1000 characters.",
        ),
    ],
)
def test_edits_refuse_with_the_field_to_fix(edit, field, message):
    document = plan.event_add(PlanDocument(), name="Signed Up")

    with pytest.raises(PlanInvalid) as refused:
        edit(document)

    assert refused.value.errors == {field: [message]}


def test_changed_events_names_what_a_save_changes():
    before = plan.parse(ORDER)
    after = plan.property_set(before, event="Order Completed", name="coupon", type="number", required=False)
    after = plan.event_add(after, name="Cart Viewed")

    assert plan.changed_events(before, after) == {"Order Completed", "Cart Viewed"}
    assert plan.changed_events(before, plan.event_remove(before, name="Signed Up")) == {"Signed Up"}
    assert plan.changed_events(before, before) == set()


# --- the check -----------------------------------------------------------------------------


def test_a_call_that_follows_the_plan_has_no_violation():
    checker = plan.compile_plan(plan.parse(ORDER))
    assert checker is not None

    found = checker.check(
        "Order Completed",
        {"revenue": 12.5, "coupon": None, "items": [1], "address": {"city": "Lyon"}, "gift": False},
    )

    assert found == ([], False)
    assert checker.check("Signed Up", {}) == ([], False)
    assert checker.check("Order Completed", {"revenue": 3}) == ([], False), "an integer is a number"


def test_each_kind_of_violation_is_found():
    checker = plan.compile_plan(plan.parse(ORDER))
    assert checker is not None

    violations, quarantined = checker.check(
        "Order Completed", {"revenue": "12.50", "colour": "red", "gift": 1, "items": {"a": 1}, "address": None}
    )

    assert violations == [
        Violation(WRONG_TYPE, "revenue", "string", "number"),
        Violation(UNKNOWN_PROPERTY, "colour"),
        Violation(WRONG_TYPE, "gift", "number", "boolean"),
        Violation(WRONG_TYPE, "items", "object", "list"),
    ]
    assert quarantined is True
    assert checker.check("Order Completed", {"revenue": None}) == ([Violation(MISSING_PROPERTY, "revenue")], True)
    assert checker.check("Order Completed", {"revenue": True}) == (
        [Violation(WRONG_TYPE, "revenue", "boolean", "number")],
        True,
    ), "true is not a number"
    assert checker.check("Prodcut Viewed", {"x": 1}) == ([Violation(UNKNOWN_EVENT)], True), "blocked: unplanned"
    assert checker.check("Signed Up", {"x": 1}) == ([Violation(UNKNOWN_PROPERTY, "x")], False)


def test_violations_read_as_sentences():
    assert Violation(UNKNOWN_EVENT).text("Prodcut Viewed") == "event “Prodcut Viewed” is not in the tracking plan"
    assert Violation(UNKNOWN_PROPERTY, "colour").text("E") == "property “colour” is not in the plan"
    assert Violation(WRONG_TYPE, "revenue", "string", "number").text("E") == (
        "property “revenue” should be a number, not a string"
    )
    assert Violation(WRONG_TYPE, "o", "list", "object").text("E") == "property “o” should be an object, not a list"
    assert Violation(MISSING_PROPERTY, "revenue").text("E") == "required property “revenue” is missing"


# --- the tally -----------------------------------------------------------------------------

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_the_tally_sums_per_event_kind_and_property_with_the_latest_examples_capped():
    tally = plan.Tally()
    for index in range(5):
        message = {
            "message_id": f"m{index}",
            "user_id": "u",
            "anonymous_id": None,
            "at": AT,
            "properties": {"x": index},
        }
        tally.add("E", [Violation(UNKNOWN_PROPERTY, "x")], quarantined=index % 2 == 0, received_at=AT, message=message)
    long = {f"k{i}": "v" * 500 for i in range(30)}
    tally.add(
        "E",
        [Violation(UNKNOWN_PROPERTY, "p\x00" + "q" * 300)],
        quarantined=False,
        received_at=AT,
        message={"message_id": "big", "properties": {**long, "nested": {"deep": "w" * 300}}},
    )

    rows = {(row["e"], row["k"], row["p"]): row for row in tally.rows()}
    counted = rows[("E", UNKNOWN_PROPERTY, "x")]
    assert (counted["n"], counted["q"]) == (5, 3)
    assert [example["message_id"] for example in counted["x"]] == ["m4", "m3", "m2"], "newest first, 3 kept"
    assert counted["x"][0]["problems"] == ["property “x” is not in the plan"]
    [(key, big)] = [(key, row) for key, row in rows.items() if key[2] != "x"]
    assert key[2] == "p\ufffd" + "q" * 198, "a key the column can hold"
    properties = big["x"][0]["properties"]
    assert len(properties) == plan.EXAMPLE_KEYS + 1
    assert properties["…"] == "11 more properties"
    assert properties["k0"] == "v" * 199 + "…"
    assert not bool(plan.Tally())
