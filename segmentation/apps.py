from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Tracking's ports: what this app stores about a person, in their export and their erasure.
        from segmentation import person_data
        from tracking.exports import export_section_register
        from tracking.people_services import erasure_handler_register

        export_section_register("memberships", person_data.memberships_section)
        export_section_register("messages", person_data.messages_section)
        erasure_handler_register("webhook_deliveries", person_data.webhook_deliveries_erase)
        # Registers the tasks that segmentation.queueing sends by name, in every process.
        from segmentation import tasks  # noqa: F401
