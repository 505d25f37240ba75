"""The production servers as subprocesses on a free loopback port, for tests that need real HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVERS = {
    "gunicorn": lambda port: [
        str(BIN / "gunicorn"),
        "config.wsgi:application",
        *("-b", f"127.0.0.1:{port}", "-w", "2", "--worker-class", "gthread", "--threads", "32", "--timeout", "30"),
    ],
    "uvicorn": lambda port: [
        str(BIN / "uvicorn"),
        "config.asgi:application",
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--http", "httptools", "--loop", "uvloop"),
    ],
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A production server (``SERVERS``), in its own process group so that a crash takes all of it."""

    def __init__(self, kind: str, database_url: str, log: Path) -> None:
        self.kind = kind
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
            "SECRET_KEY": "durability-test",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                SERVERS[self.kind](self.port),
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start; see {self.log}")

    def crash(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
