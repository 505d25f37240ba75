from django.apps import AppConfig


class CatalogueConfig(AppConfig):
    """Its own app (label ``catalogue``) so that its migrations never collide with the segment engine's."""

    name = "segmentation.catalogue"
    label = "catalogue"
    default_auto_field = "django.db.models.BigAutoField"
