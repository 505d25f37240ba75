"""Real-time segment membership benchmark: event received -> entry recorded, under ingestion load.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch db> REDIS_URL=redis://127.0.0.1:6379/<db> \\
        .venv/bin/python bench/realtime.py

The database is migrated and gets a "Realtime bench" workspace; use a scratch database. Started here,
on loopback: gunicorn as in production (``config.wsgi``, gthread workers, group commit) and one Celery
worker on a drain queue of the run's own (``SEGMENTS_REALTIME_QUEUE``), plus a thread standing in for
the beat's ``segment_realtime_sweep`` (every 2 s, as scheduled in production).

1. Warm-up: ``--people`` users identified (traits ``plan`` pro or free); their drains put everyone
   in "Not E5", the segment that events make people leave. Waits until nothing is pending.
2. Load: ``--rate`` events/s for ``--duration`` s through ``/v1/batch`` (``--batch-size`` per request,
   paced, a bounded loop): ``track`` of event names E0..E9 by random known users.
3. Waits until nothing is pending and no change arrived for 3 s, then reads, per segment, the latency
   from the triggering event's ``received_at`` to its ``MembershipChange.at``: for "did En" (and the
   cascade "Pro and did E0") the person's first En; for "Not E5" exits, the person's first E5.

Segments: "Did E0".."Did E3" (event count >= 1), "Pro and did E0" (segment reference + trait: the
cascade), "Not E5" (exits), and two that the load cannot affect ("Did Never Sent", a trait on
``plan``), which must record nothing. Target: entry p95 <= 5 s at 1,000 events/s.

The same worker runs the change feed's drains (kicked by every commit that records changes) and,
with ``--webhook``, the webhook sends to a receiver started here, subscribed to the entries of "Did
E0": then the latency from ``MembershipChange.at`` to the delivery's ``delivered_at`` is read
too (the feed's lag plus one signed POST on loopback).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import redis

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAMES = [f"E{i}" for i in range(10)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Sender:
    """Posts batches over one keep-alive connection; records request latencies."""

    def __init__(self, port: int, auth: str) -> None:
        self.port, self.auth = port, auth
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.latencies: list[float] = []
        self.failures = 0

    def post(self, messages: list[dict]) -> None:
        body = orjson.dumps({"batch": messages})
        started = time.perf_counter()
        try:
            self.connection.request(
                "POST", "/v1/batch", body, {"Content-Type": "application/json", "Authorization": self.auth}
            )
            response = self.connection.getresponse()
            response.read()
            if response.status != 200:
                self.failures += 1
        except (OSError, http.client.HTTPException):
            self.failures += 1
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.latencies.append(time.perf_counter() - started)


def segments(conn: psycopg.Connection, workspace_id: int) -> dict[str, int]:
    """Create the bench's segments as already refreshed (real time skips never-refreshed ones)."""
    ids: dict[str, int] = {}

    def create(name: str, definition: dict) -> None:
        ids[name] = conn.execute(
            "INSERT INTO segmentation_segment (workspace_id, name, description, definition, is_static, status, "
            "error, size, refreshed_at, refresh_interval_seconds, consecutive_failures, created_at, updated_at) "
            "VALUES (%s, %s, '', %s, false, 'fresh', '', 0, now(), 300, 0, now(), now()) RETURNING id",
            [workspace_id, name, orjson.dumps(definition).decode()],
        ).fetchone()[0]

    for name in NAMES[:4]:
        create(f"Did {name}", {"type": "event", "event": name, "window": {"since": "30d"}})
    create(
        "Pro and did E0",
        {
            "type": "and",
            "conditions": [
                {"type": "segment", "segment": ids["Did E0"]},
                {"type": "trait", "key": "plan", "operator": "eq", "value": "pro"},
            ],
        },
    )
    create("Not E5", {"type": "not", "condition": {"type": "event", "event": "E5"}})
    create("Did Never Sent", {"type": "event", "event": "Never Sent"})
    create("Enterprise", {"type": "trait", "key": "plan", "operator": "eq", "value": "enterprise"})
    return ids


def pending(client: redis.Redis, prefix: str, workspace_id: int) -> int:
    return int(client.scard(f"{prefix}:segments-rt:{workspace_id}:pending"))


def changes_count(conn: psycopg.Connection, workspace_id: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM segmentation_membershipchange WHERE workspace_id = %s", [workspace_id]
    ).fetchone()[0]


def settle(conn, client, prefix, workspace_id, *, quiet: float = 3.0, timeout: float = 600) -> float:
    """Wait until nothing is pending and no change was recorded for ``quiet`` seconds; the wait."""
    started = time.monotonic()
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() - started < timeout:
        count = changes_count(conn, workspace_id)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if pending(client, prefix, workspace_id) == 0 and time.monotonic() - last_change >= quiet:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError("the drains did not settle")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


LATENCY = """
SELECT extract(epoch FROM c.at - t.received)
FROM segmentation_membershipchange c
CROSS JOIN LATERAL (
    SELECT min(e.received_at) AS received FROM tracking_event e
    WHERE e.workspace_id = c.workspace_id AND e.person_id = c.person_id AND e.name = %(event)s
) t
WHERE c.workspace_id = %(workspace_id)s AND c.segment_id = %(segment_id)s AND c.kind = %(kind)s
  AND c.at >= %(since)s
"""


def consistency(conn: psycopg.Connection, workspace_id: int, ids: dict[str, int]) -> None:
    """Stored membership and size against a full evaluation now: real time must have left nothing behind."""
    sys.path.insert(0, str(REPO))
    from segmentation.compiler import compile_members
    from segmentation.definition import parse

    now = datetime.now(UTC)
    wrong = []
    for name, segment_id in ids.items():
        definition, size = conn.execute(
            "SELECT definition, size FROM segmentation_segment WHERE id = %s", [segment_id]
        ).fetchone()
        query = compile_members(parse(definition), workspace_id=workspace_id, now=now)
        expected = {row[0] for row in conn.execute(query.sql, query.params).fetchall()}
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT person_id FROM segmentation_membership WHERE workspace_id = %s AND segment_id = %s",
                [workspace_id, segment_id],
            ).fetchall()
        }
        if stored != expected or size != len(stored):
            wrong.append(f"{name}: stored {len(stored)}, size {size}, full evaluation {len(expected)}")
    print("consistency with a full evaluation: " + ("; ".join(wrong) if wrong else f"all {len(ids)} segments exact"))


def notifier_cost(redis_url: str, prefix: str, users: list[str]) -> None:
    """What the notifier adds to one committed group of 50 people: Redis up, and Redis down (breaker open)."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CACHE_KEY_PREFIX": prefix,
            "SEGMENTS_REALTIME_QUEUE": f"{prefix}-unused",
        }
    )
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings

    from segmentation import realtime
    from segmentation.dependencies import Change

    touched = {10_000_000 + i: Change(events={"E0", "E1"}) for i in range(50)}
    realtime.notifier.reset()
    calls = 2000
    started = time.perf_counter()
    for _ in range(calls):
        realtime.people_touched(999_999_999, touched)
    up = (time.perf_counter() - started) / calls
    redis.Redis.from_url(redis_url).delete(f"{prefix}-unused")
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    realtime.notifier.reset()
    started = time.perf_counter()
    realtime.people_touched(999_999_999, touched)
    first_failure = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        realtime.people_touched(999_999_999, touched)
    down = (time.perf_counter() - started) / calls
    print(
        f"notifier per committed group of 50 people: {1e6 * up:.0f} us with Redis up; Redis down: "
        f"{1e3 * first_failure:.2f} ms for the failing call, then {1e6 * down:.1f} us per call (breaker open)"
    )


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook endpoint on loopback: reads the body, answers 204."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def subscribe(conn: psycopg.Connection, workspace_id: int, url: str, segment_id: int) -> None:
    """A subscription to one segment's entries (one worker sends them all, one at a time)."""
    subscription_id = conn.execute(
        "INSERT INTO segmentation_webhooksubscription (workspace_id, url, description, all_segments, on_entered, "
        "on_exited, secret_salt, secret_hint, created_at) VALUES (%s, %s, '', false, true, false, 'bench', "
        "'whsec_bench', now()) RETURNING id",
        [workspace_id, url],
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO segmentation_webhooksegment (workspace_id, subscription_id, segment_id) VALUES (%s, %s, %s)",
        [workspace_id, subscription_id, segment_id],
    )


# Deliveries not sent yet, and changes the webhook consumer has not read yet.
UNSENT = """
SELECT (SELECT count(*) FROM segmentation_webhookdelivery d
        WHERE d.workspace_id = %(w)s AND d.status IN ('pending', 'sending'))
     + (SELECT count(*) FROM segmentation_membershipchange c
        LEFT JOIN segmentation_changefeedcursor f ON f.workspace_id = c.workspace_id AND f.consumer = 'webhooks'
        WHERE c.workspace_id = %(w)s AND c.txid IS NOT NULL
          AND (c.txid, c.id) > (coalesce(f.last_txid, 0), coalesce(f.last_id, 0)))
"""


DELIVERY_LATENCY = """
SELECT extract(epoch FROM d.delivered_at - d.at) FROM segmentation_webhookdelivery d
WHERE d.workspace_id = %s AND d.at >= %s AND d.status = 'delivered'
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=16, help="request threads per gunicorn worker")
    parser.add_argument("--celery-concurrency", type=int, default=1, help="drain worker processes (prefork)")
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--duration", type=int, default=25, help="seconds of load")
    parser.add_argument("--batch-size", type=int, default=50, help="events per /v1/batch request")
    parser.add_argument("--senders", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--webhook", action="store_true", help="subscribe a loopback receiver to every entry")
    options = parser.parse_args()
    if not options.database_url or not options.redis_url:
        parser.error("set DATABASE_URL and REDIS_URL (scratch ones)")

    run = uuid.uuid4().hex[:8]
    prefix, queue = f"bench-rt-{run}", f"bench-rt-{run}"
    env = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "REDIS_URL": options.redis_url,
        "CACHE_KEY_PREFIX": prefix,
        "SEGMENTS_REALTIME_QUEUE": queue,
        # The change feed's drains and the webhook sends run on the same worker.
        "SEGMENT_FEED_QUEUE": queue,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        # The warm-up sends 20,000 identifies at once, past the default messages per second of a write key.
        "INGEST_RATE_PER_WRITE_KEY": os.environ.get("INGEST_RATE_PER_WRITE_KEY", "0"),
        "SECRET_KEY": "bench",
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    conn = psycopg.connect(options.database_url, autocommit=True)
    write_key = f"cly_wk_rtbench{run}"
    workspace_id = conn.execute(
        "INSERT INTO accounts_workspace (name, write_key, created_at) VALUES (%s, %s, now()) RETURNING id",
        [f"Realtime bench {run}", write_key],
    ).fetchone()[0]
    ids = segments(conn, workspace_id)
    client = redis.Redis.from_url(options.redis_url)
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()

    port = free_port()
    processes = []
    scratch = tempfile.TemporaryDirectory()
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(options.workers),
         "--worker-class", "gthread", "--threads", str(options.threads)],
        cwd=REPO, env=env, start_new_session=True,
    )  # fmt: skip
    processes.append(server)
    worker_log = Path(scratch.name) / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-c", str(options.celery_concurrency),
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        cwd=REPO, env=env, start_new_session=True, stdout=worker_log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes.append(worker)
    stop = threading.Event()

    def beat() -> None:
        """The beat's sweep, as scheduled in production (every 2 s)."""
        from celery import Celery

        app = Celery(broker=options.redis_url)
        while not stop.wait(2.0):
            if client.sismember(f"{prefix}:segments-rt:dirty", workspace_id):
                app.send_task("segmentation.tasks.segment_realtime_drain", args=(workspace_id,), queue=queue)

    sweeper = threading.Thread(target=beat, daemon=True)
    sweeper.start()
    try:
        wait_for_port(port)
        auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        users = [f"user-{i}" for i in range(options.people)]
        rng = random.Random(42)

        # 1. Warm-up: everyone identified; then nothing pending.
        warm = Sender(port, auth)
        for start in range(0, len(users), 500):
            warm.post(
                [
                    {"type": "identify", "userId": u, "traits": {"plan": rng.choice(["pro", "free"])}}
                    for u in users[start : start + 500]
                ]
            )
        conn.execute("ANALYZE tracking_person, tracking_identity, tracking_event, segmentation_membership")
        warm_wait = settle(conn, client, prefix, workspace_id)
        not_e5 = conn.execute("SELECT size FROM segmentation_segment WHERE id = %s", [ids["Not E5"]]).fetchone()[0]
        print(
            f"warm-up: {len(users)} people identified ({warm.failures} requests failed); "
            f"drains settled after {warm_wait:.1f} s; Not E5 = {not_e5}"
        )
        if options.webhook:  # after the warm-up, whose entries are not the load's
            subscribe(conn, workspace_id, f"http://127.0.0.1:{receiver.server_address[1]}/in", ids["Did E0"])

        # 2. Load: paced batches from several connections.
        since = datetime.now(UTC)
        senders = [Sender(port, auth) for _ in range(options.senders)]
        interval = options.batch_size / options.rate  # seconds between two batches, all senders together
        total = int(options.duration * options.rate / options.batch_size)
        started = time.monotonic()

        def send(index: int) -> None:
            local = random.Random(index)
            sender = senders[index]
            for k in range(index, total, options.senders):
                delay = started + k * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sender.post(
                    [
                        {"type": "track", "userId": local.choice(users), "event": local.choice(NAMES)}
                        for _ in range(options.batch_size)
                    ]
                )

        threads = [threading.Thread(target=send, args=(i,)) for i in range(options.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        events = conn.execute(
            "SELECT count(*) FROM tracking_event WHERE workspace_id = %s AND received_at >= %s", [workspace_id, since]
        ).fetchone()[0]
        requests = [latency for s in senders for latency in s.latencies]
        failures = sum(s.failures for s in senders)
        tail = settle(conn, client, prefix, workspace_id)
        deadline = time.monotonic() + 600  # until the feed is read to its end and every delivery sent
        while (
            options.webhook and time.monotonic() < deadline and conn.execute(UNSENT, {"w": workspace_id}).fetchone()[0]
        ):
            time.sleep(0.2)

        # 3. Latencies.
        print(
            f"load: {events} events stored in {elapsed:.1f} s ({events / elapsed:,.0f} events/s), "
            f"{len(requests)} requests of {options.batch_size}, {failures} failed; request p50 "
            f"{1000 * percentile(requests, 0.5):.1f} ms, p99 {1000 * percentile(requests, 0.99):.1f} ms; "
            f"drains settled {tail:.1f} s after the load"
        )
        print(f"cpus={os.cpu_count()} load_avg={tuple(round(x, 2) for x in os.getloadavg())}")
        everything: list[float] = []
        rows = [(f"Did {n}", n, "entered") for n in NAMES[:4]]
        rows += [("Pro and did E0", "E0", "entered"), ("Not E5", "E5", "exited")]
        for segment, event, kind in rows:
            values = [
                float(row[0])
                for row in conn.execute(
                    LATENCY,
                    {"event": event, "workspace_id": workspace_id, "segment_id": ids[segment], "kind": kind,
                     "since": since},
                ).fetchall()
            ]  # fmt: skip
            everything += values
            if values:
                print(
                    f"{segment:16} {kind:8} n={len(values):6}  p50 {statistics.median(values):6.2f} s  "
                    f"p95 {percentile(values, 0.95):6.2f} s  max {max(values):6.2f} s"
                )
        untouched = conn.execute(
            "SELECT count(*) FROM segmentation_membershipchange WHERE workspace_id = %s AND segment_id = ANY(%s)",
            [workspace_id, [ids["Did Never Sent"], ids["Enterprise"]]],
        ).fetchone()[0]
        print(
            f"all changes     n={len(everything):6}  p50 {statistics.median(everything):6.2f} s  "
            f"p95 {percentile(everything, 0.95):6.2f} s  max {max(everything):6.2f} s   (target: p95 <= 5 s)"
        )
        print(f"changes in segments the load cannot affect: {untouched} (expected 0)")
        if options.webhook:
            deliveries = [float(row[0]) for row in conn.execute(DELIVERY_LATENCY, [workspace_id, since]).fetchall()]
            entries = conn.execute(
                "SELECT count(*) FROM segmentation_membershipchange WHERE workspace_id = %s AND at >= %s "
                "AND kind = 'entered' AND segment_id = %s",
                [workspace_id, since, ids["Did E0"]],
            ).fetchone()[0]
            if deliveries:
                print(
                    f"webhooks        n={len(deliveries):6} of {entries} entries  p50 "
                    f"{statistics.median(deliveries):6.2f} s  p95 {percentile(deliveries, 0.95):6.2f} s  "
                    f"max {max(deliveries):6.2f} s   (change recorded -> delivered)"
                )
        consistency(conn, workspace_id, ids)
        notifier_cost(options.redis_url, prefix, users)
    finally:
        stop.set()
        receiver.shutdown()
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.delete(queue)
        scratch.cleanup()


if __name__ == "__main__":
    main()
