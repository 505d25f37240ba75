from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0004_triggers_listening_since"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaignsettings",
            name="members_can_launch",
            field=models.BooleanField(default=False),
        ),
    ]
