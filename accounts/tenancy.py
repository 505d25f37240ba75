"""Fail-closed tenancy: a workspace scope and the manager that enforces it.

A tenant-owned model's default manager refuses to build a query unless a
workspace scope is active, and then filters on that workspace. The scope is
opened only at entry points (web middleware, API authentication, ingestion by
write key, Celery tasks) with ``workspace_scope``, which always resets it.
Crossing workspaces takes ``Model.objects.unscoped()`` and a comment saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

from django.db import models

if TYPE_CHECKING:
    from accounts.models import Workspace

_current_workspace_id: ContextVar[int | None] = ContextVar("current_workspace_id", default=None)

_M = TypeVar("_M", bound=models.Model)


class NoWorkspaceScope(RuntimeError):
    """A tenant-owned model was queried with no workspace scope active."""


@contextmanager
def workspace_scope(workspace: Workspace | int) -> Iterator[None]:
    """Run the block with ``workspace`` as the active scope; always resets after."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    if workspace_id is None:
        raise ValueError("cannot scope to an unsaved workspace")
    token = _current_workspace_id.set(workspace_id)
    try:
        yield
    finally:
        _current_workspace_id.reset(token)


def current_workspace_id() -> int | None:
    return _current_workspace_id.get()


class TenantManager(models.Manager[_M]):
    """Default manager of tenant-owned models: scoped, or it raises."""

    def get_queryset(self) -> models.QuerySet[_M]:
        workspace_id = _current_workspace_id.get()
        if workspace_id is None:
            raise NoWorkspaceScope(
                f"{self.model.__name__} is tenant-owned: open workspace_scope() at the entry point "
                "or use .unscoped() with a comment saying why"
            )
        return super().get_queryset().filter(workspace_id=workspace_id)

    def unscoped(self) -> models.QuerySet[_M]:
        """Every workspace's rows. Callers say in a comment why they cross workspaces."""
        return super().get_queryset()


def hot_workspace_key(*, db_constraint: bool = True) -> models.ForeignKey:
    """The tenancy key of a table written row by row on a hot path, without an index of its own.

    Such tables have unique constraints or composite indexes leading with
    ``workspace_id`` that serve every query by workspace (and the cascade of a
    workspace's deletion). A single-column index would be one more write per row
    and, on a workspace newer than the table's statistics, a plan the optimizer
    prefers over the composite ones. ``db_constraint=False`` also drops the
    database's check, one lookup per inserted row at commit; Django's cascade
    still deletes the rows with their workspace.
    """
    return models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=db_constraint
    )


class TenantModel(models.Model):
    """Base of every tenant-owned table: ``workspace_id`` on the row itself.

    Subclasses on a hot write path replace ``workspace`` with ``hot_workspace_key()``.
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True
