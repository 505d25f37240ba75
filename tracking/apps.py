from django.apps import AppConfig
from django.conf import settings

from tracking import events, people_extensions


class TrackingConfig(AppConfig):
    name = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The apps above tracking hear about people through its port; the settings name them, tracking does not.
        events.subscribers_load(settings.TRACKING_SUBSCRIBERS)
        # What they add to the people list, a person's REST answer and page; named the same way.
        people_extensions.extensions_load(settings.TRACKING_PEOPLE_EXTENSIONS)
