from __future__ import annotations

import os
from collections.abc import Iterator

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
