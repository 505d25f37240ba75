"""Channels: a send's message built for one person, and the per-chunk senders that deliver it.

Email goes through Django's email backends (``EMAIL_URL``: SMTP by default; an ESP by
setting ``EMAIL_BACKEND`` to a django-anymail backend), one connection per chunk. Each
message is multipart (HTML and text), from the workspace's sender, with
``Message-ID: <send-<send id>.<workspace id>@<PUBLIC_URL's host>>`` (the send's unique row
is the provider's idempotency key), RFC 8058 one-click unsubscribe headers, an open pixel
and every http(s) link of the HTML through the signed click redirect
(``campaigns.engagement``).

Webhooks are JSON POSTs of the rendered body through ``core.transport.post`` (checked
against private networks at send time, pinned to the checked address, bounded by its
timeout), signed as segment webhooks are (``Cohortly-Signature``) with the workspace's
campaign webhook secret, and carrying ``Cohortly-Send: <send id>`` for the receiver to
deduplicate on.

Failures raise ``SendFailed(reason, permanent)``: permanent ones (a refused recipient, an
SMTP 5xx, a 4xx answer from a webhook, a URL that may not be called) are not retried;
transient ones (connection errors, SMTP 4xx, timeouts, a 5xx or 429 answer) are.
"""

from __future__ import annotations

import functools
import html as html_lib
import http.client
import json
import logging
import re
import smtplib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formataddr, formatdate, parseaddr
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.validators import validate_email

from accounts.models import Workspace
from campaigns import engagement, mime
from campaigns.models import Campaign, CampaignSettings, Channel, Send, Variant
from campaigns.rendering import PersonContext, RenderFailed, render, render_variant
from core import signing, transport
from tracking.models import Person

logger = logging.getLogger(__name__)

SEND_HEADER = "Cohortly-Send"
WEBHOOK_EVENT = "campaign.message"

# ``<a ... href="...">``: the attribute's value, in either quote.
_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class SendFailed(Exception):
    """A message could not be delivered. ``permanent``: retrying will not help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass
class Outgoing:
    """One message ready to leave. Email: the address, subject, both bodies, sender and headers.
    Webhook: the URL (``recipient``), the JSON ``body`` and the signed headers."""

    send_id: int
    workspace_id: int
    channel: str
    recipient: str
    subject: str = ""
    html: str = ""
    text: str = ""
    from_email: str = ""
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # The targets of the HTML's links, before they were made click redirects.
    links: list[str] = field(default_factory=list)


def person_context(person: Person) -> PersonContext:
    return PersonContext(id=person.pk, user_id=person.user_id, traits=dict(person.traits or {}))


def email_normalise(value: Any) -> str | None:
    """An address as campaigns store and compare it (trimmed, lower-cased), or None if it is not one."""
    if not isinstance(value, str):
        return None
    address = value.strip().lower()
    if not address or len(address) > 320:
        return None
    try:
        validate_email(address)
    except ValidationError:
        return None
    return address


def recipient_for(channel: str, person: PersonContext, variant: Variant) -> str | None:
    """Where this person's message goes: email, ``traits.email`` (None: no usable address, the
    send is suppressed); webhook, the variant's URL rendered for them; on-site, the person."""
    if channel == Channel.EMAIL:
        return email_normalise(person.traits.get("email"))
    if channel == Channel.WEBHOOK:
        try:
            url = render(variant.url, kind="text", person=person, event_properties=None).strip()
        except RenderFailed:
            return variant.url
        return url or None
    return f"person:{person.id}"


def _event_properties(send: Send) -> dict[str, Any] | None:
    context = send.context if isinstance(send.context, dict) else None
    event = context.get("event") if context else None
    properties = event.get("properties") if isinstance(event, dict) else None
    return properties if isinstance(properties, dict) else None


def public_host() -> str:
    return urlsplit(settings.PUBLIC_URL).hostname or "localhost"


def message_id(send: Send) -> str:
    return f"<send-{send.pk}.{send.workspace_id}@{public_host()}>"


def sender_address(settings_row: CampaignSettings) -> str:
    """The From header: the workspace's address and name, else ``DEFAULT_FROM_EMAIL`` (under the workspace's name)."""
    if settings_row.from_email:
        return formataddr((settings_row.from_name, settings_row.from_email))
    if settings_row.from_name:
        return formataddr((settings_row.from_name, parseaddr(settings.DEFAULT_FROM_EMAIL)[1]))
    return str(settings.DEFAULT_FROM_EMAIL)


def webhook_secret(settings_row: CampaignSettings) -> str:
    """The workspace's campaign webhook signing secret (derived from its salt and ``SECRET_KEY``)."""
    return _secret(settings_row.webhook_secret_salt, settings.SECRET_KEY)


@functools.lru_cache(maxsize=256)
def _secret(salt: str, key: str) -> str:
    # Derived once per salt (and key) in a process, not once per message.
    return signing.subscription_secret(salt)


def links_tracked(html: str, send: Send) -> tuple[str, list[str]]:
    """``html`` with every http(s) link made a click redirect, and the links' targets."""
    targets: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        target = html_lib.unescape(match.group(3)).strip()
        if not target.lower().startswith(("http://", "https://")):
            return match.group(0)
        if target not in targets:
            targets.append(target)
        redirect = html_lib.escape(engagement.click_url(send, target), quote=True)
        return f"{match.group(1)}{match.group(2)}{redirect}{match.group(2)}"

    return _LINK.sub(rewrite, html), targets


def _before_body_end(html: str, fragment: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + fragment
    at = ends[-1].start()
    return html[:at] + fragment + html[at:]


def message_build(
    *, send: Send, campaign: Campaign, variant: Variant, person: PersonContext, settings_row: CampaignSettings
) -> Outgoing:
    """The message of ``send`` for ``person``. Raises ``RenderFailed`` (the template failed for
    them) or ``SendFailed`` (nowhere to send it); either fails this send alone."""
    rendered = render_variant(
        variant=variant, channel=campaign.channel, person=person, event_properties=_event_properties(send)
    )
    if campaign.channel == Channel.EMAIL:
        address = email_normalise(send.recipient) or recipient_for(Channel.EMAIL, person, variant)
        if address is None:
            raise SendFailed("no email address", permanent=True)
        html, links = links_tracked(rendered.html, send)
        unsubscribe = engagement.unsubscribe_url(send)
        footer = (
            '<p style="font-size:12px;color:#888888;margin-top:24px">'
            f'<a href="{html_lib.escape(unsubscribe, quote=True)}" style="color:#888888">Unsubscribe</a></p>'
        )
        pixel = (
            f'<img src="{html_lib.escape(engagement.open_url(send), quote=True)}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0">'
        )
        return Outgoing(
            send_id=send.pk,
            workspace_id=send.workspace_id,
            channel=Channel.EMAIL,
            recipient=address,
            subject=rendered.subject,
            html=_before_body_end(html, footer + pixel),
            text=f"{rendered.text}\n\n--\nUnsubscribe: {unsubscribe}\n",
            from_email=sender_address(settings_row),
            reply_to=settings_row.reply_to,
            headers={
                "Message-ID": message_id(send),
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                SEND_HEADER: str(send.pk),
            },
            links=links,
        )
    if campaign.channel == Channel.WEBHOOK:
        if not rendered.url:
            raise SendFailed("no webhook URL", permanent=True)
        body = json.dumps(rendered.json_body, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(time.time())
        return Outgoing(
            send_id=send.pk,
            workspace_id=send.workspace_id,
            channel=Channel.WEBHOOK,
            recipient=rendered.url,
            body=body,
            headers={
                "Content-Type": "application/json",
                signing.SIGNATURE_HEADER: signing.signature_header(webhook_secret(settings_row), timestamp, body),
                signing.EVENT_HEADER: WEBHOOK_EVENT,
                SEND_HEADER: str(send.pk),
            },
        )
    return Outgoing(
        send_id=send.pk,
        workspace_id=send.workspace_id,
        channel=campaign.channel,
        recipient=f"person:{person.id}",
        subject=rendered.subject,
        text=rendered.text,
    )


def send_links(send: Send) -> list[str] | None:
    """The link targets of the message of ``send``, built again (its person as they are now);
    None when it cannot be (the person, campaign or variant is gone, or the template fails)."""
    campaign = Campaign.objects.filter(workspace_id=send.workspace_id, pk=send.campaign_id).first()
    variant = (
        Variant.objects.filter(workspace_id=send.workspace_id, pk=send.variant_id).first() if send.variant_id else None
    )
    person = Person.objects.filter(workspace_id=send.workspace_id, pk=send.person_id).first()
    if campaign is None or variant is None or person is None or campaign.channel != Channel.EMAIL:
        return None
    rendered_for = person_context(person)
    try:
        rendered = render_variant(
            variant=variant, channel=Channel.EMAIL, person=rendered_for, event_properties=_event_properties(send)
        )
    except RenderFailed:
        return None
    return links_tracked(rendered.html, send)[1]


# -- senders ----------------------------------------------------------------------------


class ChannelSender(Protocol):
    def send(self, outgoing: Outgoing) -> None: ...


def _smtp_failure(error: smtplib.SMTPException) -> SendFailed:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        detail = "; ".join(f"{code} {message.decode(errors='replace')}" for code, message in error.recipients.values())
        return SendFailed(f"recipient refused: {detail}", permanent=all(code >= 500 for code in codes))
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        return SendFailed(f"SMTP {error.smtp_code}: {message}", permanent=error.smtp_code >= 500)
    return SendFailed(f"SMTP: {error}", permanent=False)


class _EmailMessage(EmailMultiAlternatives):
    def message(self, *args: Any, **kwargs: Any) -> Any:
        built = super().message(*args, **kwargs)
        if built.is_multipart():
            # One boundary per process (see campaigns.mime): Python's generator compiles a regular
            # expression from each message's boundary to check it against the parts.
            built.set_boundary(mime.BOUNDARY)
        return built


class EmailSender:
    """Sends a chunk's emails over one backend connection, opened at the first message.

    With Django's SMTP backend (``EMAIL_URL``), the message's bytes are written by
    ``campaigns.mime`` and given to the backend's open SMTP connection (its TLS and login as
    configured), with the envelope commands pipelined when the server offers PIPELINING
    (RFC 2920: one round trip for MAIL, RCPT and DATA). Any other backend (django-anymail's
    ESPs, the console and test backends) gets Django's message object, as it expects.

    A connection error closes the connection; the next message opens a new one.
    """

    def __init__(self) -> None:
        self._connection: Any = None
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> None:
        connection = get_connection(fail_silently=False)
        try:
            # Opened here, the backend keeps it open across ``send_messages`` calls.
            connection.open()
        except (smtplib.SMTPException, OSError) as error:
            raise SendFailed(f"cannot reach the mail server: {error}", permanent=False) from error
        self._connection = connection
        # Django's own SMTP backend (not a subclass, which may change what it sends): its connection
        # is an ``smtplib.SMTP`` to write our bytes to.
        smtp = getattr(connection, "connection", None) if type(connection) is SMTPBackend else None
        self._smtp = smtp if isinstance(smtp, smtplib.SMTP) else None
        if self._smtp is not None:
            try:
                # Its extensions (PIPELINING) are known from here on (smtplib greets lazily).
                self._smtp.ehlo_or_helo_if_needed()
            except (smtplib.SMTPException, OSError) as error:
                self.close()
                raise SendFailed(f"cannot greet the mail server: {error}", permanent=False) from error

    def send(self, outgoing: Outgoing) -> None:
        if self._connection is None:
            self._open()
        try:
            if self._smtp is not None and _smtp_writable(outgoing):
                self._send_smtp(self._smtp, outgoing)
            else:
                self._send_message(outgoing)
        except mime.HeaderRefused as error:
            raise SendFailed(f"the message cannot be written: {error}", permanent=True) from error
        except smtplib.SMTPServerDisconnected as error:
            self.close()
            raise SendFailed(f"SMTP connection lost: {error}", permanent=False) from error
        except smtplib.SMTPException as error:
            failure = _smtp_failure(error)
            if not failure.permanent:
                self.close()
            raise failure from error
        except OSError as error:
            self.close()
            raise SendFailed(f"cannot reach the mail server: {error}", permanent=False) from error
        except SendFailed:
            raise
        except Exception as error:
            esp_failure = _esp_failure(error)
            if esp_failure is error:
                raise
            raise esp_failure from error

    def _send_smtp(self, smtp: smtplib.SMTP, outgoing: Outgoing) -> None:
        """One SMTP transaction: MAIL, RCPT, DATA (pipelined when offered), then the bytes."""
        data = mime.email_bytes(
            from_header=outgoing.from_email,
            to=outgoing.recipient,
            subject=outgoing.subject,
            text=outgoing.text,
            html=outgoing.html,
            headers=outgoing.headers,
            reply_to=outgoing.reply_to,
            date=formatdate(localtime=settings.EMAIL_USE_LOCALTIME),
        )
        sender = _envelope_address(outgoing.from_email)
        commands = (f"MAIL FROM:<{sender}>", f"RCPT TO:<{outgoing.recipient}>", "DATA")
        if smtp.has_extn("pipelining"):
            smtp.send("".join(f"{command}\r\n" for command in commands))
            replies = [smtp.getreply() for _ in commands]
        else:
            replies = []
            for command in commands:
                smtp.putcmd(command)
                replies.append(smtp.getreply())
                if replies[-1][0] >= 400:
                    break
        mail, rcpt, start = (replies + [(0, b"")] * 3)[:3]
        if start[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # A server that opened DATA after refusing the envelope: end the empty message first.
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail[0] != 250:
            _rset(smtp)
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
        if rcpt[0] not in (250, 251):
            _rset(smtp)
            raise smtplib.SMTPRecipientsRefused({outgoing.recipient: rcpt})
        if start[0] != 354:
            _rset(smtp)
            raise smtplib.SMTPDataError(start[0], start[1])
        # The bytes, dot-stuffed, and the end of data (as ``smtplib.SMTP.data`` writes them).
        smtp.send(re.sub(rb"(?m)^\.", b"..", data) + b".\r\n")
        code, message = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, message)

    def _send_message(self, outgoing: Outgoing) -> None:
        message = _EmailMessage(
            subject=outgoing.subject,
            body=outgoing.text,
            from_email=outgoing.from_email,
            to=[outgoing.recipient],
            reply_to=[outgoing.reply_to] if outgoing.reply_to else None,
            headers=outgoing.headers,
            connection=self._connection,
        )
        message.attach_alternative(outgoing.html, "text/html")
        # Read by django-anymail's ESP backends (ignored by SMTP): the ESP echoes the metadata in
        # its tracking webhooks, which is how a bounce finds its send.
        message.metadata = {"workspace_id": str(outgoing.workspace_id), "send_id": str(outgoing.send_id)}  # type: ignore[attr-defined]
        if not self._connection.send_messages([message]):
            raise SendFailed("the email backend sent nothing", permanent=False)

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # closing a broken connection: nothing more to learn
                logger.debug("email connection close failed", exc_info=True)
            self._connection = None
            self._smtp = None


def _smtp_writable(outgoing: Outgoing) -> bool:
    """Whether the envelope is plain ASCII (else Django's backend encodes the addresses: IDNA, SMTPUTF8)."""
    return outgoing.recipient.isascii() and _envelope_address(outgoing.from_email).isascii()


@functools.lru_cache(maxsize=256)
def _envelope_address(from_header: str) -> str:
    """The bare address of a From header (``Name <address>``); cached, it is the workspace's."""
    return parseaddr(from_header)[1]


def _rset(smtp: smtplib.SMTP) -> None:
    """Abandon the transaction so the connection can carry the next message."""
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        logger.debug("SMTP RSET failed", exc_info=True)


def _esp_failure(error: Exception) -> Exception:
    """django-anymail's errors as ``SendFailed``; anything else is re-raised as it is."""
    try:
        from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
    except ImportError:  # pragma: no cover - anymail is a dependency
        return error
    if isinstance(error, AnymailRecipientsRefused):
        return SendFailed(f"recipient refused: {error}", permanent=True)
    if isinstance(error, AnymailAPIError):
        status = error.status_code
        permanent = status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429)
        return SendFailed(f"ESP: {error}", permanent=permanent)
    if isinstance(error, AnymailError):
        return SendFailed(f"ESP: {error}", permanent=False)
    return error


class WebhookSender:
    """POSTs each message through the SSRF-safe transport, over kept-alive connections
    (``core.transport.Poster``: a target is checked when its connection is opened)."""

    def __init__(self) -> None:
        self._poster = transport.Poster(allow_private=bool(settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS))

    def send(self, outgoing: Outgoing) -> None:
        try:
            answer = self._poster.post(outgoing.recipient, outgoing.body, outgoing.headers)
        except transport.HostNotFound as error:
            raise SendFailed(str(error), permanent=False) from error
        except transport.TargetRefused as error:
            raise SendFailed(str(error), permanent=True) from error
        except (OSError, http.client.HTTPException) as error:
            raise SendFailed(f"{type(error).__name__}: {error}", permanent=False) from error
        if 200 <= answer.status < 300:
            return
        permanent = 400 <= answer.status < 500 and answer.status not in (408, 409, 425, 429)
        raise SendFailed(f"the endpoint answered {answer.status}", permanent=permanent)

    def close(self) -> None:
        self._poster.close()


class OnsiteSender:
    """On-site messages leave nothing here: the sent row is the message the site shows when the
    snippet asks for it (``campaigns.onsite``), rendered then for the person as they are."""

    def send(self, outgoing: Outgoing) -> None:
        pass

    def close(self) -> None:
        pass


@contextmanager
def channel_sender(*, channel: str, workspace: Workspace | int) -> Iterator[ChannelSender]:
    """A sender for one chunk of ``channel`` messages of ``workspace``; its connection is closed after."""
    sender: EmailSender | WebhookSender | OnsiteSender
    if channel == Channel.EMAIL:
        sender = EmailSender()
    elif channel == Channel.WEBHOOK:
        sender = WebhookSender()
    else:
        sender = OnsiteSender()
    try:
        yield sender
    finally:
        sender.close()
