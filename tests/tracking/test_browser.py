"""Live events in a real browser: an event sent to the tracking API shows up without a reload.

Headless Debian Chromium through Playwright's sync API against pytest-django's ``live_server``.
"""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests import factories

pytestmark = pytest.mark.browser


def _track(base_url: str, write_key: str, message: dict) -> dict:
    request = urllib.request.Request(
        f"{base_url}/v1/track",
        data=json.dumps(message).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}])
def test_new_events_appear_without_reloading(browser, live_server, viewport):
    # Given an owner on the Live events page of a workspace with no events yet
    workspace = factories.WorkspaceFactory(name="Live Shop")
    owner = factories.member(workspace, role="owner")
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", owner.email)
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/events/")
    expect(page.get_by_text("Waiting for your first event")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    # When events arrive through the tracking API
    assert _track(live_server.url, workspace.write_key, {"userId": "u-1", "event": "<b>Signed Up</b>"})["stored"] == 1

    # Then they show up within seconds, escaped, on the same page
    expect(page.locator("tr[data-event-id]")).to_have_count(1, timeout=8000)
    expect(page.locator(".event-name").first).to_have_text("<b>Signed Up</b>")
    assert _track(live_server.url, workspace.write_key, {"userId": "u-1", "event": "Order Completed"})["stored"] == 1
    expect(page.locator("tr[data-event-id]")).to_have_count(2, timeout=8000)
    expect(page.locator(".event-name").first).to_have_text("Order Completed")
    assert page.evaluate("window.__notReloaded") is True
    assert errors == []
    page.close()
