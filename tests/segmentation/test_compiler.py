"""The compiler's SQL, run on PostgreSQL, against the plain-Python oracle (tests/segmentation/oracle.py).

Every check loads people, events and stored memberships into the real tables
of one workspace, and a copy of the same data into a second workspace; the
compiled query must return exactly the oracle's members, and nothing of the
other workspace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis
import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.tenancy import workspace_scope
from segmentation.compiler import compile_count, compile_members, compile_preview, compile_sequence_furthest
from segmentation.definition import MAX_NUMBER, parse
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
    # everything loaded so far (names -> ids in each workspace, and the data for the oracle)
    ours: dict = field(default_factory=dict)
    theirs: dict = field(default_factory=dict)
    people: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    memberships: dict = field(default_factory=dict)

    def forget(self) -> None:
        """After a rollback: nothing is loaded any more."""
        self.ours, self.theirs, self.people, self.events, self.memberships = {}, {}, {}, [], {}


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


def _insert(ws, segment_ids, people, events, memberships, known) -> dict[str, int]:
    with workspace_scope(ws):
        rows = Person.objects.bulk_create(
            [Person(workspace=ws, traits=traits, first_seen=NOW, last_seen=NOW) for traits in people.values()]
        )
    ids = {**known, **{name: row.pk for name, row in zip(people, rows, strict=True)}}
    with connection.cursor() as cursor:
        if events:
            cursor.executemany(
                'INSERT INTO tracking_event (workspace_id, person_id, name, properties, "timestamp", received_at, '
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
    """Add the data to ``world.workspace``, and a copy to ``world.other``; returns (our ids, their ids)."""
    memberships = memberships or {}
    world.people.update(people)
    world.ours = _insert(world.workspace, world.segments, people, events, memberships, world.ours)
    world.theirs = _insert(world.other, world.other_segments, people, events, memberships, world.theirs)
    world.events.extend(events)
    for index, names in memberships.items():
        world.memberships.setdefault(index, set()).update(names)
    return world.ours, world.theirs


def compiled_members(world: World, document: dict, *, people: list[int] | None = None) -> set[int]:
    tree = parse(document, now=NOW)
    query = compile_members(tree, workspace_id=world.workspace.pk, now=NOW, people=people)
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        rows = [row[0] for row in cursor.fetchall()]
    assert len(rows) == len(set(rows)), "members are listed once each"
    count = compile_count(tree, workspace_id=world.workspace.pk, now=NOW, people=people)
    with connection.cursor() as cursor:
        cursor.execute(count.sql, count.params)
        assert cursor.fetchone()[0] == len(rows)
    preview = compile_preview(tree, workspace_id=world.workspace.pk, now=NOW, sample_size=3, people=people)
    with connection.cursor() as cursor:
        cursor.execute(preview.sql, preview.params)
        count, sample = cursor.fetchone()
        cursor.execute("SELECT id, last_seen FROM tracking_person WHERE id = ANY(%s)", [rows])
        last_seen = dict(cursor.fetchall())
    newest_first = sorted(rows, key=lambda person: (last_seen[person], person), reverse=True)
    assert (count, sample) == (len(rows), newest_first[:3])
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


def members(
    world: World, document: dict, people: dict[str, Any], events=(), memberships=None, subset: set[str] | None = None
) -> set[str]:
    """Names of the members: the compiler's answer, which must also be the oracle's.

    ``people``, ``events`` and ``memberships`` are added to what earlier calls of the test loaded.
    With ``subset`` (names), the evaluation restricted to those people (plus ids of
    another workspace and of nobody) must be the full answer intersected with them.
    """
    ours, theirs = load(world, people, list(events), memberships)
    resolved = _resolve_segments(document, world.segments)
    found = compiled_members(world, resolved)
    assert not found & set(theirs.values()), "nothing of another workspace"
    assert found <= set(ours.values())
    expected = oracle_members(world, document, world.people, world.events, world.memberships, ours)
    by_id = {v: k for k, v in ours.items()}
    assert {by_id[i] for i in found} == {by_id[i] for i in expected}, "compiler and oracle agree"
    if subset is not None:
        chosen = {ours[name] for name in subset}
        strangers = [theirs[name] for name in sorted(subset)] + [max(ours.values()) + 1_000_000]
        restricted = compiled_members(world, resolved, people=sorted(chosen) + strangers)
        assert restricted == found & chosen, "restricted to some people: the full answer among them"
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
    "2026-05-31T24:00",
    "2026-05-31T10:00:60",
    "2026-05-31T10:00:00+16:00",
    "2026-05-31T10:00:00+05:60",
    "2026-05-31T10:00:00.1234567Z",
    "2026-05-31T10:00:00+0530",
    "2026-05-31T10:00:00-05",
    "yesterday",
    *HOSTILE,
]
NUMBERS = [0, 1, 2, 3, 4.5, 7, 42, 42.0, -3, 0.5, 1e-7, 100, 1e300]
# What a definition compares with: numbers within MAX_NUMBER (1e300 only as a property's value).
OPERANDS = [*(n for n in NUMBERS if abs(n) <= MAX_NUMBER), 9.2e18, -MAX_NUMBER]


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
    st.text(alphabet="aAbéÉΣσ'%s 0", max_size=4),  # noqa: RUF001
)
values = st.one_of(
    scalars,
    st.fixed_dictionaries({}, optional={"country": scalars, "zip": scalars}),
    st.lists(scalars, max_size=2),
)
HOSTILE_KEY = "k'; drop table x; --%s"
TOP_KEYS = ["plan", "n", "when", "address", "tags", HOSTILE_KEY]
FILTER_KEYS = [*TOP_KEYS, "address.country", "address.zip", "tags.0", "missing"]
# Each key mostly holds the kind of value its filters test (so that filters
# discriminate), and sometimes anything at all.
_numbers = st.sampled_from([*NUMBERS, "42", " 4.5 ", "-3", "1e2"])
_KEYED = {
    "plan": st.one_of(st.sampled_from(["pro", "Pro", "free", "école", "ΣΑΣ"]), values),
    "n": st.one_of(_numbers, _numbers, _numbers, values),
    "when": st.one_of(timestamps_text, timestamps_text, values),
    "address": st.one_of(st.fixed_dictionaries({}, optional={"country": scalars, "zip": _numbers}), values),
    "tags": values,
    HOSTILE_KEY: values,
}
objects = st.fixed_dictionaries({}, optional=_KEYED)


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
    operands = st.one_of(st.sampled_from(STRINGS), st.sampled_from(OPERANDS), st.booleans())
    if operator in ("eq", "neq"):
        value: Any = draw(operands)
    elif operator in ("in", "not_in"):
        value = draw(st.lists(operands, min_size=1, max_size=3))
    elif operator in ("contains", "not_contains", "starts_with", "ends_with"):
        value = draw(st.sampled_from([*STRINGS, "co", "ÉC", "Σ", "4", "ru", "'", "%", "country", '"zip": ']))
    elif operator in ("gt", "gte", "lt", "lte"):
        value = draw(st.sampled_from(OPERANDS))
    elif operator == "between":
        value = sorted(draw(st.lists(st.sampled_from(OPERANDS), min_size=2, max_size=2)))
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


some_filters = st.lists(filters(), max_size=1)
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
    if node.get("completed") is False:
        _optional(draw, node, "dropped_after", st.integers(1, len(steps) - 1))
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
            st.builds(
                Event, st.sampled_from(PEOPLE), st.sampled_from(["A", "A", "B", "B", *NAMES]), moments(), objects
            ),
            max_size=30,
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
@given(
    documents=st.lists(st.one_of(conditions, documents), min_size=1, max_size=8),
    history=histories(),
    subset=st.sets(st.sampled_from(PEOPLE)),
)
def test_compiled_sql_equals_the_oracle(world, documents, history, subset):
    """Each example loads one history and checks several definitions over it (loading costs the most).

    Each definition is also evaluated restricted to ``subset`` of the people, as
    the real-time re-evaluation does, and must answer the full set's members among them.
    """
    people, events, memberships = history
    with transaction.atomic():
        found = [members(world, documents[0], people, events, memberships, subset=subset)]
        found += [members(world, document, {}, subset=subset) for document in documents[1:]]
        transaction.set_rollback(True)
    world.forget()
    # --hypothesis-show-statistics shows how many definitions had a non-trivial answer
    some = sum(1 for f in found if 0 < len(f) < len(PEOPLE))
    hypothesis.event(f"definitions with some but not all people as members: {min(some, 3)}{'+' if some >= 3 else ''}")


# --- traits and the typing rules ------------------------------------------------------


def test_eq_with_a_number_matches_numbers_and_numeric_strings(world):
    people = {
        "int": {"n": 42},
        "float": {"n": 42.0},
        "string": {"n": "42"},
        "padded": {"n": " 42.0 "},
        "exponent": {"n": "4.2e1"},
        "suffix": {"n": "42x"},
        "bool": {"n": True},
        "list": {"n": [42]},
        "null": {"n": None},
        "missing": {},
    }
    assert members(world, trait("n", "eq", 42), people) == {"int", "float", "string", "padded", "exponent"}


def test_eq_with_a_string_compares_the_string_form_exactly(world):
    people = {
        "int": {"n": 42},
        "float": {"n": 42.0},
        "string": {"n": "42"},
        "padded": {"n": " 42"},
        "upper": {"plan": "Pro"},
        "lower": {"plan": "pro"},
    }
    assert members(world, trait("n", "eq", "42"), people) == {"int", "string"}
    assert members(world, trait("plan", "eq", "pro"), {}) == {"lower"}


def test_eq_with_a_boolean_matches_only_json_booleans(world):
    people = {"true": {"v": True}, "text": {"v": "true"}, "one": {"v": 1}, "false": {"v": False}}
    assert members(world, trait("v", "eq", True), people) == {"true"}
    assert members(world, trait("v", "eq", False), {}) == {"false"}
    # a string compares the string form: JSON true prints as "true"
    assert members(world, trait("v", "eq", "true"), {}) == {"true", "text"}


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("eq", "x"),
        ("eq", 0),
        ("eq", False),
        ("neq", "x"),
        ("in", ["x", 0]),
        ("not_in", ["x", 0]),
        ("contains", ""),
        ("not_contains", "x"),
        ("starts_with", ""),
        ("ends_with", ""),
        ("gt", -1),
        ("gte", 0),
        ("lt", 1),
        ("lte", 0),
        ("between", [-1, 1]),
        ("before", "2999-01-01"),
        ("after", "1970-01-01"),
        ("is_set", None),
        ("is_not_set", None),
    ],
)
def test_missing_or_null_properties_hold_only_for_negative_operators(world, operator, value):
    people = {
        "missing": {},
        "null": {"top": None, "k": {"sub": None}},
        "nested_missing": {"k": {"other": 1}},
        "not_an_object": {"k": 5},
    }
    everyone = set(people)
    negative = operator in ("neq", "not_in", "not_contains", "is_not_set")
    for key in ("top", "k.sub"):
        assert members(world, trait(key, operator, value), people) == (everyone if negative else set())
        people = {}
        negated = members(world, {"type": "not", "condition": trait(key, operator, value)}, {})
        assert negated == (set() if negative else everyone)


def test_in_and_not_in_are_complements(world):
    people = {
        "pro": {"plan": "pro"},
        "num": {"plan": "42"},
        "yes": {"plan": True},
        "free": {"plan": "free"},
        "none": {},
    }
    assert members(world, trait("plan", "in", ["pro", 42, True]), people) == {"pro", "num", "yes"}
    assert members(world, trait("plan", "not_in", ["pro", 42, True]), {}) == {"free", "none"}


def test_contains_starts_ends_with_are_case_insensitive_with_unicode(world):
    people = {
        "ecole": {"name": "École Normale"},
        "greek": {"name": "ΣΑΣ ΟΔΟΣ"},
        "number": {"name": 1234.5},
        "object": {"name": {"country": "FR"}},
        "other": {"name": "plain"},
        "none": {},
    }
    assert members(world, trait("name", "contains", "ÉCOLE"), people) == {"ecole"}
    assert members(world, trait("name", "contains", "σα"), {}) == {"greek"}  # noqa: RUF001
    assert members(world, trait("name", "contains", "34.5"), {}) == {"number"}
    assert members(world, trait("name", "contains", '"COUNTRY": "fr"'), {}) == {"object"}
    assert members(world, trait("name", "not_contains", "école"), {}) == {"greek", "number", "object", "other", "none"}
    assert members(world, trait("name", "starts_with", "éCO"), {}) == {"ecole"}
    assert members(world, trait("name", "ends_with", "οΔοΣ"), {}) == {"greek"}
    assert members(world, trait("name", "ends_with", "}"), {}) == {"object"}


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("gt", 4, {"number", "string", "padded", "tabbed", "exponent"}),
        ("gte", 4.5, {"number", "string", "padded", "tabbed"}),
        ("lt", 4.5, {"exponent"}),
        ("lte", 4.5, {"number", "string", "padded", "tabbed", "exponent"}),
        ("between", [4.5, 4.5], {"number", "string", "padded", "tabbed"}),
        ("between", [4.3, 4.4], {"exponent"}),
    ],
)
def test_numeric_operators_read_numbers_and_numeric_strings_only(world, operator, value, expected):
    people = {
        "number": {"n": 4.5},
        "string": {"n": "4.5"},
        "padded": {"n": " 4.5 "},
        "tabbed": {"n": "\t4.5\n"},
        "exponent": {"n": "0.44e1"},
        "unit": {"n": "4.5kg"},
        "unicode_space": {"n": "\u20034.5"},
        "huge_exponent": {"n": "1e999999"},
        "hex": {"n": "0x1f"},
        "inf": {"n": "inf"},
        "bool": {"n": True},
        "object": {"n": {"v": 4.5}},
        "none": {},
    }
    assert members(world, trait("n", operator, value), people) == expected


def test_before_and_after_read_iso_timestamps_in_properties(world):
    people = {
        "zulu": {"at": "2026-05-01T10:00:00Z"},
        "offset": {"at": "2026-05-01T12:00:00+02:00"},
        "naive": {"at": "2026-05-01 10:00"},
        "date": {"at": "2026-05-01"},
        "fraction": {"at": "2026-05-01T10:00:00.500000Z"},
        "recent": {"at": "2026-05-31T12:00:00Z"},
        "impossible": {"at": "2026-02-30"},
        "hour_24": {"at": "2026-04-30T24:00"},
        "leap_second": {"at": "2026-04-30T23:59:60Z"},
        "far_offset": {"at": "2026-05-01T12:00:00+16:00"},
        "nanoseconds": {"at": "2026-04-30T10:00:00.1234567Z"},
        "short_offset": {"at": "2026-05-01T15:00:00+05"},
        "words": {"at": "yesterday"},
        "epoch": {"at": 1777629600},
        "none": {},
    }
    before = members(world, trait("at", "before", "2026-05-01T10:00:00.250+00:00"), people)
    assert before == {"date", "zulu", "offset", "naive", "short_offset"}
    assert members(world, trait("at", "after", "2026-05-01T10:00:00Z"), {}) == {"fraction", "recent"}
    # a duration means now - duration: 2026-05-02 12:00
    assert members(world, trait("at", "after", "30d"), {}) == {"recent"}


def test_is_set_and_is_not_set(world):
    people = {"set": {"k": ""}, "false": {"k": False}, "null": {"k": None}, "missing": {}}
    assert members(world, trait("k", "is_set"), people) == {"set", "false"}
    assert members(world, trait("k", "is_not_set"), {}) == {"null", "missing"}


def test_dotted_keys_reach_into_nested_objects_only(world):
    people = {
        "nested": {"address": {"country": "FR"}},
        "deeper": {"address": {"country": {"code": "FR"}}},
        "literal_dot": {"address.country": "FR"},
        "in_list": {"address": [{"country": "FR"}]},
        "scalar": {"address": "FR"},
    }
    assert members(world, trait("address.country", "eq", "FR"), people) == {"nested"}
    assert members(world, trait("address.country.code", "eq", "FR"), {}) == {"deeper"}
    assert members(world, trait("address.0.country", "is_set"), {}) == set()
    assert members(world, trait("address.country", "is_not_set"), {}) == {"literal_dot", "in_list", "scalar"}
    numbered = {"type": "trait", "key": "address.0", "operator": "eq", "value": "FR"}
    assert members(world, numbered, {"keyed_0": {"address": {"0": "FR"}}, "list_0": {"address": ["FR"]}}) == {"keyed_0"}
    assert members(world, trait("address. -1", "is_set"), {"list_minus": {"address": ["x"]}}) == set()


def test_a_key_of_ten_thousand_characters_with_many_dots_is_cheap(world):
    people = {"deep": {"0": {"0": {"0": "x"}}}, "flat": {"0": "x"}}
    for key in ("0." * 4_999 + "0", "." * 9_999, ".0" * 5_000):
        assert len(key) <= 10_000
        assert members(world, trait(key, "is_set"), people) == set()
        people = {}
    assert members(world, trait("0.0.0", "eq", "x"), {}) == {"deep"}


# --- events --------------------------------------------------------------------


def test_event_count_operators_and_eq_zero_holds_without_any_event(world):
    people = {"none": {}, "one": {}, "two": {}, "other_name": {}}
    events = [
        Event("one", "Order", ago(hours=1)),
        Event("two", "Order", ago(hours=1)),
        Event("two", "Order", ago(days=3)),
        Event("other_name", "Login", ago(hours=1)),
    ]
    order = {"type": "event", "event": "Order"}
    assert members(world, order, people, events) == {"one", "two"}
    assert members(world, {**order, "count": {"operator": "eq", "value": 0}}, {}) == {"none", "other_name"}
    assert members(world, {**order, "count": {"operator": "gte", "value": 2}}, {}) == {"two"}
    assert members(world, {**order, "count": {"operator": "neq", "value": 1}}, {}) == {"none", "other_name", "two"}
    assert members(world, {**order, "count": {"operator": "lt", "value": 2}}, {}) == {"none", "one", "other_name"}
    assert members(world, {**order, "count": {"operator": "between", "value": [0, 1]}}, {}) == {
        "none",
        "one",
        "other_name",
    }
    windowed = {**order, "window": {"since": "2d"}, "count": {"operator": "eq", "value": 1}}
    assert members(world, windowed, {}) == {"one", "two"}
    assert members(world, {"type": "event", "event": "$any", "count": {"operator": "gte", "value": 1}}, {}) == {
        "one",
        "two",
        "other_name",
    }


def test_event_filters_select_the_counted_events(world):
    people = {"handbags": {}, "shoes": {}, "both": {}}
    events = [
        Event("handbags", "Order", ago(hours=1), {"category": "Handbags", "total": "120.50"}),
        Event("shoes", "Order", ago(hours=1), {"category": "shoes", "total": 80}),
        Event("both", "Order", ago(hours=1), {"category": "handbags", "total": 20}),
        Event("both", "Order", ago(hours=2), {"category": "shoes", "total": 200}),
    ]
    node = {
        "type": "event",
        "event": "Order",
        "filters": [prop("category", "contains", "HANDBAG"), prop("total", "gte", 100)],
    }
    assert members(world, node, people, events) == {"handbags"}


def test_windows_include_since_exclude_until_and_end_at_now(world):
    people = {"at_start": {}, "before_start": {}, "at_end": {}, "just_before_end": {}, "now": {}, "future": {}}
    events = [
        Event("at_start", "A", ago(days=7)),
        Event("before_start", "A", ago(days=7, seconds=1)),
        Event("at_end", "A", ago(days=1)),
        Event("just_before_end", "A", ago(days=1, seconds=-1)),
        Event("now", "A", NOW),
        Event("future", "A", NOW + timedelta(seconds=1)),
    ]
    since = {"type": "event", "event": "A", "window": {"since": "7d"}}
    assert members(world, since, people, events) == {"at_start", "at_end", "just_before_end", "now"}
    between = {"type": "event", "event": "A", "window": {"since": "168h", "until": "1d"}}
    assert members(world, between, {}) == {"at_start"}
    until = {"type": "event", "event": "A", "window": {"until": "2026-05-31T12:00:00Z"}}
    assert members(world, until, {}) == {"at_start", "before_start"}
    stamps = {"type": "event", "event": "A", "window": {"since": "2026-05-25T12:00:00+00:00", "until": "1d"}}
    assert members(world, stamps, {}) == {"at_start"}
    everything = {"type": "event", "event": "A"}
    assert members(world, everything, {}) == {"at_start", "before_start", "at_end", "just_before_end", "now"}


def agg(function, operator, value, key="revenue"):
    return {
        "type": "aggregate",
        "event": "Order",
        "key": key,
        "function": function,
        "operator": operator,
        "value": value,
    }


def test_aggregates_count_numeric_strings_as_their_numbers_and_skip_everything_else(world):
    people = {"numbers": {}, "strings": {}, "mixed": {}, "junk": {}, "nothing": {}}
    events = [
        Event("numbers", "Order", ago(days=1), {"revenue": 400}),
        Event("numbers", "Order", ago(days=2), {"revenue": 150.5}),
        # 12.5 + 12 + 1000 - 0.5 = 1024
        Event("strings", "Order", ago(days=1), {"revenue": "12.50"}),
        Event("strings", "Order", ago(days=1), {"revenue": " 12"}),
        Event("strings", "Order", ago(days=1), {"revenue": "1e3"}),
        Event("strings", "Order", ago(days=1), {"revenue": "-0.5"}),
        Event("mixed", "Order", ago(days=1), {"revenue": 20}),
        Event("mixed", "Order", ago(days=1), {"revenue": "30"}),
        Event("mixed", "Order", ago(days=1), {"revenue": None}),
        Event("mixed", "Order", ago(days=1), {"revenue": "free"}),
        Event("mixed", "Order", ago(days=1), {"revenue": False}),
        *(
            Event("junk", "Order", ago(days=1), {"revenue": value})
            for value in [True, "NaN", "Infinity", "12.50.1", "inf", "", "1,000", "0x1f", "\u200312", [5], {"v": 5}]
        ),
    ]

    assert members(world, agg("sum", "gte", 500), people, events) == {"numbers", "strings"}
    assert members(world, agg("sum", "eq", 1024), {}) == {"strings"}
    # sum of nothing is 0: people with no numeric values hold "sum lte 100"
    assert members(world, agg("sum", "lte", 100), {}) == {"mixed", "junk", "nothing"}
    assert members(world, agg("sum", "eq", 0), {}) == {"junk", "nothing"}
    assert members(world, agg("avg", "eq", 275.25), {}) == {"numbers"}
    assert members(world, agg("avg", "eq", 256), {}) == {"strings"}
    assert members(world, agg("avg", "eq", 25), {}) == {"mixed"}
    # avg, min, max of nothing make the condition false, even for "lte"
    assert members(world, agg("avg", "lte", 1000), {}) == {"numbers", "strings", "mixed"}
    assert members(world, agg("min", "eq", -0.5), {}) == {"strings"}
    assert members(world, agg("min", "lt", 200), {}) == {"numbers", "strings", "mixed"}
    assert members(world, agg("max", "eq", 1000), {}) == {"strings"}
    assert members(world, agg("max", "between", [30, 30]), {}) == {"mixed"}
    assert members(world, agg("max", "neq", 20), {}) == {"numbers", "strings", "mixed"}
    assert members(world, {**agg("sum", "gte", 500), "window": {"since": "36h"}}, {}) == {"strings"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12.50", 12.5),
        (" 12", 12),
        ("\t7\n", 7),
        ("1e3", 1000),
        ("1E-2", 0.01),
        ("-0.5", -0.5),
        ("+7", 7),
        (".5", 0.5),
        ("5.", 5),
        ("NaN", None),
        ("Infinity", None),
        ("-inf", None),
        ("12.50.1", None),
        ("1,000", None),
        ("1_000", None),
        ("12 50", None),
        ("0x1f", None),
        ("\u20037", None),
        ("1e999999", None),
        ("", None),
        ("true", None),
    ],
)
def test_aggregates_and_numeric_operators_read_one_same_numeric_string(world, text, value):
    # Given one order whose revenue is the string, and one whose revenue is not set
    people = {"p": {}, "other": {}}
    events = [Event("p", "Order", ago(days=1), {"revenue": text}), Event("other", "Order", ago(days=1))]
    load(world, people, events)
    numeric = {"p"} if value is not None else set()

    # Then the sum, average and maximum read the number it spells, or skip the string (sum 0, no maximum)...
    if value is None:
        assert members(world, agg("sum", "eq", 0), {}) == {"p", "other"}
    else:
        assert members(world, agg("sum", "eq", value), {}) == {"p"}
        assert members(world, agg("avg", "eq", value), {}) == {"p"}
    assert members(world, agg("max", "gte", -(10**9)), {}) == numeric
    # ...exactly as the numeric operators read it
    in_range = {"type": "event", "event": "Order", "filters": [prop("revenue", "between", [-(10**9), 10**9])]}
    assert members(world, in_range, {}) == numeric
    if value is not None:
        equal = {"type": "event", "event": "Order", "filters": [prop("revenue", "eq", value)]}
        assert members(world, equal, {}) == {"p"}


def test_first_and_last_performed(world):
    people = {"old_buyer": {}, "recent_buyer": {}, "never": {}, "new": {}}
    events = [
        Event("old_buyer", "Order", ago(days=120)),
        Event("recent_buyer", "Order", ago(days=120)),
        Event("recent_buyer", "Order", ago(days=5)),
        Event("new", "Signup", ago(days=2)),
        Event("never", "Login", ago(days=100)),
    ]
    lapsed = {"type": "last_performed", "event": "Order", "window": {"until": "90d"}}
    assert members(world, lapsed, people, events) == {"old_buyer"}
    new = {"type": "first_performed", "event": "$any", "window": {"since": "7d"}}
    assert members(world, new, {}) == {"new"}
    first_order = {"type": "first_performed", "event": "Order", "window": {"since": "200d", "until": "100d"}}
    assert members(world, first_order, {}) == {"old_buyer", "recent_buyer"}


def test_regular_periods_and_their_boundaries(world):
    regular = {"type": "regular", "event": "Login", "period": "7d", "periods": 4, "min_periods": 3}
    people = {"weekly": {}, "edges": {}, "too_old": {}, "at_now": {}, "twice_a_week": {}}
    events = [
        Event("weekly", "Login", ago(days=1)),
        Event("weekly", "Login", ago(days=8)),
        Event("weekly", "Login", ago(days=27)),
        # exactly now - 7d is period 1, exactly now - 28d is period 3 (inclusive starts)
        Event("edges", "Login", ago(days=7)),
        Event("edges", "Login", ago(days=14)),
        Event("edges", "Login", ago(days=28)),
        Event("too_old", "Login", ago(days=1)),
        Event("too_old", "Login", ago(days=8)),
        Event("too_old", "Login", ago(days=28, seconds=1)),
        # an event exactly at now is in no period
        Event("at_now", "Login", NOW),
        Event("at_now", "Login", ago(days=8)),
        Event("at_now", "Login", ago(days=15)),
        Event("twice_a_week", "Login", ago(days=1)),
        Event("twice_a_week", "Login", ago(days=2)),
        Event("twice_a_week", "Login", ago(days=9)),
    ]
    assert members(world, regular, people, events) == {"weekly", "edges"}


# --- sequences -----------------------------------------------------------------


def sequence(*steps, within="48h", **fields):
    return {"type": "sequence", "within": within, "steps": [{"event": s} for s in steps], **fields}


def test_sequence_completes_within_the_time_in_order(world):
    t = ago(days=5)
    people = {"in_time": {}, "at_limit": {}, "late": {}, "wrong_order": {}, "same_time": {}, "no_start": {}}
    events = [
        Event("in_time", "Add", t),
        Event("in_time", "Buy", t + timedelta(hours=3)),
        Event("at_limit", "Add", t),
        Event("at_limit", "Buy", t + timedelta(hours=48)),
        Event("late", "Add", t),
        Event("late", "Buy", t + timedelta(hours=48, seconds=1)),
        Event("wrong_order", "Buy", t),
        Event("wrong_order", "Add", t + timedelta(hours=1)),
        Event("same_time", "Buy", t),
        Event("same_time", "Add", t),
        Event("no_start", "Buy", t),
    ]
    assert members(world, sequence("Add", "Buy"), people, events) == {"in_time", "at_limit", "same_time"}


def test_a_repeated_step_needs_two_events(world):
    t = ago(days=1)
    people = {"once": {}, "twice": {}, "twice_same_time": {}}
    events = [
        Event("once", "A", t),
        Event("twice", "A", t),
        Event("twice", "A", t + timedelta(minutes=5)),
        Event("twice_same_time", "A", t),
        Event("twice_same_time", "A", t),
    ]
    assert members(world, sequence("A", "A"), people, events) == {"twice", "twice_same_time"}
    assert members(world, sequence("A", "A", "A"), {}) == set()


@pytest.mark.parametrize("filtered_first", [True, False])
def test_steps_at_the_same_time_may_be_matched_in_any_order(world, filtered_first):
    # B then "B with coupon" at one instant: whichever B was stored first, a run exists.
    t = ago(days=1)
    plain = Event("p", "B", t, {})
    coupon = Event("p", "B", t, {"coupon": "X"})
    events = [Event("p", "A", t), *([coupon, plain] if filtered_first else [plain, coupon])]
    node = {
        "type": "sequence",
        "within": "1h",
        "steps": [{"event": "A"}, {"event": "B"}, {"event": "B", "filters": [prop("coupon", "is_set")]}],
    }
    assert members(world, node, {"p": {}, "q": {}}, events) == {"p"}


def test_a_step_is_never_matched_by_an_event_of_an_earlier_step(world):
    t = ago(days=1)
    events = [Event("p", "A", t), Event("p", "B", t)]
    assert members(world, sequence("A", "B", "A"), {"p": {}}, events) == set()


def test_only_the_first_step_must_lie_in_the_window(world):
    people = {"starts_inside": {}, "starts_outside": {}}
    events = [
        Event("starts_inside", "Add", ago(days=7, hours=-1)),
        Event("starts_inside", "Buy", ago(days=6)),
        Event("starts_outside", "Add", ago(days=7, hours=1)),
        Event("starts_outside", "Buy", ago(days=6, hours=23)),
    ]
    assert members(world, sequence("Add", "Buy", window={"since": "7d"}), people, events) == {"starts_inside"}


def test_dropped_off_needs_a_run_started_at_least_within_ago_that_did_not_complete(world):
    people = {"dropped": {}, "still_in_time": {}, "completed": {}, "one_of_two": {}, "exactly_cutoff": {}, "none": {}}
    events = [
        Event("dropped", "Add", ago(hours=49)),
        Event("still_in_time", "Add", ago(hours=47)),
        Event("completed", "Add", ago(hours=60)),
        Event("completed", "Buy", ago(hours=30)),
        Event("one_of_two", "Add", ago(hours=100)),
        Event("one_of_two", "Buy", ago(hours=99)),
        Event("one_of_two", "Add", ago(hours=72)),
        Event("exactly_cutoff", "Add", ago(hours=48)),
    ]
    node = sequence("Add", "Buy", completed=False, window={"since": "7d"})
    assert members(world, node, people, events) == {"dropped", "one_of_two", "exactly_cutoff"}


def test_dropped_after_step_k_means_reached_step_k_and_not_the_next(world):
    # Viewed -> Added -> Ordered within 3 days, started in the last 30 days
    t = ago(days=10)
    hours = lambda n: t + timedelta(hours=n)  # noqa: E731
    people = {
        "viewed_only": {},
        "added": {},
        "ordered": {},
        "ordered_too_late": {},
        "added_too_late": {},
        "added_before_viewing": {},
        "completed_then_viewed_again": {},
        "still_in_time": {},
        "never": {},
    }
    events = [
        Event("viewed_only", "Viewed", t),
        Event("added", "Viewed", t),
        Event("added", "Added", hours(1)),
        Event("ordered", "Viewed", t),
        Event("ordered", "Added", hours(1)),
        Event("ordered", "Ordered", hours(2)),
        Event("ordered_too_late", "Viewed", t),
        Event("ordered_too_late", "Added", hours(1)),
        Event("ordered_too_late", "Ordered", hours(73)),
        Event("added_too_late", "Viewed", t),
        Event("added_too_late", "Added", hours(73)),
        Event("added_before_viewing", "Added", t),
        Event("added_before_viewing", "Viewed", hours(1)),
        Event("completed_then_viewed_again", "Viewed", ago(days=20)),
        Event("completed_then_viewed_again", "Added", ago(days=20, hours=-1)),
        Event("completed_then_viewed_again", "Ordered", ago(days=20, hours=-2)),
        Event("completed_then_viewed_again", "Viewed", t),
        Event("still_in_time", "Viewed", ago(days=1)),
        Event("still_in_time", "Added", ago(hours=23)),
        Event("never", "Other", t),
    ]
    funnel = sequence("Viewed", "Added", "Ordered", within="3d", window={"since": "30d"}, completed=False)

    # viewed and added, did not order within 3 days of viewing
    assert members(world, {**funnel, "dropped_after": 2}, people, events) == {"added", "ordered_too_late"}
    # viewed, never added within 3 days
    assert members(world, {**funnel, "dropped_after": 1}, {}) == {
        "viewed_only",
        "added_too_late",
        "added_before_viewing",
        "completed_then_viewed_again",
    }
    # without it, a run that stopped at any step counts
    assert members(world, funnel, {}) == {
        "viewed_only",
        "added",
        "ordered_too_late",
        "added_too_late",
        "added_before_viewing",
        "completed_then_viewed_again",
    }
    assert members(world, {**funnel, "completed": True}, {}) == {"ordered", "completed_then_viewed_again"}


def test_dropped_after_the_first_of_two_steps_is_plain_dropped_off(world):
    people = {"dropped": {}, "completed": {}, "none": {}}
    events = [
        Event("dropped", "Add", ago(hours=49)),
        Event("completed", "Add", ago(hours=60)),
        Event("completed", "Buy", ago(hours=30)),
    ]
    node = sequence("Add", "Buy", completed=False)
    assert members(world, {**node, "dropped_after": 1}, people, events) == members(world, node, {}) == {"dropped"}


def test_dropped_after_reads_steps_at_one_instant_in_any_order(world):
    # Step 2 and step 3 share an instant: the run reached step 3, so it did not drop off after step 2
    t = ago(days=1)
    events = [Event("p", "A", t), Event("p", "B", t + timedelta(minutes=1)), Event("p", "B", t + timedelta(minutes=1))]
    node = sequence("A", "B", "B", "C", within="1h", completed=False)
    assert members(world, {**node, "dropped_after": 2}, {"p": {}}, events) == set()
    assert members(world, {**node, "dropped_after": 3}, {}) == {"p"}


def test_sequence_of_five_steps_with_filters(world):
    t = ago(days=2)
    steps = ["View", "Add", "Checkout", "Pay", "Review"]
    people = {"all": {}, "missing_pay": {}}
    events = [Event("all", s, t + timedelta(minutes=i), {"ok": True}) for i, s in enumerate(steps)]
    events += [
        Event("missing_pay", s, t + timedelta(minutes=i), {"ok": True}) for i, s in enumerate(steps) if s != "Pay"
    ]
    node = {
        "type": "sequence",
        "within": "1h",
        "steps": [{"event": s, "filters": [prop("ok", "eq", True)]} for s in steps],
    }
    assert members(world, node, people, events) == {"all"}
    assert members(world, {**node, "completed": False}, {}) == {"missing_pay"}


# --- segments and groups --------------------------------------------------------


def test_segment_reference_reads_stored_membership_of_this_workspace(world):
    people = {"in_0": {}, "in_1": {}, "in_both": {}, "in_none": {}}
    memberships = {0: {"in_0", "in_both"}, 1: {"in_1", "in_both"}}
    assert members(world, {"type": "segment", "segment": 0}, people, (), memberships) == {"in_0", "in_both"}
    both = {"type": "and", "conditions": [{"type": "segment", "segment": 0}, {"type": "segment", "segment": 1}]}
    assert members(world, both, {}) == {"in_both"}
    neither = {
        "type": "not",
        "condition": {"type": "or", "conditions": [{"type": "segment", "segment": i} for i in (0, 1)]},
    }
    assert members(world, neither, {}) == {"in_none"}


def test_groups_nest(world):
    people = {"pro_buyer": {"plan": "pro"}, "pro": {"plan": "pro"}, "free_buyer": {"plan": "free"}, "free": {}}
    events = [Event("pro_buyer", "Order", ago(days=1)), Event("free_buyer", "Order", ago(days=1))]
    document = {
        "type": "or",
        "conditions": [
            {"type": "and", "conditions": [trait("plan", "eq", "pro"), {"type": "event", "event": "Order"}]},
            {
                "type": "not",
                "condition": {
                    "type": "or",
                    "conditions": [trait("plan", "is_set"), {"type": "event", "event": "$any"}],
                },
            },
        ],
    }
    assert members(world, document, people, events) == {"pro_buyer", "free"}


# --- hostile input -----------------------------------------------------------------


def test_hostile_names_keys_and_values_are_data(world):
    long_key = "k" * 10_000
    people = {}
    events = []
    for i, text in enumerate([*HOSTILE, "日本語", "😀 émoji"]):
        name = f"p{i}"
        people[name] = {text: text, long_key: text, "nested": {text: i}}
        events.append(Event(name, text[:200], ago(hours=1), {text: text, long_key: i}))
    people["plain"] = {"x": 1}
    loaded = dict(people)
    for i, text in enumerate([*HOSTILE, "日本語", "😀 émoji"]):
        name = f"p{i}"
        assert members(world, trait(text, "eq", text), people, events) == {name}
        assert members(world, trait(long_key, "contains", text), {}) == {
            n for n, traits in loaded.items() if text.lower() in str(traits.get(long_key, "")).lower()
        }
        node = {
            "type": "event",
            "event": text[:200],
            "filters": [prop(text, "starts_with", text), prop(long_key, "eq", i)],
        }
        assert members(world, node, {}) == {name}
        assert members(world, trait(f"nested.{text}", "eq", i), {}) == ({name} if "." not in text else set())
        people, events = {}, []  # loaded once; later calls add nothing
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('tracking_event') IS NOT NULL")
        assert cursor.fetchone()[0]


@pytest.mark.parametrize("people", [None, [5, 6]])
def test_compiled_sql_binds_every_value_and_filters_every_where_on_the_workspace(people):
    steps = [{"event": text, "filters": [prop(text, "contains", text)]} for text in HOSTILE[:5]]
    filters = [prop(f"{text}.0", "eq", text) for text in HOSTILE]
    document = {
        "type": "or",
        "conditions": [
            {"type": "and", "conditions": [trait(text, "in", [text, 42]) for text in HOSTILE]},
            {"type": "not", "condition": {"type": "event", "event": HOSTILE[0], "filters": filters}},
            {"type": "event", "event": "$any", "count": {"operator": "eq", "value": 0}, "window": {"since": "7d"}},
            {
                "type": "aggregate",
                "event": HOSTILE[1],
                "key": HOSTILE[2],
                "function": "sum",
                "operator": "lte",
                "value": 3,
            },
            {"type": "first_performed", "event": HOSTILE[3], "window": {"until": "2026-05-01T00:00:00Z"}},
            {"type": "regular", "event": HOSTILE[4], "period": "1d", "periods": 3, "min_periods": 2},
            {"type": "sequence", "within": "1h", "steps": steps, "completed": False},
            {"type": "segment", "segment": 7},
        ],
    }
    query = compile_members(parse(document, now=NOW), workspace_id=123, now=NOW, people=people)
    text_without_placeholders = query.sql.replace("%s", "")
    for text in HOSTILE:
        if len(text) > 2:  # fixed fragments hold quotes, '{}' and the like
            assert text not in text_without_placeholders
    assert "drop" not in query.sql.lower()
    assert query.sql.count("%s") == len(query.params)
    wheres = re.findall(r"WHERE (\S+ = %s)", query.sql)
    assert len(wheres) == query.sql.count("WHERE ")
    assert {where.rpartition(".")[2] for where in wheres} == {"workspace_id = %s"}
    assert query.params[0] == 123
    if people is None:
        assert "ANY(" not in query.sql
    else:
        # The restriction follows the workspace in every WHERE, as one bound array.
        restrictions = re.findall(r"WHERE \S+ = %s AND (\S+) = ANY\(%s::bigint\[\]\)", query.sql)
        assert len(restrictions) == len(wheres)
        assert query.params[1] == [5, 6]
        assert query.params.count([5, 6]) == query.sql.count("ANY(%s::bigint[])")


def test_events_pointing_at_people_of_another_workspace_never_make_them_members(world):
    ours, theirs = load(world, {"ours": {}}, [])
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO tracking_event (workspace_id, person_id, name, "timestamp", received_at, message_id) '
            "VALUES (%s, %s, 'A', %s, %s, 'x'), (%s, %s, 'A', %s, %s, 'y')",
            [world.workspace.pk, theirs["ours"], NOW, NOW, world.workspace.pk, 10**12, NOW, NOW],
        )
    assert compiled_members(world, {"type": "event", "event": "A"}) == set()
    assert compiled_members(world, {"type": "not", "condition": {"type": "event", "event": "A"}}) == {ours["ours"]}


@pytest.mark.parametrize("names", [["A", "B", "C"], ["A", "A", "$any"]])
def test_furthest_runs_filter_every_where_on_the_workspace_and_keep_only_its_people(world, names):
    """Each person's furthest run (insights' funnels): both constructions, for steps of distinct
    names and for the others, hold every WHERE to the workspace and count no event of a person id
    that is not one of its people."""
    ours, theirs = load(world, {"ours": {}}, [])
    minutes = {"A": 3, "B": 2, "C": 1}
    with connection.cursor() as cursor:
        for index, (person, name) in enumerate(
            (person, name) for person in (ours["ours"], theirs["ours"], 10**12) for name in ("A", "B", "C", "A")
        ):
            at = NOW - timedelta(minutes=minutes[name] + 10 * (index % 4 == 3))
            cursor.execute(
                'INSERT INTO tracking_event (workspace_id, person_id, name, "timestamp", received_at, message_id) '
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [world.workspace.pk, person, name, at, NOW, f"m{index}"],
            )
    node = parse({"type": "sequence", "steps": [{"event": n} for n in names], "within": "1h"}, now=NOW)
    query = compile_sequence_furthest(node, workspace_id=world.workspace.pk, now=NOW)
    wheres = re.findall(r"WHERE (\S+ = %s)", query.sql)
    assert len(wheres) == query.sql.count("WHERE ")
    assert {where.rpartition(".")[2] for where in wheres} == {"workspace_id = %s"}
    assert query.sql.count("%s") == len(query.params)
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        rows = cursor.fetchall()
    # The furthest run starts at the later "A" (3 minutes ago), which reaches step 3; the earlier
    # one (13 minutes ago) reaches it too for A, B, C, so the earliest of those is kept.
    earliest = NOW - timedelta(minutes=13)
    reached = {"A": NOW - timedelta(minutes=3), "B": NOW - timedelta(minutes=2), "C": NOW - timedelta(minutes=1)}
    if names == ["A", "B", "C"]:
        expected = [(ours["ours"], earliest, reached["B"], reached["C"])]
    else:
        # A, A, $any: the run from 13 minutes ago takes the later A, then the next other event (B).
        expected = [(ours["ours"], earliest, reached["A"], reached["B"])]
    assert rows == expected


def test_a_set_left_unchecked_says_so_unless_it_is_drawn_from_the_people(world):
    """``check_people=False`` (the refresh's form): a set drawn from the people holds only them and
    says it is checked; any other set says it is not, and may hold the ids the caller must check."""
    ours, theirs = load(world, {"ours": {"plan": "pro"}}, [])
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO tracking_event (workspace_id, person_id, name, "timestamp", received_at, message_id) '
            "VALUES (%s, %s, 'A', %s, %s, 'x'), (%s, %s, 'A', %s, %s, 'y')",
            [world.workspace.pk, theirs["ours"], NOW, NOW, world.workspace.pk, 10**12, NOW, NOW],
        )
    did_a = {"type": "event", "event": "A"}
    pro = trait("plan", "eq", "pro")
    cases = [
        (did_a, False, {theirs["ours"], 10**12}),
        ({"type": "or", "conditions": [pro, did_a]}, False, {ours["ours"], theirs["ours"], 10**12}),
        ({"type": "not", "condition": did_a}, True, {ours["ours"]}),
        ({"type": "and", "conditions": [pro, did_a]}, True, set()),
        ({"type": "or", "conditions": [pro, {"type": "not", "condition": did_a}]}, True, {ours["ours"]}),
    ]
    for document, checked, expected in cases:
        query = compile_members(parse(document, now=NOW), workspace_id=world.workspace.pk, now=NOW, check_people=False)
        with connection.cursor() as cursor:
            cursor.execute(query.sql, query.params)
            rows = [row[0] for row in cursor.fetchall()]
        assert (query.people_checked, sorted(rows)) == (checked, sorted(expected)), document
        assert compile_members(parse(document, now=NOW), workspace_id=world.workspace.pk, now=NOW).people_checked


# Sequences get a property test of their own, over few names and few instants,
# so that steps sharing an instant (and events serving them in either order) are common.
tie_filters = st.sampled_from([prop("x", "eq", True), prop("x", "is_not_set"), prop("y", "gte", 1)])
tie_steps = st.builds(
    lambda name, filters: {"event": name, **({"filters": filters} if filters else {})},
    st.sampled_from(["A", "B", "$any"]),
    st.lists(tie_filters, max_size=1),
)
tie_sequences = st.builds(
    lambda steps, within, completed, window, dropped_after: {
        "type": "sequence",
        "steps": steps,
        "within": within,
        "completed": completed,
        **({"window": window} if window else {}),
        # Dropped off after step k (1 <= k < steps), only for runs that dropped off.
        **({"dropped_after": 1 + dropped_after % (len(steps) - 1)} if dropped_after and not completed else {}),
    },
    st.lists(tie_steps, min_size=2, max_size=5),
    st.sampled_from(["30m", "1h", "2h"]),
    st.booleans(),
    st.sampled_from([None, {"since": "150m"}, {"since": "4h", "until": "90m"}]),
    st.one_of(st.none(), st.integers(0, 3)),
)
tie_events = st.builds(
    Event,
    st.sampled_from(PEOPLE[:3]),
    st.sampled_from(["A", "B"]),
    st.sampled_from([ago(hours=3), ago(hours=2), ago(hours=2), ago(hours=1), ago(minutes=30)]),
    st.fixed_dictionaries({}, optional={"x": st.booleans(), "y": st.sampled_from([0, 1, "2"])}),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=tie_sequences, events=st.lists(tie_events, max_size=10))
def test_sequences_with_steps_at_one_instant_equal_the_oracle(world, document, events):
    with transaction.atomic():
        found = members(world, document, {name: {} for name in PEOPLE[:3]}, events)
        transaction.set_rollback(True)
    world.forget()
    hypothesis.event("members: " + ("none" if not found else "all" if len(found) == 3 else "some"))


# Drop-off after step k gets a property test of its own: funnels over three names, events spread
# around the funnel's ``within`` and its cutoff, so that each person stops at a different step.
funnel_steps = st.lists(
    st.builds(
        lambda name, filters: {"event": name, **({"filters": filters} if filters else {})},
        st.sampled_from(["V", "A", "O", "V", "A", "O", "$any"]),
        st.lists(st.sampled_from([prop("x", "eq", True), prop("y", "gte", 1)]), max_size=1),
    ),
    min_size=2,
    max_size=4,
)
funnels = st.builds(
    lambda steps, within, k, window: {
        "type": "sequence",
        "steps": steps,
        "within": within,
        "completed": False,
        "dropped_after": 1 + k % (len(steps) - 1),
        **({"window": window} if window else {}),
    },
    funnel_steps,
    st.sampled_from(["1h", "2h", "3h"]),
    st.integers(0, 2),
    st.sampled_from([None, None, {"since": "7h"}, {"since": "8h", "until": "3h"}]),
)
funnel_events = st.builds(
    Event,
    st.sampled_from(PEOPLE),
    st.sampled_from(["V", "V", "A", "A", "O"]),
    st.sampled_from([ago(hours=h) for h in (8, 7, 6, 6, 5, 5, 4, 4, 3, 1)] + [ago(minutes=270)]),
    st.fixed_dictionaries({}, optional={"x": st.booleans(), "y": st.sampled_from([0, 1, "2"])}),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=funnels, events=st.lists(funnel_events, min_size=6, max_size=20))
def test_dropped_after_step_k_equals_the_oracle(world, document, events):
    with transaction.atomic():
        found = members(world, document, {name: {} for name in PEOPLE}, events, subset={"ann", "cy"})
        transaction.set_rollback(True)
    world.forget()
    hypothesis.event("members: " + ("none" if not found else "all" if len(found) == len(PEOPLE) else "some"))
