"""Ingestion benchmark: the server as in production (uvicorn workers, or gunicorn's with
``--server gunicorn``) against PostgreSQL,
loaded by ``wrk`` from another process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cohortly_bench .venv/bin/python bench/ingest.py

The database is migrated and gets a "Bench" workspace; use a scratch database.
Phases (each ``--duration`` seconds):

1. ``/v1/batch`` with ``--batch-size`` messages per request (unique messageIds, 5,000
   users), once per ``--batch-connections`` value (4, 16): events persisted per second,
   counted in the table (a 2xx means committed).
2. ``/v1/track``, one message per request, once per ``--track-connections`` value (8, 16, 32, 64):
   requests per second and latency percentiles; the target line names the best rate whose p99
   is within 50 ms (a client waits for each answer, so 8 connections cannot make 1,500/s).
3. Raw COPY of the same rows into the same table from one connection, bulk and in
   commits of ``--batch-size`` rows: the ratio ingest / COPY.
4. ``manage.py import_events`` of an NDJSON file of ``--import-messages`` messages
   (track and page calls of 5,000 users, written by this script): messages per second
   as the command reports them, the command's wall time, CPU of the command and of
   PostgreSQL per 1,000 events, and the command's peak RSS.

``--plan matching`` or ``--plan violating`` gives the bench workspace a tracking plan
(docs/tracking-plan.md) that every track call is checked against: none of them violates it,
or each has one property of the wrong type (stored, and counted).

Also printed: CPU-seconds per 1,000 events (server processes, and the PostgreSQL
backends serving them) and the server's peak RSS. Targets: >= 20,000 events/s,
>= 1,500 req/s with p99 <= 50 ms, ratio >= 0.3.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil
import psycopg

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BATCH_LUA = r"""
local counter = 0
function init(args)
  auth = args[1]; size = tonumber(args[2]); prefix = args[3]; ts = args[4]; path = args[5]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = auth
end
function request()
  counter = counter + 1
  ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {}
  for i = 1, size do
    parts[i] = string.format(
      '{"type":"track","userId":"user-%d","event":"Bench Event","messageId":"%s-%s-%d-%d",' ..
      '"timestamp":"%s","properties":{"price":%d,"sku":"SKU-%d","category":"bench"},' ..
      '"context":{"library":{"name":"bench","version":"1"}}}',
      (counter * size + i) % 5000, prefix, tostring(id), counter, i, ts, i, i)
  end
  if path == "/v1/batch" then
    return wrk.format(nil, path, nil, '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"' .. ts .. '"}')
  end
  return wrk.format(nil, path, nil, parts[1])
end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
"""


def _bench_plan(price_type: str) -> dict:
    properties = {"price": price_type, "sku": "string", "category": "string"}
    return {
        "block_unplanned_events": True,
        "events": {
            "Bench Event": {
                "description": "",
                "quarantine_violations": False,
                "properties": {
                    name: {"type": kind, "required": True, "description": ""} for name, kind in properties.items()
                },
            }
        },
    }


# The tracking plans of --plan (the document as tracking.plan writes it).
PLANS = {"none": None, "matching": _bench_plan("number"), "violating": _bench_plan("string")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_total = 0
        self.peak_process = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            sizes = []
            for process in tree(self.pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    sizes.append(process.memory_info().rss)
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_process = max(self.peak_process, max(sizes, default=0))
            time.sleep(0.2)


def backend_pids(conn: psycopg.Connection, database: str) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
    ).fetchall()
    return [row[0] for row in rows]


def backend_cpu(pids: list[int]) -> dict[int, float]:
    usage = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = psutil.Process(pid).cpu_times()
            usage[pid] = times.user + times.system
    return usage


def count_events(conn: psycopg.Connection, workspace_id: int) -> int:
    return conn.execute("SELECT count(*) FROM tracking_event WHERE workspace_id = %s", [workspace_id]).fetchone()[0]


def run_wrk(url: str, lua: Path, args: list[str], *, threads: int, connections: int, duration: int) -> str:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(lua),
        url,
        "--",
        *args,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def parse_wrk(output: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for percentile in ("50", "90", "99"):
        match = re.search(rf"^\s+{percentile}(?:\.000)?%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
        if match:
            figures[f"p{percentile}_ms"] = float(match.group(1)) * units[match.group(2)]
    match = re.search(r"(\d+) requests in ([\d.]+)(s|m)", output)
    if match:
        figures["requests"] = float(match.group(1))
        figures["seconds"] = float(match.group(2)) * (60 if match.group(3) == "m" else 1)
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = float(match.group(1)) if match else 0.0
    errors = re.search(r"Socket errors: (.*)", output)
    figures["socket_errors"] = (
        0.0 if errors is None else float(sum(int(n) for n in re.findall(r"\d+", errors.group(1))))
    )
    return figures


def _numbers(values: str) -> list[int]:
    return [int(value) for value in values.split(",")]


def server_command(options: argparse.Namespace, port: int) -> list[str]:
    """The tracking API as the README runs it in production: uvicorn, or gunicorn's threads."""
    if options.server == "uvicorn":
        return [
            str(BIN / "uvicorn"),
            "config.asgi:application",
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(options.workers)),
            *("--http", "httptools", "--loop", "uvloop", "--no-access-log", "--backlog", "2048"),
        ]
    return [
        str(BIN / "gunicorn"),
        "config.wsgi:application",
        *("-b", f"127.0.0.1:{port}", "-w", str(options.workers)),
        *("--worker-class", "gthread", "--threads", str(options.threads), "--backlog", "2048"),
    ]


def phase(name, server_pid, pg_conn, database, workspace_id, run):
    """Run ``run()`` and measure events persisted, CPU and RSS around it."""
    before_events = count_events(pg_conn, workspace_id)
    server_processes = tree(server_pid)
    server_cpu_before = cpu_seconds(server_processes)
    pg_before = backend_cpu(backend_pids(pg_conn, database))
    sampler = RssSampler(server_pid)
    sampler.start()
    started = time.monotonic()
    output = run()
    elapsed = time.monotonic() - started
    sampler.running = False
    sampler.join()
    server_cpu = cpu_seconds(server_processes) - server_cpu_before
    pg_after = backend_cpu(backend_pids(pg_conn, database))
    pg_cpu = sum(value - pg_before.get(pid, 0.0) for pid, value in pg_after.items())
    events = count_events(pg_conn, workspace_id) - before_events
    figures = parse_wrk(output)
    seconds = figures.get("seconds", elapsed)
    return {
        "phase": name,
        "events_persisted": events,
        "events_per_s": events / seconds,
        "requests_per_s": figures.get("requests", 0) / seconds,
        "p50_ms": figures.get("p50_ms"),
        "p90_ms": figures.get("p90_ms"),
        "p99_ms": figures.get("p99_ms"),
        "non_2xx": figures["non_2xx"],
        "socket_errors": figures["socket_errors"],
        "server_cpu_s_per_1000_events": 1000 * server_cpu / max(events, 1),
        "postgres_cpu_s_per_1000_events": 1000 * pg_cpu / max(events, 1),
        "server_peak_rss_mib": sampler.peak_total / 2**20,
        "server_peak_rss_per_process_mib": sampler.peak_process / 2**20,
    }


def copy_rate(database_url: str, workspace_id: int, rows: int, batch_size: int) -> tuple[float, float]:
    """Rows per second of a raw COPY of the same rows: one bulk COPY, then commits of batch_size."""
    with psycopg.connect(database_url) as conn:
        person_id = conn.execute(
            "SELECT id FROM tracking_person WHERE workspace_id = %s LIMIT 1", [workspace_id]
        ).fetchone()[0]
        now = datetime.now(UTC)
        context = orjson.dumps({"library": {"name": "bench", "version": "1"}}).decode()

        def row(i: int) -> tuple:
            properties = orjson.dumps({"price": i % 100, "sku": f"SKU-{i % 100}", "category": "bench"}).decode()
            return (
                workspace_id,
                person_id,
                "Bench Event",
                properties,
                context,
                now,
                now,
                f"copy-{uuid.uuid4()}",
                None,
                f"user-{i % 5000}",
                None,
                "[]",
            )

        data = [row(i) for i in range(rows)]
        sql = (
            "COPY tracking_event (workspace_id, person_id, name, properties, context, timestamp, received_at, "
            "message_id, anonymous_id, user_id, session_id, warnings) FROM STDIN"
        )
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(sql) as copy:
            for values in data:
                copy.write_row(values)
        bulk = rows / (time.perf_counter() - started)
        data = [row(i) for i in range(rows)]
        started = time.perf_counter()
        for start in range(0, rows, batch_size):
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(sql) as copy:
                for values in data[start : start + batch_size]:
                    copy.write_row(values)
        batched = rows / (time.perf_counter() - started)
        conn.execute("DELETE FROM tracking_event WHERE workspace_id = %s AND message_id LIKE 'copy-%%'", [workspace_id])
        conn.commit()
    return bulk, batched


def write_import_file(path: Path, messages: int, prefix: str) -> None:
    """NDJSON of Segment messages as an export holds them: tracks and pages of 5,000 users."""
    day = datetime.now(UTC).replace(microsecond=0)
    with path.open("wb") as out:
        for i in range(messages):
            at = (day - timedelta(seconds=messages - i)).isoformat().replace("+00:00", "Z")
            if i % 4 == 0:
                message = {
                    "type": "page",
                    "anonymousId": f"anon-{i % 5000}",
                    "userId": f"import-user-{i % 5000}",
                    "messageId": f"{prefix}-{i}",
                    "timestamp": at,
                    "properties": {"path": f"/products/{i % 300}", "url": f"https://shop.example/products/{i % 300}"},
                    "context": {"library": {"name": "analytics.js", "version": "4"}},
                }
            else:
                message = {
                    "type": "track",
                    "userId": f"import-user-{i % 5000}",
                    "event": ("Product Viewed", "Product Added", "Order Completed")[i % 3],
                    "messageId": f"{prefix}-{i}",
                    "timestamp": at,
                    "properties": {"price": i % 500, "sku": f"SKU-{i % 100}", "category": "bench"},
                    "context": {"library": {"name": "analytics-python", "version": "2"}},
                }
            out.write(orjson.dumps(message) + b"\n")


def import_phase(database_url: str, env: dict[str, str], workspace_id: int, messages: int) -> dict[str, float]:
    """``manage.py import_events`` of a generated NDJSON file: the command's own rate, CPU, RSS."""
    with tempfile.TemporaryDirectory() as scratch, psycopg.connect(database_url, autocommit=True) as conn:
        path = Path(scratch) / "export.ndjson"
        write_import_file(path, messages, "imp" + uuid.uuid4().hex[:8])
        database = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        before_events = count_events(conn, workspace_id)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        command = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "import_events",
                str(path),
                "--workspace",
                str(workspace_id),
                "--no-progress",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        sampler = RssSampler(command.pid)
        sampler.start()
        pg_seen: dict[int, float] = {}
        # The command's backend lives as long as the command: its CPU is sampled while it
        # runs (the last 0.1 s of it escape the sampling).
        while command.poll() is None:
            pg_seen.update(backend_cpu(backend_pids(conn, database)))
            time.sleep(0.1)
        wall = time.monotonic() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
        sampler.running = False
        sampler.join()
        output = command.stdout.read() if command.stdout else ""
        if command.returncode != 0:
            raise RuntimeError(f"import_events failed: {output}")
        pg_cpu = sum(pg_seen.values())
        events = count_events(conn, workspace_id) - before_events
    match = re.search(r"\(([\d,]+) messages/s\)", output)
    return {
        "phase": "import_events",
        "messages": messages,
        "events_stored": events,
        "messages_per_s_reported": float(match.group(1).replace(",", "")) if match else 0.0,
        "wall_s_with_startup_and_catalogue": wall,
        "command_cpu_s_per_1000_events": 1000 * own_cpu / max(events, 1),
        "postgres_cpu_s_per_1000_events": 1000 * pg_cpu / max(events, 1),
        "command_peak_rss_mib": sampler.peak_process / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--server",
        choices=("uvicorn", "gunicorn"),
        default="uvicorn",
        help="uvicorn (config.asgi, the tracking API's production server) or gunicorn (config.wsgi, gthread)",
    )
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--threads", type=int, default=32, help="request threads per gunicorn worker (gthread)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--batch-connections",
        default="4,16",
        help="connections of the /v1/batch phase; a comma-separated list runs one phase per value",
    )
    parser.add_argument(
        "--track-connections",
        default="8,16,32,64",
        help="connections of the /v1/track phase; a comma-separated list runs one phase per value",
    )
    parser.add_argument("--copy-rows", type=int, default=100_000)
    parser.add_argument("--import-messages", type=int, default=500_000, help="0: skip the import phase")
    parser.add_argument(
        "--plan",
        choices=tuple(PLANS),
        default="none",
        help="the bench workspace's tracking plan: none; matching (every call checked, none violates); "
        "violating (every call has a property of the wrong type: stored, and counted)",
    )
    options = parser.parse_args()
    if not options.database_url:
        parser.error("set DATABASE_URL or --database-url (a scratch database)")
    database = psycopg.conninfo.conninfo_to_dict(options.database_url)["dbname"]

    env = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:1/0"),
        # The per-write-key check runs (when REDIS_URL is set) but never refuses the bench's load.
        "INGEST_RATE_PER_WRITE_KEY": os.environ.get("INGEST_RATE_PER_WRITE_KEY", "1000000000"),
        "SECRET_KEY": "bench",
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    pg_conn = psycopg.connect(options.database_url, autocommit=True)
    write_key = f"cly_wk_bench{uuid.uuid4().hex}"
    workspace_id = pg_conn.execute(
        "INSERT INTO accounts_workspace (name, write_key, created_at) VALUES ('Bench', %s, now()) RETURNING id",
        [write_key],
    ).fetchone()[0]
    if PLANS[options.plan] is not None:
        pg_conn.execute(
            "INSERT INTO tracking_trackingplan (workspace_id, document, version, updated_at) VALUES (%s, %s, 1, now())",
            [workspace_id, orjson.dumps(PLANS[options.plan]).decode()],
        )

    port = free_port()
    server = subprocess.Popen(
        server_command(options, port),
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        timestamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as scratch:
            lua = Path(scratch) / "bench.lua"
            lua.write_text(BATCH_LUA)

            def batches(connections: int):
                return lambda: run_wrk(
                    url,
                    lua,
                    [auth, str(options.batch_size), "b" + uuid.uuid4().hex[:8], timestamp, "/v1/batch"],
                    threads=2,
                    connections=connections,
                    duration=options.duration,
                )

            def tracks(connections: int):
                return lambda: run_wrk(
                    url,
                    lua,
                    [auth, "1", "t" + uuid.uuid4().hex[:8], timestamp, "/v1/track"],
                    threads=2,
                    connections=connections,
                    duration=options.duration,
                )

            # Warm up: people for the 5,000 users exist before measuring.
            run_wrk(
                url,
                lua,
                [auth, str(options.batch_size), "w" + uuid.uuid4().hex[:8], timestamp, "/v1/batch"],
                threads=1,
                connections=2,
                duration=3,
            )
            # The bench workspace is new: let the planner see it as the established workspace
            # it now is (autovacuum would, within a minute), not as the empty one of old statistics.
            pg_conn.execute("ANALYZE tracking_person, tracking_identity, tracking_processedmessage, tracking_event")
            batches_by_connections = []
            for connections in _numbers(options.batch_connections):
                batch = phase("batch", server.pid, pg_conn, database, workspace_id, batches(connections))
                batches_by_connections.append({"connections": connections, **batch})
            # A client waits for each answer, so N connections make at most N / latency requests/s:
            # 1,500 requests/s at 8 connections would need answers in 5.3 ms, group commit included.
            tracks_by_connections = []
            for connections in _numbers(options.track_connections):
                track = phase("track", server.pid, pg_conn, database, workspace_id, tracks(connections))
                tracks_by_connections.append({"connections": connections, **track})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    bulk, batched = copy_rate(options.database_url, workspace_id, options.copy_rows, options.batch_size)
    imported = (
        import_phase(options.database_url, env, workspace_id, options.import_messages)
        if options.import_messages
        else None
    )
    print(
        f"cpus={psutil.cpu_count()} load_avg={os.getloadavg()} "
        f"server={options.server} workers={options.workers} threads={options.threads} plan={options.plan}"
    )
    for result in (*batches_by_connections, *tracks_by_connections):
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(
        f"raw COPY, one bulk COPY: {bulk:,.0f} rows/s; COPY per {options.batch_size}-row commit: {batched:,.0f} rows/s"
    )
    fastest = max(b["events_per_s"] for b in batches_by_connections)
    print(
        f"ratio ingest (fastest batch phase)/bulk COPY: {fastest / bulk:.2f}; "
        f"ingest/{options.batch_size}-row COPY commits: {fastest / batched:.2f}"
    )
    if imported is not None:
        print(orjson.dumps(imported, option=orjson.OPT_INDENT_2).decode())
        print(f"ratio import/bulk COPY: {imported['messages_per_s_reported'] / bulk:.2f}")
    tracks = "; ".join(
        f"{t['connections']} connections {t['requests_per_s']:,.0f} req/s, p99 {t['p99_ms']} ms"
        for t in tracks_by_connections
    )
    within = [t for t in tracks_by_connections if t["p99_ms"] is not None and t["p99_ms"] <= 50]
    best = f"{max(t['requests_per_s'] for t in within):,.0f} req/s" if within else "none"
    batches = "; ".join(
        f"{b['connections']} connections {b['events_per_s']:,.0f} events/s, p99 {b['p99_ms']} ms"
        for b in batches_by_connections
    )
    print(f"targets: batch (>= 20,000 events/s): {batches}")
    print(f"targets: track (>= 1,500 req/s with p99 <= 50 ms): {tracks}; best with p99 <= 50 ms: {best}")


if __name__ == "__main__":
    main()
