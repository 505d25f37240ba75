"""Workspace and API key names in their normal form (core.names); active keys' names unique by case.

Names saved before were kept as typed: they are normalised here. Where two active keys of a
workspace now have the same name, the older keeps it and the newer gets " (2)", " (3)"...
"""

from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Lower

from core.names import names_made_unique


def normalise_names(apps, schema_editor):
    Workspace = apps.get_model("accounts", "Workspace")
    ApiKey = apps.get_model("accounts", "ApiKey")
    workspaces = Workspace.objects.order_by("pk").values_list("pk", "name")
    for pk, name in names_made_unique(workspaces, max_length=100, fallback="Workspace", unique=False).items():
        Workspace.objects.filter(pk=pk).update(name=name)
    for workspace_id in ApiKey.objects.order_by().values_list("workspace_id", flat=True).distinct():
        keys = ApiKey.objects.filter(workspace_id=workspace_id)
        renames = names_made_unique(
            keys.filter(revoked_at__isnull=True).order_by("created_at", "pk").values_list("pk", "name"),
            max_length=100,
            fallback="API key",
        )
        renames.update(
            names_made_unique(
                keys.filter(revoked_at__isnull=False).order_by("pk").values_list("pk", "name"),
                max_length=100,
                fallback="API key",
                unique=False,
            )
        )
        for pk, name in renames.items():
            ApiKey.objects.filter(pk=pk).update(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(normalise_names, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="apikey",
            constraint=models.UniqueConstraint(
                F("workspace"),
                Lower("name"),
                condition=models.Q(("revoked_at__isnull", True)),
                name="api_key_active_name_ci_unique",
            ),
        ),
    ]
