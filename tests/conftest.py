from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from playwright.sync_api import Browser, sync_playwright

from tests import factories
from tests.accounts.support import smtp_sink

# Playwright's sync API keeps an event loop on the test thread; the ORM calls
# the tests make around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give each test process its own cache namespace in the shared Redis."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-{worker}-{os.getpid()}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with none of this process's cache keys (login counters...)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*"):
        client.delete(key)
    return


class _Settling:
    """The live server's WSGI application, counting the requests it is serving: a request counts
    from the call until the server closes its answer (its writes are committed by then)."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.busy = 0
        self.settled = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.settled:
            self.busy += 1
        try:
            answer = self.application(environ, start_response)
        except BaseException:
            self._done()
            raise
        return _Answer(answer, self._done)

    def _done(self) -> None:
        with self.settled:
            self.busy -= 1
            self.settled.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.settled:
            return self.settled.wait_for(lambda: self.busy == 0, timeout)


class _Answer:
    """An answer that reports its closing (the WSGI server closes every answer it sends)."""

    def __init__(self, answer: Any, done: Any) -> None:
        self.answer = answer
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.answer)

    def close(self) -> None:
        try:
            if hasattr(self.answer, "close"):
                self.answer.close()
        finally:
            self.done()


@pytest.fixture(autouse=True)
def _live_server_settles(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test with the live server ends once the server has answered what the test's browser sent.

    A request still being served when the test's database is emptied (a beacon sent with
    ``keepalive``, say, which nothing in the page waits for) would write during the ``TRUNCATE``:
    a deadlock, or rows left for the next test. So the browser's contexts are closed, and the
    requests in progress are waited for, before the database is emptied.
    """
    if "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")  # set up before this fixture, so emptied after it
    server = request.getfixturevalue("live_server").thread.httpd
    settling = _Settling(server.get_app())
    monkeypatch.setattr(server, "application", settling)
    yield
    if "browser" in request.fixturenames:
        for context in request.getfixturevalue("browser").contexts:
            context.close()
    assert settling.wait(timeout=30), "the live server was still serving 30 s after the test"


@pytest.fixture
def workspace(db):
    return factories.WorkspaceFactory()


@pytest.fixture
def owner(workspace):
    return factories.member(workspace, role="owner")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hashing strength is Django's concern, not these tests'; keep each sign-up cheap."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def smtp(settings):
    """An SMTP sink started for the test, with Django's mail settings pointing at it."""
    with smtp_sink() as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        yield sink


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium through Playwright (never a downloaded browser)."""
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        yield browser
        browser.close()
