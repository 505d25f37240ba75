"""The compiler's SQL, run on PostgreSQL, against the plain-Python oracle (tests/segmentation/oracle.py).

Every check loads people, events and stored memberships into the real tables
of one workspace, and a copy of the same data into a second workspace; the
compiled query must return exactly the oracle's members, and nothing of the
other workspace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.tenancy import workspace_scope
from segmentation.compiler import compile_count, compile_members
from segmentation.definition import parse
from segmentation.models import Segment
from tests import factories
from tests.segmentation import oracle
from tracking.models import Person

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOSTILE = ["'; drop table x; --", "%s", "%(x)s", "'", '"', "\\", "a'b\"c", "$1", "?", "{}", "};--"]


# --- loading data -------------------------------------------------------------


@dataclass
class World:
    workspace: Any
    other: Any
    segments: list[int]  # ids of two segments of ``workspace``
    other_segments: list[int]


@pytest.fixture
def world(db) -> World:
    workspace, other = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    ids = {}
    for ws in (workspace, other):
        with workspace_scope(ws):
            ids[ws.pk] = [Segment.objects.create(workspace=ws, name=f"S{i}").pk for i in range(2)]
    return World(workspace, other, ids[workspace.pk], ids[other.pk])


@dataclass
class Event:
    person: str
    name: str
    at: datetime
    properties: Any = None


def _insert(world: World, ws, segment_ids, people, events, memberships) -> dict[str, int]:
    with workspace_scope(ws):
        rows = Person.objects.bulk_create(
            [Person(workspace=ws, traits=traits, first_seen=NOW, last_seen=NOW) for traits in people.values()]
        )
    ids = {name: row.pk for name, row in zip(people, rows, strict=True)}
    with connection.cursor() as cursor:
        if events:
            cursor.executemany(
                "INSERT INTO tracking_event (workspace_id, person_id, name, properties, \"timestamp\", received_at, "
                "message_id) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s)",
                [
                    (ws.pk, ids[e.person], e.name, json.dumps(e.properties or {}), e.at, NOW, f"m{i}")
                    for i, e in enumerate(events)
                ],
            )
        rows = [(ws.pk, segment_ids[index], ids[name], NOW) for index, names in memberships.items() for name in names]
        if rows:
            cursor.executemany(
                "INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at) "
                "VALUES (%s, %s, %s, %s)",
                rows,
            )
    return ids


def load(world: World, people: dict[str, Any], events: list[Event], memberships: dict[int, set[str]] | None = None):
    """The data in ``world.workspace``, and a copy in ``world.other``; returns (our ids, their ids)."""
    memberships = memberships or {}
    ours = _insert(world, world.workspace, world.segments, people, events, memberships)
    theirs = _insert(world, world.other, world.other_segments, people, events, memberships)
    return ours, theirs


def compiled_members(world: World, document: dict) -> set[int]:
    tree = parse(document, now=NOW)
    query = compile_members(tree, workspace_id=world.workspace.pk, now=NOW)
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        rows = [row[0] for row in cursor.fetchall()]
    assert len(rows) == len(set(rows)), "members are listed once each"
    count = compile_count(tree, workspace_id=world.workspace.pk, now=NOW)
    with connection.cursor() as cursor:
        cursor.execute(count.sql, count.params)
        assert cursor.fetchone()[0] == len(rows)
    return set(rows)


def oracle_members(world: World, document: dict, people, events, memberships, ids) -> set[int]:
    return oracle.members(
        _resolve_segments(document, world.segments),
        people={ids[name]: traits for name, traits in people.items()},
        events=[oracle.OEvent(ids[e.person], e.name, e.at, e.properties or {}, i) for i, e in enumerate(events)],
        memberships={world.segments[index]: {ids[n] for n in names} for index, names in (memberships or {}).items()},
        now=NOW,
    )


def _resolve_segments(document: Any, segment_ids: list[int]) -> Any:
    """Segment nodes in test documents name segments by index (0 or 1); the ids come from the database."""
    if isinstance(document, dict):
        if document.get("type") == "segment":
            return {**document, "segment": segment_ids[document["segment"]]}
        return {k: _resolve_segments(v, segment_ids) for k, v in document.items()}
    if isinstance(document, list):
        return [_resolve_segments(v, segment_ids) for v in document]
    return document


def members(world: World, document: dict, people: dict[str, Any], events=(), memberships=None) -> set[str]:
    """Names of the members: the compiler's answer, which must also be the oracle's."""
    events = list(events)
    ours, theirs = load(world, people, events, memberships)
    found = compiled_members(world, _resolve_segments(document, world.segments))
    assert not found & set(theirs.values()), "nothing of another workspace"
    assert found <= set(ours.values())
    expected = oracle_members(world, document, people, events, memberships, ours)
    by_id = {v: k for k, v in ours.items()}
    assert {by_id[i] for i in found} == {by_id[i] for i in expected}, "compiler and oracle agree"
    return {by_id[i] for i in found}


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def trait(key, operator, value=None):
    node = {"type": "trait", "key": key, "operator": operator}
    if operator not in ("is_set", "is_not_set"):
        node["value"] = value
    return node


def prop(key, operator, value=None):
    node = trait(key, operator, value)
    del node["type"]
    return node


# --- the property test --------------------------------------------------------

GRID_HOURS = [0, 1, 2, 6, 12, 24, 48, 72, 168, 336]
NAMES = ["A", "B", "C", "O'Brien %s"]
STRINGS = [
    "pro",
    "Pro",
    "PRO plan",
    "école",
    "ÉCOLE",
    "ΣΑΣ",
    "σας",
    "日本",
    "😀",
    "42",
    " 4.5 ",
    "42.0",
    "1e2",
    "-3",
    ".5",
    "4.",
    "\t7\n",
    "\u20037",
    "1e999999",
    "0x1f",
    "inf",
    "nan",
    "1_000",
    "true",
    "null",
    "",
    "2026-02-30",
    "2026-13-01T00:00:00Z",
    "yesterday",
    *HOSTILE,
]
NUMBERS = [0, 1, 2, 3, 4.5, 7, 42, 42.0, -3, 0.5, 1e-7, 100, 1e300]


def _iso(moment: datetime, shape: int) -> str:
    if shape == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if shape == 1:
        return moment.astimezone(timezone.get_fixed_timezone(120)).isoformat()
    if shape == 2:
        return moment.strftime("%Y-%m-%d %H:%M")
    if shape == 3:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.123456+00:00")


@st.composite
def moments(draw) -> datetime:
    hours = draw(st.sampled_from([*GRID_HOURS, -1]))
    jitter = draw(st.sampled_from([0, 0, 0, 1, -1, 30]))
    return NOW - timedelta(hours=hours, minutes=jitter)


timestamps_text = st.builds(_iso, moments(), st.integers(0, 4))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NUMBERS),
    st.sampled_from(STRINGS),
    timestamps_text,
    st.text(alphabet="aAbéÉΣσ'%s 0", max_size=4),
)
values = st.one_of(
    scalars,
    st.fixed_dictionaries({}, optional={"country": scalars, "zip": scalars}),
    st.lists(scalars, max_size=2),
)
HOSTILE_KEY = "k'; drop table x; --%s"
TOP_KEYS = ["plan", "n", "when", "address", "tags", HOSTILE_KEY]
FILTER_KEYS = [*TOP_KEYS, "address.country", "address.zip", "tags.0", "missing"]
objects = st.dictionaries(st.sampled_from(TOP_KEYS), values, max_size=4)
event_properties = st.dictionaries(st.sampled_from(TOP_KEYS), values, min_size=1, max_size=4)


def durations(hours: int) -> st.SearchStrategy[str]:
    forms = [f"{hours}h", f"{hours * 60}m"]
    if hours % 24 == 0:
        forms.append(f"{hours // 24}d")
    if hours % 168 == 0:
        forms.append(f"{hours // 168}w")
    return st.sampled_from(forms)


@st.composite
def instants(draw, hours: int) -> str:
    """``hours`` ago, as a duration or as a timestamp (timestamps may lie in the future)."""
    if hours > 0 and draw(st.booleans()):
        return draw(durations(hours))
    return _iso(NOW - timedelta(hours=hours), draw(st.sampled_from([0, 1, 3])) if hours % 24 == 12 else 0)


@st.composite
def windows(draw) -> dict | None:
    kind = draw(st.sampled_from(["none", "since", "until", "both"]))
    if kind == "none":
        return None
    grid = [h for h in GRID_HOURS if h > 0]
    if kind == "since":
        return {"since": draw(instants(draw(st.sampled_from(grid))))}
    if kind == "until":
        return {"until": draw(instants(draw(st.sampled_from([*grid, -1]))))}
    since, until = sorted(draw(st.lists(st.sampled_from(grid), min_size=2, max_size=2, unique=True)), reverse=True)
    return {"since": draw(instants(since)), "until": draw(instants(until))}


@st.composite
def filters(draw) -> dict:
    operator = draw(
        st.sampled_from(
            [
                "eq",
                "neq",
                "in",
                "not_in",
                "contains",
                "not_contains",
                "starts_with",
                "ends_with",
                "gt",
                "gte",
                "lt",
                "lte",
                "between",
                "before",
                "after",
                "is_set",
                "is_not_set",
            ]
        )
    )
    key = draw(st.sampled_from(FILTER_KEYS))
    operands = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans())
    if operator in ("eq", "neq"):
        value: Any = draw(operands)
    elif operator in ("in", "not_in"):
        value = draw(st.lists(operands, min_size=1, max_size=3))
    elif operator in ("contains", "not_contains", "starts_with", "ends_with"):
        value = draw(st.sampled_from([*STRINGS, "co", "ÉC", "Σ", "4", "ru", "'", "%", "country", '"zip": ']))
    elif operator in ("gt", "gte", "lt", "lte"):
        value = draw(st.sampled_from(NUMBERS))
    elif operator == "between":
        value = sorted(draw(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2)))
    elif operator in ("before", "after"):
        value = draw(instants(draw(st.sampled_from([*GRID_HOURS[1:], -1]))))
    else:
        return {"key": key, "operator": operator}
    return {"key": key, "operator": operator, "value": value}


def _optional(draw, node: dict, name: str, strategy) -> None:
    if draw(st.booleans()):
        value = draw(strategy)
        if value is not None:
            node[name] = value


some_filters = st.lists(filters(), max_size=2)
event_names = st.sampled_from([*NAMES, "$any"])


@st.composite
def comparisons(draw, numbers) -> dict:
    operator = draw(st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte", "between"]))
    if operator == "between":
        return {"operator": operator, "value": sorted(draw(st.lists(numbers, min_size=2, max_size=2)))}
    return {"operator": operator, "value": draw(numbers)}


@st.composite
def event_nodes(draw) -> dict:
    node = {"type": "event", "event": draw(event_names)}
    _optional(draw, node, "filters", some_filters)
    _optional(draw, node, "window", windows())
    _optional(draw, node, "count", comparisons(st.integers(0, 3)))
    return node


@st.composite
def aggregate_nodes(draw) -> dict:
    node = {
        "type": "aggregate",
        "event": draw(event_names),
        "key": draw(st.sampled_from(["n", "address.zip", "plan", "missing"])),
        "function": draw(st.sampled_from(["sum", "avg", "min", "max"])),
        **draw(comparisons(st.sampled_from([0, 1, 3, 4.5, 42, -3, 100]))),
    }
    _optional(draw, node, "filters", some_filters)
    _optional(draw, node, "window", windows())
    return node


@st.composite
def performed_nodes(draw) -> dict:
    node = {"type": draw(st.sampled_from(["first_performed", "last_performed"])), "event": draw(event_names)}
    _optional(draw, node, "filters", some_filters)
    _optional(draw, node, "window", windows())
    return node


@st.composite
def regular_nodes(draw) -> dict:
    periods = draw(st.integers(1, 5))
    node = {
        "type": "regular",
        "event": draw(event_names),
        "period": draw(st.sampled_from(["1h", "6h", "1d", "24h", "2d", "1w"])),
        "periods": periods,
        "min_periods": draw(st.integers(1, periods)),
    }
    _optional(draw, node, "filters", some_filters)
    return node


@st.composite
def sequence_nodes(draw) -> dict:
    steps = []
    for _ in range(draw(st.integers(2, 5))):
        step = {"event": draw(event_names)}
        _optional(draw, step, "filters", st.lists(filters(), max_size=1))
        steps.append(step)
    node = {"type": "sequence", "steps": steps, "within": draw(st.sampled_from(["30m", "1h", "6h", "1d", "2d"]))}
    _optional(draw, node, "window", windows())
    _optional(draw, node, "completed", st.booleans())
    return node


trait_nodes = filters().map(lambda f: {"type": "trait", **f})
segment_nodes = st.sampled_from([0, 1]).map(lambda i: {"type": "segment", "segment": i})
conditions = st.one_of(
    trait_nodes,
    event_nodes(),
    event_nodes(),
    aggregate_nodes(),
    performed_nodes(),
    regular_nodes(),
    sequence_nodes(),
    sequence_nodes(),
    segment_nodes,
)
documents = st.recursive(
    conditions,
    lambda children: st.one_of(
        st.builds(lambda c: {"type": "not", "condition": c}, children),
        st.builds(lambda cs: {"type": "and", "conditions": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda cs: {"type": "or", "conditions": cs}, st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=4,
)

PEOPLE = ["ann", "bob", "cy", "dee"]


@st.composite
def histories(draw):
    people = {name: draw(objects) for name in PEOPLE}
    events = draw(
        st.lists(
            st.builds(Event, st.sampled_from(PEOPLE), st.sampled_from(NAMES), moments(), event_properties),
            max_size=24,
        )
    )
    memberships = {i: set(draw(st.lists(st.sampled_from(PEOPLE), max_size=3))) for i in (0, 1)}
    return people, events, memberships


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=documents, history=histories())
def test_compiled_sql_equals_the_oracle(world, document, history):
    people, events, memberships = history
    with transaction.atomic():
        found = members(world, document, people, events, memberships)
        transaction.set_rollback(True)
    # --hypothesis-show-statistics shows how many examples had a non-trivial answer
    hypothesis.event("members: " + ("none" if not found else "all" if len(found) == len(PEOPLE) else "some"))
