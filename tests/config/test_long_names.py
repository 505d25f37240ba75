"""Long user-given names never widen a page: they wrap, or are cut with the whole name in a tooltip.

Headless Chromium at 1440x900 and 390x844, on every page that shows a workspace, segment, webhook,
key, member or person name, each as long as its field allows and partly without a space to break at.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts import services as account_services
from accounts.tenancy import workspace_scope
from segmentation import services as segment_services
from segmentation.webhooks import services as webhook_services
from tests import factories
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _new_context, _screenshot
from tests.accounts.test_browser import watch as watch
from tests.tracking import builders

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# As long as each field allows, with runs no line can break inside.
WORKSPACE = ("Northwind" + "Outfitters" * 9 + "International")[:100]
KEY = ("Warehouse-sync-for-the-" + "nightly" * 20)[:100]
SEGMENT = ("Customers who bought " + "handbags" * 30 + " and shoes")[:200]
WEBHOOK = ("CRM" + "synchronisation" * 20)[:200]
MEMBER_NAME = ("Maximiliana " + "Hohenzollern" * 10)[:100]
MEMBER_EMAIL = "maximiliana." + "hohenzollern" * 12 + "@example.com"
PERSON = "Ana-" + "Sofia" * 40
BUYERS = {"type": "event", "event": "Order Completed", "window": {"since": "30d"}}

# The page's width, and tables that hide columns behind a sideways scroll (stacked on phones, they
# must not; a wide table of figures may, on a phone only: ``.table-wrap:not(:has(.table-stack))``).
FITS_JS = """(phone) => ({
  scroll: document.documentElement.scrollWidth,
  width: document.documentElement.clientWidth,
  tables: [...document.querySelectorAll(phone ? '.table-wrap:has(.table-stack)' : '.table-wrap')]
    .filter((el) => el.scrollWidth > el.clientWidth + 1)
    .map((el) => `${el.querySelector('th, td')?.textContent.trim()}: ${el.scrollWidth} > ${el.clientWidth}`),
  culprits: [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1
      && ![...el.children].some((c) => c.getBoundingClientRect().right > document.documentElement.clientWidth + 1))
    .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${el.className}`),
})"""


def _overflow(page: Page, name: str, viewport: dict[str, int]) -> dict | None:
    """Screenshot the page; what sticks out sideways, if anything."""
    page.wait_for_load_state("load")
    _screenshot(page, f"long-names-{name}", viewport)
    fits = page.evaluate(FITS_JS, viewport is PHONE)
    assert fits["width"] == viewport["width"] - _scrollbar(page)
    return None if fits["scroll"] <= fits["width"] and not fits["tables"] else fits


def _scrollbar(page: Page) -> int:
    return page.evaluate("window.innerWidth - document.documentElement.clientWidth")


def _in_view_across(page: Page, locator) -> None:
    """Visible, and inside the viewport from left to right with the page scrolled down to it only:
    no table scrolled sideways to reach it."""
    expect(locator).to_be_visible()
    locator.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 100)")
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= page.evaluate("document.documentElement.clientWidth")
    assert locator.evaluate("el => el.closest('.table-wrap')?.scrollLeft ?? 0") == 0
    expect(locator).to_be_in_viewport()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_long_names_wrap_or_truncate_and_nothing_overflows(browser, live_server, watch, viewport):
    base = live_server.url
    workspace = factories.WorkspaceFactory(name=WORKSPACE)
    owner = factories.member(workspace, role="owner", user=factories.UserFactory(name=MEMBER_NAME))
    factories.member(workspace, role="admin", user=factories.UserFactory(email=MEMBER_EMAIL, name=MEMBER_NAME))
    second = factories.WorkspaceFactory(name=("Zeta" + "Staging" * 20)[:100])  # after the first in the switcher
    factories.member(second, role="owner", user=owner)
    with workspace_scope(workspace):
        account_services.api_key_create(workspace=workspace, name=KEY, actor=owner)
        segment = segment_services.segment_create(workspace=workspace, actor=owner, name=SEGMENT, definition=BUYERS)
        segment_services.segment_refresh(segment=segment)
        webhook, _ = webhook_services.webhook_create(
            workspace=workspace,
            actor=owner,
            url="https://93.184.215.14/" + "hooks/" * 60,
            segments=[segment],
            on_entered=True,
            on_exited=True,
            description=WEBHOOK,
        )
    person = builders.person(
        workspace,
        user_id="user-" + "0123456789" * 10,
        traits={"name": PERSON, "email": f"{PERSON.lower()}@example.com"},
        last_seen=timezone.now(),
    )
    builders.event(workspace, person, "Order Completed")
    with workspace_scope(workspace):
        segment_services.segment_refresh(segment=segment)

    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, base, owner.email, factories.PASSWORD)

    pages = {
        "dashboard": "/",
        "settings-workspace": "/settings/",
        "settings-members": "/settings/members/",
        "settings-api-keys": "/settings/api-keys/",
        "settings-webhooks": "/settings/webhooks/",
        "settings-webhook": f"/settings/webhooks/{webhook.pk}/",
        "settings-audit-log": "/settings/audit-log/",
        "segments": "/segments/",
        "segment": f"/segments/{segment.pk}/",
        "segment-edit": f"/segments/{segment.pk}/edit/",
        "people": "/people/",
        "person": f"/people/{person.pk}/",
    }
    overflowing = {}
    for name, path in pages.items():
        page.goto(base + path)
        if (fits := _overflow(page, name, viewport)) is not None:
            overflowing[name] = fits
    assert overflowing == {}

    # Where a name is cut to one line, its whole text is the tooltip
    expect(page.get_by_label("Workspace", exact=True)).to_have_attribute("title", WORKSPACE)
    page.goto(f"{base}/segments/{segment.pk}/edit/")
    expect(page.locator(".crumbs").get_by_role("link", name=SEGMENT)).to_have_attribute("title", SEGMENT)

    # And the buttons of a row with long names stay in sight, no table scrolled sideways
    page.goto(f"{base}/settings/api-keys/")
    _in_view_across(page, page.get_by_role("button", name=f"Revoke {KEY}"))
    page.goto(f"{base}/settings/members/")
    _in_view_across(page, page.get_by_role("button", name=f"Remove {MEMBER_EMAIL}"))
    page.goto(f"{base}/settings/webhooks/")
    _in_view_across(page, page.get_by_role("button", name="Delete webhook to https://93.184.215.14/", exact=False))
