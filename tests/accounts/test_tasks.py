"""accounts.tasks.WorkspaceTask: a task runs inside its workspace's scope, which is always reset."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
import redis
from celery import shared_task
from django.conf import settings
from django.db import connection

from accounts import services
from accounts.models import ApiKey, AuditLogEntry, Workspace
from accounts.tasks import WorkspaceTask
from accounts.tenancy import NoWorkspaceScope, current_workspace_id
from config.celery import app
from core.dburl import database_url
from tests import factories

seen: list[tuple[int | None, list[str]]] = []


@shared_task(base=WorkspaceTask)
def key_names(workspace_id: int, suffix: str = "") -> list[str]:
    names = [name + suffix for name in ApiKey.objects.order_by("name").values_list("name", flat=True)]
    seen.append((current_workspace_id(), names))
    return names


@shared_task(base=WorkspaceTask)
def key_names_then_fail(workspace_id: int) -> None:
    seen.append((current_workspace_id(), list(ApiKey.objects.order_by("name").values_list("name", flat=True))))
    raise RuntimeError("the task failed")


@shared_task
def unscoped_task() -> int:
    return ApiKey.objects.count()


@pytest.fixture
def two_workspaces(db):
    mine, theirs = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    factories.api_key(mine, name="mine-b")
    factories.api_key(mine, name="mine-a")
    factories.api_key(theirs, name="theirs")
    seen.clear()
    return mine, theirs


def test_task_sees_only_its_workspace_and_the_scope_is_reset(two_workspaces):
    mine, theirs = two_workspaces

    result = key_names.apply(args=(mine.pk,), kwargs={"suffix": "!"})

    assert result.successful()
    assert result.get() == ["mine-a!", "mine-b!"]
    assert seen == [(mine.pk, ["mine-a!", "mine-b!"])]
    assert current_workspace_id() is None
    assert key_names.apply(args=(str(theirs.pk),)).get() == ["theirs"]
    assert current_workspace_id() is None


def test_scope_is_reset_when_the_task_raises(two_workspaces):
    mine, _ = two_workspaces

    result = key_names_then_fail.apply(args=(mine.pk,))

    assert result.failed()
    assert isinstance(result.result, RuntimeError)
    assert seen == [(mine.pk, ["mine-a", "mine-b"])]
    assert current_workspace_id() is None


def test_a_task_without_workspace_task_cannot_touch_tenant_rows(two_workspaces):
    result = unscoped_task.apply()

    assert result.failed()
    assert isinstance(result.result, NoWorkspaceScope)


# --- In a real worker ------------------------------------------------------------------------
# The worker imports this module (``celery worker -I tests.accounts.test_tasks``) to find these.


@shared_task(base=WorkspaceTask)
def audit_key_names(workspace_id: int, marker: str) -> None:
    """Writes what the task saw as an audit entry, so the test can read it from the database."""
    names = list(ApiKey.objects.order_by("name").values_list("name", flat=True))
    workspace = Workspace.objects.get(pk=workspace_id)
    services.audit_record(workspace=workspace, actor=None, action="test.worker", target=marker, details={"keys": names})


@shared_task(base=WorkspaceTask)
def fail_in_scope(workspace_id: int) -> None:
    raise RuntimeError("the task failed")


@shared_task
def note_scope(workspace_id: int) -> None:
    """Not a WorkspaceTask: records the scope left over by earlier tasks on the global workspace row."""
    Workspace.objects.filter(pk=workspace_id).update(name=f"scope after: {current_workspace_id()}")


def _wait(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("the worker did not do its job in time")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workspace_task_in_a_real_celery_worker(tmp_path):
    # Given two workspaces with keys, committed where the worker can see them
    mine, theirs = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    factories.api_key(mine, name="mine")
    factories.api_key(theirs, name="theirs")
    queue = f"test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        # The worker must use this test database.
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queue,
         "-I", __name__, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # When tasks are sent through Redis to the worker
        app.send_task(audit_key_names.name, args=(mine.pk, "first"), queue=queue)
        app.send_task(fail_in_scope.name, args=(theirs.pk,), queue=queue)
        app.send_task(note_scope.name, args=(mine.pk,), queue=queue)

        # Then the task saw only its workspace's keys
        entry = _wait(lambda: AuditLogEntry.objects.unscoped().filter(action="test.worker").first())
        assert (entry.workspace_id, entry.target, entry.details) == (mine.pk, "first", {"keys": ["mine"]})
        # and no scope was left over, not even after a task that raised
        _wait(lambda: Workspace.objects.filter(pk=mine.pk, name__startswith="scope after").exists())
        assert Workspace.objects.get(pk=mine.pk).name == "scope after: None"
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        redis.Redis.from_url(settings.REDIS_URL).delete(queue)
