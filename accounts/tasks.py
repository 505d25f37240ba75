"""The Celery base task of tenancy.

Every task that touches a workspace's data uses ``base=WorkspaceTask`` and
takes ``workspace_id`` as its first argument; it runs inside that workspace's
scope, which is reset when it returns or raises::

    @shared_task(base=WorkspaceTask)
    def segment_refresh_task(workspace_id: int, segment_id: int) -> None: ...

Enqueue with ``transaction.on_commit(lambda: task.delay(workspace.pk, ...))``.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from accounts.tenancy import workspace_scope


class WorkspaceTask(Task):
    abstract = True

    def __call__(self, workspace_id: int, *args: Any, **kwargs: Any) -> Any:
        with workspace_scope(int(workspace_id)):
            return super().__call__(workspace_id, *args, **kwargs)
