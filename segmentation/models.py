"""Segments, their current members, and the history of entries, exits and sizes.

Membership is refreshed by computing the new set and applying the difference
in one transaction (``segmentation.services.segment_refresh``), never by
truncate-and-refill, so readers never see half a refresh.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower

from accounts.tenancy import TenantModel, hot_workspace_key

DEFAULT_REFRESH_SECONDS = 300
MAX_TAGS = 20
MAX_TAG_LENGTH = 50


class SegmentStatus(models.TextChoices):
    PENDING = "pending", "Waiting for first refresh"
    REFRESHING = "refreshing", "Refreshing"
    FRESH = "fresh", "Fresh"
    FAILED = "failed", "Failed"


class Segment(TenantModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=2000)
    # Labels for finding segments in the list ("vip", "q3 launch"): each in the normal form of
    # ``core.names``, case folded, at most once (``segmentation.services.segments``).
    tags = ArrayField(models.CharField(max_length=MAX_TAG_LENGTH), default=list, blank=True, size=MAX_TAGS)
    # The definition document (segment-definition.md); null for a static segment.
    definition = models.JSONField(null=True, blank=True)
    is_static = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=SegmentStatus.choices, default=SegmentStatus.PENDING)
    error = models.TextField(blank=True, help_text="why the last refresh failed")
    size = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_interval_seconds = models.PositiveIntegerField(default=DEFAULT_REFRESH_SECONDS)
    next_refresh_at = models.DateTimeField(null=True, blank=True, db_index=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Set when a refresh is claimed and again when it starts; cleared when it ends. A slot of the
    # workspace's SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE while younger than the lease
    # (``services.refresh_lease_seconds``): a refresh lost with its worker frees it then.
    refreshing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Names are stored in their normal form (core.names); the same name in another case is taken.
            models.UniqueConstraint(F("workspace"), Lower("name"), name="segment_name_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(is_static=True, definition__isnull=True) | models.Q(is_static=False),
                name="segment_static_has_no_definition",
            ),
        ]
        indexes = [
            models.Index(
                fields=["workspace"], name="segment_refreshing_idx", condition=models.Q(refreshing_since__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TenantModel):
    """A person who is in a segment now, since ``entered_at``.

    A refresh writes a row per person entering (hundreds of thousands for a big
    segment), so the keys carry no database constraint, each of which
    is a lookup and a row lock of the referenced person per inserted row at
    commit: Django's cascade deletes the rows with their segment or workspace,
    and a refresh racing the deletion of a person leaves at worst a row the
    next refresh removes. Nothing cascades from the person (another app's
    table): a merge or an erasure is handled by ``segmentation.person_data``,
    which keeps sizes and history exact. The person and segment keys keep
    their indexes (merges, erasures, a person's segments); the workspace's is
    the unique one.
    """

    workspace = hot_workspace_key(db_constraint=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    person = models.ForeignKey("tracking.Person", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "segment", "person"], name="membership_person_unique"),
        ]


class MembershipChangeKind(models.TextChoices):
    ENTERED = "entered", "Entered"
    EXITED = "exited", "Exited"


class CurrentTransactionId(models.Func):
    """The id of the writing transaction, ``pg_current_xact_id()`` (64 bits, never wraps), as a bigint."""

    template = "(pg_current_xact_id()::text::bigint)"
    output_field = models.BigIntegerField()


class MembershipChange(TenantModel):
    """Append-only history: a person entered or left a segment at ``at``; also the change feed.

    Keys without database constraints, as ``Membership``'s (a row per entry).
    ``person`` is empty on the trace of an id that no longer exists: the exit of
    an erased person or of a merge's loser, and an erased person's history
    (``segmentation.person_data``).

    Written in the same transaction as the membership it records, so it is the
    outbox that consumers read forward (``segmentation.feed``): ``txid``, set by
    PostgreSQL, tells the feed when every row up to a point is committed. It is
    null on rows written before the feed existed, which the feed never reads.
    """

    workspace = hot_workspace_key(db_constraint=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    person = models.ForeignKey(
        "tracking.Person", on_delete=models.DO_NOTHING, null=True, related_name="+", db_constraint=False
    )
    kind = models.CharField(max_length=8, choices=MembershipChangeKind.choices)
    at = models.DateTimeField()
    txid = models.BigIntegerField(null=True, editable=False, db_default=CurrentTransactionId())

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "segment", "at"], name="membership_change_time_idx"),
            # The feed's read order, by workspace.
            models.Index(
                fields=["workspace", "txid", "id"],
                name="membership_change_feed_idx",
                condition=models.Q(txid__isnull=False),
            ),
        ]


class ChangeFeedCursor(TenantModel):
    """How far one consumer of the change feed has read a workspace's changes: up to (``last_txid``, ``last_id``).

    Moved in the same transaction as the consumer's own effects (``segmentation.feed.feed_advance``).
    """

    consumer = models.CharField(max_length=100)
    last_txid = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "consumer"], name="change_feed_cursor_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} at {self.last_txid}/{self.last_id}"


class SegmentSizeSnapshot(TenantModel):
    """The size after one refresh, with that refresh's entries and exits."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    size = models.BigIntegerField()
    entered = models.BigIntegerField(default=0)
    exited = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["workspace", "segment", "at"], name="segment_size_time_idx")]


class WebhookSubscription(TenantModel):
    """An endpoint told when people enter or leave segments (all, or the chosen ones).

    The signing secret is not stored: it is derived from ``secret_salt`` and the
    site's ``SECRET_KEY`` (``core.signing.subscription_secret``),
    so a database dump alone cannot forge or verify signatures. Rotating the secret
    means a new salt.
    """

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    all_segments = models.BooleanField(default=True)
    on_entered = models.BooleanField(default=True)
    on_exited = models.BooleanField(default=True)
    secret_salt = models.CharField(max_length=64)
    secret_hint = models.CharField(max_length=16, help_text="the secret's first characters, for recognition")
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(on_entered=True) | models.Q(on_exited=True), name="webhook_has_an_event"
            ),
            # The description names the webhook: stored in its normal form (core.names), unique when given.
            models.UniqueConstraint(
                F("workspace"),
                Lower("description"),
                condition=~models.Q(description=""),
                name="webhook_description_ci_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.url


class WebhookSegment(TenantModel):
    """A segment a subscription with ``all_segments=False`` listens to."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "subscription", "segment"], name="webhook_segment_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "segment"], name="webhook_segment_idx")]


class WebhookEvent(models.TextChoices):
    ENTERED = "segment.entered", "Entered"
    EXITED = "segment.exited", "Exited"
    TEST = "webhook.test", "Test"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(TenantModel):
    """One event for one subscription, and how sending it went.

    Retries are driven by ``next_attempt_at`` (picked up by the sweep), not by
    broker countdowns. ``payload`` is built at the first attempt and sent as is
    on every retry. ``segment_id``/``person_id`` are plain ids: the log outlives
    deleted segments and merged people.
    """

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=24, choices=WebhookEvent.choices)
    # The MembershipChange it reports (null for a test delivery): one delivery per subscription and change.
    change_id = models.BigIntegerField(null=True, blank=True)
    segment_id = models.BigIntegerField(null=True, blank=True)
    person_id = models.BigIntegerField(null=True, blank=True)
    at = models.DateTimeField(help_text="when the person entered or left")
    payload = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    queued_at = models.DateTimeField(null=True, blank=True, help_text="when a send task was last enqueued")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="when a worker took it to send")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "change_id", "subscription"], name="webhook_delivery_change_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "subscription", "-created_at"], name="webhook_delivery_log_idx"),
            # The sweep's work list, across workspaces.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
        ]
