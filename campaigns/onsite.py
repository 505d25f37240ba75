"""On-site messages: what the snippet shows a visitor, and what it reports back.

An on-site campaign's sends are dispatched like any other (caps, quiet hours, holdout, rate):
the channel's sender delivers nothing, so a dispatched send is ``sent`` at once and becomes
*displayable*. The snippet asks for the visitor's displayable messages
(``POST /v1/messages``), shows the first, and reports what the visitor did with it
(``POST /v1/messages/<send id>/<viewed|clicked|dismissed>``): the send's ``opened_at``,
``clicked_at`` or ``dismissed_at`` is set once and a ``Message Viewed``, ``Message Clicked`` or
``Message Dismissed`` event is recorded on the person through ingestion, as the email
engagement events are (``campaigns.engagement``).

A message is displayable while its send is ``sent``, neither dismissed nor clicked, at most
``MAX_AGE`` old, and its campaign is live or finished (``sending``, ``listening``, ``sent``: a
paused or draft campaign shows nothing). It is rendered when asked for, with the person's
traits as they are then; a template failing for that person leaves that message out.

Who the visitor is: the write key is public, so a user id alone would let anyone read anyone's
messages. The request must carry the browser's anonymous id (a random id in the visitor's cookie);
the person is the one known by it. A user id given as well must name the same person (ingestion
links them when the site calls ``identify``); when it names another person or nobody, the
answer is empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from campaigns.models import Campaign, CampaignStatus, Channel, Send, SendState, Variant
from campaigns.rendering import PersonContext, RenderFailed, render_variant
from tracking.models import Identity, IdentityKind, Person
from tracking.services import person_event_record

logger = logging.getLogger(__name__)

MESSAGE_VIEWED = "Message Viewed"
MESSAGE_CLICKED = "Message Clicked"
MESSAGE_DISMISSED = "Message Dismissed"
ACTIONS = {"viewed": MESSAGE_VIEWED, "clicked": MESSAGE_CLICKED, "dismissed": MESSAGE_DISMISSED}
# A message not acted on this long after it was sent is not shown any more.
MAX_AGE = timedelta(days=30)
# At most this many messages in one answer (the snippet shows them one after another).
MAX_MESSAGES = 5
SHOWN_STATUSES = (CampaignStatus.SENDING, CampaignStatus.LISTENING, CampaignStatus.SENT)


def visitor_person(workspace: Workspace, *, anonymous_id: str, user_id: str | None) -> int | None:
    """The person id of the visitor with these ids, or None (see the module's docstring)."""
    by_anonymous = (
        Identity.objects.filter(workspace=workspace, kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id)
        .values_list("person_id", flat=True)
        .first()
    )
    if by_anonymous is None or not user_id:
        return by_anonymous
    by_user = (
        Identity.objects.filter(workspace=workspace, kind=IdentityKind.USER_ID, value=user_id)
        .values_list("person_id", flat=True)
        .first()
    )
    return by_anonymous if by_user == by_anonymous else None


def _displayable(workspace: Workspace, person_id: int, now: datetime) -> Any:
    return Send.objects.filter(
        workspace=workspace,
        person_id=person_id,
        channel=Channel.ONSITE,
        state=SendState.SENT,
        dismissed_at__isnull=True,
        clicked_at__isnull=True,
        sent_at__gte=now - MAX_AGE,
        campaign__status__in=SHOWN_STATUSES,
    )


def _event_properties(send: Send) -> dict[str, Any] | None:
    context = send.context if isinstance(send.context, dict) else None
    event = context.get("event") if context else None
    properties = event.get("properties") if isinstance(event, dict) else None
    return properties if isinstance(properties, dict) else None


@dataclass(frozen=True)
class OnsiteMessage:
    id: int
    campaign_id: int
    format: str
    title: str
    body: str
    link_url: str
    link_text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "campaign_id": self.campaign_id,
            "format": self.format,
            "title": self.title,
            "body": self.body,
            "link_url": self.link_url,
            "link_text": self.link_text,
        }


def onsite_messages(workspace: Workspace, *, person_id: int, now: datetime | None = None) -> list[OnsiteMessage]:
    """The person's displayable messages, newest first, rendered for them now (text only)."""
    now = now or timezone.now()
    sends = list(_displayable(workspace, person_id, now).order_by("-sent_at", "-id")[:MAX_MESSAGES])
    if not sends:
        return []
    person = Person.objects.filter(workspace=workspace, pk=person_id).values_list("user_id", "traits").first()
    if person is None:
        return []
    context = PersonContext(id=person_id, user_id=person[0], traits=person[1] if isinstance(person[1], dict) else {})
    variants = {
        v.pk: v
        for v in Variant.objects.filter(workspace=workspace, pk__in={s.variant_id for s in sends if s.variant_id})
    }
    messages: list[OnsiteMessage] = []
    for send in sends:
        variant = variants.get(send.variant_id) if send.variant_id is not None else None
        if variant is None:
            continue
        try:
            rendered = render_variant(
                variant=variant, channel=Channel.ONSITE, person=context, event_properties=_event_properties(send)
            )
        except RenderFailed as failed:
            logger.info("on-site send %s not shown: %s", send.pk, failed.reason)
            continue
        messages.append(
            OnsiteMessage(
                id=send.pk,
                campaign_id=send.campaign_id,
                format=variant.format or "banner",
                title=rendered.subject,
                body=rendered.text,
                link_url=rendered.url,
                link_text=rendered.link_text or rendered.url,
            )
        )
    return messages


def visitor_send(workspace: Workspace, *, person_id: int, send_id: int) -> Send | None:
    """The person's on-site send ``send_id`` that was sent (shown or not), or None."""
    return Send.objects.filter(
        workspace=workspace, pk=send_id, person_id=person_id, channel=Channel.ONSITE, state=SendState.SENT
    ).first()


def _record(workspace: Workspace, send: Send, action: str, at: datetime, **more: Any) -> None:
    campaign = Campaign.objects.filter(workspace=workspace, pk=send.campaign_id).first()
    variant = Variant.objects.filter(workspace=workspace, pk=send.variant_id).first() if send.variant_id else None
    properties = {
        "campaign_id": send.campaign_id,
        "campaign": campaign.name if campaign else None,
        "variant": variant.name if variant else None,
        "send_id": send.pk,
        "channel": Channel.ONSITE,
        **more,
    }
    person_event_record(
        workspace=workspace,
        person_id=send.person_id,
        event=ACTIONS[action],
        properties=properties,
        message_id=f"cohortly-onsite-{action}-{workspace.pk}-{send.pk}",
        at=at,
    )


def send_displayed(*, workspace: Workspace, send: Send, action: str) -> bool:
    """What the visitor did with an on-site message (``viewed``, ``clicked`` or ``dismissed``).

    The first of each sets its column (``opened_at``, ``clicked_at``, ``dismissed_at``) and records
    its event; a repeat changes nothing and answers False. A click counts as a view too (the
    snippet may have been cut off before reporting it).
    """
    now = timezone.now()
    mine = Send.objects.filter(workspace=workspace, pk=send.pk)
    with transaction.atomic():
        if action in ("viewed", "clicked") and mine.filter(opened_at__isnull=True).update(opened_at=now):
            _record(workspace, send, "viewed", now)
            first = action == "viewed"
        else:
            first = False
        if action == "clicked" and mine.filter(clicked_at__isnull=True).update(clicked_at=now):
            _record(workspace, send, "clicked", now, url=_link(workspace, send))
            first = True
        if action == "dismissed" and mine.filter(dismissed_at__isnull=True).update(dismissed_at=now):
            _record(workspace, send, "dismissed", now)
            first = True
    return first


def _link(workspace: Workspace, send: Send) -> str | None:
    """The message's link as rendered for the person now (what was clicked), or None."""
    variant = Variant.objects.filter(workspace=workspace, pk=send.variant_id).first() if send.variant_id else None
    person = Person.objects.filter(workspace=workspace, pk=send.person_id).first()
    if variant is None or person is None:
        return None
    context = PersonContext(id=person.pk, user_id=person.user_id, traits=dict(person.traits or {}))
    try:
        rendered = render_variant(
            variant=variant, channel=Channel.ONSITE, person=context, event_properties=_event_properties(send)
        )
    except RenderFailed:
        return None
    return rendered.url or None
