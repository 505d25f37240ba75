"""The results page and Settings → Campaigns in a real browser, against a live server.

Results: the verdict, the error bars of conversion, the funnel and sends charts; the "converted"
link makes a static segment of the converters and opens it. Settings: a frequency cap added, one
deleted after its confirmation; the development outbox with a message in a sandboxed frame.
Headless Debian Chromium through Playwright; every page fails the test on a JavaScript error, a
blocked resource or a surprise dialog. Screenshots at 1440x900 and 390x844 land in tests/artifacts/,
each checked for sideways scrolling.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from playwright.sync_api import Page, expect

from accounts.tenancy import workspace_scope
from campaigns.models import FrequencyCap
from segmentation.models import Segment
from tests import factories
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.campaigns import results_support

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "marta@shop.example"
LONG_NAME = "Spring win-back for lapsed customers who bought twice last year and nothing since January"


def _signed_in(browser, watch, live_server, viewport) -> tuple[Page, object]:
    workspace = factories.WorkspaceFactory(name="Northwind Outfitters")
    factories.member(workspace, role="owner", user=factories.UserFactory(email=EMAIL))
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, EMAIL, factories.PASSWORD)
    return page, workspace


def _shot(page: Page, name: str, viewport: dict[str, int]) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    _look(page, name, viewport)


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_results_show_the_verdict_and_error_bars_and_make_the_converted_segment(browser, live_server, watch, viewport):
    page, workspace = _signed_in(browser, watch, live_server, viewport)
    name = LONG_NAME if viewport is PHONE else "Spring win-back"
    planted = results_support.campaign(workspace, name=name)

    page.goto(f"{live_server.url}/campaigns/{planted.campaign.pk}/results/")

    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator("[data-verdict]")).to_contain_text("B converts better than A: 40.0 % vs 10.0 %, p = ")
    bars = page.locator("svg.interval-chart:visible .error-bar")
    expect(bars).to_have_count(3)
    for n in range(3):
        box = bars.nth(n).bounding_box()
        assert box is not None
        assert box["width"] > 4
    expect(page.locator("svg[data-chart=funnel] rect")).to_have_count(8)
    expect(page.locator("svg[data-chart=sends] rect")).to_have_count(5)
    expect(page.locator('tr[data-group="B"] [data-col=lift]')).to_have_text("+300.0 %")
    expect(page.locator('tr[data-state="capped"] .reason')).to_have_text("at most 2 email per 1d")
    _shot(page, "campaign-results", viewport)

    page.get_by_role("button", name="Segment of people who converted").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"{name} — converted")
    with workspace_scope(workspace):
        segment = Segment.objects.get(workspace=workspace, name=f"{name} — converted")
    assert segment.is_static
    assert segment.size == 20
    expect(page).to_have_url(f"{live_server.url}/segments/{segment.pk}/")
    expect(page.locator("[data-size]")).to_have_text("20")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_settings_add_a_cap_delete_one_and_see_the_outbox(browser, live_server, watch, viewport):
    page, workspace = _signed_in(browser, watch, live_server, viewport)
    page.goto(f"{live_server.url}/settings/campaigns/")

    # A refused cap: the reason beside the field, nothing added
    page.get_by_label("At most").fill("0")
    page.get_by_label("Per", exact=True).fill("1d")
    page.get_by_role("button", name="Add cap").click()
    expect(page.locator(".cap-form .field-error")).to_have_text(["A whole number from 1 to 1000000, not 0."])

    page.get_by_label("At most").fill("2")
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Per", exact=True).fill("1d")
    page.get_by_role("button", name="Add cap").click()
    expect(page.locator(".caps-table tbody tr")).to_have_count(1)
    expect(page.locator(".caps-table .primary")).to_have_text("At most 2 per 1d")
    with workspace_scope(workspace):
        assert list(FrequencyCap.objects.filter(workspace=workspace).values_list("max", "per")) == [(2, "1d")]

    page.get_by_label("Quiet hours from").fill("21:00")
    page.get_by_label("Quiet hours until").fill("08:00")
    page.get_by_label("Timezone").fill("Europe/Paris")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Sending settings saved.")).to_be_visible()
    _shot(page, "campaign-settings", viewport)

    with watch.confirm("Delete the cap “at most 2 email per 1d”?"):
        page.get_by_role("button", name="Delete the cap at most 2 email per 1d").click()
        expect(page.get_by_text("No frequency caps")).to_be_visible()

    # The development outbox (the live server's backend is locmem, as in every test)
    message = EmailMultiAlternatives(
        "Spring sale: 20 % off", "Hello", "shop@example.com", ["ann@example.com"],
        headers={"Message-ID": f"<send-1.{workspace.pk}@cohortly.localhost>"},
    )  # fmt: skip
    message.attach_alternative(
        '<div style="font-family:sans-serif;padding:16px"><h1 style="color:#4f46e5">Spring sale</h1>'
        "<p>Twenty percent off everything until Sunday.</p></div>",
        "text/html",
    )
    mail.outbox = [message]
    page.get_by_role("link", name="Open the outbox").click()
    expect(page.locator("[data-outbox-message]")).to_have_count(1)
    frame = page.frame_locator("iframe.outbox-frame")
    expect(frame.get_by_role("heading", name="Spring sale")).to_be_visible()
    _shot(page, "campaign-outbox", viewport)
