"""accounts.tasks.WorkspaceTask: a task runs inside its workspace's scope, which is always reset."""

from __future__ import annotations

import pytest
from celery import shared_task

from accounts.models import ApiKey
from accounts.tasks import WorkspaceTask
from accounts.tenancy import NoWorkspaceScope, current_workspace_id
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
