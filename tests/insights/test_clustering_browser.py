"""The suggested segments page in a real browser (headless Debian Chromium through Playwright).

A run under way shows its progress and polls; when the worker (here the test itself) finishes it,
the page reloads itself into the results. From a cluster's card, a rule-based segment is made and
its page opens. Every page fails the test on a JavaScript error, a blocked resource or a dialog
(``watch``); ``_look`` checks sideways scrolling and contrast and saves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from accounts.tenancy import workspace_scope
from config.celery import app as celery_app
from insights import clustering_services
from insights.models import ClusteringRun
from segmentation.models import Segment
from tests import factories
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.insights.clustering_data import planted_people

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "analyst@shop.example"


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def shop(workspace):
    factories.member(workspace, role="member", user=factories.UserFactory(email=EMAIL))
    planted_people(workspace, per_group=25)
    return workspace


def _signed_in(browser, watch, live_server, viewport) -> Page:
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, EMAIL, factories.PASSWORD)
    return page


def test_progress_then_results_then_a_segment_from_a_cluster(browser, live_server, watch, shop, eager_tasks):
    page = _signed_in(browser, watch, live_server, LAPTOP)
    page.goto(f"{live_server.url}/insights/clusters/")
    expect(page.get_by_role("heading", name="No suggested segments yet")).to_be_visible()
    _look(page, "clusters-empty", LAPTOP)

    # A worker has taken a run and is part way through it.
    with workspace_scope(shop):
        run, _ = clustering_services.clustering_run_request(workspace=shop, actor=None)
        ClusteringRun.objects.filter(pk=run.pk).update(status="running", progress=40, stage="Trying 4 clusters")
    page.reload()
    progress = page.get_by_role("progressbar", name="Clustering in progress")
    expect(progress).to_have_attribute("value", "40")
    expect(page.get_by_text("Trying 4 clusters · 40%")).to_be_visible()
    expect(page.get_by_role("button", name="Run clustering")).to_have_count(0)
    _look(page, "clusters-progress", LAPTOP)

    # It finishes while the page polls: the page reloads into the results by itself.
    def finish() -> None:
        with workspace_scope(shop):
            clustering_services.clustering_run_execute(run=ClusteringRun.objects.get(pk=run.pk))

    worker = threading.Thread(target=finish)
    worker.start()
    worker.join(timeout=120)
    expect(page.get_by_role("heading", name="The 3 clusters")).to_be_visible(timeout=20_000)
    expect(page.locator("[data-k]")).to_have_text("3")
    expect(page.locator("[data-sample]")).to_have_text("75")
    expect(page.get_by_text("everyone with events")).to_be_visible()
    expect(page.locator(".sil-bar")).to_have_count(7)
    expect(page.locator(".cluster-card")).to_have_count(3)
    run.refresh_from_db()
    first = page.locator(".cluster-card").first
    description = run.clusters[0]["description"]
    expect(first.locator("[data-description]")).to_have_text(description[0].upper() + description[1:])
    expect(first.locator("[data-precision]")).to_have_text(f"{run.clusters[0]['rule']['precision']:.0%}")
    _look(page, "clusters-results", LAPTOP)

    first.get_by_role("button", name="Make rule-based segment").click()

    expect(page.get_by_text("Rule-based segment made")).to_be_visible()
    with workspace_scope(shop):
        segment = Segment.objects.get()
    assert segment.definition == run.clusters[0]["rule"]["definition"]
    expect(page).to_have_url(f"{live_server.url}/segments/{segment.pk}/")
    expect(page.get_by_role("heading", name=segment.name)).to_be_visible()
    expect(page.locator("[data-size]")).to_have_text(str(segment.size))


def test_run_again_from_the_results_on_a_phone(browser, live_server, watch, shop, eager_tasks):
    with workspace_scope(shop):
        first, _ = clustering_services.clustering_run_request(workspace=shop, actor=None)
        clustering_services.clustering_run_execute(run=first)
    page = _signed_in(browser, watch, live_server, PHONE)
    page.goto(f"{live_server.url}/insights/clusters/")
    expect(page.locator(".cluster-card")).to_have_count(3)
    _look(page, "clusters-results", PHONE)

    page.get_by_role("button", name="Run again").click()

    expect(page.get_by_text("Clustering started")).to_be_visible()
    expect(page.locator(".cluster-card")).to_have_count(3)
    with workspace_scope(shop):
        latest = ClusteringRun.objects.order_by("-pk").first()
    assert latest is not None
    assert latest.pk != first.pk
    assert latest.status == "done"
