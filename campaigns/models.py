"""Campaigns: what acts on segments. A campaign sends one message per person and occurrence.

The tables, top down:

- ``CampaignSettings``: a workspace's sender (From address), timezone, quiet hours and
  per-channel rate limits; one row per workspace, created on first use.
- ``FrequencyCap``: a workspace-wide rule, at most ``max`` messages of a channel per person
  in any rolling ``per_seconds``.
- ``Campaign`` with its ``Variant`` rows (2 to 5 for an A/B split, or one) and ``CampaignAudience``
  rows (segments included and excluded).
- ``Send``: one per (campaign, person, occurrence), written before anything leaves. The
  occurrence is the broadcast run (``run:<id>``), the membership change that triggered it
  (``change:<id>``) or the trigger event (``event:<id>``). Its unique constraint is what makes
  every send happen exactly once: a retried fan-out, a re-read change or a re-delivered task
  meets the row already there. A holdout person gets a row too (state ``holdout``), so that
  the holdout is counted and its conversions measured from the time it would have been sent.
- ``TriggerInbox``: event triggers noted by ingestion in its own transaction (person and
  event name only), turned into sends off the hot path.
- ``Suppression``: addresses never to email again (unsubscribed, bounced, complained).

Person keys carry no database constraint (as segmentation's memberships): nothing cascades
from tracking's ``Person``; a merge or an erasure is handled by this app's subscriber to
tracking's port.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower

from accounts.tenancy import TenantModel, hot_workspace_key
from core.signing import new_secret_salt


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"
    ONSITE = "onsite", "On-site message"


class CampaignKind(models.TextChoices):
    BROADCAST = "broadcast", "Broadcast"
    TRIGGERED = "triggered", "Triggered"


class TriggerOn(models.TextChoices):
    SEGMENT_ENTRY = "segment_entry", "Entering a segment"
    EVENT = "event", "An event"


class SendTime(models.TextChoices):
    AT_SEND_AT = "", "At send_at (or at launch)"
    BEST_HOUR = "best_hour", "At each person's best hour"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"  # a broadcast launched for a later time
    SENDING = "sending", "Sending"  # a broadcast run in progress
    LISTENING = "listening", "Listening"  # a triggered campaign, live
    PAUSED = "paused", "Paused"
    SENT = "sent", "Sent"  # a broadcast whose run is over


class CampaignSettings(TenantModel):
    """A workspace's sending settings: sender, timezone, quiet hours, rate limits."""

    from_email = models.EmailField(blank=True, help_text="empty: settings.DEFAULT_FROM_EMAIL")
    from_name = models.CharField(max_length=100, blank=True)
    reply_to = models.EmailField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name; people without a timezone trait")
    # Quiet hours in each person's timezone: sends due inside wait until ``quiet_end``. Both or neither.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    emails_per_second = models.PositiveIntegerField(default=2000)
    webhooks_per_second = models.PositiveIntegerField(default=5000)
    # The signing secret of the workspace's campaign webhooks, derived like a segment webhook
    # subscription's (``core.signing.subscription_secret``): not stored, so a database dump cannot sign.
    webhook_secret_salt = models.CharField(max_length=64, default=new_secret_salt)
    # Who may launch (and resume) a campaign: admins always; members too when this is set.
    members_can_launch = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="campaign_settings_one_per_workspace"),
            models.CheckConstraint(
                condition=models.Q(quiet_start__isnull=True, quiet_end__isnull=True)
                | models.Q(quiet_start__isnull=False, quiet_end__isnull=False),
                name="campaign_settings_quiet_hours_both",
            ),
        ]


class FrequencyCap(TenantModel):
    """At most ``max`` messages of ``channel`` per person in any rolling ``per_seconds``."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    max = models.PositiveIntegerField()
    per = models.CharField(max_length=16, help_text="the duration as given, e.g. 1d")
    per_seconds = models.PositiveIntegerField()
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(max__gte=1), name="frequency_cap_max_positive"),
            models.CheckConstraint(condition=models.Q(per_seconds__gte=1), name="frequency_cap_per_positive"),
        ]

    def __str__(self) -> str:
        return f"at most {self.max} {self.channel} per {self.per}"


class Campaign(TenantModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    kind = models.CharField(max_length=10, choices=CampaignKind.choices)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    # The trigger as given (``{"on", "segment" | "event", "delay", "exit_event"}``), null for a broadcast;
    # the columns below are its parts, for the feed consumer's and ingestion's lookups.
    trigger = models.JSONField(null=True, blank=True)
    trigger_on = models.CharField(max_length=16, choices=TriggerOn.choices, blank=True)
    # RESTRICT, not PROTECT: a segment a campaign uses is not deleted on its own, but a workspace's
    # deletion, which takes both, goes through (PROTECT would refuse that too).
    trigger_segment = models.ForeignKey(
        "segmentation.Segment", null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    trigger_event = models.CharField(max_length=200, blank=True)
    delay_seconds = models.PositiveIntegerField(default=0)
    exit_event = models.CharField(max_length=200, blank=True)
    # A broadcast: when (null: at launch), and whether at that local time in each person's timezone.
    send_at = models.DateTimeField(null=True, blank=True)
    local_time = models.BooleanField(default=False)
    # Send-time optimisation: ``best_hour`` sends each person at their most active hour of the week
    # (``ActiveHours``), the first one from ``send_at`` on, except a ``send_time_control_percent``
    # share sent at a random hour, the control the results compare against.
    send_time = models.CharField(max_length=16, choices=SendTime.choices, default=SendTime.AT_SEND_AT, blank=True)
    send_time_control_percent = models.PositiveSmallIntegerField(default=10)
    # Automatic winner: ``{"test_percent", "wait", "default_variant"}`` as given (null: none). The
    # variants go to a test share first; ``wait`` after the fan-out the best one goes to the rest.
    auto_winner = models.JSONField(null=True, blank=True)
    # The decision and its numbers (null: not decided yet), and when it was made.
    winner_decision = models.JSONField(null=True, blank=True)
    winner_decided_at = models.DateTimeField(null=True, blank=True)
    holdout_percent = models.PositiveSmallIntegerField(default=0)
    # The goal: ``goal_event`` within ``goal_within_seconds`` of the send (empty: no goal).
    goal_event = models.CharField(max_length=200, blank=True)
    goal_within = models.CharField(max_length=16, blank=True)
    goal_within_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Re-eligibility of a triggered campaign: once per person, else again after ``reeligible_after_seconds``
    # (null with once_per_person false: every occurrence).
    once_per_person = models.BooleanField(default=True)
    reeligible_after = models.CharField(max_length=16, blank=True)
    reeligible_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    # A triggered campaign hears triggers from this time on: set by every launch, the one that
    # resumes it after a pause too (null: since ``launched_at``). Triggers while paused are skipped.
    listening_since = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(F("workspace"), Lower("name"), name="campaign_name_ci_unique"),
            models.CheckConstraint(condition=models.Q(holdout_percent__lte=90), name="campaign_holdout_at_most_90"),
            models.CheckConstraint(
                condition=models.Q(send_time_control_percent__lte=50), name="campaign_send_time_control_at_most_50"
            ),
            models.CheckConstraint(
                condition=models.Q(kind="broadcast", trigger_on="")
                | (models.Q(kind="triggered") & ~models.Q(trigger_on="")),
                name="campaign_trigger_matches_kind",
            ),
        ]
        indexes = [
            # Ingestion's question: which live campaigns of this workspace listen to these events?
            models.Index(
                fields=["workspace", "trigger_event"],
                name="campaign_event_trigger_idx",
                condition=models.Q(status="listening", trigger_on="event"),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignAudience(TenantModel):
    """A segment a campaign targets (``exclude=False``) or leaves out (``exclude=True``)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="audience")
    segment = models.ForeignKey(
        "segmentation.Segment", on_delete=models.RESTRICT, related_name="+"
    )  # see trigger_segment
    exclude = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "campaign", "segment"], name="campaign_audience_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.name} ({'excluded' if self.exclude else 'included'})"


class OnsiteFormat(models.TextChoices):
    BANNER = "banner", "Banner"
    MODAL = "modal", "Modal"


class Variant(TenantModel):
    """One version of the content, sent to a ``weight`` share of the non-holdout audience.

    Email: ``subject``, ``body`` (HTML) and ``text`` (plain; derived from the HTML when empty).
    Webhook: ``url`` and ``body`` (a JSON template). On-site: ``subject`` (the title), ``body`` (the
    message, plain text), ``url`` and ``text`` (an optional link and its label), ``format``.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=50)
    weight = models.PositiveIntegerField()
    subject = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    text = models.TextField(blank=True)
    url = models.URLField(max_length=2000, blank=True)
    # On-site messages: shown as a banner or a modal (empty for other channels).
    format = models.CharField(max_length=10, choices=OnsiteFormat.choices, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "campaign", "position"], name="variant_position_unique"),
            models.UniqueConstraint(fields=["workspace", "campaign", "name"], name="variant_name_unique"),
            models.CheckConstraint(condition=models.Q(weight__gte=1), name="variant_weight_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Run(TenantModel):
    """One broadcast run of a campaign: the occurrence its sends share (``run:<id>``)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    created_at = models.DateTimeField(auto_now_add=True)
    # Sends written for this run (the fan-out is done when ``fanned_out_at`` is set).
    total = models.BigIntegerField(default=0)
    fanned_out_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)


class SendState(models.TextChoices):
    PENDING = "pending", "Pending"  # written, due at ``due_at``
    CLAIMED = "claimed", "Claimed"  # a worker took it to send (until ``claim_expires_at``)
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # with ``reason``
    CAPPED = "capped", "Capped"  # with ``cap``, the rule that capped it
    SUPPRESSED = "suppressed", "Suppressed"  # no address, unsubscribed, bounced (``reason``)
    HOLDOUT = "holdout", "Holdout"  # in the holdout: nothing is sent
    CANCELLED = "cancelled", "Cancelled"  # the exit event came first, the campaign was paused, the person left


class Send(TenantModel):
    """One message to one person for one occurrence of a campaign, and what became of it."""

    workspace = hot_workspace_key(db_constraint=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    person = models.ForeignKey("tracking.Person", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    occurrence = models.CharField(max_length=40)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    state = models.CharField(max_length=10, choices=SendState.choices, default=SendState.PENDING)
    reason = models.CharField(max_length=500, blank=True)
    cap = models.ForeignKey(FrequencyCap, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # When it is due (the trigger's time plus the delay, a scheduled time, the end of quiet hours),
    # and, for a triggered send, when the trigger happened (the exit event is looked for after it).
    due_at = models.DateTimeField()
    triggered_at = models.DateTimeField(null=True, blank=True)
    # What the templates see besides the person (an event trigger's ``event.properties``).
    context = models.JSONField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Where it went (an address or URL), kept for the person's export; erased with them.
    recipient = models.CharField(max_length=2000, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    # An on-site message the person closed: not shown again.
    dismissed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "campaign", "person", "occurrence"], name="send_once_per_occurrence"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "campaign", "state"], name="send_campaign_state_idx"),
            # The dispatcher's work list, per campaign (a paused campaign's sends are never walked):
            # due sends, and claims that expired.
            models.Index(
                fields=["campaign", "due_at"],
                name="send_campaign_due_idx",
                condition=models.Q(state__in=["pending", "claimed"]),
            ),
            # The cap check: a person's sends of a channel in a window.
            models.Index(
                fields=["workspace", "person", "channel", "sent_at"],
                name="send_person_recent_idx",
                condition=models.Q(state__in=["sent", "claimed"]),
            ),
        ]


class TriggerInbox(TenantModel):
    """A person did an event some live campaign triggers on; noted by ingestion, turned into sends later.

    Written in ingestion's transaction (one row per person and event name of a batch, only
    for names some listening campaign triggers on) and deleted by the task that reads the
    person's matching events and writes their sends (occurrence ``event:<id>``).
    """

    workspace = hot_workspace_key(db_constraint=False)
    person_id = models.BigIntegerField()
    event = models.CharField(max_length=200)
    noted_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "noted_at"], name="trigger_inbox_idx")]


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    MANUAL = "manual", "Added by hand"


class Suppression(TenantModel):
    """An email address never to be sent to again by this workspace (stored lower-cased)."""

    address = models.CharField(max_length=320)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    person_id = models.BigIntegerField(null=True, blank=True)
    campaign_id = models.BigIntegerField(null=True, blank=True, help_text="the campaign whose message led to it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "address"], name="suppression_address_unique"),
        ]


HOURS_OF_WEEK = 168


class ActiveHours(TenantModel):
    """A person's most active hour of the week, learned from their events (``campaigns.active_hours``).

    ``histogram``: 168 decayed event weights, hour 0 being Monday 00:00-01:00 in the person's
    timezone, as of ``as_of`` (weights decay by half every ``ACTIVE_HOURS_HALF_LIFE``);
    ``best_hour`` its largest bucket, ``confidence`` that bucket's share of the total, ``events``
    how many events were counted (undecayed). The person key carries no constraint (as sends'):
    ``campaigns.people`` merges and erases these rows.
    """

    workspace = hot_workspace_key()
    person_id = models.BigIntegerField()
    histogram = ArrayField(models.FloatField(), size=HOURS_OF_WEEK)
    best_hour = models.PositiveSmallIntegerField()
    confidence = models.FloatField()
    events = models.PositiveIntegerField()
    as_of = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "person_id"], name="active_hours_one_per_person"),
            models.CheckConstraint(condition=models.Q(best_hour__lt=HOURS_OF_WEEK), name="active_hours_hour_of_week"),
        ]


class WorkspaceActiveHours(TenantModel):
    """How far a workspace's events have been counted into ``ActiveHours`` (events received up to
    ``through``), and the workspace's own best hour of the week, for people with too little history."""

    through = models.DateTimeField()
    best_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    people = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="workspace_active_hours_one_per_workspace"),
        ]
