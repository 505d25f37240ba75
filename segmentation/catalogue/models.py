"""Tables of the catalogue; rows are summaries, rebuilt or merged by ``catalogue_update``."""

from __future__ import annotations

from django.db import models

from accounts.tenancy import TenantModel

# Common values kept per key; the builder shows the first few that match what is typed.
TOP_VALUES_KEPT = 50


class PropertySource(models.TextChoices):
    EVENT = "event", "Event property"
    TRAIT = "trait", "Trait"


class CatalogueEvent(TenantModel):
    """An event name seen in the workspace, with how often and when last."""

    name = models.CharField(max_length=200)
    count = models.BigIntegerField(default=0)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="catalogue_event_unique")]

    def __str__(self) -> str:
        return self.name


class CatalogueProperty(TenantModel):
    """A property key of one event name (or a trait key, ``event=""``), its JSON types and top values.

    ``values`` is ``[[text, count], ...]`` most frequent first, at most
    ``TOP_VALUES_KEPT``: scalar values only (strings, numbers, booleans as
    their string form), at most 200 characters. Event property counts are
    merged run after run, so the top list is an approximation (a value that
    once fell out of it restarts from its new count); trait values are
    recounted exactly from the people table.
    """

    source = models.CharField(max_length=8, choices=PropertySource.choices)
    event = models.CharField(max_length=200, blank=True)
    key = models.CharField(max_length=300)
    count = models.BigIntegerField(default=0)
    types = models.JSONField(default=dict, blank=True, help_text="JSON type -> how many values had it")
    values = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "source", "event", "key"], name="catalogue_property_unique")
        ]

    def __str__(self) -> str:
        return f"{self.event}.{self.key}" if self.event else self.key


class CatalogueWatermark(TenantModel):
    """How far ``catalogue_update`` has read: events up to ``last_event_id``, traits as of ``traits_at``."""

    last_event_id = models.BigIntegerField(default=0)
    traits_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="catalogue_watermark_unique")]
