"""On-site messages in a real browser: a customer's page (``tests/tracking/site_urls.py``, served from
``127.0.0.1``) embeds the snippet from the app at ``localhost``, a cross-origin setup like a real site.

The audience's people are visitors the snippet knows by their anonymous id (its ``cly_aid`` cookie);
the campaign goes through the real engine; the banner is the snippet's own, and the click goes
through the real ``/v1/messages`` endpoint into the campaign's results.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tenancy import workspace_scope
from campaigns import dispatch, fanout, selectors
from campaigns.models import Channel, Send
from segmentation import realtime
from segmentation.models import Membership, Segment
from tests import factories
from tests.campaigns.engine_support import broadcast
from tracking.models import Event, Identity, IdentityKind

pytestmark = pytest.mark.browser

SHOTS = Path("/work/wt/shots/onsite")
MESSAGE = "[data-cohortly-message]"


@pytest.fixture(autouse=True)
def _queue(settings):
    realtime.notifier.reset()
    name = f"test-onsite-browser-{uuid.uuid4().hex}"
    settings.SEGMENTS_REALTIME_QUEUE = name
    yield
    redis.Redis.from_url(settings.REDIS_URL).delete(name)
    realtime.notifier.reset()


def _visitor(workspace, anonymous_id: str, **traits: Any) -> int:
    """A visitor the tracking API has seen (as the snippet's first page view makes one)."""
    message = {"type": "identify", "anonymousId": anonymous_id, "traits": traits}
    answer = Client().generic(
        "POST",
        "/v1/batch",
        json.dumps({"batch": [message], "writeKey": workspace.write_key}),
        content_type="text/plain",
    )
    assert answer.status_code == 200
    with workspace_scope(workspace):
        return Identity.objects.get(kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id).person_id


def _until(check, what: str, page, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(100)
    return found


class Shop:
    """The customer's site in one browser context per visitor."""

    def __init__(self, browser, live_server, workspace) -> None:
        self.browser = browser
        self.workspace = workspace
        self.host = live_server.url
        self.origin = self.host.replace("localhost", "127.0.0.1")
        assert self.origin != self.host, "the site must be another origin than the app"
        self.contexts: list[Any] = []

    def visit(self, anonymous_id: str, *, viewport: dict[str, int] | None = None):
        """A page of the shop for the visitor whose snippet cookie holds ``anonymous_id``, and the
        requests it made to the app."""
        context = self.browser.new_context(viewport=viewport or {"width": 1440, "height": 900})
        self.contexts.append(context)
        context.add_cookies([{"name": "cly_aid", "value": anonymous_id, "url": self.origin}])
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        params = {"key": self.workspace.write_key, "host": self.host}
        with page.expect_response(f"{self.host}/v1/messages") as listed:
            page.goto(f"{self.origin}/_site/shop?{urlencode(params)}")
        assert listed.value.status == 200
        page.errors = errors
        page.requests = requests
        return page, listed.value.json()

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def shop(browser, live_server, transactional_db, settings):
    settings.ROOT_URLCONF = "tests.tracking.site_urls"
    shop = Shop(browser, live_server, factories.WorkspaceFactory(name="Browser Shop"))
    yield shop
    shop.close()


def _campaign(shop: Shop, members: list[int], variant: dict[str, Any]):
    workspace = shop.workspace
    with workspace_scope(workspace):
        audience = Segment.objects.create(workspace=workspace, name="Loyal", is_static=True)
        Membership.objects.bulk_create(
            [
                Membership(workspace=workspace, segment=audience, person_id=pk, entered_at=timezone.now())
                for pk in members
            ]
        )
    campaign, run = broadcast(workspace, segments=[audience], variants=[variant], channel=Channel.ONSITE, name="Spring")
    with workspace_scope(workspace):
        fanout.run_fan_out(workspace=workspace, run_id=run.pk)
    dispatch.dispatch_due()
    return campaign


def test_a_banner_is_shown_to_a_member_only_and_its_click_counts_in_the_results(shop):
    # Given Ada in the campaign's audience and Bob outside it, both known visitors of the shop
    ada = _visitor(shop.workspace, "anon-ada", first_name="Ada <script>")
    _visitor(shop.workspace, "anon-bob", first_name="Bob")
    campaign = _campaign(
        shop,
        [ada],
        {
            "name": "A",
            "weight": 1,
            "subject": "Hello {{ person.traits.first_name }}",
            "body": "Spring sale: 20 % off everything until Sunday.",
            "url": f"{shop.origin}/_site/away",
            "text": "See the sale",
            "format": "banner",
        },
    )
    with workspace_scope(shop.workspace):
        [send] = Send.objects.filter(campaign=campaign)

    # When Bob opens a page, he sees no message
    bob_page, bob_listed = shop.visit("anon-bob")
    assert bob_listed == {"messages": []}
    expect(bob_page.locator(MESSAGE)).to_have_count(0)

    # When Ada opens a page, the banner shows, its trait as text
    page, listed = shop.visit("anon-ada")
    assert [m["id"] for m in listed["messages"]] == [send.pk]
    banner = page.locator(MESSAGE)
    expect(banner).to_be_visible()
    expect(banner.locator("strong")).to_have_text("Hello Ada <script>")
    expect(banner).to_contain_text("Spring sale: 20 % off everything until Sunday.")
    expect(banner.get_by_role("link", name="See the sale")).to_have_attribute("href", f"{shop.origin}/_site/away")
    assert banner.locator("script").count() == 0
    _until(lambda: _state(shop, send)["opened_at"] is not None, "the view", page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "banner-1440x900.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "banner-390x844.png"))

    # And she clicks its link
    with page.expect_navigation():
        banner.get_by_role("link", name="See the sale").click()

    # Then the click is recorded, as an event with the campaign's ids and in the results
    _until(lambda: _state(shop, send)["clicked_at"] is not None, "the click", page)
    with workspace_scope(shop.workspace):
        clicked = list(Event.objects.filter(person_id=ada, name="Message Clicked").values_list("properties", flat=True))
        results = selectors.campaign_results(shop.workspace, campaign)
    assert [(p["campaign_id"], p["send_id"], p["url"]) for p in clicked] == [
        (campaign.pk, send.pk, f"{shop.origin}/_site/away")
    ]
    [variant] = results.variants
    assert (variant.sent, variant.opened, variant.clicked) == (1, 1, 1)
    # A clicked message is not shown again; nothing went anywhere but the app's host.
    _, again = shop.visit("anon-ada")
    assert again == {"messages": []}
    assert page.errors == bob_page.errors == []
    for request in page.requests + bob_page.requests:
        assert request.startswith((shop.host, shop.origin)), request


def test_a_dismissed_modal_stays_dismissed_on_a_phone(shop):
    # Given Ada in the audience of a modal message
    ada = _visitor(shop.workspace, "anon-ada", first_name="Ada")
    campaign = _campaign(
        shop,
        [ada],
        {
            "name": "A",
            "weight": 1,
            "subject": "A very long title that has to wrap on a narrow phone screen without overflowing",
            "body": "Join the loyalty club.\nMembers get free shipping.",
            "format": "modal",
        },
    )
    with workspace_scope(shop.workspace):
        [send] = Send.objects.filter(campaign=campaign)

    # When she opens a page on a phone, the modal fits the screen
    page, _ = shop.visit("anon-ada", viewport={"width": 390, "height": 844})
    modal = page.get_by_role("dialog")
    expect(modal).to_be_visible()
    box = modal.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "modal-390x844.png"))
    page.set_viewport_size({"width": 1440, "height": 900})
    page.screenshot(path=str(SHOTS / "modal-1440x900.png"))

    # And dismisses it with Escape (the dismiss button has the focus)
    expect(modal.get_by_role("button", name="Dismiss")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator(MESSAGE)).to_have_count(0)
    _until(lambda: _state(shop, send)["dismissed_at"] is not None, "the dismissal", page)

    # Then it is not shown on her next page, and the dismissal is an event
    again, listed = shop.visit("anon-ada", viewport={"width": 390, "height": 844})
    assert listed == {"messages": []}
    expect(again.locator(MESSAGE)).to_have_count(0)
    with workspace_scope(shop.workspace):
        names = sorted(Event.objects.filter(person_id=ada, name__startswith="Message ").values_list("name", flat=True))
    assert names == ["Message Dismissed", "Message Viewed"]


def _state(shop: Shop, send: Send) -> Any:
    with workspace_scope(shop.workspace):
        return Send.objects.filter(pk=send.pk).values("opened_at", "clicked_at", "dismissed_at").get()


def test_a_visitor_sees_the_users_message_once_identify_is_stored(shop):
    # Given Ada, known by her user id from another browser, in the audience
    message = {"type": "identify", "anonymousId": "anon-ada-laptop", "userId": "ada", "traits": {}}
    assert (
        Client()
        .generic(
            "POST",
            "/v1/batch",
            json.dumps({"batch": [message], "writeKey": shop.workspace.write_key}),
            content_type="text/plain",
        )
        .status_code
        == 200
    )
    with workspace_scope(shop.workspace):
        ada = Identity.objects.get(kind=IdentityKind.USER_ID, value="ada").person_id
    campaign = _campaign(
        shop, [ada], {"name": "A", "weight": 1, "subject": "Welcome back", "body": "Your cart is waiting."}
    )

    # When she opens the shop on a new phone, her browser is a stranger: nothing shows
    page, listed = shop.visit("anon-ada-phone", viewport={"width": 390, "height": 844})
    assert listed == {"messages": []}

    # And once she signs in (the site calls identify), the snippet asks again after it is stored
    with page.expect_response(lambda r: r.url == f"{shop.host}/v1/messages" and r.json()["messages"], timeout=20000):
        page.evaluate("cohortly.identify('ada')")

    # Then her message shows, and its view is recorded
    expect(page.locator(MESSAGE)).to_contain_text("Your cart is waiting.")
    with workspace_scope(shop.workspace):
        [send] = Send.objects.filter(campaign=campaign)
    _until(lambda: _state(shop, send)["opened_at"] is not None, "the view", page)
    assert page.errors == []
