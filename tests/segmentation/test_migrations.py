"""Data migrations of segmentation, run on rows saved under the old rules."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("accounts", "0001_initial"), ("segmentation", "0008_segment_tags")]
AFTER = [("segmentation", "0009_normal_names_unique_by_case")]


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
def test_names_are_normalised_and_look_alikes_numbered_the_oldest_keeping_the_name():
    # Given segments and webhooks saved before names had a normal form
    apps = _migrate(BEFORE)
    Workspace = apps.get_model("accounts", "Workspace")
    Segment = apps.get_model("segmentation", "Segment")
    Webhook = apps.get_model("segmentation", "WebhookSubscription")
    shop, other = Workspace.objects.create(name="Shop"), Workspace.objects.create(name="Other")
    names = ["Big  spenders", "Big spenders", "big spenders\u200b", "\u202eVIP", "\u200b", "Lapsed"]
    segments = [Segment.objects.create(workspace=shop, name=name, definition={"type": "and"}) for name in names]
    theirs = Segment.objects.create(workspace=other, name="BIG SPENDERS", definition={"type": "and"})

    def webhook(workspace, description):
        return Webhook.objects.create(
            workspace=workspace, url="https://example.com/", description=description, secret_salt="s", secret_hint="h"
        ).pk

    hooks = [webhook(shop, d) for d in ("CRM", "crm ", "", "", "Slack")] + [webhook(other, "CRM")]

    # When the migration runs
    apps = _migrate(AFTER)
    Segment = apps.get_model("segmentation", "Segment")
    Webhook = apps.get_model("segmentation", "WebhookSubscription")

    # Then every name is in its normal form and unique in its workspace, regardless of case
    assert [Segment.objects.get(pk=s.pk).name for s in segments] == [
        "Big spenders",
        "Big spenders (2)",
        "big spenders (3)",
        "VIP",
        "Untitled segment",
        "Lapsed",
    ]
    assert Segment.objects.get(pk=theirs.pk).name == "BIG SPENDERS"
    assert [Webhook.objects.get(pk=pk).description for pk in hooks] == ["CRM", "crm (2)", "", "", "Slack", "CRM"]

    # And the table refuses the same name in another case
    with pytest.raises(Exception, match="segment_name_ci_unique"):
        Segment.objects.create(workspace_id=shop.pk, name="LAPSED", definition={"type": "and"})
