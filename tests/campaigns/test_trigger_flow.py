"""The cart-abandonment flow end to end, with a controllable clock and a real SMTP sink.

Events come in through POST /v1/batch, ingestion notes them in the trigger inbox, the drain writes
pending sends, and the engine's dispatcher (``dispatch_due(now=...)``) sends them or cancels them
when the exit event came first. The clock is the dispatcher's ``now`` and the events' timestamps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns import dispatch, triggers
from campaigns.models import Campaign, SendState
from tests.campaigns.trigger_support import sends, triggered
from tests.tracking.conftest import basic_auth
from tracking.models import Person

ADDED, BOUGHT = "Product Added", "Order Completed"


@pytest.fixture(autouse=True)
def _fresh_event_names():
    triggers.trigger_events_forget()
    yield
    triggers.trigger_events_forget()


def _cart(workspace, *, once_per_person: bool = True, reeligible_after_seconds: int | None = None) -> Campaign:
    """Product Added → wait 30 minutes → no Order Completed in between → email; listening for two days."""
    return triggered(
        workspace,
        name="Cart abandonment",
        event=ADDED,
        delay_seconds=1800,
        exit_event=BOUGHT,
        once_per_person=once_per_person,
        reeligible_after_seconds=reeligible_after_seconds,
        launched_at=timezone.now() - timedelta(days=2),
    )


class Shop:
    """Customers' browsers: messages through the tracking API, then the inbox drained as its task does."""

    def __init__(self, client, workspace) -> None:
        self.client, self.workspace, self.sent = client, workspace, 0

    def _post(self, *messages: dict) -> None:
        response = self.client.post(
            "/v1/batch",
            {"batch": list(messages)},
            content_type="application/json",
            HTTP_AUTHORIZATION=basic_auth(self.workspace.write_key),
        )
        assert response.status_code == 200, response.content
        with workspace_scope(self.workspace):
            triggers.trigger_inbox_drain(workspace=self.workspace)

    def _id(self) -> str:
        self.sent += 1
        return f"m-{self.sent}"

    def customer(self, name: str) -> None:
        traits = {"email": f"{name}@example.com", "first_name": name.title()}
        self._post({"type": "identify", "userId": name, "traits": traits, "messageId": self._id()})

    def event(self, name: str, event: str, at: datetime, **properties) -> None:
        message = {"type": "track", "userId": name, "event": event, "properties": properties}
        self._post({**message, "timestamp": at.isoformat(), "messageId": self._id()})


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _person(workspace, name: str) -> int:
    with workspace_scope(workspace):
        return Person.objects.get(user_id=name).pk


def test_a_buyer_gets_nothing_and_a_non_buyer_one_message_after_30_minutes_once_per_person(workspace, client, smtp):
    # Given the cart-abandonment campaign, once per person, and two customers
    campaign = _cart(workspace, once_per_person=True)
    shop = Shop(client, workspace)
    shop.customer("buyer")
    shop.customer("browser")
    added = timezone.now().replace(microsecond=0) - timedelta(hours=23)

    # When both add to cart, and the buyer completes an order 10 minutes later
    shop.event("buyer", ADDED, added, sku="B-1")
    shop.event("browser", ADDED, added, sku="B-42")
    shop.event("buyer", BOUGHT, added + timedelta(minutes=10))

    # Then at 29 minutes nothing is sent
    assert dispatch.dispatch_due(now=added + timedelta(minutes=29)) == 0
    assert smtp.messages == []
    assert {s.state for s in sends(workspace, campaign)} == {SendState.PENDING}

    # When 30 minutes have passed
    dispatch.dispatch_due(now=added + timedelta(minutes=30, seconds=1))

    # Then the non-buyer has exactly one message, with the cart's item; the buyer's send was cancelled
    [message] = smtp.wait_for(1)
    assert (message["To"], message["Subject"]) == ("browser@example.com", "Hello Browser (A)")
    assert "Your cart: B-42" in _html(message)
    states = {s.person_id: (s.state, s.reason) for s in sends(workspace, campaign)}
    assert states == {
        _person(workspace, "buyer"): (SendState.CANCELLED, "exit event"),
        _person(workspace, "browser"): (SendState.SENT, ""),
    }

    # When the non-buyer adds to cart again 23 hours later, and that much time passes again
    again = added + timedelta(hours=23)
    shop.event("browser", ADDED, again, sku="B-43")
    dispatch.dispatch_due(now=again + timedelta(hours=1))

    # Then once per person means never again: still one message, no new send for them
    assert len(smtp.messages) == 1
    assert [s.person_id for s in sends(workspace, campaign)].count(_person(workspace, "browser")) == 1


def test_reeligible_after_a_day_sends_again_only_after_a_day(workspace, client, smtp):
    # Given the campaign re-eligible after a day, and a customer who never buys
    campaign = _cart(workspace, once_per_person=False, reeligible_after_seconds=86400)
    shop = Shop(client, workspace)
    shop.customer("browser")
    first = timezone.now().replace(microsecond=0) - timedelta(hours=23)

    # When they add to cart, and the reminder goes out 30 minutes later
    shop.event("browser", ADDED, first, sku="B-1")
    dispatch.dispatch_due(now=first + timedelta(minutes=31))
    assert len(smtp.wait_for(1)) == 1

    # When they add to cart again 13 hours later
    shop.event("browser", ADDED, first + timedelta(hours=13), sku="B-2")
    dispatch.dispatch_due(now=first + timedelta(hours=14))

    # Then nothing more: less than a day since the last
    assert len(smtp.messages) == 1
    assert len(sends(workspace, campaign)) == 1

    # When they add to cart 25 hours after the first
    third = first + timedelta(hours=25)
    shop.event("browser", ADDED, third, sku="B-3")
    assert dispatch.dispatch_due(now=third + timedelta(minutes=29)) == 0

    # Then a second reminder goes out 30 minutes after it, with that cart
    dispatch.dispatch_due(now=third + timedelta(minutes=30))
    [_, second] = smtp.wait_for(2)
    assert "Your cart: B-3" in _html(second)
    assert [s.state for s in sends(workspace, campaign)] == [SendState.SENT, SendState.SENT]
