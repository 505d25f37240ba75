from __future__ import annotations

import pytest
from django.apps import apps

from accounts.models import ApiKey, Membership
from accounts.tenancy import NoWorkspaceScope, TenantModel, current_workspace_id, workspace_scope
from tests import factories

PRODUCT_APPS = ("accounts", "tracking", "segmentation", "campaigns")

# Tables that are global by nature. Anything else must be tenant-owned.
GLOBAL_MODELS = {
    "accounts.Workspace": "the tenant itself",
    "accounts.User": "one login across workspaces; access goes through Membership",
}


def test_every_model_is_tenant_owned_or_explicitly_global():
    unaccounted = []
    for app_label in PRODUCT_APPS:
        for model in apps.get_app_config(app_label).get_models():
            label = f"{model._meta.app_label}.{model.__name__}"
            if label in GLOBAL_MODELS:
                continue
            if not issubclass(model, TenantModel):
                unaccounted.append(f"{label}: not a TenantModel")
                continue
            field = model._meta.get_field("workspace")
            if field.column != "workspace_id" or field.null:
                unaccounted.append(f"{label}: workspace_id must be a non-null column on the row")
            for constraint in model._meta.constraints:
                fields = getattr(constraint, "fields", ())
                if fields and "workspace" not in fields:
                    unaccounted.append(f"{label}: unique constraint {constraint.name} lacks workspace")
    assert unaccounted == []


def test_tenant_manager_refuses_to_query_without_scope(workspace):
    with pytest.raises(NoWorkspaceScope):
        list(Membership.objects.all())
    with pytest.raises(NoWorkspaceScope):
        ApiKey.objects.filter(name="x").exists()


def test_scope_filters_to_its_workspace_and_always_resets(workspace):
    other = factories.WorkspaceFactory()
    factories.api_key(workspace, name="mine")
    factories.api_key(other, name="theirs")

    with workspace_scope(workspace):
        assert [k.name for k in ApiKey.objects.all()] == ["mine"]
    assert current_workspace_id() is None

    def fail_inside_scope():
        with workspace_scope(other):
            assert [k.name for k in ApiKey.objects.all()] == ["theirs"]
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside_scope()
    assert current_workspace_id() is None


def test_unscoped_is_the_spelled_out_escape(workspace):
    other = factories.WorkspaceFactory()
    factories.api_key(workspace)
    factories.api_key(other)
    assert ApiKey.objects.unscoped().count() == 2
