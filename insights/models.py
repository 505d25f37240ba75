"""Tables of insights.

Computed traits: ``ComputedTraitSettings`` (the RFM event and revenue property, the engagement
weights and half-life) and ``InsightJob`` (long computations with their progress).

Suggested segments (``insights.clustering*``): a ``ClusteringRun`` holds one
clustering of the workspace's people (what was tried, what was chosen, each
cluster's description and rule), and ``ClusterMember`` the cluster of each
person of its sample, from which a static segment is made. Person ids carry no
foreign key (no ORM cascade across apps): merges and erasures are handled by
``insights.clustering_people``.

Predictive propensity (``insights.propensity*``): a ``PropensityRun`` holds one training and
validation of a purchase or churn model, its holdout figures, and whether its score was written
as a computed trait; the scores themselves live on the people (``$purchase_propensity``, ...).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.tenancy import TenantModel, hot_workspace_key

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


class ClusteringStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (ClusteringStatus.QUEUED, ClusteringStatus.RUNNING)


class InsightRun(TenantModel):
    """A long computation of the workspace kept on its row (``insights.runs``): its state, its task's
    progress, and the instant it computed as of (``computed_at``: clustering's features, propensity's
    windows' end)."""

    status = models.CharField(max_length=8, choices=ClusteringStatus.choices, default=ClusteringStatus.QUEUED)
    requested_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Moved by the task as it goes: the page's progress bar and its line of text.
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    seed = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class ClusteringRun(InsightRun):
    """One clustering of the workspace's people; its results are written once, when it is done.

    ``silhouette`` is ``[{"k", "score"}]`` for every k tried; ``features`` describes the
    columns (``[{"key", "label", ...}]``); ``clusters`` is ``[{"index", "size", "share",
    "identified", "centroid", "z", "description", "rule"}]``, ``rule`` being
    ``{"definition", "precision", "recall", "matched"}`` or null (docs/insights.md).
    """

    population = models.PositiveIntegerField(null=True, blank=True, help_text="people with at least one event")
    sample_size = models.PositiveIntegerField(null=True, blank=True)
    k = models.PositiveSmallIntegerField(null=True, blank=True)
    silhouette = models.JSONField(default=list, blank=True)
    stability_ari = models.FloatField(null=True, blank=True)
    features = models.JSONField(default=list, blank=True)
    clusters = models.JSONField(default=list, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="how long the run took")

    class Meta:
        constraints = [
            # One run at a time per workspace: a second request joins the one under way.
            models.UniqueConstraint(
                fields=["workspace"],
                condition=models.Q(status__in=["queued", "running"]),
                name="clustering_one_active_run",
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="clustering_progress_percent"),
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="clustering_run_recent_idx")]

    def __str__(self) -> str:
        return f"clustering #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class ClusterMember(TenantModel):
    """The cluster of one person of a run's sample (written once, with the run's results)."""

    workspace = hot_workspace_key(db_constraint=False)
    # Indexed by (run, cluster) below.
    run = models.ForeignKey(
        ClusteringRun, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    person_id = models.BigIntegerField()
    cluster = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "run", "person_id"], name="cluster_member_unique"),
        ]
        indexes = [
            models.Index(fields=["run", "cluster"], name="cluster_member_cluster_idx"),
            models.Index(fields=["workspace", "person_id"], name="cluster_member_person_idx"),
        ]


class PropensityTarget(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    CHURN = "churn", "Churn"


class PropensityVerdict(models.TextChoices):
    SCORED = "scored", "Scored"  # the holdout AUC reached the floor: the trait was written
    WEAK = "weak", "Too weak"  # trained and validated, AUC under the floor: no trait
    INSUFFICIENT = "insufficient", "Not enough data"  # no model: a window below the thresholds


class PropensityRun(InsightRun):
    """One propensity model of a workspace: trained on one window, validated on the next, and (when
    its holdout AUC is at least the floor) scoring everyone into a computed trait.

    ``train`` and ``validation`` are ``{"population", "sample_size", "positives", "base_rate"}``;
    ``groups`` the holdout's people in ten groups by score, highest first (``{"group", "people",
    "predicted", "actual"}``). The figures are written once, when the run ends (docs/insights.md,
    "Propensity").
    """

    target = models.CharField(max_length=8, choices=PropensityTarget.choices)
    horizon_days = models.PositiveSmallIntegerField()
    verdict = models.CharField(max_length=12, choices=PropensityVerdict.choices, blank=True)
    message = models.TextField(blank=True, help_text="why there is no model, or no trait")
    auc = models.FloatField(null=True, blank=True, help_text="ROC AUC on the validation window")
    train = models.JSONField(null=True, blank=True)
    validation = models.JSONField(null=True, blank=True)
    groups = models.JSONField(default=list, blank=True)
    features = models.JSONField(default=list, blank=True)
    scored = models.PositiveIntegerField(null=True, blank=True, help_text="people given the trait")
    people_changed = models.PositiveIntegerField(null=True, blank=True, help_text="people whose trait changed")
    seconds = models.FloatField(null=True, blank=True, help_text="how long the run took")

    class Meta:
        constraints = [
            # One run at a time per workspace and target: a second request joins the one under way.
            models.UniqueConstraint(
                fields=["workspace", "target"],
                condition=models.Q(status__in=["queued", "running"]),
                name="propensity_one_active_run",
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="propensity_progress_percent"),
        ]
        indexes = [models.Index(fields=["workspace", "target", "-created_at"], name="propensity_run_recent_idx")]

    def __str__(self) -> str:
        return f"{self.target} propensity #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
