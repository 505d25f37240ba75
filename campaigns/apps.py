from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # django-anymail hands its ESPs' tracking webhooks (bounces, complaints) over by its own
        # signal: receiving it is the library's documented way (this codebase sends no signals).
        from anymail.signals import tracking

        from campaigns import engagement

        tracking.connect(engagement.esp_tracking_received, dispatch_uid="campaigns.esp_tracking")
