"""Retention on a small fixed dataset, counted by hand; every cell is also a segment of the same people."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection

from accounts.tenancy import workspace_scope
from insights import retention
from insights.inputs import InputInvalid
from segmentation.compiler import compile_members
from segmentation.definition import parse
from tests import factories
from tests.insights.support import NOW, load, static_segment


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


SIGN, LOGIN = "Signed Up", "Login"
# NOW is Monday 1 June 2026, 12:00 UTC: weeks start on 18 May, 25 May and 1 June.
PEOPLE = {name: {} for name in ("u1", "u2", "u3", "u4", "u5", "u6")}
EVENTS = [
    ("u1", SIGN, at(5, 19), {}),
    ("u1", LOGIN, at(5, 20), {}),
    ("u1", LOGIN, at(5, 27), {}),
    ("u1", LOGIN, at(6, 1, 9), {}),
    ("u2", SIGN, at(5, 18, 0), {}),
    ("u2", LOGIN, at(6, 1, 10), {}),
    ("u3", SIGN, at(5, 10), {}),  # first sign-up before the table
    ("u3", SIGN, at(5, 26), {}),
    ("u3", LOGIN, at(5, 26, 13), {}),
    ("u4", SIGN, at(5, 31, 23, 59), {}),  # Sunday night: week of 25 May
    ("u4", LOGIN, at(6, 1, 0), {}),  # Monday midnight: the next week
    ("u5", SIGN, at(6, 1, 8), {}),
    ("u6", LOGIN, at(5, 27), {}),  # never signed up
]
WEEKLY = {"start_event": SIGN, "return_event": LOGIN, "period": "week", "periods": 3}


@pytest.fixture
def app(db):
    workspace, other = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    people = load(workspace, PEOPLE, EVENTS)
    load(other, PEOPLE, [*EVENTS, ("u6", SIGN, at(5, 19), {}), ("u5", LOGIN, at(6, 1, 9), {})])
    return workspace, people, other


def compute(workspace, document):
    with workspace_scope(workspace):
        spec = retention.retention_parse(document)
        return spec, retention.retention_compute(workspace=workspace, spec=spec, now=NOW)


def rows(result):
    return [(c.start, c.size, c.returned) for c in result.cohorts]


def cells_match_segments(workspace, spec, result):
    """Every cell's definition, evaluated by the segment engine, holds as many people as the cell."""
    for cohort in result.cohorts:
        for offset, expected in [(None, cohort.size), *enumerate(cohort.returned)]:
            definition = retention.cell_definition(spec, cohort.start, offset, now=NOW)
            query = compile_members(parse(definition, now=NOW), workspace_id=workspace.pk, now=NOW)
            with connection.cursor() as cursor:
                query.execute(cursor)
                assert len(cursor.fetchall()) == expected, (cohort.start, offset, definition)


def test_weekly_first_time_cohorts_by_hand(app):
    workspace, _, _ = app
    spec, result = compute(workspace, WEEKLY)
    assert rows(result) == [
        (date(2026, 5, 18), 2, [1, 1, 2]),  # u1 u2: u1 each week, u2 this week
        (date(2026, 5, 25), 1, [0, 1]),  # u4 (u3's first sign-up was earlier)
        (date(2026, 6, 1), 1, [0]),  # u5
    ]
    cells_match_segments(workspace, spec, result)


def test_weekly_cohorts_of_any_start_event(app):
    workspace, _, _ = app
    spec, result = compute(workspace, {**WEEKLY, "cohort": "any"})
    assert rows(result) == [
        (date(2026, 5, 18), 2, [1, 1, 2]),
        (date(2026, 5, 25), 2, [1, 1]),  # u3 (logged in that week), u4 (the next)
        (date(2026, 6, 1), 1, [0]),
    ]
    cells_match_segments(workspace, spec, result)


def test_monthly_and_daily_periods(app):
    workspace, _, _ = app
    spec, result = compute(workspace, {**WEEKLY, "period": "month", "periods": 2})
    assert rows(result) == [(date(2026, 5, 1), 4, [2, 3]), (date(2026, 6, 1), 1, [0])]
    cells_match_segments(workspace, spec, result)
    spec, result = compute(workspace, {**WEEKLY, "period": "day", "periods": 3})
    assert rows(result) == [
        (date(2026, 5, 30), 0, [0, 0, 0]),
        (date(2026, 5, 31), 1, [0, 1]),
        (date(2026, 6, 1), 1, [0]),
    ]
    cells_match_segments(workspace, spec, result)


def test_the_same_event_returns_its_whole_cohort_at_offset_zero_and_any_event(app):
    workspace, _, _ = app
    _, result = compute(workspace, {**WEEKLY, "return_event": SIGN})
    assert [c.returned[0] for c in result.cohorts] == [c.size for c in result.cohorts] == [2, 1, 1]
    spec, result = compute(workspace, {**WEEKLY, "return_event": "$any"})
    assert rows(result) == [
        (date(2026, 5, 18), 2, [2, 1, 2]),
        (date(2026, 5, 25), 1, [1, 1]),
        (date(2026, 6, 1), 1, [1]),
    ]
    cells_match_segments(workspace, spec, result)


def test_filtered_by_a_segment(app):
    workspace, people, other = app
    segment = static_segment(workspace, "Chosen", [people["u1"], people["u4"]])
    spec, result = compute(workspace, {**WEEKLY, "segment": segment.pk})
    assert rows(result) == [
        (date(2026, 5, 18), 1, [1, 1, 1]),
        (date(2026, 5, 25), 1, [0, 1]),
        (date(2026, 6, 1), 0, [0]),
    ]
    cells_match_segments(workspace, spec, result)
    theirs = static_segment(other, "Theirs", [])
    with pytest.raises(InputInvalid) as refused:
        compute(workspace, {**WEEKLY, "segment": theirs.pk})
    assert refused.value.errors == {"segment": [f"segment {theirs.pk} does not exist in this workspace"]}


def test_cell_definition_names_fixed_windows():
    spec = retention.retention_parse(WEEKLY)
    assert retention.cell_definition(spec, date(2026, 5, 18), 1, now=NOW) == {
        "type": "and",
        "conditions": [
            {
                "type": "first_performed",
                "event": SIGN,
                "window": {"since": "2026-05-18T00:00:00+00:00", "until": "2026-05-25T00:00:00+00:00"},
            },
            {
                "type": "event",
                "event": LOGIN,
                "window": {"since": "2026-05-25T00:00:00+00:00", "until": "2026-06-01T00:00:00+00:00"},
            },
        ],
    }
    with pytest.raises(InputInvalid) as refused:
        retention.cell_definition(spec, date(2026, 5, 25), 2, now=NOW)
    assert refused.value.errors == {"offset": ["must be a period from 0 to 1 for this cohort"]}
    with pytest.raises(InputInvalid) as refused:
        retention.cell_definition(spec, date(2026, 5, 19), None, now=NOW)
    assert list(refused.value.errors) == ["cohort_start"]


@pytest.mark.parametrize(
    ("document", "errors"),
    [
        ({**WEEKLY, "period": "year"}, {"period": ["must be one of day, week, month, not 'year'"]}),
        ({**WEEKLY, "periods": 53}, {"periods": ["must be a whole number from 1 to 52 for weeks"]}),
        ({**WEEKLY, "periods": True}, {"periods": ["must be a whole number from 1 to 52 for weeks"]}),
        ({**WEEKLY, "start_event": None}, {"start_event": ["is required: an event name"]}),
        (
            {**WEEKLY, "cohort": "last"},
            {"cohort": ['must be "first" (first start event) or "any" (every start event), not \'last\'']},
        ),
        ({**WEEKLY, "segment": "12"}, {"segment": ["must be a segment id, or null"]}),
        ({**WEEKLY, "extra": 1}, {"extra": ["unknown field 'extra'"]}),
    ],
)
def test_invalid_requests_name_the_field(document, errors):
    with pytest.raises(InputInvalid) as refused:
        retention.retention_parse(document)
    assert refused.value.errors == errors
