from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo shop and the one-command stack: the top of the app layers, importing any app below."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"
