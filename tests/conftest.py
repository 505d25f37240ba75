from __future__ import annotations

import os

import pytest
import redis
from django.conf import settings

from tests import factories

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
