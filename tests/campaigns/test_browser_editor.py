"""The campaign list and editor in a real browser (headless Debian Chromium through Playwright),
against a live server: an A/B email campaign built from the UI, its estimate equal to the API's,
a preview for a chosen person, a test message arriving at an SMTP sink started by the test, the
launch behind its confirmation, and the progress watched while the engine's tick runs in this
process. Plus a long name on a 390 px phone without sideways scrolling.

Every page fails the test on a JavaScript error, a static file that does not load, a CSP
violation or any dialog. Screenshots land in tests/artifacts/ and /work/wt/shots/ui/.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from campaigns import dispatch, fanout, services
from campaigns.models import Campaign, CampaignStatus, Suppression
from segmentation.catalogue.services import catalogue_update
from tests import factories
from tests.accounts.test_browser import ARTIFACTS, LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.campaigns.engine_support import audience

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OWNER_EMAIL = "marketing@northwind.example"
SHOTS = Path("/work/wt/shots/ui")
LONG_NAME = "Spring clearance for returning customers who bought outerwear last winter " * 2


def _shot(page: Page, name: str, viewport: dict[str, int]) -> None:
    """``_look`` (screenshot, no sideways scroll, contrast), with a copy kept for the report."""
    _look(page, name, viewport)
    if SHOTS.parent.exists():
        SHOTS.mkdir(exist_ok=True)
        source = ARTIFACTS / f"{name}-{viewport['width']}x{viewport['height']}.png"
        shutil.copy(source, SHOTS / source.name)


def _post_json(url: str, body: dict, secret: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # the local live server
        return response.status, json.loads(response.read())


def _engine_tick() -> None:
    """What the beat's tick and the tasks it queues do, run here: fan out due runs, send due
    messages, close finished runs."""
    for workspace_id, run_id in fanout.runs_due():
        with workspace_scope(workspace_id):
            fanout.run_fan_out(workspace=Workspace(pk=workspace_id), run_id=run_id)
    dispatch.dispatch_due()
    fanout.runs_finish()


def _shop(workspace):
    """30 lapsed customers: 3 without an address, 2 unsubscribed."""
    traits = []
    for n in range(30):
        person = {"name": f"Customer {n}", "plan": "pro" if n % 2 else "free"}
        if n >= 3:
            person["email"] = f"customer{n}@example.com"
        traits.append(person)
    segment, people = audience(workspace, traits, name="Lapsed customers")
    with workspace_scope(workspace):
        for n in (3, 4):
            Suppression.objects.create(workspace=workspace, address=f"customer{n}@example.com", reason="unsubscribed")
        catalogue_update(workspace=workspace, recount_traits=True, settle_seconds=0)
    return segment, people


def test_an_ab_email_campaign_from_the_ui_to_its_progress(live_server, browser, watch, smtp):
    # Given a workspace with a segment of 30 lapsed customers and its owner signed in
    base = live_server.url
    workspace = factories.WorkspaceFactory(name="Northwind Outfitters")
    factories.member(workspace, role="owner", user=factories.UserFactory(email=OWNER_EMAIL))
    secret = factories.api_key(workspace)[1]
    segment, _ = _shop(workspace)
    page = _new_context(browser, watch, LAPTOP).new_page()
    _log_in(page, base, OWNER_EMAIL, factories.PASSWORD)

    # When the campaigns page is opened: the empty state offers playbooks
    page.goto(f"{base}/campaigns/")
    expect(page.get_by_role("heading", name="Send your first campaign")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Win back lapsed customers"))).to_be_visible()
    _shot(page, "campaigns-empty", LAPTOP)

    # And a new campaign is started, to the segment
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name", exact=True).fill("Come back for spring")
    page.get_by_label("Lapsed customers").first.check()

    # Then the estimate shows each step, and equals the API's
    will_receive = page.locator("#est-will_receive")
    expect(will_receive).to_have_text("25")
    status, api_numbers = _post_json(
        f"{base}/api/v1/campaigns/estimate/",
        {"channel": "email", "audience": {"segments": [segment.pk], "exclude": []}},
        secret,
    )
    assert status == 200
    assert api_numbers == {
        "audience": 30,
        "after_exclusions": 30,
        "no_email": 3,
        "unsubscribed": 2,
        "capped_now": 0,
        "will_receive": 25,
    }
    for key, value in api_numbers.items():
        assert page.locator(f"#est-{key}").inner_text().lstrip("\u2212") == str(value), key

    # When a second variant is added and both are written, with a trait inserted by a click
    page.get_by_role("button", name="Add a variant (A/B test)").click()
    expect(page.locator("#v1-name")).to_have_value("B")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Come back for spring")
    page.locator("#v0-subject").fill("Hello ")
    page.locator("#v0-subject").focus()
    page.get_by_role("button", name="name", exact=True).click()
    expect(page.locator("#v0-subject")).to_have_value("Hello {{ person.traits.name }}")
    page.locator("#v0-body").fill("<p>Spring is here: 20 % off.</p>")
    page.locator("#v1-subject").fill("We saved you a spot")
    page.locator("#v1-body").fill("<p>New arrivals inside.</p>")
    page.locator("#c-holdout").fill("0")
    _shot(page, "campaign-editor-new", LAPTOP)
    page.get_by_role("button", name="Save draft").click()

    # Then the draft is saved and the editor shows its preview and test tools
    expect(page.get_by_text("Draft “Come back for spring” saved.")).to_be_visible()
    with workspace_scope(workspace):
        campaign = Campaign.objects.get(name="Come back for spring")
        assert list(campaign.variants.values_list("name", flat=True)) == ["A", "B"]

    # When a person is found by search and picked: the preview is rendered for them
    page.locator("#person-q").fill("customer7@")
    page.get_by_label(re.compile("Customer 7")).check()
    expect(page.locator("#preview-subject")).to_have_text("Hello Customer 7")
    expect(page.locator("#preview-person")).to_have_text("Customer 7")

    # And a test is sent to the signed-in user: it arrives at the SMTP sink
    page.get_by_role("button", name="Send me a test").click()
    expect(page.locator("#test-result")).to_contain_text(f"to {OWNER_EMAIL}")
    (test_message,) = smtp.wait_for(1)
    assert test_message["Subject"] == "[Test] Hello Customer 7"
    assert test_message["To"] == OWNER_EMAIL
    _shot(page, "campaign-editor-draft", LAPTOP)

    # When launch is asked for: the confirmation repeats the audience size, and only "Yes" launches
    page.get_by_role("button", name="Launch…").click()
    expect(page.get_by_text("Send to 25 people?")).to_be_visible()
    with workspace_scope(workspace):
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT
    page.get_by_role("button", name="Yes, launch").click()
    expect(page.locator(".camp-title .badge")).to_have_text("Sending")

    # And the engine's tick runs (here, in this process): the page's progress follows it
    for _ in range(20):
        _engine_tick()
        with workspace_scope(workspace):
            if Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT:
                break
    messages = smtp.wait_for(1 + 25)
    assert sorted(m["To"] for m in messages[1:]) == sorted(f"customer{n}@example.com" for n in range(5, 30))
    expect(page.locator("#progress-text")).to_have_text("25 sent of 30", timeout=10_000)
    _shot(page, "campaign-editor-sent", LAPTOP)

    # And the list shows it sent, with its audience and count
    page.goto(f"{base}/campaigns/")
    row = page.get_by_role("row", name=re.compile("Come back for spring"))
    expect(row).to_contain_text("Sent")
    expect(row).to_contain_text("Lapsed customers")
    expect(row).to_contain_text("25")
    _shot(page, "campaigns-list", LAPTOP)


def test_a_long_name_on_a_phone_scrolls_no_page_sideways(live_server, browser, watch):
    # Given a campaign with a long name, sending, and a draft
    base = live_server.url
    workspace = factories.WorkspaceFactory(name="Northwind Outfitters")
    factories.member(workspace, role="owner", user=factories.UserFactory(email=OWNER_EMAIL))
    segment, _ = _shop(workspace)
    with workspace_scope(workspace):
        long_one = services.campaign_create(
            workspace=workspace,
            actor=None,
            data={
                "name": LONG_NAME.strip(),
                "channel": "email",
                "kind": "broadcast",
                "audience": {"segments": [segment.pk], "exclude": []},
                "variants": [
                    {"name": "A", "weight": 1, "subject": "Hi {{ person.traits.name }}", "body": "<p>Hi</p>"},
                    {"name": "B", "weight": 1, "subject": "Hello", "body": "<p>Hello</p>"},
                ],
                "holdout_percent": 10,
                "goal": {"event": "Order Completed", "within": "3d"},
            },
        )
        services.campaign_launch(campaign=long_one, actor=None, now=timezone.now())
        services.campaign_create(
            workspace=workspace,
            actor=None,
            data={
                "name": "Cart reminder",
                "channel": "email",
                "kind": "triggered",
                "trigger": {"on": "event", "event": "Product Added", "delay": "30m", "exit_event": "Order Completed"},
                "variants": [{"name": "A", "weight": 1, "subject": "Your cart", "body": "<p>Still there</p>"}],
            },
        )
    for viewport in (PHONE, LAPTOP):
        page = _new_context(browser, watch, viewport).new_page()
        _log_in(page, base, OWNER_EMAIL, factories.PASSWORD)
        # When the list, the long campaign's editor and the triggered one's are opened
        page.goto(f"{base}/campaigns/")
        expect(page.get_by_text(LONG_NAME.strip()[:40])).to_be_visible()
        _shot(page, "campaigns-list-long", viewport)
        page.goto(f"{base}/campaigns/{long_one.pk}/")
        expect(page.locator("h1")).to_have_text(LONG_NAME.strip())
        _shot(page, "campaign-editor-long", viewport)
        page.goto(f"{base}/campaigns/")
        page.get_by_role("link", name="Cart reminder").click()
        # Then the trigger reads in words, and nothing scrolls sideways (checked by _shot)
        expect(page.locator("#trigger-words")).to_have_text("30 minutes after Product Added, unless Order Completed.")
        _shot(page, "campaign-editor-triggered", viewport)
        page.goto(f"{base}/campaigns/new/")
        _shot(page, "campaign-editor-new-empty", viewport)
        page.context.close()
