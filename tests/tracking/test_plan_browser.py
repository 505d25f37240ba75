"""The tracking plan in a real browser: edited in place with htmx, and the pages that show it
(Settings -> Data, the events catalogue, the quarantine's blocked calls) fit a laptop and a phone.

Headless Debian Chromium through Playwright against pytest-django's ``live_server``. Screenshots go
to tests/artifacts/ as the other browser tests' do.
"""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from accounts.tenancy import workspace_scope
from segmentation.catalogue.services import catalogue_update
from tests import factories
from tests.accounts.test_browser import (
    ARTIFACTS,
    CONTRAST_PROBLEMS_JS,
    LAPTOP,
    OVERFLOWING_JS,
    PHONE,
    _new_context,
    watch,  # noqa: F401 (the fixture)
)
from tracking import plan, plan_services
from tracking.models import TrackingPlan

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_EVENT = "Checkout Step Completed With A Very Long Name From An Old Mobile App Release " + "X" * 24
PLAN = {
    "block_unplanned_events": False,
    "events": {
        "Order Completed": {
            "description": "A customer paid for an order (server side, after the payment provider confirmed it).",
            "properties": {
                "revenue": {"type": "number", "required": True},
                "currency": {"type": "string", "required": True},
                "coupon": {"type": "string"},
                "items": {"type": "list"},
            },
        },
        "Signed Up": {"quarantine_violations": True, "properties": {"plan": {"type": "string", "required": True}}},
        "Product Viewed": {"properties": {"sku": {"type": "string", "required": True}, "price": {"type": "number"}}},
    },
}


def _batch(base_url: str, write_key: str, messages: list[dict]) -> dict:
    request = urllib.request.Request(
        f"{base_url}/v1/batch",
        data=json.dumps({"batch": messages}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _shop(base_url: str):
    workspace = factories.WorkspaceFactory(name="Northwind Outfitters")
    owner = factories.member(workspace, role="owner", user=factories.UserFactory(email="owner@northwind.example"))
    with workspace_scope(workspace):
        plan_services.tracking_plan_replace(workspace=workspace, actor=owner, document=plan.parse(PLAN))
    track = [
        {
            "type": "track",
            "userId": "user-1",
            "event": "Order Completed",
            "properties": {"revenue": 49.5, "currency": "EUR"},
        },
        {
            "type": "track",
            "userId": "user-2",
            "event": "Order Completed",
            "properties": {"revenue": "12.50", "currency": "EUR", "colour": "<b>red</b>"},
        },
        {"type": "track", "userId": "user-3", "event": "Order Completed", "properties": {"revenue": 20}},
        {"type": "track", "anonymousId": "anon-7f3a", "event": "Prodcut Viewed", "properties": {"sku": "B-42"}},
        {"type": "track", "userId": "user-4", "event": "Signed Up", "properties": {"plan": 3}},
        {"type": "track", "userId": "user-4", "event": "Signed Up", "properties": {"plan": "pro"}},
        {"type": "track", "userId": "user-5", "event": LONG_EVENT, "properties": {"step": 2}},
        {"type": "track", "userId": "user-1", "event": "Product Viewed", "properties": {"sku": "B-42", "price": 19}},
        {"type": "page", "userId": "user-1", "properties": {"path": "/"}},
    ]
    answer = _batch(base_url, workspace.write_key, track)
    assert (answer["stored"], answer["rejected"]) == (8, 1), answer
    with workspace_scope(workspace):
        catalogue_update(workspace=workspace, settle_seconds=0)
    return workspace, owner


def _log_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")


def _screenshot(page: Page, name: str, viewport: dict[str, int], *, full_page: bool = True) -> None:
    # caret="initial": Playwright's caret hiding leaves the page so that htmx's next swap trips the
    # Content-Security-Policy (style-src-attr), which the watch would report as the page's fault.
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}-{viewport['width']}x{viewport['height']}.png"
    page.screenshot(path=str(path), full_page=full_page, caret="initial")


def _look(page: Page, name: str, viewport: dict[str, int]) -> None:
    page.wait_for_load_state("load")
    page.evaluate("window.scrollTo(0, 0)")
    _screenshot(page, name, viewport)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        pytest.fail(
            f"{name} scrolls sideways by {overflow}px at {viewport['width']}px: {page.evaluate(OVERFLOWING_JS)}"
        )
    assert page.evaluate(CONTRAST_PROBLEMS_JS) == [], name


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_plan_is_edited_in_place_and_its_pages_fit(live_server, browser, watch, viewport):  # noqa: F811
    base = live_server.url
    workspace, owner = _shop(base)
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, base, owner.email)

    # The catalogue: every event with its plan status, long names wrapped
    page.goto(f"{base}/events/catalogue/")
    expect(page.locator("tr[data-event]")).to_have_count(6)
    expect(page.get_by_role("link", name="Unplanned").first).to_be_visible()
    _look(page, "event-catalogue", viewport)

    # The quarantine's calls blocked by the plan
    page.goto(f"{base}/events/quarantine/?kind=plan")
    expect(page.get_by_text("Tracking plan: property “plan” should be a string, not a number").first).to_be_visible()
    _look(page, "quarantine-blocked-by-plan", viewport)

    # The Data tab: the plan, its counts and examples
    page.goto(f"{base}/settings/data/")
    order = page.locator("section.plan-event", has=page.get_by_role("heading", name="Order Completed"))
    expect(order.get_by_role("link", name="3 violations")).to_be_visible()
    order.get_by_text("Latest examples (2)").click()
    expect(order.get_by_text("property “revenue” should be a number, not a string")).to_be_visible()
    expect(order.get_by_text('"colour": "<b>red</b>"')).to_be_visible()
    _look(page, "settings-data", viewport)

    # A property added, then a type changed, without a reload (htmx)
    page.evaluate("window.__notReloaded = true")
    order.get_by_label("Property").fill("shipping")
    order.get_by_label("Type", exact=True).select_option("number")
    order.get_by_role("button", name="Add property").click()
    expect(order.get_by_text("Property “shipping” added to “Order Completed”.")).to_be_visible()
    expect(order.locator("code.plan-key", has_text="shipping")).to_be_visible()
    order.get_by_label("Type of coupon").select_option("list")
    order.get_by_role("button", name="Save coupon").click()
    expect(order.get_by_text("“coupon” of “Order Completed”: list, optional.")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True
    with workspace_scope(workspace):
        saved = plan.parse(TrackingPlan.objects.get(workspace=workspace).document).event("Order Completed")
    assert saved is not None
    assert [(p.name, p.type) for p in saved.properties if p.name in ("coupon", "shipping")] == [
        ("coupon", "list"),
        ("shipping", "number"),
    ]

    # A refused import lists its problems
    page.get_by_label("Or paste the JSON").fill('{"events": {"A": {"properties": {"p": {"type": "int"}}}}}')
    with watch.confirm("Replace the whole plan"):
        page.get_by_role("button", name="Replace the plan").click()
    expect(
        page.get_by_text('events["A"].properties["p"].type: One of string, number, boolean, object, list, not "int".')
    ).to_be_visible()
    pasted = page.get_by_label("Or paste the JSON")
    expect(pasted).to_be_focused()
    expect(pasted).to_have_attribute("aria-invalid", "true")
    _screenshot(page, "settings-data-import-refused", viewport, full_page=False)
