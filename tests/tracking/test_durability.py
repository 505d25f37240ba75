"""A 2xx means durable: the server as in production (gunicorn, and uvicorn for the
tracking API), crashed and restarted under traffic from the real SDK, and PostgreSQL
restarted likewise. Every message the server acknowledged is stored exactly once.

Redis is pointed at a closed port for the server: ingestion must not need it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from django.db import connection
from segment.analytics import Client

from core.dburl import database_url
from tests import factories
from tests.tracking.live_servers import REPO, SERVERS, Server

MESSAGES = 600
DRAIN_SECONDS = 90


def _send_through_sdk(write_key: str, host: str, disrupt) -> list[Exception]:
    """Send MESSAGES tracks with the SDK's own batching and retries while ``disrupt`` runs.

    Returns the SDK's errors (batches it gave up on) and any error of ``disrupt``;
    fails if the SDK has not delivered everything within DRAIN_SECONDS.
    """
    errors: list[Exception] = []
    analytics = Client(
        write_key,
        host=host,
        max_retries=30,
        upload_size=50,
        upload_interval=0.05,
        timeout=5,
        on_error=lambda error, batch: errors.append(error),
    )

    def guarded():
        try:
            disrupt()
        except Exception as error:
            errors.append(error)

    disruptor = threading.Thread(target=guarded)
    disruptor.start()
    for number in range(MESSAGES):
        analytics.track(user_id=f"user-{number % 37}", event="Durable", message_id=f"durable-{number}")
        time.sleep(0.004)
    disruptor.join()
    deadline = time.monotonic() + DRAIN_SECONDS
    while analytics.queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.1)
    assert analytics.queue.unfinished_tasks == 0, f"SDK still holds messages after {DRAIN_SECONDS}s: {errors}"
    return errors


def _stored_message_ids(cursor, workspace_id: int) -> list[str]:
    cursor.execute(
        "SELECT message_id FROM tracking_event WHERE workspace_id = %s AND name = 'Durable' ORDER BY message_id",
        [workspace_id],
    )
    return [row[0] for row in cursor.fetchall()]


def _server_errors(log: str) -> list[str]:
    """Lines of the server's log that report an unexpected error (a 500, or an exception past the app)."""
    marks = ("Internal Server Error", "Exception in ASGI application")
    return [line for line in log.splitlines() if any(mark in line for mark in marks)]


@pytest.fixture
def private_dir():
    """A directory of our own: pytest's tmp_path of a long test can be rotated away
    by other pytest runs of the same user on this machine."""
    with tempfile.TemporaryDirectory(prefix="cohortly-durability-") as directory:
        yield Path(directory)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_every_acknowledged_message_survives_server_crashes(private_dir, kind):
    workspace = factories.WorkspaceFactory()
    server = Server(kind, database_url(connection.settings_dict), private_dir / f"{kind}.log")
    server.start()

    def crash_twice():
        for _ in range(2):
            time.sleep(0.8)
            server.crash()
            time.sleep(0.3)
            server.start()

    try:
        errors = _send_through_sdk(workspace.write_key, server.url, crash_twice)
    finally:
        server.stop()

    assert errors == []
    assert not _server_errors(server.log.read_text())
    with connection.cursor() as cursor:
        stored = _stored_message_ids(cursor, workspace.pk)
    assert stored == sorted(f"durable-{n}" for n in range(MESSAGES))


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_every_acknowledged_message_survives_a_postgresql_restart(private_dir, kind):
    """On a private PostgreSQL (pgserver), never the shared one other processes use."""
    import pgserver
    from pgserver import pg_ctl

    pg = pgserver.get_server(private_dir / "pg", cleanup_mode="delete")
    try:
        _durability_across_postgres_restart(pg, pg_ctl, private_dir, kind)
    finally:
        # The server running now is the one the test restarted, which pgserver's cleanup does
        # not know: stop it here, or it outlives the test with its data directory deleted.
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg.pgdata, user=pg.system_user)
        pg.cleanup()


def _durability_across_postgres_restart(pg, pg_ctl, private_dir, kind):
    pg.psql("CREATE DATABASE durability;")
    database_url = pg.get_uri("durability")
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "durability-test"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        workspace_id, write_key = conn.execute(
            "INSERT INTO accounts_workspace (name, write_key, created_at) "
            "VALUES ('Durable', 'cly_wk_durability', now()) RETURNING id, write_key"
        ).fetchone()
    server = Server(kind, database_url, private_dir / f"{kind}.log")
    server.start()

    socket_dir = parse_qs(urlsplit(database_url).query)["host"][0]

    def restart_postgres():
        time.sleep(0.8)
        # "immediate": no clean shutdown, PostgreSQL recovers from its WAL. Down for a second.
        pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=pg.pgdata, user=pg.system_user)
        time.sleep(1)
        start = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pg.log), "start"]
        for attempt in range(20):
            try:
                pg_ctl(start, pgdata=pg.pgdata, user=pg.system_user, timeout=30)
                return
            except subprocess.CalledProcessError:
                # The killed server's processes may still hold its shared memory for a moment.
                if attempt == 19:
                    raise
                time.sleep(0.5)

    try:
        errors = _send_through_sdk(write_key, server.url, restart_postgres)
    finally:
        server.stop()

    assert errors == []
    # Requests that met the restart were answered 503 (retry), never 500.
    assert not _server_errors(server.log.read_text())
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        stored = _stored_message_ids(cursor, workspace_id)
    assert stored == sorted(f"durable-{n}" for n in range(MESSAGES))
