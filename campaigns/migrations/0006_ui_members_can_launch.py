from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0005_onsite_messages"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaignsettings",
            name="members_can_launch",
            field=models.BooleanField(default=False),
        ),
    ]
