from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Tracking's port: what this app stores about a person, in their erasure.
        from segmentation import person_data
        from tracking.people_services import erasure_handler_register

        erasure_handler_register("webhook_deliveries", person_data.webhook_deliveries_erase)
