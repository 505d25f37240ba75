"""Data migrations of accounts, run on rows saved under the old rules."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("accounts", "0001_initial")]
AFTER = [("accounts", "0002_normal_names_and_unique_active_key_names")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def _latest_schema_after():
    """Back to every app's latest migration, whatever the test stopped at: the next tests need it."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_key_and_workspace_names_are_normalised_and_active_look_alikes_numbered():
    # Given keys and a workspace saved before names had a normal form
    apps = _migrate(BEFORE)
    Workspace = apps.get_model("accounts", "Workspace")
    ApiKey = apps.get_model("accounts", "ApiKey")
    shop = Workspace.objects.create(name="  Acme\u202e  Shop ")
    twin = Workspace.objects.create(name="ACME SHOP")

    def key(name, n, revoked=False):
        return ApiKey.objects.create(
            workspace=shop,
            name=name,
            display_prefix=f"p{n}",
            key_hash=f"h{n}",
            revoked_at=timezone.now() if revoked else None,
        ).pk

    keys = [key("CI", 1), key("ci ", 2), key("CI", 3, revoked=True), key("c\u200bi", 4, revoked=True), key("Sync", 5)]

    # When the migration runs
    apps = _migrate(AFTER)
    Workspace = apps.get_model("accounts", "Workspace")
    ApiKey = apps.get_model("accounts", "ApiKey")

    # Then names are in their normal form; active keys' names are unique by case, revoked ones keep theirs
    assert Workspace.objects.get(pk=shop.pk).name == "Acme Shop"
    assert Workspace.objects.get(pk=twin.pk).name == "ACME SHOP"  # workspace names need not be unique
    assert [ApiKey.objects.get(pk=pk).name for pk in keys] == ["CI", "ci (2)", "CI", "ci", "Sync"]
    with pytest.raises(IntegrityError, match="api_key_active_name_ci_unique"):
        ApiKey.objects.create(workspace_id=shop.pk, name="SYNC", display_prefix="p6", key_hash="h6")
