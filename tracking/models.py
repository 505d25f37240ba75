"""Tables of tracking: people, their identities, events, groups, and the
bookkeeping ingestion needs (dedupe, quarantine, suppressed ids).

Events live in a PostgreSQL table partitioned by month, created by raw SQL in
the migration; ``Event`` is an unmanaged model over it. See
docs/architecture.md ("Tracking") for why each table and index exists.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from accounts.tenancy import TenantModel, hot_workspace_key


class Person(TenantModel):
    """One profile: identified (``user_id`` set) or anonymous (anonymous ids only).

    ``user_id`` is the person's primary user id; every id the person is known by
    (including that one and any aliased user id) is an ``Identity`` row.
    Invariant ingestion relies on: whoever sets ``user_id`` also creates the
    matching ``Identity(kind="user_id")`` in the same transaction, since
    messages find their person through identities only.
    """

    workspace = hot_workspace_key()

    # NULL, not "": anonymous people must not collide on the unique constraint.
    user_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    traits = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # The times of the person's first and last event (track, page, screen; NULL without any).
    # Kept by triggers on the events table (migration 0008), whoever writes events.
    first_event_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_event_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user_id"], name="person_user_id_unique")]
        # No index on last_seen on purpose: every ingested batch moves it, and an
        # index on it would turn each of those updates into a non-HOT one
        # (migration 0003 also leaves free room on pages for HOT updates).

    def __str__(self) -> str:
        return self.user_id or f"anonymous #{self.pk}"


class IdentityKind(models.TextChoices):
    ANONYMOUS_ID = "anonymous_id", "Anonymous id"
    USER_ID = "user_id", "User id"


class Identity(TenantModel):
    """An id a person is known by. Looking up a message's person goes through here."""

    workspace = hot_workspace_key()
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=12, choices=IdentityKind.choices)
    value = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "kind", "value"], name="identity_unique"),
        ]
        # The person foreign key's own index serves merges and a person's ids.
        verbose_name_plural = "identities"


class Event(TenantModel):
    """A ``track``, ``page`` (``$pageview``) or ``screen`` (``$screen``) event.

    Unmanaged: the table is partitioned by month on ``timestamp`` (migration
    0001 creates it; ``tracking.services.event_partitions_ensure`` adds months).
    Its real primary key is ``(id, timestamp)``; ``id`` alone is unique too.
    ``person`` carries no database constraint (a check per inserted row would
    cost the hottest path): whoever deletes a person deletes their events first,
    filtering on ``workspace_id`` and ``person_id``; merges re-point them.
    """

    id = models.BigAutoField(primary_key=True)
    person = models.ForeignKey(Person, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    name = models.CharField(max_length=200)
    properties = models.JSONField(default=dict)
    context = models.JSONField(default=dict)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    message_id = models.CharField(max_length=255)
    # NULL means "the message did not carry it", as sent.
    anonymous_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    user_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    session_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    warnings = models.JSONField(default=list)

    class Meta:
        managed = False
        db_table = "tracking_event"

    def __str__(self) -> str:
        return self.name


class PersonEventFirst(TenantModel):
    """The time of each person's first event of each name, kept by triggers on the events table.

    Migration 0011 creates the triggers: an insert lowers ``first_at`` (or adds the row), a merge's
    update and an erasure's delete recompute the pairs whose events moved or went. Every writer of
    events keeps it right, as for ``Person.first_event_at``. It makes "the first time this person
    did X" a range scan over one index (retention's first-time cohorts) instead of a minimum over
    all of a workspace's events of that name.
    """

    workspace = hot_workspace_key(db_constraint=False)
    person = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    name = models.CharField(max_length=200)
    first_at = models.DateTimeField()

    class Meta:
        # One index, which serves both the triggers' probe of a pair (all three keys) and the reads of
        # who first did a name in a range (the name's entries, ``first_at`` read from the index). A
        # second index by (name, first_at) was taken for the probe by plans made while the table was
        # small (tracking migration 0011).
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name", "person"], include=["first_at"], name="person_event_first_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} first at {self.first_at.isoformat()}"


class Group(TenantModel):
    """A group (account, company) named by ``group`` calls, with its traits."""

    group_id = models.CharField(max_length=255)
    traits = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "group_id"], name="group_id_unique")]

    def __str__(self) -> str:
        return self.group_id


class PersonGroup(TenantModel):
    """A person's membership of a group."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="group_links")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="person_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "person", "group"], name="person_group_unique"),
        ]
        indexes = [models.Index(fields=["group"], name="person_group_group_idx")]


class ProcessedMessage(TenantModel):
    """A ``messageId`` already stored: a retry within 7 days is counted, not stored.

    Rows older than 7 days are purged by ``tracking.tasks.tracking_maintenance``.
    One row per ingested message: the tenancy key has no index of its own and no
    database constraint (``hot_workspace_key``).
    """

    workspace = hot_workspace_key(db_constraint=False)

    message_id = models.CharField(max_length=255)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "message_id"], name="processed_message_unique"),
        ]
        # BRIN, not B-tree: rows arrive in received_at order, the purge reads ranges of
        # it, and a BRIN index costs next to nothing per insert (one per ingested message).
        indexes = [BrinIndex(fields=["received_at"], name="processed_message_received_brin")]


class QuarantineKind(models.TextChoices):
    REJECTED = "rejected", "Rejected"
    WARNED = "warned", "Accepted with warnings"
    # Kept out by the tracking plan (an event with "quarantine violations", or unplanned events blocked).
    PLAN = "plan", "Blocked by the tracking plan"


class QuarantinedMessage(TenantModel):
    """A message refused on its own (no id, wrong types) while its batch was stored,
    (``kind`` "warned") one stored with warnings: a time replaced, NUL characters replaced, or
    (``kind`` "plan") a track call the tracking plan kept out instead of storing it.

    ``raw`` is the message as received; ``reason`` the refusal, or the warnings joined by "; ".
    """

    kind = models.CharField(
        max_length=8,
        choices=QuarantineKind.choices,
        default=QuarantineKind.REJECTED,
        db_default=QuarantineKind.REJECTED,
    )
    raw = models.JSONField()
    reason = models.TextField()
    # NULL when the message carried no usable messageId.
    message_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    received_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "kind", "-received_at"], name="quarantine_kind_received_idx")]


class SuppressedId(TenantModel):
    """An id of an erased person: later messages carrying it are dropped and counted."""

    kind = models.CharField(max_length=12, choices=IdentityKind.choices)
    value = models.CharField(max_length=255)
    dropped_count = models.BigIntegerField(default=0)
    last_dropped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "kind", "value"], name="suppressed_id_unique"),
        ]


# --- Triggers of the JS snippet (tracking-snippet) ----------------------------
# Events the snippet sends without touching the site's code; served to it by
# GET /v1/config. Rules of each kind live in tracking/triggers.py.


class TriggerKind(models.TextChoices):
    CLICK = "click", "Click on an element"
    SCROLL = "scroll", "Scroll depth"
    ENGAGED_TIME = "engaged_time", "Engaged time on page"


class TrackingTrigger(TenantModel):
    """Clicks on a CSS selector, scroll-depth milestones or engaged seconds, sent as a named event."""

    kind = models.CharField(max_length=20, choices=TriggerKind.choices)
    selector = models.CharField(max_length=300, blank=True, help_text="CSS selector; click triggers only")
    event_name = models.CharField(max_length=200)
    thresholds = models.JSONField(default=list, blank=True, help_text="scroll: percentages; engaged time: seconds")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "event_name"], name="tracking_trigger_event_unique"),
        ]

    def __str__(self) -> str:
        return self.event_name


# --- The tracking plan (Settings -> Data) ----------------------------------------------
# The document's rules and the check live in tracking/plan.py; docs/tracking-plan.md.


class TrackingPlan(TenantModel):
    """A workspace's tracking plan: the JSON document of ``tracking.plan`` in its written form.

    ``version`` goes up by one with every save, in the saving transaction: ingestion reads it
    with the write key (one probe of this table's unique index) and keeps each workspace's
    compiled plan in memory until it changes.
    """

    # The unique constraint leads with the workspace: no index of its own.
    workspace = hot_workspace_key()
    document = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="tracking_plan_workspace_unique")]


class PlanViolationKind(models.TextChoices):
    UNKNOWN_EVENT = "unknown_event", "Unknown event"
    UNKNOWN_PROPERTY = "unknown_property", "Unknown property"
    WRONG_TYPE = "wrong_type", "Wrong type"
    MISSING_PROPERTY = "missing_property", "Missing required property"


class PlanViolation(TenantModel):
    """How many track calls of ``event`` broke the plan in one way (``kind``, about ``property``;
    empty for an unknown event), since the event's plan last changed.

    Written by ingestion, one statement per transaction for all its violations; ``examples``
    holds the latest few messages (ids, time, properties cut to size, every problem they had),
    newest first. Rows of an event go when the event's plan changes: the counts start again.
    """

    # Written by ingestion; the unique constraint leads with the workspace: no index of its own.
    workspace = hot_workspace_key()
    event = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=PlanViolationKind.choices)
    property = models.CharField(max_length=200, blank=True)
    count = models.BigIntegerField(default=0)
    quarantined = models.BigIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    examples = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "event", "kind", "property"], name="plan_violation_unique"),
        ]
