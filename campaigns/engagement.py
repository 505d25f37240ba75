"""Engagement with campaign emails: the signed links a message carries, and what following them records.

Links (absolute, from ``settings.PUBLIC_URL``) carry a token signed with ``SECRET_KEY``
(``django.core.signing``, one salt per purpose, so a token made for one purpose is refused
by another):

- the open pixel ``/e/o/<token>/`` and the unsubscribe page ``/e/u/<token>/``: the token is
  the workspace and send ids, signed;
- a click ``/e/c/<token>/?u=<target>``: the token also signs a digest of the target, and the
  target must be one of the links of the send's own message (rendered again for the check),
  so the redirector goes nowhere its message did not point to.

What is recorded becomes events on the person through ingestion
(``tracking.services.person_event_record``), usable in segments like any event:
``Email Opened`` (once per send), ``Email Clicked`` (once per link of a send, with its
``url``), ``Unsubscribed``, ``Email Bounced``, ``Email Complained``. Their properties name the
campaign (``campaign_id``, ``campaign``), the ``variant`` and the ``send_id``. Unsubscribes,
bounces and complaints also suppress the address for every later send of the workspace.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns.models import Campaign, Send, SendState, Suppression, SuppressionReason, Variant
from tracking.services import person_event_record

logger = logging.getLogger(__name__)

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
EMAIL_OPENED = "Email Opened"
EMAIL_CLICKED = "Email Clicked"
UNSUBSCRIBED = "Unsubscribed"
EMAIL_BOUNCED = "Email Bounced"
EMAIL_COMPLAINED = "Email Complained"


def _signer(purpose: str) -> signing.Signer:
    return _signer_for(purpose, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=16)
def _signer_for(purpose: str, key: str, fallback_keys: tuple[str, ...]) -> signing.Signer:
    # One per purpose and keys: a message carries several links, a chunk thousands.
    return signing.Signer(
        key=key, fallback_keys=list(fallback_keys), salt=f"cohortly.campaigns.{purpose}", sep=".", algorithm="sha256"
    )


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def token_make(*, purpose: str, workspace_id: int, send_id: int, target: str | None = None) -> str:
    value = f"{workspace_id}-{send_id}"
    if purpose == CLICK:
        value += f"-{_digest(target or '')}"
    return _signer(purpose).sign(value)


@dataclass(frozen=True)
class SendKey:
    workspace_id: int
    send_id: int


def token_read(*, purpose: str, token: str, target: str | None = None) -> SendKey | None:
    """The send a token names, or None when it is forged, damaged, for another purpose or
    (a click) for another target."""
    try:
        value = _signer(purpose).unsign(token)
    except signing.BadSignature:
        return None
    parts = value.split("-")
    if len(parts) != (3 if purpose == CLICK else 2) or not all(p.isdigit() for p in parts[:2]):
        return None
    if purpose == CLICK and parts[2] != _digest(target or ""):
        return None
    return SendKey(int(parts[0]), int(parts[1]))


_TOKEN_SLOT = "TOKEN-SLOT"


@functools.lru_cache(maxsize=8)
def _route(name: str) -> tuple[str, str]:
    """The path of route ``name`` around its token, reversed once (reversing costs more than signing)."""
    before, after = reverse(name, args=[_TOKEN_SLOT]).split(_TOKEN_SLOT)
    return before, after


def _absolute(name: str, token: str) -> str:
    before, after = _route(name)
    return f"{settings.PUBLIC_URL}{before}{token}{after}"


def open_url(send: Send) -> str:
    return _absolute("campaign_open", token_make(purpose=OPEN, workspace_id=send.workspace_id, send_id=send.pk))


def click_url(send: Send, target: str) -> str:
    token = token_make(purpose=CLICK, workspace_id=send.workspace_id, send_id=send.pk, target=target)
    return _absolute("campaign_click", token) + "?" + urlencode({"u": target})


def unsubscribe_url(send: Send) -> str:
    token = token_make(purpose=UNSUBSCRIBE, workspace_id=send.workspace_id, send_id=send.pk)
    return _absolute("campaign_unsubscribe", token)


# -- recording --------------------------------------------------------------------------


def _properties(send: Send, **more: Any) -> dict[str, Any]:
    campaign = Campaign.objects.filter(workspace_id=send.workspace_id, pk=send.campaign_id).first()
    variant = (
        Variant.objects.filter(workspace_id=send.workspace_id, pk=send.variant_id).first() if send.variant_id else None
    )
    return {
        "campaign_id": send.campaign_id,
        "campaign": campaign.name if campaign else None,
        "variant": variant.name if variant else None,
        "send_id": send.pk,
        "channel": send.channel,
        **more,
    }


def _event(send: Send, name: str, key: str, at: datetime, **properties: Any) -> None:
    workspace = Workspace.objects.filter(pk=send.workspace_id).first()
    if workspace is None:
        return
    person_event_record(
        workspace=workspace,
        person_id=send.person_id,
        event=name,
        properties=_properties(send, **properties),
        message_id=f"cohortly-{key}-{send.workspace_id}-{send.pk}",
        at=at,
    )


def send_opened(*, send: Send) -> bool:
    """The first open of a send: ``opened_at`` and an ``Email Opened`` event. Later opens change nothing."""
    now = timezone.now()
    with transaction.atomic():
        first = Send.objects.filter(workspace_id=send.workspace_id, pk=send.pk, opened_at__isnull=True).update(
            opened_at=now
        )
        if first:
            _event(send, EMAIL_OPENED, "open", now)
    return bool(first)


def send_clicked(*, send: Send, url: str) -> None:
    """A click: ``clicked_at`` on the first, an ``Email Clicked`` event once per link (with its ``url``).

    A click proves an open that the pixel may have missed (images blocked): it is recorded too.
    """
    now = timezone.now()
    with transaction.atomic():
        Send.objects.filter(workspace_id=send.workspace_id, pk=send.pk, clicked_at__isnull=True).update(clicked_at=now)
        if Send.objects.filter(workspace_id=send.workspace_id, pk=send.pk, opened_at__isnull=True).update(
            opened_at=now
        ):
            _event(send, EMAIL_OPENED, "open", now)
        _event(send, EMAIL_CLICKED, f"click-{_digest(url)}", now, url=url)


def _suppress(send: Send, reason: str) -> bool:
    """Suppress the send's address; False when it already was (for whatever reason)."""
    address = send.recipient.strip().lower()
    if not address:
        return False
    _, created = Suppression.objects.get_or_create(
        workspace_id=send.workspace_id,
        address=address,
        defaults={"reason": reason, "person_id": send.person_id, "campaign_id": send.campaign_id},
    )
    return created


def send_unsubscribed(*, send: Send) -> bool:
    """The recipient unsubscribed through this send: their address is suppressed, and an
    ``Unsubscribed`` event recorded the first time. Idempotent (a second click answers False)."""
    with transaction.atomic():
        created = _suppress(send, SuppressionReason.UNSUBSCRIBED)
        if created:
            _event(send, UNSUBSCRIBED, "unsubscribe", timezone.now())
    return created


def send_bounced(*, send: Send, complained: bool, at: datetime | None = None) -> bool:
    """An ESP reported a bounce or a complaint for this send: suppress, and an event the first time."""
    reason = SuppressionReason.COMPLAINED if complained else SuppressionReason.BOUNCED
    with transaction.atomic():
        created = _suppress(send, reason)
        if created:
            name, key = (EMAIL_COMPLAINED, "complaint") if complained else (EMAIL_BOUNCED, "bounce")
            _event(send, name, key, at or timezone.now())
    return created


def send_found(key: SendKey) -> Send | None:
    """The send a token named, if it still exists and left (sent or later engaged). Call in its workspace's scope."""
    return (
        Send.objects.filter(workspace_id=key.workspace_id, pk=key.send_id, state=SendState.SENT)
        .only("id", "workspace_id", "campaign_id", "variant_id", "person_id", "channel", "recipient", "context")
        .first()
    )


# -- an ESP's tracking webhooks (django-anymail) ----------------------------------------------


def _send_of_esp_event(event: Any) -> Send | None:
    metadata = event.metadata if isinstance(getattr(event, "metadata", None), dict) else {}
    workspace_id, send_id = str(metadata.get("workspace_id", "")), str(metadata.get("send_id", ""))
    if workspace_id.isdigit() and send_id.isdigit():
        with workspace_scope(int(workspace_id)):
            return Send.objects.filter(workspace_id=int(workspace_id), pk=int(send_id)).first()
    address = (getattr(event, "recipient", None) or "").strip().lower()
    if not address:
        return None
    # Across workspaces on purpose: an ESP that does not echo the metadata names only the
    # address, and the latest message sent to it is the one that bounced.
    return Send.objects.unscoped().filter(recipient=address, state=SendState.SENT).order_by("-sent_at", "-id").first()


def esp_tracking_received(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    """django-anymail's ``tracking`` signal: bounces, complaints and the ESP's own unsubscribes.

    Receiving a library's signal is how anymail hands over its webhooks (this codebase sends
    no signals of its own); connected in ``CampaignsConfig.ready``. Events are acted on only
    when anymail checks its callers (``ANYMAIL_WEBHOOK_SECRET``, HTTP basic auth).
    """
    if not (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET"):
        # Without the secret anymail accepts any caller: anyone could suppress any address.
        logger.warning("%s tracking webhook ignored: set ANYMAIL_WEBHOOK_SECRET to receive bounces", esp_name)
        return
    kind = event.event_type
    rejected_as_bounce = kind == "rejected" and getattr(event, "reject_reason", None) in ("bounced", "invalid")
    if kind not in ("bounced", "complained", "unsubscribed") and not rejected_as_bounce:
        return
    send = _send_of_esp_event(event)
    if send is None:
        logger.info("%s %s event for no known send", esp_name, kind)
        return
    with workspace_scope(send.workspace_id):
        if kind == "unsubscribed":
            send_unsubscribed(send=send)
        else:
            send_bounced(send=send, complained=kind == "complained", at=getattr(event, "timestamp", None))
