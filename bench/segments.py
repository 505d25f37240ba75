"""Benchmark of segment evaluation on generated shop data, against DuckDB on the same data.

    DATABASE_URL=... .venv/bin/python bench/segments.py [--people 1000000 --events 10000000] [--reuse]

Creates a bench workspace through the account services and loads deterministic shop data into the
real tables (``tracking_person``, ``tracking_identity``, ``tracking_event``) with server-side
``INSERT ... SELECT generate_series``, one statement per day of history so that events arrive in time
order (as ingestion writes them). ``--reuse`` keeps the data of an earlier run of the same size; the
evaluation instant is the one of that load, written in the workspace's name, so that every run of the
same data gives the same members.

For each definition of the suite (every node type of the segment language): the preview (the count
and a sample of ten people, as the product's preview shows them), the full refresh (its members
written to a table), the member count, and the Python process's peak memory during the refresh
(tracemalloc peak and RSS growth). Then the same people and events go to Parquet, DuckDB evaluates a
hand-written equivalent of each definition at the same instant, its count is checked against ours
(a mismatch is printed loudly and makes the exit status 1), and the ratio of times is printed.
The Parquet files live under a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import duckdb  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from accounts import services as account_services  # noqa: E402
from accounts.models import User, Workspace  # noqa: E402
from accounts.tenancy import workspace_scope  # noqa: E402
from segmentation import services  # noqa: E402
from segmentation.compiler import compile_members  # noqa: E402
from segmentation.definition import parse  # noqa: E402
from segmentation.models import Membership, Segment  # noqa: E402
from segmentation.services import SegmentPreview  # noqa: E402
from tracking.services import event_partitions_ensure  # noqa: E402

NAME_PREFIX = "bench-segments"
OWNER_EMAIL = "bench-segments@example.com"
DAYS = 180
SAMPLE_SIZE = 10
# Shares of event names; the rest of each day's events are page views.
NAMES = (
    ("Product Viewed", 0.30),
    ("Product Added", 0.10),
    ("Order Completed", 0.04),
    ("Email Opened", 0.11),
    ("$pageview", 0.45),
)
CATEGORIES = ("shoes", "handbags", "shirts", "jackets", "hats", "watches", "socks", "belts")
COUNTRIES = ("US", "US", "US", "GB", "GB", "DE", "DE", "FR", "FR", "ES", "IT", "NL", "SE", "BR", "JP", "IN")
DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "acme.io", "example.com")
# The base segment that the "segment" node of the suite refers to.
BASE_SEGMENT = {"type": "trait", "key": "plan", "operator": "in", "value": ["Pro", "Enterprise"]}


# --- loading -----------------------------------------------------------------


def _sql_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ",".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _workspace_name(people: int, events: int, now: datetime) -> str:
    return f"{NAME_PREFIX} {people}x{events} @{now.isoformat()}"


def find_loaded(people: int, events: int) -> tuple[Workspace, datetime] | None:
    prefix = f"{NAME_PREFIX} {people}x{events} @"
    workspace = Workspace.objects.filter(name__startswith=prefix).order_by("-pk").first()
    if workspace is None:
        return None
    return workspace, datetime.fromisoformat(workspace.name[len(prefix) :])


@contextmanager
def _event_triggers_off() -> Iterator[None]:
    """The events' triggers off while the bench writes or deletes millions of events in bulk.

    They keep each person's first and last event time (tracking migration 0008), one
    UPDATE of the people per statement, and first time per event name (migration 0011); the
    load sets those once at its end, with ``first_seen`` and ``last_seen``.
    """
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE tracking_event DISABLE TRIGGER USER")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE tracking_event ENABLE TRIGGER USER")


def _drop_old_workspaces() -> None:
    """Earlier bench workspaces go first, with their rows (events carry no foreign key)."""
    with _event_triggers_off(), connection.cursor() as cursor:
        for workspace in Workspace.objects.filter(name__startswith=NAME_PREFIX):
            for table in ("segmentation_membership", "segmentation_membershipchange", "tracking_event"):
                cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s", [workspace.pk])
            workspace.delete()


def load(people: int, events: int) -> tuple[Workspace, datetime]:
    """Create the bench workspace and fill it; returns it and the instant the data ends at."""
    _drop_old_workspaces()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    owner = User.objects.filter(email=OWNER_EMAIL).first() or User.objects.create_user(email=OWNER_EMAIL, password=None)
    workspace = account_services.workspace_create(name=_workspace_name(people, events, now), owner=owner)
    # Partitions from the first month of the history to the months ahead of now.
    months = (now.year - (now - timedelta(days=DAYS)).year) * 12 + now.month - (now - timedelta(days=DAYS)).month
    event_partitions_ensure(now=now - timedelta(days=DAYS), months=months + 3)

    ws = workspace.pk
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        # People: 70% identified; plan, country, email (identified only), age (missing for 10%).
        cursor.execute(
            f"""
            INSERT INTO tracking_person (workspace_id, user_id, traits, first_seen, last_seen)
            SELECT %(ws)s, CASE WHEN r1 < 0.7 THEN 'u-' || n END,
                   jsonb_strip_nulls(jsonb_build_object(
                       'plan', CASE WHEN r2 < 0.6 THEN 'Free' WHEN r2 < 0.9 THEN 'Pro' ELSE 'Enterprise' END,
                       'country', ({_sql_array(COUNTRIES)})[1 + floor(r3 * {len(COUNTRIES)})::int],
                       'email', CASE WHEN r1 < 0.7 THEN 'p' || n || '@'
                           || ({_sql_array(DOMAINS)})[1 + floor(r4 * {len(DOMAINS)})::int] END,
                       'age', CASE WHEN r5 >= 0.1 THEN 18 + floor(r5 * 62)::int END)),
                   %(start)s, %(now)s
            FROM (SELECT n, random() r1, random() r2, random() r3, random() r4, random() r5
                  FROM generate_series(0, %(people)s - 1) n) g
            ORDER BY n
            """,
            {"ws": ws, "people": people, "start": now - timedelta(days=DAYS), "now": now},
        )
        cursor.execute("SELECT min(id), max(id) FROM tracking_person WHERE workspace_id = %s", [ws])
        first_id, last_id = cursor.fetchone()
        if last_id - first_id + 1 != people:
            raise RuntimeError("people ids are not contiguous: another writer is using this database")
        cursor.execute(
            """
            INSERT INTO tracking_identity (workspace_id, person_id, kind, value, created_at)
            SELECT %(ws)s, id, 'anonymous_id', 'a-' || (id - %(first)s), first_seen
            FROM tracking_person WHERE workspace_id = %(ws)s
            UNION ALL
            SELECT %(ws)s, id, 'user_id', user_id, first_seen
            FROM tracking_person WHERE workspace_id = %(ws)s AND user_id IS NOT NULL
            """,
            {"ws": ws, "first": first_id},
        )
    people_seconds = time.monotonic() - started
    print(f"loaded {people:,} people in {people_seconds:.1f} s", flush=True)

    # Events: more of them in recent days (x2 over the history), a weekly rhythm, and a skew over
    # people (person rank r gets a share ~ 1/sqrt(r)): the top 1% of people hold ~10% of events.
    weights = [
        (1 + day / DAYS) * (0.8 if (now - timedelta(days=DAYS - day)).weekday() >= 5 else 1.0) for day in range(DAYS)
    ]
    total = sum(weights)
    counts = [int(events * w / total) for w in weights]
    counts[-1] += events - sum(counts)
    thresholds = []
    share = 0.0
    for _, weight in NAMES[:-1]:
        share += weight
        thresholds.append(share)
    name_case = " ".join(
        f"WHEN rn < {bound} THEN '{name}'" for (name, _), bound in zip(NAMES[:-1], thresholds, strict=True)
    )
    started = time.monotonic()
    with _event_triggers_off(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.4242)")
        for day, count in enumerate(counts):
            day_start = now - timedelta(days=DAYS - day)
            with transaction.atomic():
                cursor.execute(
                    f"""
                    INSERT INTO tracking_event (workspace_id, person_id, name, properties, "timestamp",
                                                received_at, message_id, anonymous_id, user_id)
                    SELECT %(ws)s, %(first)s + idx, name,
                           CASE name
                             WHEN 'Product Viewed' THEN jsonb_build_object('category', category, 'price', price)
                             WHEN 'Product Added' THEN jsonb_build_object('category', category, 'price', price)
                             WHEN 'Order Completed' THEN jsonb_strip_nulls(jsonb_build_object(
                                 'revenue', round((price * (1 + floor(r4 * 3)))::numeric, 2),
                                 'coupon', CASE WHEN r4 < 0.2 THEN 'SAVE10' WHEN r4 < 0.25 THEN 'VIP' END))
                             WHEN 'Email Opened' THEN jsonb_build_object('campaign', 'c-' || floor(r4 * 40)::int)
                             ELSE jsonb_build_object('path', '/p/' || floor(r4 * 500)::int)
                           END,
                           ts, ts, 'b-' || %(day)s || '-' || n, 'a-' || idx, NULL
                    FROM (
                        SELECT n, %(day_start)s::timestamptz + r1 * interval '1 day' AS ts,
                               (floor(%(people)s * r2 * r2)::bigint * 48271) %% %(people)s AS idx,
                               CASE {name_case} ELSE '$pageview' END AS name,
                               ({_sql_array(CATEGORIES)})[1 + floor(r3 * {len(CATEGORIES)})::int] AS category,
                               round((5 + 495 * power(r3 * 0.999 + r4 * 0.001, 2))::numeric, 2) AS price, r4
                        FROM (SELECT n, random() r1, random() r2, random() rn, random() r3, random() r4
                              FROM generate_series(1, %(count)s) n) g
                    ) e
                    ORDER BY ts
                    """,
                    {
                        "ws": ws,
                        "first": first_id,
                        "day": day,
                        "day_start": day_start,
                        "people": people,
                        "count": count,
                    },
                )
            if day % 30 == 29:
                print(f"  {day + 1} days of events in {time.monotonic() - started:.0f} s", flush=True)
        event_seconds = time.monotonic() - started
        print(f"loaded {events:,} events in {event_seconds:.1f} s", flush=True)
        started = time.monotonic()
        # Statistics first: those of the empty workspace plan a nested loop over a million people.
        analyze()
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute(
            "UPDATE tracking_person p SET first_seen = f.first_seen, last_seen = f.last_seen, "
            "first_event_at = f.first_seen, last_event_at = f.last_seen "
            "FROM (SELECT person_id, min(timestamp) first_seen, max(timestamp) last_seen FROM tracking_event "
            "WHERE workspace_id = %s GROUP BY person_id) f WHERE p.workspace_id = %s AND p.id = f.person_id",
            [ws, ws],
        )
        # Each person's first time per event name (tracking migration 0011), as the triggers keep it.
        cursor.execute(
            "INSERT INTO tracking_personeventfirst (workspace_id, person_id, name, first_at) "
            'SELECT workspace_id, person_id, name, min("timestamp") FROM tracking_event WHERE workspace_id = %s '
            "GROUP BY workspace_id, person_id, name",
            [ws],
        )
        cursor.execute("RESET work_mem")
    analyze()
    print(f"first/last seen and VACUUM ANALYZE in {time.monotonic() - started:.1f} s", flush=True)
    return workspace, now


def vacuum_membership() -> None:
    """VACUUM the membership tables, which every run fills and empties (its segments' rows cascade).

    What autovacuum does on a server that runs it; without (PostgreSQL's ``autovacuum = off``, as on
    a machine here), the dead rows of earlier runs made every later first refresh slower.
    """
    with connection.cursor() as cursor:
        for table in ("segmentation_membership", "segmentation_membershipchange"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def analyze() -> None:
    """VACUUM ANALYZE: statistics for the planner and a visibility map for index-only scans."""
    with connection.cursor() as cursor:
        for table in (
            "tracking_person",
            "tracking_identity",
            "tracking_event",
            "tracking_personeventfirst",
            "segmentation_membership",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


# --- the suite -----------------------------------------------------------------


def _event(event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": event, **fields}


def _prop(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    node = {"key": key, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def _trait(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "trait", **_prop(key, operator, value)}


@dataclass
class Case:
    name: str
    definition: dict[str, Any]
    # DuckDB SELECT of the members' person ids (tables people, events, membership; $now, $ws_segment).
    duckdb: str


def suite(base_segment_id: int) -> list[Case]:
    ref = {"type": "segment", "segment": base_segment_id}
    return [
        Case(
            "simple count: ordered in 30d",
            _event("Order Completed", window={"since": "30d"}),
            "SELECT DISTINCT person_id FROM events WHERE name = 'Order Completed' "
            "AND ts >= $now - INTERVAL 30 DAY AND ts <= $now",
        ),
        Case(
            "tiny: trait email starts_with (3 people at most)",
            {"type": "or", "conditions": [_trait("email", "starts_with", f"p{n}@") for n in (4242, 4243, 4244)]},
            "SELECT id FROM people WHERE lower(email) LIKE 'p4242@%' OR lower(email) LIKE 'p4243@%' "
            "OR lower(email) LIKE 'p4244@%'",
        ),
        Case(
            "traits: in, between, neq, ends_with",
            {
                "type": "and",
                "conditions": [
                    _trait("plan", "in", ["Pro", "Enterprise"]),
                    _trait("age", "between", [25, 40]),
                    _trait("country", "neq", "US"),
                    _trait("email", "ends_with", "@GMAIL.com"),
                ],
            },
            "SELECT id FROM people WHERE plan IN ('Pro', 'Enterprise') AND age BETWEEN 25 AND 40 "
            "AND country IS DISTINCT FROM 'US' AND lower(email) LIKE '%@gmail.com'",
        ),
        Case(
            "traits: is_not_set, starts_with, gte",
            {
                "type": "or",
                "conditions": [
                    _trait("email", "is_not_set"),
                    {"type": "and", "conditions": [_trait("email", "starts_with", "P99"), _trait("age", "gte", 60)]},
                ],
            },
            "SELECT id FROM people WHERE email IS NULL OR (lower(email) LIKE 'p99%' AND age >= 60)",
        ),
        Case(
            "event + filters: 3+ views of shoes >= 100 in 14d",
            _event(
                "Product Viewed",
                filters=[_prop("category", "eq", "shoes"), _prop("price", "gte", 100)],
                window={"since": "14d"},
                count={"operator": "gte", "value": 3},
            ),
            "SELECT person_id FROM events WHERE name = 'Product Viewed' AND category = 'shoes' AND price >= 100 "
            "AND ts >= $now - INTERVAL 14 DAY AND ts <= $now GROUP BY person_id HAVING count(*) >= 3",
        ),
        Case(
            "$any: 20+ events in 7d",
            _event("$any", window={"since": "7d"}, count={"operator": "gte", "value": 20}),
            "SELECT person_id FROM events WHERE ts >= $now - INTERVAL 7 DAY AND ts <= $now "
            "GROUP BY person_id HAVING count(*) >= 20",
        ),
        Case(
            "huge: no order in 90d (eq 0)",
            _event("Order Completed", window={"since": "90d"}, count={"operator": "eq", "value": 0}),
            "SELECT id FROM people EXCEPT SELECT person_id FROM events WHERE name = 'Order Completed' "
            "AND ts >= $now - INTERVAL 90 DAY AND ts <= $now",
        ),
        Case(
            "aggregate sum: revenue >= 500 in 90d",
            {
                "type": "aggregate",
                "event": "Order Completed",
                "key": "revenue",
                "function": "sum",
                "window": {"since": "90d"},
                "operator": "gte",
                "value": 500,
            },
            "SELECT person_id FROM events WHERE name = 'Order Completed' AND ts >= $now - INTERVAL 90 DAY "
            "AND ts <= $now GROUP BY person_id HAVING coalesce(sum(revenue), 0) >= 500",
        ),
        Case(
            "aggregate avg: viewed price > 300 in 30d",
            {
                "type": "aggregate",
                "event": "Product Viewed",
                "key": "price",
                "function": "avg",
                "window": {"since": "30d"},
                "operator": "gt",
                "value": 300,
            },
            "SELECT person_id FROM events WHERE name = 'Product Viewed' AND ts >= $now - INTERVAL 30 DAY "
            "AND ts <= $now AND price IS NOT NULL GROUP BY person_id HAVING avg(price) > 300",
        ),
        Case(
            "aggregate min/max: min coupon revenue < 10 or max price >= 490",
            {
                "type": "or",
                "conditions": [
                    {
                        "type": "aggregate",
                        "event": "Order Completed",
                        "key": "revenue",
                        "function": "min",
                        "filters": [_prop("coupon", "is_set")],
                        "operator": "lt",
                        "value": 10,
                    },
                    {
                        "type": "aggregate",
                        "event": "Product Added",
                        "key": "price",
                        "function": "max",
                        "window": {"since": "60d"},
                        "operator": "gte",
                        "value": 490,
                    },
                ],
            },
            "SELECT person_id FROM events WHERE name = 'Order Completed' AND coupon IS NOT NULL "
            "AND revenue IS NOT NULL GROUP BY person_id HAVING min(revenue) < 10 "
            "UNION SELECT person_id FROM events WHERE name = 'Product Added' AND ts >= $now - INTERVAL 60 DAY "
            "AND ts <= $now AND price IS NOT NULL GROUP BY person_id HAVING max(price) >= 490",
        ),
        Case(
            "first_performed: new this week ($any)",
            {"type": "first_performed", "event": "$any", "window": {"since": "7d"}},
            "SELECT person_id FROM events GROUP BY person_id HAVING min(ts) >= $now - INTERVAL 7 DAY "
            "AND min(ts) <= $now",
        ),
        Case(
            "last_performed: last order more than 90d ago",
            {"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}},
            "SELECT person_id FROM events WHERE name = 'Order Completed' GROUP BY person_id "
            "HAVING max(ts) < $now - INTERVAL 90 DAY",
        ),
        Case(
            "regular: email opened in 3 of 4 weeks",
            {"type": "regular", "event": "Email Opened", "period": "7d", "periods": 4, "min_periods": 3},
            "SELECT person_id FROM events WHERE name = 'Email Opened' AND ts >= $now - INTERVAL 28 DAY "
            "AND ts < $now GROUP BY person_id "
            "HAVING count(DISTINCT ceil(epoch($now - ts) / 604800) - 1) >= 3",
        ),
        Case(
            "sequence completed: added then ordered within 48h, 30d",
            {
                "type": "sequence",
                "within": "48h",
                "window": {"since": "30d"},
                "steps": [{"event": "Product Added"}, {"event": "Order Completed"}],
            },
            _SEQUENCE.format(condition="next_at IS NOT NULL"),
        ),
        Case(
            "sequence dropped off: added, no order within 48h, 30d",
            {
                "type": "sequence",
                "within": "48h",
                "window": {"since": "30d"},
                "steps": [{"event": "Product Added"}, {"event": "Order Completed"}],
                "completed": False,
            },
            _SEQUENCE.format(condition="next_at IS NULL AND ts <= $now - INTERVAL 48 HOUR"),
        ),
        Case(
            "segment ref: in base segment and not Free",
            {"type": "and", "conditions": [ref, {"type": "not", "condition": _trait("plan", "eq", "Free")}]},
            "SELECT person_id FROM membership INTERSECT "
            "(SELECT id FROM people EXCEPT SELECT id FROM people WHERE plan = 'Free')",
        ),
        Case(
            "nested and/or/not",
            {
                "type": "or",
                "conditions": [
                    {
                        "type": "and",
                        "conditions": [
                            _trait("country", "in", ["DE", "FR"]),
                            _event("Product Added", window={"since": "14d"}),
                        ],
                    },
                    {
                        "type": "not",
                        "condition": {
                            "type": "or",
                            "conditions": [
                                _trait("plan", "eq", "Free"),
                                _event("Email Opened", window={"since": "30d"}, count={"operator": "lt", "value": 2}),
                            ],
                        },
                    },
                ],
            },
            "(SELECT id FROM people WHERE country IN ('DE', 'FR') INTERSECT SELECT person_id FROM events "
            "WHERE name = 'Product Added' AND ts >= $now - INTERVAL 14 DAY AND ts <= $now) "
            "UNION (SELECT id FROM people EXCEPT (SELECT id FROM people WHERE plan = 'Free' "
            "UNION (SELECT id FROM people EXCEPT SELECT person_id FROM events WHERE name = 'Email Opened' "
            "AND ts >= $now - INTERVAL 30 DAY AND ts <= $now GROUP BY person_id HAVING count(*) >= 2)))",
        ),
    ]


# Step 1 (Product Added in the window) with the first Order Completed at or after it, within 48 h.
# The two steps have different names, so any such pair is two distinct events and the earliest
# candidate decides (the general rule of the contract reduces to this).
_SEQUENCE = (
    "SELECT DISTINCT person_id FROM ("
    "SELECT person_id, name, ts, min(CASE WHEN name = 'Order Completed' THEN ts END) OVER ("
    "PARTITION BY person_id ORDER BY ts, name = 'Order Completed' "
    "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS next_order "
    "FROM events WHERE name IN ('Product Added', 'Order Completed') AND ts <= $now + INTERVAL 48 HOUR) s, "
    "LATERAL (SELECT CASE WHEN next_order <= ts + INTERVAL 48 HOUR THEN next_order END AS next_at) n "
    "WHERE name = 'Product Added' AND ts >= $now - INTERVAL 30 DAY AND ts <= $now AND {condition}"
)


# --- measuring -----------------------------------------------------------------


@dataclass
class Result:
    name: str
    members: int
    preview: float
    refresh: float
    again: float
    peak_kib: float
    rss_mib: float
    duckdb_members: int = -1
    duckdb: float = 0.0


def _rss() -> int:
    return psutil.Process().memory_info().rss


def preview(workspace: Workspace, definition: dict[str, Any], now: datetime) -> SegmentPreview:
    """The product's preview (count and a sample of ten), on the clock of the data."""
    with mock.patch.object(services.segments.timezone, "now", return_value=now):
        return services.segment_preview(workspace=workspace, definition=definition, sample_size=SAMPLE_SIZE)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def measure(workspace: Workspace, case: Case, now: datetime, repeat: int) -> Result:
    """Preview (best of ``repeat``), first refresh (every member enters), refresh again (best of ``repeat``)."""
    preview_seconds = []
    shown: SegmentPreview | None = None
    for _ in range(repeat):
        try:
            seconds, shown = timed(lambda: preview(workspace, case.definition, now))
        except services.SegmentQueryTimeout:
            # The product answers 503 past its preview timeout; the table says so.
            preview_seconds.append(math.inf)
            continue
        preview_seconds.append(seconds)
    if shown is not None and shown.count and not shown.sample:
        raise RuntimeError(f"{case.name}: {shown.count} members but an empty sample")
    # Created as the services would store it, without queueing a refresh: the bench runs it.
    segment = Segment.objects.create(workspace=workspace, name=f"bench: {case.name}", definition=case.definition)
    gc.collect()
    rss_before = _rss()
    tracemalloc.start()
    seconds, first = timed(lambda: services.segment_refresh(segment=segment, now=now))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    growth = _rss() - rss_before
    # The periodic refresh, best of ``repeat`` like the preview and DuckDB: nothing changes in any.
    agains = [timed(lambda: services.segment_refresh(segment=segment, now=now)) for _ in range(repeat)]
    again = min(seconds for seconds, _ in agains)
    for result in (first, *(later for _, later in agains)):
        if result.error or result.skipped:
            raise RuntimeError(f"{case.name}: refresh failed or skipped: {result}")
    counted = first.size if shown is None else shown.count
    changed = [later for _, later in agains if later.entered or later.exited]
    if first.size != counted or first.entered != first.size or changed:
        raise RuntimeError(f"{case.name}: preview counts {counted}, refreshes gave {first} then {changed}")
    return Result(
        name=case.name,
        members=first.size,
        preview=min(preview_seconds),
        refresh=seconds,
        again=again,
        peak_kib=peak / 1024,
        rss_mib=growth / 2**20,
    )


def _drop_case_segments(workspace: Workspace) -> None:
    """The segments of earlier runs, with their members and history (raw: a million rows, no signals)."""
    ids = list(Segment.objects.filter(name__startswith="bench: ").values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        for table in (
            "segmentation_membership",
            "segmentation_membershipchange",
            "segmentation_segmentsizesnapshot",
        ):
            cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s AND segment_id = ANY(%s)", [workspace.pk, ids])
        Segment.objects.filter(pk__in=ids).delete()


# --- DuckDB reference ---------------------------------------------------------------


def export(workspace: Workspace, segment: Segment, folder: Path) -> duckdb.DuckDBPyConnection:
    """People, events and the base segment's members as CSV from PostgreSQL, then Parquet for DuckDB.

    Properties become typed columns, as an analyst would lay the data out for a columnar engine.
    """
    queries = {
        "people": (
            "SELECT id, traits->>'plan', traits->>'country', traits->>'email', (traits->>'age')::int "
            "FROM tracking_person WHERE workspace_id = %s",
            "id BIGINT, plan VARCHAR, country VARCHAR, email VARCHAR, age INTEGER",
        ),
        "events": (
            "SELECT person_id, name, (\"timestamp\" AT TIME ZONE 'UTC'), properties->>'category', "
            "(properties->>'price')::numeric, (properties->>'revenue')::numeric, properties->>'coupon' "
            "FROM tracking_event WHERE workspace_id = %s",
            "person_id BIGINT, name VARCHAR, ts TIMESTAMP, category VARCHAR, price DECIMAL(12,2), "
            "revenue DECIMAL(12,2), coupon VARCHAR",
        ),
        "membership": (
            "SELECT person_id FROM segmentation_membership WHERE workspace_id = %s AND segment_id = "
            + str(int(segment.pk)),
            "person_id BIGINT",
        ),
    }
    database = duckdb.connect(str(folder / "bench.duckdb"))
    database.execute("SET threads = 2")
    for table, (query, columns) in queries.items():
        started = time.monotonic()
        csv_path = folder / f"{table}.csv"
        with connection.cursor() as cursor, csv_path.open("wb") as out:
            cursor.execute("SET TIME ZONE 'UTC'")
            with cursor.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", [workspace.pk]) as copy:
                for chunk in copy:
                    out.write(chunk)
        parquet_path = folder / f"{table}.parquet"
        column_types = (
            "{"
            + ", ".join(
                f"'{name}': '{kind}'" for name, kind in (part.strip().split(" ", 1) for part in _split(columns))
            )
            + "}"
        )
        database.execute(
            f"COPY (SELECT * FROM read_csv('{csv_path}', header = false, columns = {column_types})) "
            f"TO '{parquet_path}' (FORMAT parquet)"
        )
        csv_path.unlink()
        database.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{parquet_path}')")
        print(f"exported {table} to Parquet in {time.monotonic() - started:.1f} s", flush=True)
    return database


def _split(columns: str) -> list[str]:
    """Column list split on commas outside parentheses (DECIMAL(12,2))."""
    parts, depth, current = [], 0, ""
    for char in columns:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def run_duckdb(database: duckdb.DuckDBPyConnection, case: Case, now: datetime, repeat: int) -> tuple[int, float]:
    sql = f"SELECT count(*) FROM ({case.duckdb}) members"
    params = {"now": now.astimezone(UTC).replace(tzinfo=None)} if "$now" in sql else {}
    seconds = []
    for _ in range(repeat):
        elapsed, row = timed(lambda: database.execute(sql, params).fetchone())
        seconds.append(elapsed)
    return int(row[0]), min(seconds)


# --- main ---------------------------------------------------------------------


def base_segment(workspace: Workspace, now: datetime) -> Segment:
    """The segment the suite's "segment" node refers to, with its members stored as a refresh stores them."""
    segment, _ = Segment.objects.get_or_create(
        workspace=workspace, name="Paying plans", defaults={"definition": BASE_SEGMENT}
    )
    members = compile_members(parse(BASE_SEGMENT, now=now), workspace_id=workspace.pk, now=now)
    with transaction.atomic(), connection.cursor() as cursor:
        Membership.objects.filter(segment=segment).delete()
        cursor.execute(
            "INSERT INTO segmentation_membership (workspace_id, segment_id, person_id, entered_at) "
            f"SELECT %s, %s, m.person_id, %s FROM ({members.sql}) m",
            [workspace.pk, segment.pk, now, *members.params],
        )
        size = cursor.rowcount
        Segment.objects.filter(pk=segment.pk).update(size=size, refreshed_at=now, status="fresh")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE segmentation_membership")
    return segment


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the data of an earlier load of the same size")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measure; the best is reported")
    parser.add_argument("--only", default="", help="run only the definitions whose name contains this")
    args = parser.parse_args()

    loaded = find_loaded(args.people, args.events) if args.reuse else None
    if loaded is None:
        started = time.monotonic()
        workspace, now = load(args.people, args.events)
        print(f"load took {time.monotonic() - started:.0f} s in all", flush=True)
    else:
        workspace, now = loaded
        print(f"reusing workspace {workspace.pk} ({workspace.name})", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('autovacuum'), current_setting('shared_buffers')")
        autovacuum, shared_buffers = cursor.fetchone()
    print(
        f"now = {now.isoformat()} | load average {os.getloadavg()[0]:.1f} | "
        f"PostgreSQL autovacuum {autovacuum}, shared_buffers {shared_buffers}",
        flush=True,
    )

    with workspace_scope(workspace):
        _drop_case_segments(workspace)
        vacuum_membership()
        segment = base_segment(workspace, now)
        cases = [case for case in suite(segment.pk) if args.only in case.name]
        results = []
        for case in cases:
            result = measure(workspace, case, now, args.repeat)
            results.append(result)
            print(
                f"  {case.name}: {result.members:,} members, preview {result.preview:.3f} s, "
                f"refresh {result.refresh:.3f} s, again {result.again:.3f} s",
                flush=True,
            )
        with tempfile.TemporaryDirectory(prefix="bench-segments-") as folder:
            database = export(workspace, segment, Path(folder))
            for case, result in zip(cases, results, strict=True):
                result.duckdb_members, result.duckdb = run_duckdb(database, case, now, args.repeat)
            database.close()
        _drop_case_segments(workspace)

    mismatches = report(results)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {peak:.0f} MiB (includes DuckDB) | load average {os.getloadavg()[0]:.1f}")
    for name in mismatches:
        print(f"!!! MISMATCH: {name}: Cohortly and DuckDB disagree on the member count !!!")
    return 1 if mismatches else 0


def report(results: list[Result]) -> list[str]:
    """The table; the ratio compares the periodic refresh (evaluation and difference, no change) with DuckDB."""
    columns = [
        ("definition", 58),
        ("members", 9),
        ("preview s", 9),
        ("1st refresh s", 13),
        ("refresh s", 9),
        ("DuckDB s", 8),
        ("ratio", 6),
        ("peak KiB", 8),
        ("RSS +MiB", 8),
    ]
    print()
    print(
        "| "
        + " | ".join(f"{name:<{width}}" if i == 0 else f"{name:>{width}}" for i, (name, width) in enumerate(columns))
        + " |"
    )
    print("|" + "|".join("-" * (width + 2) for _, width in columns) + "|")
    mismatches = []
    for r in results:
        flag = "" if r.members == r.duckdb_members else f" MISMATCH: DuckDB {r.duckdb_members:,}"
        if flag:
            mismatches.append(r.name)
        print(
            f"| {r.name:<58} | {r.members:>9,} | {r.preview:>9.3f} | {r.refresh:>13.3f} | {r.again:>9.3f} "
            f"| {r.duckdb:>8.3f} | {r.again / r.duckdb:>6.1f} | {r.peak_kib:>8.0f} | {r.rss_mib:>8.1f} |{flag}"
        )
    ours = sum(r.again for r in results)
    theirs = sum(r.duckdb for r in results)
    previews = sum(r.preview for r in results)
    timeouts = [r.name for r in results if math.isinf(r.preview)]
    print(
        f"suite: refresh {ours:.2f} s (first refreshes {sum(r.refresh for r in results):.2f} s), "
        f"previews {previews:.2f} s, DuckDB {theirs:.2f} s; ratio refresh/DuckDB {ours / theirs:.1f}, "
        f"preview/DuckDB {previews / theirs:.1f}"
    )
    for name in timeouts:
        limit = services.segments.settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS
        print(f"preview past the product's timeout ({limit:g} s): {name}")
    return mismatches


if __name__ == "__main__":
    sys.exit(main())
