"""Engagement: opens, clicks, unsubscribes and ESP bounces become events on the person and suppressions;
and campaigns' part of a person's merge, erasure and export."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import redis
from django.test import Client
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns import engagement
from campaigns.channels import message_build, person_context
from campaigns.models import Send, Suppression, TriggerInbox
from segmentation import realtime
from segmentation.models import Membership, Segment, SegmentStatus
from tests import factories
from tests.campaigns.channels_support import campaign_with_variant, send_for, settings_row
from tests.tracking.builders import person as make_person
from tracking import events as tracking_events
from tracking.models import Event, Person
from tracking.people_services import person_erase
from tracking.services import person_event_record

CART = "https://shop.example/cart?u=ada&src=mail"
BODY = (
    "<p>Hi {{ person.traits.first_name }}</p>"
    '<a href="https://shop.example/cart?u={{ person.user_id }}&amp;src=mail">cart</a>'
    '<a href="https://shop.example/help">help</a>'
)


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PUBLIC_URL = "http://testserver"


@pytest.fixture(autouse=True)
def _queue(settings):
    """Real-time kicks go to a queue of the test's own, emptied after."""
    realtime.notifier.reset()
    name = f"test-campaigns-{uuid.uuid4().hex}"
    settings.SEGMENTS_REALTIME_QUEUE = name
    yield
    redis.Redis.from_url(settings.REDIS_URL).delete(name)
    realtime.notifier.reset()


def _sent(workspace, *, user_id="ada", email="ada@example.com"):
    """A sent email of a campaign to a person, and the links of the message they got."""
    ada = make_person(workspace, user_id=user_id, traits={"first_name": "Ada", "email": email})
    campaign, variant = campaign_with_variant(workspace, subject="Hi", body=BODY)
    send = send_for(workspace, campaign, variant, ada, recipient=email)
    with workspace_scope(workspace):
        row = settings_row(workspace)
        outgoing = message_build(
            send=send, campaign=campaign, variant=variant, person=person_context(ada), settings_row=row
        )
    return ada, campaign, send, outgoing


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _events(workspace, person) -> list[tuple[str, dict]]:
    with workspace_scope(workspace):
        return list(Event.objects.filter(person_id=person.pk).order_by("id").values_list("name", "properties"))


def _state(workspace) -> dict:
    with workspace_scope(workspace):
        return {
            "sends": list(Send.objects.order_by("id").values_list("id", "opened_at", "clicked_at", "state")),
            "suppressions": list(Suppression.objects.order_by("id").values_list("address", "reason")),
            "events": list(Event.objects.order_by("id").values_list("name", "person_id")),
        }


def _properties(campaign, send, **more) -> dict:
    return {
        "campaign_id": campaign.pk,
        "campaign": campaign.name,
        "variant": "A",
        "send_id": send.pk,
        "channel": "email",
        **more,
    }


# -- the tracking service --------------------------------------------------------------


def test_person_event_record_stores_an_event_on_the_person_once_per_message_id(db, workspace):
    ada = make_person(workspace, user_id="ada")
    visitor = make_person(workspace, anonymous_ids=("anon-1",))
    ghost_id = 10**12
    with workspace_scope(workspace):
        # Given people known by a user id or by an anonymous id only
        kwargs = {"workspace": workspace, "event": "Email Opened", "properties": {"send_id": 1}}
        # When an event is recorded for each, twice with the same message id
        assert person_event_record(person_id=ada.pk, message_id="m-1", **kwargs) is True
        assert person_event_record(person_id=ada.pk, message_id="m-1", **kwargs) is False
        assert person_event_record(person_id=visitor.pk, message_id="m-2", **kwargs) is True
        # and for a person who does not exist
        assert person_event_record(person_id=ghost_id, message_id="m-3", **kwargs) is False
    # Then each has one event, made by ingestion under the id it knows them by
    with workspace_scope(workspace):
        stored = list(
            Event.objects.order_by("id").values_list("person_id", "name", "properties", "user_id", "anonymous_id")
        )
    assert stored == [
        (ada.pk, "Email Opened", {"send_id": 1}, "ada", None),
        (visitor.pk, "Email Opened", {"send_id": 1}, None, "anon-1"),
    ]


def test_a_recorded_event_moves_the_person_into_segments_in_real_time(
    db, workspace, client, django_capture_on_commit_callbacks
):
    # Given a segment of people who opened an email
    ada, _campaign, send, _outgoing = _sent(workspace)
    with workspace_scope(workspace):
        openers = Segment.objects.create(
            workspace=workspace,
            name="Openers",
            definition={"type": "event", "event": "Email Opened"},
            status=SegmentStatus.FRESH,
            refreshed_at=timezone.now(),
        )
    pixel = _path(engagement.open_url(send))
    # When she opens the email, and real time drains its queue
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(pixel).status_code == 200
    with workspace_scope(workspace):
        realtime.workspace_drain(workspace=workspace)
        # Then she is a member
        assert list(Membership.objects.filter(segment=openers).values_list("person_id", flat=True)) == [ada.pk]


# -- opens -------------------------------------------------------------------------------


def test_the_open_pixel_records_the_first_open_once(db, workspace, client):
    ada, campaign, send, outgoing = _sent(workspace)
    pixel = _path(engagement.open_url(send))
    assert f'<img src="http://testserver{pixel}"' in outgoing.html
    # When the pixel is loaded twice
    first = client.get(pixel)
    with workspace_scope(workspace):
        opened_at = Send.objects.get(pk=send.pk).opened_at
    second = client.get(pixel)
    # Then both answer the GIF, uncached
    for answer in (first, second):
        assert answer.status_code == 200
        assert answer["Content-Type"] == "image/gif"
        assert answer.content.startswith(b"GIF89a")
        assert "no-cache" in answer["Cache-Control"]
    # and the first open alone is recorded
    with workspace_scope(workspace):
        assert opened_at is not None
        assert Send.objects.get(pk=send.pk).opened_at == opened_at
    assert _events(workspace, ada) == [("Email Opened", _properties(campaign, send))]


# -- clicks ------------------------------------------------------------------------------


def test_a_click_records_clicked_at_and_the_url_then_redirects(db, workspace, client):
    ada, campaign, send, outgoing = _sent(workspace)
    assert outgoing.links == [CART, "https://shop.example/help"]
    link = _path(engagement.click_url(send, CART))
    # When she clicks the cart link twice and the help link once
    answers = [client.get(link), client.get(link), client.get(_path(engagement.click_url(send, outgoing.links[1])))]
    # Then each is redirected where the message pointed
    assert [(a.status_code, a["Location"]) for a in answers] == [
        (302, CART),
        (302, CART),
        (302, "https://shop.example/help"),
    ]
    with workspace_scope(workspace):
        refreshed = Send.objects.get(pk=send.pk)
    assert refreshed.clicked_at is not None
    # the click proves the open the pixel did not see; one click event per link
    assert refreshed.opened_at == refreshed.clicked_at
    assert _events(workspace, ada) == [
        ("Email Opened", _properties(campaign, send)),
        ("Email Clicked", _properties(campaign, send, url=CART)),
        ("Email Clicked", _properties(campaign, send, url="https://shop.example/help")),
    ]


def test_the_redirector_is_not_open(db, workspace, client):
    _ada, _campaign, send, _outgoing = _sent(workspace)
    before = _state(workspace)
    token = urlsplit(engagement.click_url(send, CART)).path.split("/")[3]
    # A target swapped under a valid token: the signature does not match
    swapped = client.get(f"/e/c/{token}/?u=https://evil.example/")
    assert (swapped.status_code, swapped.json()) == (404, {"detail": "This link is not valid.", "code": "not_found"})
    # A signed target that is not a link of the message (as if the key had leaked)
    forged = engagement.token_make(
        purpose="click", workspace_id=workspace.pk, send_id=send.pk, target="https://evil.example/"
    )
    foreign = client.get(f"/e/c/{forged}/?u=https://evil.example/")
    assert foreign.status_code == 400
    assert foreign.json() == {
        "detail": "This address is not a link of the message.",
        "code": "invalid",
        "errors": {"u": ["This address is not a link of the message."]},
    }
    # No target at all
    assert client.get(f"/e/c/{token}/").json()["errors"] == {"u": ["The link has no target."]}
    # And nothing was recorded
    assert _state(workspace) == before


@pytest.mark.parametrize(
    "path",
    [
        "/e/o/garbage/",
        "/e/o/1-1.AAAA/",
        "/e/c/1-1-abc.AAAA/?u=https://shop.example/",
        "/e/u/nonsense/",
        "/e/u/%00%ff/",
    ],
)
def test_forged_tokens_answer_404_and_change_nothing(db, workspace, client, path):
    _sent(workspace)
    before = _state(workspace)
    answer = client.get(path)
    assert answer.status_code == 404
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code in (404, 405)
    assert _state(workspace) == before


def test_a_token_made_for_one_purpose_is_refused_by_another(db, workspace, client):
    _ada, _campaign, send, _outgoing = _sent(workspace)
    open_token = urlsplit(engagement.open_url(send)).path.split("/")[3]
    before = _state(workspace)
    assert client.get(f"/e/u/{open_token}/").status_code == 404
    assert client.post(f"/e/u/{open_token}/", {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert _state(workspace) == before


def test_links_of_a_send_that_is_gone_answer_404(db, workspace, client):
    _ada, _campaign, send, _outgoing = _sent(workspace)
    links = [engagement.open_url(send), engagement.click_url(send, CART), engagement.unsubscribe_url(send)]
    with workspace_scope(workspace):
        Send.objects.filter(pk=send.pk).delete()
    # the pixel still answers its image (a mail client shows no broken picture); the others 404
    assert [client.get(_path(link)).status_code for link in links] == [200, 404, 404]


# -- unsubscribes ------------------------------------------------------------------------


def test_the_unsubscribe_page_asks_before_unsubscribing(db, workspace, client):
    _ada, _campaign, send, _outgoing = _sent(workspace)
    before = _state(workspace)
    page = client.get(_path(engagement.unsubscribe_url(send)))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Stop emails from" in html
    assert "<strong>ada@example.com</strong>" in html
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in html
    assert _state(workspace) == before


def test_one_click_unsubscribe_suppresses_the_address_and_records_the_event_once(db, workspace):
    ada, campaign, send, outgoing = _sent(workspace)
    # The address the List-Unsubscribe header names, posted as RFC 8058 says (no session, no CSRF token)
    header = outgoing.headers["List-Unsubscribe"]
    assert outgoing.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    provider = Client(enforce_csrf_checks=True)
    url = _path(header.strip("<>"))
    first = provider.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    again = provider.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert (first.status_code, again.status_code) == (200, 200)
    assert "You are unsubscribed" in first.content.decode()
    with workspace_scope(workspace):
        assert list(Suppression.objects.values_list("address", "reason", "person_id", "campaign_id")) == [
            ("ada@example.com", "unsubscribed", ada.pk, campaign.pk)
        ]
    assert _events(workspace, ada) == [("Unsubscribed", _properties(campaign, send))]
    # and the page now says so
    assert "You are unsubscribed" in provider.get(url).content.decode()


def test_a_post_without_the_one_click_body_is_refused_and_changes_nothing(db, workspace, client):
    _ada, _campaign, send, _outgoing = _sent(workspace)
    before = _state(workspace)
    answer = client.post(_path(engagement.unsubscribe_url(send)), {"List-Unsubscribe": "Maybe"})
    assert answer.status_code == 400
    assert "Send List-Unsubscribe=One-Click to unsubscribe." in answer.content.decode()
    assert _state(workspace) == before


# -- bounces and complaints from an ESP (django-anymail's Postmark tracking webhook) ----


def _postmark(client, payload: dict, *, auth: str = "hooks:s3cret"):
    return client.post(
        "/anymail/postmark/tracking/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
    )


@pytest.fixture
def anymail_secret(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret"}


def test_a_hard_bounce_suppresses_the_address_with_an_event(db, workspace, client, anymail_secret):
    ada, campaign, send, _outgoing = _sent(workspace)
    payload = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "ID": 4323372036854775807,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": "ada@example.com",
        "Metadata": {"workspace_id": str(workspace.pk), "send_id": str(send.pk)},
        "BouncedAt": "2026-01-05T16:09:19Z",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
    }
    assert _postmark(client, payload).status_code == 200
    assert _postmark(client, payload).status_code == 200
    with workspace_scope(workspace):
        assert list(Suppression.objects.values_list("address", "reason")) == [("ada@example.com", "bounced")]
        [(name, properties, timestamp)] = Event.objects.filter(person_id=ada.pk).values_list(
            "name", "properties", "timestamp"
        )
    assert (name, properties) == ("Email Bounced", _properties(campaign, send))
    assert timestamp.isoformat() == "2026-01-05T16:09:19+00:00"


def test_a_complaint_without_metadata_finds_the_latest_send_to_the_address(db, workspace, client, anymail_secret):
    ada, _campaign, _send, _outgoing = _sent(workspace)
    payload = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Email": "ADA@example.com", "ID": 42}
    assert _postmark(client, payload).status_code == 200
    with workspace_scope(workspace):
        assert list(Suppression.objects.values_list("address", "reason")) == [("ada@example.com", "complained")]
    assert [name for name, _ in _events(workspace, ada)] == ["Email Complained"]


def test_the_esp_webhook_refuses_a_caller_without_the_secret(db, workspace, client, anymail_secret):
    _ada, _campaign, _send, _outgoing = _sent(workspace)
    before = _state(workspace)
    payload = {"RecordType": "Bounce", "Type": "HardBounce", "Email": "ada@example.com", "ID": 1}
    assert _postmark(client, payload, auth="hooks:guess").status_code == 400
    assert _state(workspace) == before


@pytest.mark.filterwarnings("ignore:Your Anymail webhooks are insecure")
def test_without_a_webhook_secret_esp_events_are_ignored(db, workspace, client, settings):
    settings.ANYMAIL = {}
    _ada, _campaign, _send, _outgoing = _sent(workspace)
    before = _state(workspace)
    payload = {"RecordType": "Bounce", "Type": "HardBounce", "Email": "ada@example.com", "ID": 1}
    assert _postmark(client, payload, auth="any:thing").status_code == 200
    assert _state(workspace) == before


# -- people: merges, erasures, exports ---------------------------------------------------


def test_a_merge_moves_the_losers_sends_except_an_occurrence_the_survivor_already_has(db, workspace):
    survivor, survivor_campaign, survivor_send, _ = _sent(workspace, user_id="ada", email="ada@example.com")
    loser = make_person(workspace, user_id="ada-old", traits={"email": "old@example.com"})
    campaign, variant = campaign_with_variant(workspace, body="x")
    # the same occurrence of the survivor's campaign, and another campaign's send
    duplicate = send_for(workspace, survivor_campaign, variant, loser, recipient="old@example.com")
    moved = send_for(workspace, campaign, variant, loser, recipient="old@example.com")
    with workspace_scope(workspace):
        Suppression.objects.create(workspace=workspace, address="old@example.com", reason="bounced", person_id=loser.pk)
        TriggerInbox.objects.create(
            workspace=workspace, person_id=loser.pk, event="Product Added", noted_at=timezone.now()
        )
        # When tracking tells campaigns of the merge
        tracking_events.person_merged(workspace.pk, loser.pk, survivor.pk)
        # Then
        assert dict(Send.objects.values_list("id", "person_id")) == {
            survivor_send.pk: survivor.pk,
            moved.pk: survivor.pk,
        }
        assert not Send.objects.filter(pk=duplicate.pk).exists()
        assert list(Suppression.objects.values_list("person_id", flat=True)) == [survivor.pk]
        assert list(TriggerInbox.objects.values_list("person_id", flat=True)) == [survivor.pk]


def test_an_erasure_removes_the_persons_sends_suppressions_and_triggers(db, workspace):
    owner = factories.member(workspace, role="owner")
    ada, _campaign, send, _ = _sent(workspace)
    bob, _, bob_send, _ = _sent(workspace, user_id="bob", email="bob@example.com")
    with workspace_scope(workspace):
        engagement.send_unsubscribed(send=send)
        engagement.send_unsubscribed(send=bob_send)
        # a suppression of her address made by hand, without her id
        Suppression.objects.filter(address="ada@example.com").update(person_id=None, reason="manual")
        TriggerInbox.objects.create(
            workspace=workspace, person_id=ada.pk, event="Product Added", noted_at=timezone.now()
        )
        erasure = person_erase(workspace=workspace, person=ada, actor=owner)
    assert erasure is not None
    with workspace_scope(workspace):
        assert list(Send.objects.values_list("person_id", flat=True)) == [bob.pk]
        assert list(Suppression.objects.values_list("address", flat=True)) == ["bob@example.com"]
        assert not TriggerInbox.objects.exists()


def test_the_export_lists_the_messages_campaigns_sent_the_person(db, workspace, client):
    ada, campaign, send, _outgoing = _sent(workspace)
    client.get(_path(engagement.open_url(send)))
    client.post(_path(engagement.unsubscribe_url(send)), {"List-Unsubscribe": "One-Click"})
    from campaigns.people import person_export

    with workspace_scope(workspace):
        refreshed = Send.objects.get(pk=send.pk)
        suppression = Suppression.objects.get()
        section = person_export(workspace, Person.objects.get(pk=ada.pk))
    assert section == {
        "active_hours": None,
        "campaign_messages": [
            {
                "id": send.pk,
                "campaign": campaign.name,
                "campaign_id": campaign.pk,
                "variant": "A",
                "channel": "email",
                "occurrence": "run:1",
                "state": "sent",
                "reason": "",
                "recipient": "ada@example.com",
                "due_at": refreshed.due_at,
                "sent_at": refreshed.sent_at,
                "opened_at": refreshed.opened_at,
                "clicked_at": None,
            }
        ],
        "email_suppressions": [
            {
                "address": "ada@example.com",
                "reason": "unsubscribed",
                "campaign_id": campaign.pk,
                "created_at": suppression.created_at,
            }
        ],
    }
    assert refreshed.opened_at is not None
    assert refreshed.opened_at > timezone.now() - timedelta(minutes=5)
