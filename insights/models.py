"""Tables of insights: the settings and state of computed traits, and long computations with their progress.

Clustering keeps its own tables (``insights/clustering*.py``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.tenancy import TenantModel

DEFAULT_RFM_EVENT = "Order Completed"
DEFAULT_RFM_REVENUE_PROPERTY = "revenue"
DEFAULT_HALF_LIFE_DAYS = 14.0
DEFAULT_EVENT_WEIGHT = 1.0


class RunStatus(models.TextChoices):
    IDLE = "idle", "Idle"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ComputedTraitSettings(TenantModel):
    """One row per workspace: how its computed traits are computed, and how the last computation went.

    Made with the defaults the first time anything reads it (``traits.settings_for``). The run
    columns are written by the recompute itself (``insights.traits.computed_traits_refresh``):
    ``status`` is ``running`` while one runs, with its ``stage`` and ``progress``.
    """

    rfm_event = models.CharField(max_length=200, default=DEFAULT_RFM_EVENT)
    rfm_revenue_property = models.CharField(max_length=300, default=DEFAULT_RFM_REVENUE_PROPERTY)
    # {event name: weight}; events not listed weigh ``engagement_default_weight`` (0 leaves them out).
    engagement_weights = models.JSONField(default=dict, blank=True)
    engagement_default_weight = models.FloatField(default=DEFAULT_EVENT_WEIGHT)
    engagement_half_life_days = models.FloatField(default=DEFAULT_HALF_LIFE_DAYS)
    # When someone last changed the settings above: a run started before is out of date.
    settings_changed_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.IDLE)
    stage = models.CharField(max_length=200, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True, help_text="When the last successful run started.")
    # The highest event id seen by the last successful run: newer events make the workspace due.
    last_event_id = models.BigIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True, help_text="How long the last successful run took.")
    people_changed = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="computed_trait_settings_unique")]
        verbose_name_plural = "computed trait settings"

    def __str__(self) -> str:
        return f"computed traits of workspace {self.workspace_id}"


class InsightKind(models.TextChoices):
    FUNNEL = "funnel", "Funnel"
    RETENTION = "retention", "Retention"


class InsightJob(TenantModel):
    """A funnel or retention table computed by a Celery task for the pages, with its progress.

    ``params`` is the request as the REST API takes it (already validated); ``result`` the
    answer as the REST API gives it. A job is computed once: a task delivered twice finds it
    done and does nothing.
    """

    kind = models.CharField(max_length=12, choices=InsightKind.choices)
    params = models.JSONField()
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.QUEUED)
    stage = models.CharField(max_length=200, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "kind", "-created_at"], name="insight_job_recent_idx")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"
