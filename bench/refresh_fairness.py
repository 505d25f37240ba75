"""Refresh fairness benchmark: a small workspace's refresh latency while another workspace floods the workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch db> REDIS_URL=redis://127.0.0.1:6379/<db> \\
        .venv/bin/python bench/refresh_fairness.py

The database is migrated and gets two workspaces; use a scratch database (the Redis database's default
Celery queue is emptied). "Flood" holds ``--events`` events of ``--people`` people and ``--flood``
segments that sum a property over all of them (slow for real: every event is read and grouped);
"Small" holds one segment over a few people. Every segment is due, the flood's for an hour, the small
one's for a second. A real Celery worker (``--concurrency`` processes, prefork, as in production)
runs the refreshes.

- before: every due segment enqueued at once in due order (what the fan-out did before per-workspace
  slots: the flood's first), the worker run with no slot refill;
- after: ``segments_refresh_due`` (claims: at most ``SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE`` per
  workspace, round-robin), the flood's later segments claimed as its refreshes end.

Printed per mode: the small segment's refresh start delay and latency (fan-out to its refresh
started, and committed) and the time until the flood's last refresh committed. ``--repeat`` runs
both modes that many times on the same data.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis

REPO = Path(__file__).resolve().parents[1]
SLOW = {"type": "aggregate", "event": "Order Completed", "key": "amount", "function": "sum", "operator": "gte"}


def load(conn: psycopg.Connection, run: str, options: argparse.Namespace) -> tuple[int, int, list[int], int]:
    """The two workspaces, their people, events and segments: (flood id, small id, flood segments, small segment)."""
    ids = []
    for name in ("Flood", "Small"):
        ids.append(
            conn.execute(
                "INSERT INTO accounts_workspace (name, write_key, created_at) VALUES (%s, %s, now()) RETURNING id",
                [f"{name} {run}", f"cly_wk_fair{name.lower()}{run}"],
            ).fetchone()[0]
        )
    flood, small = ids
    for workspace, people, events in ((flood, options.people, options.events), (small, 20, 200)):
        conn.execute(
            "INSERT INTO tracking_person (workspace_id, user_id, traits, first_seen, last_seen) "
            "SELECT %s, 'u' || n, '{}', now(), now() FROM generate_series(1, %s) n",
            [workspace, people],
        )
        conn.execute(
            "INSERT INTO tracking_event (workspace_id, person_id, name, properties, context, timestamp, received_at,"
            " message_id, warnings) "
            "SELECT %s, p.ids[1 + n %% %s], 'Order Completed', jsonb_build_object('amount', n %% 97), '{}',"
            " now() - (n %% 86400) * interval '1 second', now(), md5(%s || n), '[]' "
            "FROM generate_series(1, %s) n, "
            "(SELECT array_agg(id ORDER BY id) AS ids FROM tracking_person WHERE workspace_id = %s) p",
            [workspace, people, str(workspace), events, workspace],
        )
    conn.execute("ANALYZE tracking_person")
    conn.execute("ANALYZE tracking_event")
    segments = []
    for index in range(options.flood):
        definition = psycopg.types.json.Jsonb({**SLOW, "value": 100 * (index + 1)})
        segments.append(segment(conn, flood, f"Spenders {index}", definition))
    mine = segment(conn, small, "Buyers", psycopg.types.json.Jsonb({"type": "event", "event": "Order Completed"}))
    return flood, small, segments, mine


def segment(conn: psycopg.Connection, workspace: int, name: str, definition: object) -> int:
    return conn.execute(
        "INSERT INTO segmentation_segment (workspace_id, name, description, definition, is_static, status, error,"
        " size, refresh_interval_seconds, consecutive_failures, created_at, updated_at) "
        "VALUES (%s, %s, '', %s, false, 'pending', '', 0, 300, 0, now(), now()) RETURNING id",
        [workspace, name, definition],
    ).fetchone()[0]


def make_due(conn: psycopg.Connection, flood: int, small: int) -> None:
    conn.execute(
        "UPDATE segmentation_segment SET refreshing_since = NULL, refreshed_at = NULL, status = 'pending',"
        " next_refresh_at = CASE workspace_id WHEN %s THEN now() - interval '1 hour' ELSE now() - interval '1 second'"
        " END WHERE workspace_id IN (%s, %s)",
        [flood, flood, small],
    )


def finished(conn: psycopg.Connection, segment_id: int, since: datetime) -> bool:
    """The segment's refresh started after ``since`` has committed (polled every 50 ms)."""
    return bool(
        conn.execute(
            "SELECT 1 FROM segmentation_segment WHERE id = %s AND refreshed_at >= %s", [segment_id, since]
        ).fetchone()
    )


def measure(conn, mode: str, flood: int, small: int, flood_segments: list[int], mine: int, env, options) -> str:
    from segmentation import tasks

    make_due(conn, flood, small)
    # The default queue, and kombu's messages held for workers of earlier runs (restored to the queue otherwise).
    redis.Redis.from_url(env["REDIS_URL"]).delete("celery", "unacked", "unacked_index", "unacked_mutex")
    worker_env = {**env, "SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE": "0" if mode == "before" else env["SLOTS"]}
    log = Path(tempfile.mkdtemp()) / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "celery", "-c", str(options.concurrency),
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
        cwd=REPO, env=worker_env, start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # its pool processes up
        started = datetime.now(UTC)
        t0 = time.monotonic()
        if mode == "before":
            order = [*flood_segments, mine]
            for segment_id in order:
                workspace = flood if segment_id in flood_segments else small
                tasks.segment_refresh_task.apply_async((workspace, segment_id), retry=False)
        else:
            tasks.segments_refresh_due()
        small_latency = flood_done = None
        while flood_done is None:
            if small_latency is None and finished(conn, mine, started):
                small_latency = time.monotonic() - t0
            if all(finished(conn, pk, started) for pk in flood_segments):
                flood_done = time.monotonic() - t0
            time.sleep(0.05)
        if small_latency is None:
            small_latency = flood_done
        # A refresh stamps refreshed_at with its evaluation time, taken as it starts.
        small_started = conn.execute("SELECT refreshed_at FROM segmentation_segment WHERE id = %s", [mine]).fetchone()[
            0
        ]
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
    return (
        f"{mode:6}: small workspace's refresh started after {(small_started - started).total_seconds():6.2f} s, "
        f"committed after {small_latency:6.2f} s; flood's last refresh committed after {flood_done:6.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--flood", type=int, default=6, help="slow segments of the flooding workspace")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--slots", type=int, default=2, help="SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE")
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    if not options.database_url or not options.redis_url:
        parser.error("set DATABASE_URL and REDIS_URL (scratch ones)")
    env = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "REDIS_URL": options.redis_url,
        "SECRET_KEY": "bench",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE": str(options.slots),
        "SLOTS": str(options.slots),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    run = datetime.now(UTC).strftime("%H%M%S")
    with psycopg.connect(options.database_url, autocommit=True) as conn:
        started = time.monotonic()
        flood, small, flood_segments, mine = load(conn, run, options)
        print(f"loaded {options.events:,} events of {options.people:,} people in {time.monotonic() - started:.1f} s")
        one = time.monotonic()
        from accounts.tenancy import workspace_scope
        from segmentation import services
        from segmentation.models import Segment

        with workspace_scope(flood):
            services.segment_refresh(segment=Segment.objects.get(pk=flood_segments[0]))
        print(f"one flood refresh alone: {time.monotonic() - one:.2f} s")
        with workspace_scope(small):
            one = time.monotonic()
            services.segment_refresh(segment=Segment.objects.get(pk=mine))
            print(f"the small refresh alone: {time.monotonic() - one:.2f} s")
        print(
            f"{options.flood} flood segments, {options.concurrency} worker processes, "
            f"{options.slots} slots per workspace"
        )
        for mode in ("before", "after") * options.repeat:
            print(measure(conn, mode, flood, small, flood_segments, mine, env, options), flush=True)


if __name__ == "__main__":
    main()
