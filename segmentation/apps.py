from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tasks that segmentation.queueing sends by name, in every process.
        from segmentation import tasks  # noqa: F401
