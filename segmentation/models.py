"""Segments, their current members, and the history of entries, exits and sizes.

Membership is refreshed by computing the new set and applying the difference
in one transaction (``segmentation.services.segment_refresh``), never by
truncate-and-refill, so readers never see half a refresh.
"""

from __future__ import annotations

from django.db import models

from accounts.tenancy import TenantModel

DEFAULT_REFRESH_SECONDS = 300


class SegmentStatus(models.TextChoices):
    PENDING = "pending", "Waiting for first refresh"
    REFRESHING = "refreshing", "Refreshing"
    FRESH = "fresh", "Fresh"
    FAILED = "failed", "Failed"


class Segment(TenantModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=2000)
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
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="segment_name_unique"),
            models.CheckConstraint(
                condition=models.Q(is_static=True, definition__isnull=True) | models.Q(is_static=False),
                name="segment_static_has_no_definition",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TenantModel):
    """A person who is in a segment now, since ``entered_at``."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey("tracking.Person", on_delete=models.CASCADE, related_name="+")
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "segment", "person"], name="membership_person_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "person"], name="membership_person_idx")]


class MembershipChangeKind(models.TextChoices):
    ENTERED = "entered", "Entered"
    EXITED = "exited", "Exited"


class MembershipChange(TenantModel):
    """Append-only history: a person entered or left a segment at ``at``."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey("tracking.Person", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=MembershipChangeKind.choices)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "segment", "at"], name="membership_change_time_idx"),
            models.Index(fields=["workspace", "person"], name="membership_change_person_idx"),
        ]


class SegmentSizeSnapshot(TenantModel):
    """The size after one refresh, with that refresh's entries and exits."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    size = models.BigIntegerField()
    entered = models.BigIntegerField(default=0)
    exited = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["workspace", "segment", "at"], name="segment_size_time_idx")]
