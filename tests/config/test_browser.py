"""Every page under the Content-Security-Policy, in a real browser.

Headless Debian Chromium through Playwright against pytest-django's ``live_server``. The ``watch``
fixture fails the test on anything the policy blocks (a ``securitypolicyviolation`` event or a
console message naming the policy), on JavaScript errors, broken static files and surprise dialogs.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts import services as account_services
from accounts.models import User, Workspace
from accounts.tenancy import workspace_scope
from demo.management.commands.seed_demo import DEMO_EMAIL
from segmentation.models import Segment, WebhookSubscription
from segmentation.webhooks import services as webhook_services
from tests import factories
from tests.accounts.test_browser import _log_in, _new_context
from tests.accounts.test_browser import watch as watch
from tests.config.test_security import POLICY, directives
from tests.segmentation.test_browser import _live_count, _signed_in
from tests.segmentation.test_browser import demo as demo
from tests.segmentation.test_browser import eager_tasks as eager_tasks
from tests.tracking.test_browser import _track
from tracking import services as tracking_services
from tracking.models import Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _visit(page: Page, url: str) -> None:
    """Open ``url`` and check it carries the policy (``goto`` returns once the page and its scripts have loaded)."""
    response = page.goto(url)
    assert response is not None
    assert response.status == 200, url
    assert directives(response.headers["content-security-policy"]) == POLICY, url


def test_the_watch_sees_what_the_policy_blocks(browser, live_server, watch):
    # Given a page under the policy
    page = _new_context(browser, watch).new_page()
    _visit(page, f"{live_server.url}/login/")

    # When markup with a style attribute and an inline handler is added
    page.evaluate(
        'document.body.insertAdjacentHTML(\'beforeend\', \'<p style="color: red">x</p><img src="data:," onerror="1">\')'
    )

    # Then both are blocked and reported
    expect(page.locator("p", has_text="x")).not_to_have_css("color", "rgb(255, 0, 0)")
    page.wait_for_timeout(200)
    blocked = [problem for problem in watch.problems if problem.startswith("CSP violation")]
    assert any("style-src" in problem for problem in blocked), watch.problems
    assert any("script-src" in problem for problem in blocked), watch.problems
    watch.problems.clear()


def test_every_page_runs_under_the_policy(browser, live_server, watch, demo: Workspace, eager_tasks, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    base = live_server.url
    page = _signed_in(browser, watch, live_server)

    # The builder counts live; two saved segments for the list, a segment's page and the overlap.
    for slug in ("frequent-buyers", "big-spenders"):
        _visit(page, f"{base}/segments/new/?template={slug}")
        assert _live_count(page) > 0
        page.get_by_role("button", name="Save segment").click()
        expect(page.locator("[data-size]")).to_be_visible()
    owner = User.objects.get(email=DEMO_EMAIL)
    with workspace_scope(demo):
        segments = list(Segment.objects.filter(workspace=demo).order_by("pk"))
        person = Person.objects.filter(workspace=demo).order_by("pk").first()
        assert person is not None
        webhook, _ = webhook_services.webhook_create(
            workspace=demo,
            actor=owner,
            url="http://127.0.0.1:9/hook",
            segments=None,
            on_entered=True,
            on_exited=True,
        )
        trigger = tracking_services.trigger_create(workspace=demo, actor=owner, kind="scroll")
        _, invitation_link = account_services.invitation_create(
            workspace=demo, email="new@example.com", role="viewer", actor=owner, accept_url_base=base
        )

    pages = [
        "/",
        "/people/",
        f"/people/{person.pk}/",
        "/events/",
        "/events/quarantine/",
        "/segments/",
        "/segments/new/",
        f"/segments/{segments[0].pk}/",
        f"/segments/{segments[0].pk}/edit/",
        "/campaigns/",
        "/insights/",
        "/insights/retention/",
        "/insights/computed-traits/",
        "/settings/",
        "/settings/members/",
        "/settings/invitations/",
        "/settings/api-keys/",
        "/settings/write-key/",
        "/settings/audit-log/",
        "/settings/webhooks/",
        f"/settings/webhooks/{webhook.pk}/",
        "/settings/install/",
        "/settings/triggers/",
        f"/settings/triggers/{trigger.pk}/",
        "/workspaces/new/",
    ]
    for path in pages:
        _visit(page, base + path)
    _visit(page, f"{base}/segments/overlap/?" + "&".join(f"s={segment.pk}" for segment in segments))
    # The overlap matrix shades its cells from the stylesheet's fixed scale, not style attributes.
    expect(page.locator(".overlap-matrix td.diagonal")).to_have_count(2)
    expect(page.locator(".overlap-matrix td[class*='sh-']")).to_have_count(2)
    assert page.locator("[style]").count() == 0

    # The Swagger UI page renders the API's operations.
    _visit(page, f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/api/v1/segments/").first).to_be_visible()

    # A confirm dialog still guards a destructive form.
    _visit(page, f"{base}/settings/webhooks/{webhook.pk}/")
    with watch.confirm("Rotate the secret?"):
        page.get_by_role("button", name="Rotate secret").click()
        page.wait_for_load_state("networkidle")
    with workspace_scope(demo):
        assert WebhookSubscription.objects.get(pk=webhook.pk).secret_salt != webhook.secret_salt

    # Signed out: the sign-in pages, an invitation, a 404.
    page.context.clear_cookies()
    for path in ("/login/", "/signup/", "/password-reset/", "/password-reset/sent/"):
        _visit(page, base + path)
    _visit(page, invitation_link)
    response = page.goto(f"{base}/no-such-page/")
    assert response is not None
    assert (response.status, directives(response.headers["content-security-policy"])) == (404, POLICY)


def test_a_new_workspace_waits_for_its_first_event_then_shows_it(browser, live_server, watch):
    # Given an owner of a workspace with no events, on the Live events page (htmx polls for events)
    workspace = factories.WorkspaceFactory(name="Empty Shop")
    owner = factories.member(workspace, role="owner")
    page = _new_context(browser, watch).new_page()
    _log_in(page, live_server.url, owner.email, factories.PASSWORD)
    _visit(page, live_server.url + reverse("live_events"))
    expect(page.get_by_text("Waiting for your first event")).to_be_visible()
    steps = page.locator("ol.first-steps")
    expect(steps).to_have_css("text-align", "left")
    expect(steps).to_have_css("display", "inline-block")

    # When an event arrives through the tracking API
    assert _track(live_server.url, workspace.write_key, {"userId": "u-1", "event": "Signed Up"})["stored"] == 1

    # Then htmx, without eval and without its own <style>, swaps it in
    expect(page.locator("tr[data-event-id]")).to_have_count(1, timeout=8000)
    assert page.locator("style").count() == 0
    config = json.loads(page.locator("meta[name=htmx-config]").get_attribute("content") or "")
    assert config == {"includeIndicatorStyles": False, "allowEval": False}
