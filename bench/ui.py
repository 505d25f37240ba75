"""Benchmark of the segment builder's autocomplete on a workspace with 1M events.

    DATABASE_URL=postgres://.../scratch_db .venv/bin/python bench/ui.py [--events 1000000] [--requests 200] [--keep]

Creates a workspace "bench-ui-<timestamp>" with ``--events`` events over ``--people`` people,
generated in PostgreSQL (``INSERT ... SELECT generate_series``: 40 event names, shop-like
properties, a month and a half of history), then:

1. times the first ``catalogue_update`` (every event read once) and an incremental one after
   10,000 more events (what the periodic task does each minute);
2. times the builder's autocomplete endpoint (``/segments/catalogue/``: event names, property
   keys of an event, common values of a key, trait keys and values) through Django's full request
   stack (session, middleware, view, JSON) with the test client: p50 / p95 / p99 / max per query.

The target is <= 100 ms per answer. The workspace and its rows are deleted at the end unless
``--keep``. Run it on a scratch database: it writes a million rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

from accounts import services as account_services  # noqa: E402
from accounts.models import User, Workspace  # noqa: E402
from accounts.tenancy import workspace_scope  # noqa: E402
from segmentation.catalogue.services import catalogue_update  # noqa: E402
from tracking.services import event_partitions_ensure  # noqa: E402

PEOPLE_SQL = """
INSERT INTO tracking_person (workspace_id, user_id, traits, first_seen, last_seen)
SELECT %s, 'bench-' || g,
       jsonb_build_object('plan', (ARRAY['Free','Pro','Enterprise','Strategic'])[1 + g %% 4],
                          'country', (ARRAY['US','GB','DE','FR','JP','BR'])[1 + g %% 6],
                          'email', 'p' || g || '@example.com', 'name', 'Person ' || g),
       now() - interval '60 days', now()
FROM generate_series(1, %s) g
"""
# 40 names, the first few far more frequent (as in real tracking plans).
EVENTS_SQL = """
INSERT INTO tracking_event (workspace_id, person_id, name, properties, context, "timestamp", received_at,
                            message_id, warnings)
SELECT %s, p.first_id + (g %% p.n),
       CASE WHEN g %% 10 < 4 THEN 'Product Viewed' WHEN g %% 10 < 6 THEN '$pageview'
            WHEN g %% 10 < 7 THEN 'Product Added' WHEN g %% 10 < 8 THEN 'Order Completed'
            ELSE 'Custom Event ' || (g %% 37) END,
       jsonb_build_object('category',
                          (ARRAY['shoes','handbags','jackets','accessories','jewellery','home'])[1 + g %% 6],
                          'price', round(((g %% 9000) / 37.0)::numeric, 2),
                          'product_id', 'SKU-' || (g %% 500),
                          'path', '/products/' || (g %% 500),
                          'campaign', (ARRAY['spring_sale','weekly_digest','back_in_stock'])[1 + g %% 3]),
       '{}'::jsonb,
       now() - make_interval(secs => (g %% (45 * 86400))),
       now() - interval '1 hour',
       'bench-' || %s || '-' || g, '[]'::jsonb
FROM generate_series(%s, %s) g,
     (SELECT min(id) AS first_id, count(*) AS n FROM tracking_person WHERE workspace_id = %s) p
"""

QUERIES = [
    ("event names, nothing typed", {"kind": "events"}),
    ("event names, 'prod'", {"kind": "events", "q": "prod"}),
    ("event names, 'custom event 1'", {"kind": "events", "q": "custom event 1"}),
    ("keys of Product Viewed", {"kind": "keys", "event": "Product Viewed"}),
    ("keys of any event, 'ca'", {"kind": "keys", "event": "$any", "q": "ca"}),
    ("values of category, 'sh'", {"kind": "values", "event": "Product Viewed", "key": "category", "q": "sh"}),
    ("values of price", {"kind": "values", "event": "Product Viewed", "key": "price"}),
    ("trait keys", {"kind": "keys", "source": "trait"}),
    ("trait values of plan", {"kind": "values", "source": "trait", "key": "plan"}),
]


def _insert_events(workspace: Workspace, start: int, stop: int, tag: str) -> float:
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(EVENTS_SQL, [workspace.pk, tag, start, stop, workspace.pk])
    return time.perf_counter() - began


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per query")
    parser.add_argument("--keep", action="store_true", help="keep the bench workspace")
    args = parser.parse_args()
    setup_test_environment()  # the test client's own host and cookie handling, nothing else

    stamp = time.strftime("%Y%m%d%H%M%S")
    email = f"bench-ui-{stamp}@example.com"
    user = User.objects.create_user(email=email, password="bench-ui-password-1")
    workspace = account_services.workspace_create(name=f"bench-ui-{stamp}", owner=user)
    try:
        event_partitions_ensure()
        with connection.cursor() as cursor:
            cursor.execute(PEOPLE_SQL, [workspace.pk, args.people])
        elapsed = _insert_events(workspace, 1, args.events, stamp)
        print(f"generated {args.events:,} events over {args.people:,} people in {elapsed:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tracking_event")
            cursor.execute("ANALYZE tracking_person")

        with workspace_scope(workspace):
            began = time.perf_counter()
            first = catalogue_update(workspace=workspace)
            full = time.perf_counter() - began
            _insert_events(workspace, args.events + 1, args.events + 10_000, stamp)
            began = time.perf_counter()
            second = catalogue_update(workspace=workspace)
            incremental = time.perf_counter() - began
        print(
            f"catalogue: first run {first.events_read:,} events in {full:.2f} s; "
            f"incremental run {second.events_read:,} events in {incremental:.3f} s"
        )

        client = Client()
        client.force_login(user)
        url = reverse("segment_catalogue")
        print(f"\nautocomplete through the full Django stack, {args.requests} requests each (ms)")
        print(f"{'query':<34} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}  results")
        worst = 0.0
        for label, params in QUERIES:
            client.get(url, params)  # warm caches of this query shape
            timings = []
            for _ in range(args.requests):
                began = time.perf_counter()
                response = client.get(url, params)
                timings.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, response.content[:200]
            results = len(response.json()["results"])
            p99 = _percentile(timings, 0.99)
            worst = max(worst, p99)
            print(
                f"{label:<34} {statistics.median(timings):7.1f} {_percentile(timings, 0.95):7.1f} "
                f"{p99:7.1f} {max(timings):7.1f}  {results}"
            )
        with open("/proc/loadavg") as load:
            print(
                f"\nworst p99 {worst:.1f} ms (target <= 100 ms: {'met' if worst <= 100 else 'NOT met'}); "
                f"load average {load.read().split()[0]}"
            )
    finally:
        if not args.keep:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM tracking_event WHERE workspace_id = %s", [workspace.pk])
                cursor.execute("DELETE FROM tracking_person WHERE workspace_id = %s", [workspace.pk])
            workspace.delete()
            user.delete()


if __name__ == "__main__":
    main()
