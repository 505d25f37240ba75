"""Helpers shared by the accounts and config tests: database state, API calls, an SMTP sink."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from django.test import Client

from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, User, Workspace
from campaigns.models import Campaign, CampaignAudience, CampaignSettings, FrequencyCap, Run, Send, Variant
from segmentation.models import (
    Membership as SegmentMembership,
)
from segmentation.models import (
    MembershipChange,
    Segment,
    SegmentSizeSnapshot,
    WebhookDelivery,
    WebhookSegment,
    WebhookSubscription,
)
from tracking.models import Event, Identity, Person, SuppressedId, TrackingPlan, TrackingTrigger

JSON = "application/json"


def state(workspace: Workspace | None = None) -> dict[str, Any]:
    """Every accounts and webhook row (of one workspace, or all), minus columns that reads legitimately touch
    (``ApiKey.last_used_at`` moves when a key is used, ``User.last_login`` at sign-in)."""

    def rows(model: Any, *columns: str) -> list[tuple[Any, ...]]:
        # Crosses workspaces on purpose: the test looks at the whole table.
        queryset = model.objects.unscoped() if hasattr(model.objects, "unscoped") else model.objects.all()
        if workspace is not None:
            queryset = queryset.filter(workspace=workspace)
        return sorted(queryset.values_list("id", *columns))

    workspaces = Workspace.objects.all() if workspace is None else Workspace.objects.filter(pk=workspace.pk)
    snapshot = {
        "workspaces": sorted(workspaces.values_list("id", "name", "write_key")),
        "memberships": rows(Membership, "workspace_id", "user_id", "role"),
        "invitations": rows(
            Invitation, "workspace_id", "email", "role", "token_hash", "expires_at", "accepted_at", "revoked_at"
        ),
        "api_keys": rows(ApiKey, "workspace_id", "name", "key_hash", "display_prefix", "revoked_at"),
        "audit_log": rows(AuditLogEntry, "workspace_id", "actor_id", "action", "target", "details"),
        "webhooks": rows(
            WebhookSubscription, "workspace_id", "url", "all_segments", "on_entered", "on_exited", "secret_salt"
        ),
        "webhook_segments": rows(WebhookSegment, "workspace_id", "subscription_id", "segment_id"),
        "webhook_deliveries": rows(WebhookDelivery, "workspace_id", "subscription_id", "event", "status", "attempts"),
    }
    snapshot["segments"] = rows(
        Segment,
        "workspace_id",
        "name",
        "description",
        "definition",
        "is_static",
        "size",
        "status",
        "refreshed_at",
        "next_refresh_at",
        "refresh_interval_seconds",
    )
    snapshot["segment_members"] = rows(SegmentMembership, "workspace_id", "segment_id", "person_id", "entered_at")
    snapshot["segment_changes"] = rows(MembershipChange, "workspace_id", "segment_id", "person_id", "kind", "at")
    snapshot["segment_sizes"] = rows(SegmentSizeSnapshot, "workspace_id", "segment_id", "size", "at")
    # Tracking rows: reading people or events must not change them; erasure would.
    snapshot["people"] = rows(Person, "workspace_id", "user_id", "traits")
    snapshot["identities"] = rows(Identity, "workspace_id", "person_id", "kind", "value")
    snapshot["events"] = rows(Event, "workspace_id", "person_id", "name")
    snapshot["suppressed_ids"] = rows(SuppressedId, "workspace_id", "kind", "value")
    snapshot["triggers"] = rows(TrackingTrigger, "workspace_id", "kind", "selector", "event_name", "enabled")
    snapshot["tracking_plans"] = rows(TrackingPlan, "workspace_id", "version", "document")
    # Campaigns: their rows, audience, variants, runs and sends; caps and sending settings.
    snapshot["campaigns"] = rows(
        Campaign, "workspace_id", "name", "status", "channel", "kind", "trigger", "holdout_percent", "launched_at"
    )
    snapshot["campaign_audience"] = rows(CampaignAudience, "workspace_id", "campaign_id", "segment_id", "exclude")
    snapshot["campaign_variants"] = rows(Variant, "workspace_id", "campaign_id", "name", "weight", "subject", "body")
    snapshot["campaign_runs"] = rows(Run, "workspace_id", "campaign_id", "finished_at")
    snapshot["campaign_sends"] = rows(Send, "workspace_id", "campaign_id", "person_id", "occurrence", "state")
    snapshot["frequency_caps"] = rows(FrequencyCap, "workspace_id", "channel", "max", "per")
    snapshot["campaign_settings"] = rows(CampaignSettings, "workspace_id", "from_email", "timezone", "quiet_start")
    if workspace is None:
        snapshot["users"] = sorted(User.objects.values_list("id", "email", "password", "name", "is_active"))
    return snapshot


def api(
    client: Client,
    method: str,
    url: str,
    body: Any = None,
    *,
    key: str | None = None,
    raw: str | None = None,
) -> Any:
    """One REST call: ``body`` as JSON (or ``raw`` text as is), with ``key`` as Bearer when given."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    call = getattr(client, method.lower())
    if data is None or method.upper() in ("GET", "HEAD", "DELETE"):
        return call(url, headers=headers)
    return call(url, data=data, content_type=JSON, headers=headers)


def logged_in_client(user: User, *, workspace: Workspace | None = None, **client_kwargs: Any) -> Client:
    """A client signed in as ``user``, with ``workspace`` chosen in the switcher when given."""
    client = Client(**client_kwargs)
    client.force_login(user)
    if workspace is not None:
        session = client.session
        session["workspace_id"] = workspace.pk
        session.save()
    return client


@dataclass
class SmtpSink:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.received.set()
        return "250 OK"

    def email_settings(self) -> dict[str, Any]:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_TIMEOUT": 10,
        }

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        """The first ``count`` messages, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"expected {count} messages, got {len(self.messages)}"
        return self.messages[:count]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=_free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())
