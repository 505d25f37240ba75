from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """Funnels, retention, computed traits and suggested segments: reads segmentation and tracking."""

    name = "insights"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tasks that insights queues by name (jobs, catalogue recounts), in every process.
        from insights import tasks  # noqa: F401
