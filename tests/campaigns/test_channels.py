"""Channels: the message built for a send, and the senders that deliver it (real SMTP sink, real HTTP server)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.tenancy import workspace_scope
from campaigns import engagement
from campaigns.channels import (
    Outgoing,
    SendFailed,
    channel_sender,
    message_build,
    person_context,
    recipient_for,
    webhook_secret,
)
from campaigns.models import Variant
from campaigns.rendering import PersonContext, RenderFailed
from core import signing
from tests.campaigns.channels_support import (
    campaign_with_variant,
    free_port,
    http_receiver,
    send_for,
    settings_row,
    smtp_sink,
)
from tests.tracking.builders import person as make_person

BODY = (
    "<html><body><h1>Hi {{ person.traits.first_name | default('there') }}</h1>"
    '<p><a href="https://shop.example/cart?u={{ person.user_id }}&amp;src=mail">Your cart</a> '
    "<a href='https://shop.example/help'>help</a> <a href=\"mailto:help@shop.example\">write</a> "
    '<a href="#top">top</a> <a href="https://shop.example/cart?u={{ person.user_id }}&amp;src=mail">again</a></p>'
    "</body></html>"
)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.images.append(values["src"] or "")


def _parsed(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


@pytest.fixture
def public_url(settings):
    settings.PUBLIC_URL = "https://cohortly.example.com"
    return settings.PUBLIC_URL


def _email_setup(workspace, *, traits=None, body=BODY, **settings_values):
    ada = make_person(workspace, user_id="ada", traits=traits or {"first_name": "Ada", "email": " Ada@Example.COM "})
    campaign, variant = campaign_with_variant(workspace, subject="Hello {{ person.traits.first_name }}", body=body)
    send = send_for(workspace, campaign, variant, ada, recipient="ada@example.com", state="claimed")
    row = settings_row(workspace, **settings_values)
    return ada, campaign, variant, send, row


def _build(send, campaign, variant, person, row) -> Outgoing:
    return message_build(send=send, campaign=campaign, variant=variant, person=person_context(person), settings_row=row)


def test_recipient_for_email_is_the_normalised_email_trait_or_none():
    variant = Variant()
    assert recipient_for("email", PersonContext(1, None, {"email": "  Ada@Example.COM "}), variant) == "ada@example.com"
    for traits in ({}, {"email": ""}, {"email": "not an address"}, {"email": 12}, {"email": None}):
        assert recipient_for("email", PersonContext(1, None, traits), variant) is None


def test_recipient_for_a_webhook_is_its_url_rendered_for_the_person():
    variant = Variant(url="https://hooks.example.com/people/{{ person.user_id }}")
    assert recipient_for("webhook", PersonContext(1, "ada", {}), variant) == "https://hooks.example.com/people/ada"


def test_an_email_leaves_multipart_with_sender_headers_tracked_links_and_pixel(db, workspace, public_url):
    # Given a send of an email campaign, and the workspace's sender
    ada, campaign, variant, send, row = _email_setup(
        workspace, from_email="news@shop.example", from_name="Shop News", reply_to="help@shop.example"
    )
    with workspace_scope(workspace):
        outgoing = message_build(
            send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row
        )
    # When it is sent to a real SMTP server
    with smtp_sink() as sink, pytest.MonkeyPatch.context() as patch:
        from django.conf import settings

        for name, value in sink.email_settings().items():
            patch.setattr(settings, name, value)
        with channel_sender(channel="email", workspace=workspace) as sender:
            sender.send(outgoing)
        [message] = sink.wait_for(1)

    # Then it is multipart text + HTML from the workspace's sender, to her address
    assert message["From"] == "Shop News <news@shop.example>"
    assert message["To"] == "ada@example.com"
    assert message["Reply-To"] == "help@shop.example"
    assert message["Subject"] == "Hello Ada"
    assert message.get_content_type() == "multipart/alternative"
    # with the send's Message-ID (the provider's idempotency key) and RFC 8058's one-click headers
    assert message["Message-ID"] == f"<send-{send.pk}.{workspace.pk}@cohortly.example.com>"
    token = engagement.token_make(purpose="unsubscribe", workspace_id=workspace.pk, send_id=send.pk)
    # (folded, being long: unfolding leaves the fold's space)
    assert message["List-Unsubscribe"].strip() == f"<https://cohortly.example.com/e/u/{token}/>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Cohortly-Send"] == str(send.pk)
    # every http(s) link goes through the signed click redirect of this send; mailto and anchors stay
    html = message.get_body(preferencelist=("html",)).get_content()
    parsed = _parsed(html)
    cart = "https://shop.example/cart?u=ada&src=mail"
    expected_clicks = [
        engagement.click_url(send, cart),
        engagement.click_url(send, "https://shop.example/help"),
        "mailto:help@shop.example",
        "#top",
        engagement.click_url(send, cart),
        engagement.unsubscribe_url(send),
    ]
    assert parsed.hrefs == expected_clicks
    assert parse_qs(urlsplit(parsed.hrefs[0]).query) == {"u": [cart]}
    assert outgoing.links == [cart, "https://shop.example/help"]
    # and the open pixel is the last thing of the body
    assert parsed.images == [engagement.open_url(send)]
    assert re.search(r'<img src="https://cohortly.example.com/e/o/[^"]+/"[^>]*></body></html>$', html)
    # the text part is derived from the HTML, with the unsubscribe address
    text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert text == (
        "Hi Ada\n\nYour cart (https://shop.example/cart?u=ada&src=mail) help (https://shop.example/help) "
        "write (mailto:help@shop.example) top again (https://shop.example/cart?u=ada&src=mail)\n\n"
        f"--\nUnsubscribe: {engagement.unsubscribe_url(send)}\n"
    )


def test_traits_holding_html_are_escaped_in_the_html_email(db, workspace, public_url):
    ada, campaign, variant, send, row = _email_setup(
        workspace, traits={"first_name": "<img src=x onerror=alert(1)>", "email": "ada@example.com"}
    )
    with workspace_scope(workspace):
        outgoing = message_build(
            send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row
        )
    assert "<h1>Hi &lt;img src=x onerror=alert(1)&gt;</h1>" in outgoing.html
    assert "<img src=x" not in outgoing.html


def test_the_sender_falls_back_to_the_default_from_address(db, workspace, settings, public_url):
    settings.DEFAULT_FROM_EMAIL = "Cohortly <no-reply@cohortly.example.com>"
    ada, campaign, variant, send, row = _email_setup(workspace)
    with workspace_scope(workspace):
        outgoing = message_build(
            send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row
        )
    assert outgoing.from_email == "Cohortly <no-reply@cohortly.example.com>"
    assert outgoing.reply_to == ""
    row.from_name = "Shop"
    assert message_build(
        send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row
    ).from_email == ("Shop <no-reply@cohortly.example.com>")


def test_a_template_failing_for_one_person_fails_their_message_with_the_reason(db, workspace):
    ada, campaign, variant, send, row = _email_setup(workspace, body="<p>{{ 10 / person.traits.zero }}</p>")
    with workspace_scope(workspace), pytest.raises(RenderFailed) as failed:
        message_build(send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row)
    assert failed.value.reason == "body: UndefinedError: 'dict object' has no attribute 'zero'"


def _outgoing(index: int, recipient: str) -> Outgoing:
    return Outgoing(
        send_id=index,
        workspace_id=1,
        channel="email",
        recipient=recipient,
        subject=f"Message {index}",
        html=f"<p>{index}</p>",
        text=str(index),
        from_email="news@shop.example",
        headers={"Message-ID": f"<send-{index}.1@test>"},
    )


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_chunk_reuses_one_smtp_connection_and_classifies_refusals(settings, workspace, pipelining):
    # (with and without PIPELINING: MAIL, RCPT and DATA in one write, a refusal's transaction reset)
    with smtp_sink(pipelining=pipelining) as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        sink.refuse = {"gone@example.com": "550 5.1.1 no such user", "full@example.com": "452 4.2.2 mailbox full"}
        # Given a chunk of five messages, two of them to refused recipients
        failures: dict[str, tuple[str, bool]] = {}
        with channel_sender(channel="email", workspace=workspace) as sender:
            for index, address in enumerate(
                ["a@example.com", "gone@example.com", "b@example.com", "full@example.com", "c@example.com"]
            ):
                try:
                    sender.send(_outgoing(index, address))
                except SendFailed as failed:
                    failures[address] = (failed.reason, failed.permanent)
        # Then the three others arrived, over the connections the refusals left usable
        messages = sink.wait_for(3)
        assert [m["To"] for m in messages] == ["a@example.com", "b@example.com", "c@example.com"]
        # a 5xx refusal is permanent, a 4xx one transient (its connection is reopened)
        assert failures == {
            "gone@example.com": ("recipient refused: 550 5.1.1 no such user", True),
            "full@example.com": ("recipient refused: 452 4.2.2 mailbox full", False),
        }
        assert sink.sessions == 2


def test_an_unreachable_mail_server_is_a_transient_failure(settings, workspace):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    with channel_sender(channel="email", workspace=workspace) as sender, pytest.raises(SendFailed) as failed:
        sender.send(_outgoing(1, "a@example.com"))
    assert failed.value.permanent is False
    assert failed.value.reason.startswith("cannot reach the mail server: [Errno 111] Connection refused")


WEBHOOK_BODY = (
    '{"user": "{{ person.user_id }}", "name": "{{ person.traits.first_name }}", '
    '"sku": {{ event.properties.sku | tojson }}, "tags": {{ person.traits.tags | tojson }}}'
)


def _webhook(workspace, receiver, *, body=WEBHOOK_BODY, path="/hooks/{{ person.user_id }}"):
    ada = make_person(workspace, user_id="ada", traits={"first_name": 'Ada "A"', "tags": ["vip"]})
    campaign, variant = campaign_with_variant(workspace, channel="webhook", url=receiver.url(path), body=body)
    send = send_for(
        workspace, campaign, variant, ada, state="claimed", context={"event": {"properties": {"sku": "A-1"}}}
    )
    row = settings_row(workspace)
    with workspace_scope(workspace):
        outgoing = message_build(
            send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row
        )
    return send, row, outgoing


def test_a_webhook_is_a_signed_json_post_keyed_by_the_send(db, workspace, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    with http_receiver() as receiver:
        send, row, outgoing = _webhook(workspace, receiver)
        with channel_sender(channel="webhook", workspace=workspace) as sender:
            sender.send(outgoing)
        [request] = receiver.requests
    # Then the body is the rendered JSON, with the event's properties
    assert request.path == "/hooks/ada"
    assert json.loads(request.body) == {"user": "ada", "name": 'Ada "A"', "sku": "A-1", "tags": ["vip"]}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Cohortly-Send"] == str(send.pk)
    assert request.headers["Cohortly-Event"] == "campaign.message"
    # signed as segment webhooks are, with the workspace's campaign secret
    timestamp, signature = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", request.headers["Cohortly-Signature"]).groups()
    secret = webhook_secret(row)
    assert secret.startswith("whsec_")
    assert signature == signing.signature(secret, int(timestamp), request.body)


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False), (410, True), (400, True)])
def test_a_webhook_answered_with_an_error_fails_permanently_only_for_a_4xx(db, workspace, settings, status, permanent):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    with http_receiver() as receiver:
        receiver.status = status
        _, _, outgoing = _webhook(workspace, receiver)
        with channel_sender(channel="webhook", workspace=workspace) as sender, pytest.raises(SendFailed) as failed:
            sender.send(outgoing)
    assert (failed.value.reason, failed.value.permanent) == (f"the endpoint answered {status}", permanent)


def test_a_webhook_to_a_private_address_is_refused_for_good(db, workspace, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    with http_receiver() as receiver:
        _, _, outgoing = _webhook(workspace, receiver)
        with channel_sender(channel="webhook", workspace=workspace) as sender, pytest.raises(SendFailed) as failed:
            sender.send(outgoing)
        assert receiver.requests == []
    assert failed.value.permanent is True
    assert failed.value.reason == (
        "Webhooks cannot be sent to private, loopback or link-local addresses (127.0.0.1 is 127.0.0.1)."
    )


def test_a_webhook_endpoint_that_does_not_answer_is_a_transient_failure(db, workspace, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    port = free_port()
    outgoing = Outgoing(send_id=1, workspace_id=workspace.pk, channel="webhook", recipient=f"http://127.0.0.1:{port}/")
    with channel_sender(channel="webhook", workspace=workspace) as sender, pytest.raises(SendFailed) as failed:
        sender.send(outgoing)
    assert failed.value.permanent is False
    assert failed.value.reason.startswith("ConnectionRefusedError")
