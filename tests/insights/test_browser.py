"""Insights in a real browser, against a live server with the demo shop's data.

Build a funnel, see its chart, create the drop-off segment from step 2 and open it; the retention heat
map and a cell's segment; the computed traits page after a recompute. Headless Debian Chromium through
Playwright; every page fails the test on a JavaScript error, a blocked resource or a surprise dialog.
Celery runs tasks eagerly, in the live server's requests. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import Page, expect

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from config.celery import app as celery_app
from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD
from insights import traits
from segmentation.models import Segment
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _look, _main_nav, _new_context
from tests.accounts.test_browser import watch as watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo() -> Workspace:
    call_command("seed_demo", people=160, days=45, no_progress=True, stdout=io.StringIO(), stderr=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return Workspace.objects.get(name="Demo Shop")


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _signed_in(browser, watch, live_server, viewport=LAPTOP) -> Page:
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, DEMO_EMAIL, DEMO_PASSWORD)
    return page


def _shot(page: Page, name: str, viewport: dict[str, int]) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    _look(page, name, viewport)


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_build_a_funnel_see_its_chart_and_open_the_dropoff_segment_of_step_2(
    browser, live_server, watch, demo, eager_tasks, viewport
):
    page = _signed_in(browser, watch, live_server, viewport)
    _main_nav(page, "Insights")
    expect(page.get_by_role("heading", name="Funnel")).to_be_visible()

    page.get_by_label("Step 1: event").fill("Product Viewed")
    page.get_by_label("Step 2: event").fill("Product Added")
    page.get_by_role("button", name="Add step").click()
    step3 = page.get_by_label("Step 3: event")
    expect(step3).to_be_visible()
    step3.fill("Order Completed")
    # A filter on step 2, then removed again: the form round-trips through the server.
    page.get_by_role("button", name="+ Filter").nth(1).click()
    expect(page.get_by_role("group", name="Step 2, filter 1")).to_be_visible()
    page.get_by_role("button", name="Remove this filter of step 2").click()
    expect(page.get_by_role("group", name="Step 2, filter 1")).to_have_count(0)
    page.get_by_label("Conversion window").fill("7")
    page.get_by_label("Unit").select_option("d")
    page.get_by_label("Runs starting").select_option("90d")
    page.get_by_role("button", name="Calculate", exact=True).last.click()

    chart = page.locator("svg.funnel-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("g.funnel-bar")).to_have_count(3)
    expect(page.locator("#funnel-result")).to_have_attribute("data-status", "done")
    assert "?job=" in page.url  # the result has an address of its own
    counts = [int(cell.inner_text()) for cell in page.locator(".funnel-table tbody td:nth-child(2)").all()]
    assert counts[0] >= counts[1] >= counts[2] > 0
    _shot(page, "insights-funnel", viewport)

    page.get_by_role("button", name="Create segment from people who dropped off after step 2").click()
    expect(page).to_have_url(f"{live_server.url}/segments/{_newest_segment(demo).pk}/")
    segment = _newest_segment(demo)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dropped off after Product Added")
    assert segment.definition["dropped_after"] == 2
    assert segment.definition["completed"] is False
    assert [step["event"] for step in segment.definition["steps"]] == [
        "Product Viewed",
        "Product Added",
        "Order Completed",
    ]
    assert segment.status == "fresh"  # refreshed at once (eager tasks)


def _newest_segment(workspace: Workspace) -> Segment:
    with workspace_scope(workspace):
        return Segment.objects.order_by("-pk").first()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_retention_heat_map_and_computed_traits_pages(browser, live_server, watch, demo, eager_tasks, viewport):
    with workspace_scope(demo):
        traits.computed_traits_refresh(workspace=demo)
    page = _signed_in(browser, watch, live_server, viewport)
    page.goto(f"{live_server.url}/insights/retention/")
    page.get_by_label("Start event").fill("Signed Up")
    page.get_by_label("Return event").fill("$any")
    page.get_by_label("How many").fill("6")
    page.get_by_role("button", name="Calculate").click()
    table = page.locator("table.heat-table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(6)
    _shot(page, "insights-retention", viewport)

    page.goto(f"{live_server.url}/insights/computed-traits/")
    expect(page.get_by_role("heading", name="RFM groups")).to_be_visible()
    expect(page.locator(".rfm-groups tbody tr")).to_have_count(7)
    _shot(page, "insights-computed-traits", viewport)

    if viewport is LAPTOP:
        # A cohort's cell becomes a segment of the same people.
        page.goto(f"{live_server.url}/insights/retention/")
        page.get_by_label("Start event").fill("Signed Up")
        page.get_by_label("Return event").fill("Signed Up")
        page.get_by_role("button", name="Calculate").click()
        cell = page.locator("button.heat-cell:not(.heat-size)").first
        expected = int(cell.locator(".heat-count").inner_text())
        cell.click()
        expect(page).to_have_url(f"{live_server.url}/segments/{_newest_segment(demo).pk}/")
        assert _newest_segment(demo).size == expected
