"""The builder's catalogue: what it counts, that it reads only events past its watermark, and the pickers."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from segmentation.catalogue import selectors, tasks
from segmentation.catalogue.models import CatalogueEvent, CatalogueProperty, CatalogueWatermark
from segmentation.catalogue.services import TRAITS_MAX_AGE, catalogue_update
from tests import factories
from tests.accounts.support import logged_in_client
from tests.tracking import builders
from tracking.models import Event

pytestmark = pytest.mark.django_db


def _update(workspace, **kwargs):
    with workspace_scope(workspace):
        return catalogue_update(workspace=workspace, settle_seconds=0, **kwargs)


def _events(workspace):
    with workspace_scope(workspace):
        return sorted(CatalogueEvent.objects.values_list("name", "count"))


def _property(workspace, source, event, key):
    with workspace_scope(workspace):
        row = CatalogueProperty.objects.get(source=source, event=event, key=key)
        return row.count, row.types, row.values


def test_counts_names_keys_types_and_top_values(workspace):
    # Given events with properties, nested ones included, and a person with traits
    shopper = builders.person(workspace, user_id="u1", traits={"plan": "Pro", "address": {"country": "FR"}})
    builders.event(workspace, shopper, "Product Viewed", properties={"category": "shoes", "price": 40})
    builders.event(workspace, shopper, "Product Viewed", properties={"category": "shoes", "price": 55.5})
    builders.event(
        workspace, shopper, "Product Viewed", properties={"category": "bags", "tags": ["a"], "meta": {"ab": "x"}}
    )
    builders.event(workspace, shopper, "Order Completed", properties={"revenue": 99})

    # When the catalogue updates
    run = _update(workspace)

    # Then it knows each name, key, type and value, counted exactly
    assert run.events_read == 4
    assert _events(workspace) == [("Order Completed", 1), ("Product Viewed", 3)]
    assert _property(workspace, "event", "Product Viewed", "category") == (
        3,
        {"string": 3},
        [["shoes", 2], ["bags", 1]],
    )
    assert _property(workspace, "event", "Product Viewed", "price") == (2, {"number": 2}, [["40", 1], ["55.5", 1]])
    assert _property(workspace, "event", "Product Viewed", "tags") == (1, {"array": 1}, [])
    assert _property(workspace, "event", "Product Viewed", "meta.ab") == (1, {"string": 1}, [["x", 1]])
    assert _property(workspace, "trait", "", "plan") == (1, {"string": 1}, [["Pro", 1]])
    assert _property(workspace, "trait", "", "address.country") == (1, {"string": 1}, [["FR", 1]])


def test_a_second_run_reads_only_what_arrived_since_and_merges_it(workspace):
    shopper = builders.person(workspace, user_id="u1")
    builders.event(workspace, shopper, "Login", properties={"method": "password"})
    first = _update(workspace)
    builders.event(workspace, shopper, "Login", properties={"method": "magic_link"})
    builders.event(workspace, shopper, "Login", properties={"method": "password"})

    second = _update(workspace)
    third = _update(workspace)

    assert (first.events_read, second.events_read, third.events_read) == (1, 2, 0)
    assert second.last_event_id == third.last_event_id > first.last_event_id
    assert _events(workspace) == [("Login", 3)]
    assert _property(workspace, "event", "Login", "method") == (3, {"string": 3}, [["password", 2], ["magic_link", 1]])


def test_events_still_settling_wait_for_the_next_run(workspace):
    # Given an event received just now
    shopper = builders.person(workspace, user_id="u1")
    event = builders.event(workspace, shopper, "Login")
    with workspace_scope(workspace):
        Event.objects.filter(pk=event.pk).update(received_at=timezone.now())

    # When the periodic run (which lets the last 30 s settle) and then a later one run
    with workspace_scope(workspace):
        early = catalogue_update(workspace=workspace)
        later = catalogue_update(workspace=workspace, now=timezone.now() + timedelta(minutes=1))

    # Then the first leaves it for the second, and it is counted once
    assert (early.events_read, later.events_read) == (0, 1)
    assert _events(workspace) == [("Login", 1)]


def test_only_scalar_values_of_at_most_200_characters_become_values(workspace):
    shopper = builders.person(workspace, user_id="u1")
    builders.event(workspace, shopper, "Note", properties={"text": "x" * 201, "flag": True, "none": None})

    _update(workspace)

    assert _property(workspace, "event", "Note", "text") == (1, {"string": 1}, [])
    assert _property(workspace, "event", "Note", "flag") == (1, {"boolean": 1}, [["true", 1]])
    assert _property(workspace, "event", "Note", "none") == (1, {"null": 1}, [])


def test_a_value_seen_with_two_types_counts_once_per_type_and_together_as_a_value(workspace):
    shopper = builders.person(workspace, user_id="u1")
    builders.event(workspace, shopper, "Scan", properties={"code": "7", "lane": {"id": 7}})
    builders.event(workspace, shopper, "Scan", properties={"code": 7, "lane": {"id": "7"}})
    builders.event(workspace, shopper, "Scan", properties={"code": 8, "lane": "none"})

    _update(workspace)

    assert _property(workspace, "event", "Scan", "code") == (3, {"string": 1, "number": 2}, [["7", 2], ["8", 1]])
    assert _property(workspace, "event", "Scan", "lane") == (3, {"object": 2, "string": 1}, [["none", 1]])
    assert _property(workspace, "event", "Scan", "lane.id") == (2, {"number": 1, "string": 1}, [["7", 2]])


def test_traits_are_recounted_so_removed_keys_disappear(workspace):
    shopper = builders.person(workspace, user_id="u1", traits={"plan": "Pro", "beta": "yes"})
    builders.event(workspace, shopper, "Login")
    _update(workspace)
    with workspace_scope(workspace):
        shopper.traits = {"plan": "Enterprise"}
        shopper.save(update_fields=["traits"])
    builders.event(workspace, shopper, "Login")

    periodic = _update(workspace)
    assert periodic.traits_recounted is False  # traits were counted less than TRAITS_MAX_AGE ago
    later = _update(workspace, now=timezone.now() + TRAITS_MAX_AGE + timedelta(seconds=1))

    assert later.traits_recounted is True
    with workspace_scope(workspace):
        assert list(CatalogueProperty.objects.filter(source="trait").values_list("key", "values")) == [
            ("plan", [["Enterprise", 1]])
        ]


def test_each_workspace_has_its_own_catalogue_and_watermark(workspace):
    other = factories.WorkspaceFactory()
    mine = builders.person(workspace, user_id="u1")
    theirs = builders.person(other, user_id="u1")
    builders.event(workspace, mine, "Mine")
    builders.event(other, theirs, "Theirs")

    _update(workspace)

    assert _events(workspace) == [("Mine", 1)]
    assert _events(other) == []
    with workspace_scope(other):
        assert not CatalogueWatermark.objects.exists()


def test_selectors_rank_by_frequency_and_filter_by_what_is_typed(workspace):
    shopper = builders.person(workspace, user_id="u1", traits={"plan": "Pro"})
    for _ in range(3):
        builders.event(workspace, shopper, "Product Viewed", properties={"category": "shoes"})
    builders.event(workspace, shopper, "Product Added", properties={"category": "Shoelaces"})
    builders.event(workspace, shopper, "Order Completed", properties={"revenue": 10})
    _update(workspace)

    with workspace_scope(workspace):
        assert [s.value for s in selectors.event_names(workspace)] == [
            "Product Viewed",
            "Order Completed",
            "Product Added",
        ]
        assert [s.value for s in selectors.event_names(workspace, q="prod")] == ["Product Viewed", "Product Added"]
        keys = selectors.property_keys(workspace, source="event", event="Order Completed")
        assert [(s.value, s.count, s.type) for s in keys] == [("revenue", 1, "number")]
        assert [(s.value, s.count) for s in selectors.property_keys(workspace, source="event", event="$any")] == [
            ("category", 4),
            ("revenue", 1),
        ]
        values = selectors.property_values(workspace, source="event", event="$any", key="category", q="SHOE")
        assert [(s.value, s.count) for s in values] == [("shoes", 3), ("Shoelaces", 1)]
        assert [s.value for s in selectors.property_keys(workspace, source="trait")] == ["plan"]


def test_the_autocomplete_endpoint_reads_the_catalogue_never_the_events(workspace, owner):
    shopper = builders.person(workspace, user_id="u1")
    builders.event(workspace, shopper, "<img src=x onerror=alert(1)>", properties={"category": "shoes"})
    _update(workspace)
    client = logged_in_client(owner)

    with CaptureQueriesContext(connection) as queries:
        names = client.get(reverse("segment_catalogue"), {"kind": "events", "q": "img"})
        keys = client.get(reverse("segment_catalogue"), {"kind": "keys", "event": "<img src=x onerror=alert(1)>"})
        values = client.get(
            reverse("segment_catalogue"),
            {"kind": "values", "event": "<img src=x onerror=alert(1)>", "key": "category", "q": "sh"},
        )

    assert names.json() == {"results": [{"value": "<img src=x onerror=alert(1)>", "count": 1, "type": ""}]}
    assert keys.json() == {"results": [{"value": "category", "count": 1, "type": "string"}]}
    assert values.json() == {"results": [{"value": "shoes", "count": 1, "type": ""}]}
    assert not any(Event._meta.db_table in query["sql"] for query in queries.captured_queries)


@pytest.mark.parametrize(
    ("params", "path"),
    [({"kind": "people"}, "kind"), ({"kind": "keys", "source": "group"}, "source")],
)
def test_the_autocomplete_endpoint_refuses_unknown_kinds_and_sources(owner, params, path):
    response = logged_in_client(owner).get(reverse("segment_catalogue"), params)

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == path


def test_seed_demo_leaves_the_catalogue_filled(db):
    call_command("seed_demo", people=20, days=14, no_progress=True, stdout=io.StringIO())

    workspace = Workspace.objects.get(name="Demo Shop")
    names = {name for name, _ in _events(workspace)}
    assert {"Product Viewed", "$pageview"} <= names
    with workspace_scope(workspace):
        assert CatalogueProperty.objects.filter(source="trait", key="plan").exists()


def test_the_periodic_task_updates_one_workspace_in_its_scope(workspace):
    shopper = builders.person(workspace, user_id="u1")
    builders.event(workspace, shopper, "Login")

    first = tasks.catalogue_update_task.apply(args=[workspace.pk]).get()
    again = tasks.catalogue_update_task.apply(args=[workspace.pk]).get()

    assert (first, again) == (1, 0)
    assert _events(workspace) == [("Login", 1)]


def test_the_sweep_enqueues_every_workspace(workspace, settings):
    other = factories.WorkspaceFactory()
    broker = redis.Redis.from_url(settings.REDIS_URL)
    name = "segmentation.catalogue.tasks.catalogue_update_task"

    def queued() -> list[bytes]:
        return [raw for raw in broker.lrange("celery", 0, -1) if json.loads(raw)["headers"]["task"] == name]

    for raw in queued():
        broker.lrem("celery", 0, raw)

    enqueued = tasks.catalogue_sweep.apply().get()

    messages = queued()
    for raw in messages:
        broker.lrem("celery", 0, raw)
    assert enqueued == 2
    assert sorted(json.loads(raw)["headers"]["argsrepr"] for raw in messages) == sorted(
        [f"({workspace.pk},)", f"({other.pk},)"]
    )


# --- Numeric keys for "total of a property" ---------------------------------------------------------


@pytest.fixture
def orders(workspace):
    """Order events whose keys are numbers (revenue), numeric strings (tax), text (currency, order_id),
    lists (items), and one key numeric on a single event among text (mixed)."""
    shopper = builders.person(workspace, user_id="u1")
    for index in range(3):
        builders.event(
            workspace,
            shopper,
            "Order Completed",
            properties={
                "revenue": 10 + index,
                "tax": f"{index}.50",
                "currency": "EUR",
                "order_id": f"o-{index}",
                "items": ["a"],
                "mixed": "n/a" if index else 4,
            },
        )
    _update(workspace)
    return shopper


def test_numeric_keys_come_first_and_say_so(workspace, orders):
    with workspace_scope(workspace):
        keys = selectors.property_keys(workspace, source="event", event="Order Completed", numeric_first=True)
        plain = selectors.property_keys(workspace, source="event", event="Order Completed")

    # each key counted 3 times: numeric ones first, then by name
    assert [(s.value, s.numeric) for s in keys] == [
        ("mixed", True),
        ("revenue", True),
        ("tax", True),
        ("currency", False),
        ("items", False),
        ("order_id", False),
    ]
    assert {s.numeric for s in plain} == {None}


def test_numeric_keys_across_every_event(workspace, orders):
    builders.event(workspace, orders, "Refund Issued", properties={"currency": "7"})
    _update(workspace)

    with workspace_scope(workspace):
        keys = selectors.property_keys(workspace, source="event", event="$any", numeric_first=True, q="c")

    # "currency" was a numeric string on one event: seen with numeric values, over all events
    assert [(s.value, s.count, s.numeric) for s in keys] == [("currency", 4, True)]


def test_the_autocomplete_endpoint_marks_numeric_keys_when_asked(workspace, owner, orders):
    client = logged_in_client(owner)

    asked = client.get(reverse("segment_catalogue"), {"kind": "keys", "event": "Order Completed", "numeric": "1"})
    plain = client.get(reverse("segment_catalogue"), {"kind": "keys", "event": "Order Completed", "q": "rev"})

    assert [(r["value"], r["numeric"]) for r in asked.json()["results"]][:3] == [
        ("mixed", True),
        ("revenue", True),
        ("tax", True),
    ]
    assert asked.json()["results"][-1] == {"value": "order_id", "count": 3, "type": "string", "numeric": False}
    assert plain.json() == {"results": [{"value": "revenue", "count": 3, "type": "number"}]}


# --- Hints: names never seen ---------------------------------------------------------------------------


@pytest.fixture
def shop(workspace):
    shopper = builders.person(workspace, user_id="u1", traits={"plan": "Pro"})
    for _ in range(3):
        builders.event(workspace, shopper, "Product Viewed", properties={"category": "shoes", "price": 40})
    builders.event(workspace, shopper, "Product Added", properties={"category": "shoes"})
    builders.event(workspace, shopper, "Order Completed", properties={"revenue": 10, "currency": "EUR"})
    _update(workspace)
    return shopper


def _warnings(workspace, document):
    with workspace_scope(workspace):
        return [(w.path, w.message, w.suggestion) for w in selectors.definition_warnings(workspace, document)]


def test_a_misspelt_event_is_never_seen_with_the_closest_name_suggested(workspace, shop):
    document = {"type": "event", "event": "Prodcut Viewed"}

    assert _warnings(workspace, document) == [
        ("event", "never seen in this workspace; did you mean Product Viewed?", "Product Viewed")
    ]


def test_every_kind_of_name_is_checked_at_its_path(workspace, shop):
    document = {
        "type": "and",
        "conditions": [
            {"type": "event", "event": "Product Viewed", "filters": [{"key": "categroy", "operator": "is_set"}]},
            {"type": "trait", "key": "plna", "operator": "eq", "value": "Pro"},
            {
                "type": "not",
                "condition": {
                    "type": "sequence",
                    "within": "1d",
                    "steps": [{"event": "product added"}, {"event": "Order Completed"}],
                },
            },
            {"type": "aggregate", "event": "Order Completed", "key": "revnue", "function": "sum", "operator": "gt"},
            {"type": "event", "event": "$any", "filters": [{"key": "pricee", "operator": "is_set"}]},
            {"type": "event", "event": "Signed Up", "filters": [{"key": "anything", "operator": "is_set"}]},
            {"type": "last_performed", "event": "Zzzz"},
        ],
    }

    assert _warnings(workspace, document) == [
        (
            "conditions[0].filters[0].key",
            "no Product Viewed event in this workspace has this property; did you mean category?",
            "category",
        ),
        ("conditions[1].key", "no one in this workspace has this trait; did you mean plan?", "plan"),
        (
            "conditions[2].condition.steps[0].event",
            "never seen in this workspace; did you mean Product Added?",
            "Product Added",
        ),
        (
            "conditions[3].key",
            "no Order Completed event in this workspace has this property; did you mean revenue?",
            "revenue",
        ),
        ("conditions[4].filters[0].key", "no event in this workspace has this property; did you mean price?", "price"),
        ("conditions[5].event", "never seen in this workspace.", ""),  # its keys are not judged
        ("conditions[6].event", "never seen in this workspace.", ""),
    ]


def test_known_names_give_no_hint_and_cost_two_queries(workspace, shop, django_assert_num_queries):
    document = {
        "type": "and",
        "conditions": [
            {"type": "event", "event": "Product Viewed", "filters": [{"key": "category", "operator": "is_set"}]},
            {"type": "trait", "key": "plan", "operator": "is_set"},
            {"type": "event", "event": "$any", "filters": [{"key": "a.b.c", "operator": "is_set"}]},
            {"type": "event", "event": ""},
        ],
    }

    with django_assert_num_queries(2):
        assert _warnings(workspace, document) == []


def test_a_total_of_a_key_never_numeric_is_hinted(workspace, shop):
    document = {"type": "aggregate", "event": "Order Completed", "key": "currency", "function": "sum"}

    assert _warnings(workspace, document) == [
        ("key", "not numeric in the data: the total skips every value it has seen", "")
    ]


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"type": "and", "conditions": "x"},
        {"type": "event", "event": 3, "filters": [1, {"key": None}]},
        {"type": "sequence", "steps": [None, {"event": ["x"]}]},
        # nested beyond any valid depth: read no further than validation allows
        json.loads('{"type": "not", "condition": ' * 900 + '{"type": "event", "event": "Nope"}' + "}" * 900),
    ],
)
def test_hints_read_broken_documents_without_failing(workspace, shop, document):
    assert _warnings(workspace, document) == []


def test_hints_are_per_workspace(workspace, shop):
    other = factories.WorkspaceFactory()

    assert _warnings(other, {"type": "event", "event": "Product Viewed"}) == [
        ("event", "never seen in this workspace.", "")
    ]
