"""Segment and webhook names in their normal form (core.names), unique in a workspace by case.

Names saved before were kept as typed: "Big spenders" and "Big  spenders" could both exist.
They are normalised here; where two segments (or two named webhooks) of a workspace now have
the same name, the older keeps it and the newer gets " (2)", " (3)"...
"""

from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Lower

from core.names import names_made_unique


def normalise_names(apps, schema_editor):
    Segment = apps.get_model("segmentation", "Segment")
    WebhookSubscription = apps.get_model("segmentation", "WebhookSubscription")
    for workspace_id in Segment.objects.order_by().values_list("workspace_id", flat=True).distinct():
        segments = Segment.objects.filter(workspace_id=workspace_id).order_by("created_at", "pk")
        renames = names_made_unique(segments.values_list("pk", "name"), max_length=200, fallback="Untitled segment")
        for pk, name in renames.items():
            Segment.objects.filter(pk=pk).update(name=name)
    named = WebhookSubscription.objects.exclude(description="")
    for workspace_id in named.order_by().values_list("workspace_id", flat=True).distinct():
        webhooks = named.filter(workspace_id=workspace_id).order_by("created_at", "pk")
        renames = names_made_unique(webhooks.values_list("pk", "description"), max_length=200, fallback="Webhook")
        for pk, description in renames.items():
            WebhookSubscription.objects.filter(pk=pk).update(description=description)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("segmentation", "0008_segment_tags"),
    ]

    operations = [
        # The exact-name constraint goes first: normalising one name may meet another's exact form.
        migrations.RemoveConstraint(
            model_name="segment",
            name="segment_name_unique",
        ),
        migrations.RunPython(normalise_names, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="segment",
            constraint=models.UniqueConstraint(F("workspace"), Lower("name"), name="segment_name_ci_unique"),
        ),
        migrations.AddConstraint(
            model_name="webhooksubscription",
            constraint=models.UniqueConstraint(
                F("workspace"),
                Lower("description"),
                condition=models.Q(("description", ""), _negated=True),
                name="webhook_description_ci_unique",
            ),
        ),
    ]
