"""The propensity page in a real browser (headless Debian Chromium through Playwright).

A member starts a purchase model from the page; the run waits for a worker, then the test takes the
queued task and computes it as a worker would, while the page polls and reloads itself into the
holdout AUC and its chart; the score then shows on a person's page. On an empty workspace the run
ends with the "not enough data" explanation and no score. Every page fails the test on a JavaScript
error, a blocked resource or a dialog (``watch``); ``_look`` checks sideways scrolling and contrast
and saves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from accounts.tenancy import workspace_scope
from insights import propensity_tasks
from insights.models import PropensityRun
from tests import factories
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.insights.propensity_data import propensity_people
from tracking.models import Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "analyst@shop.example"
TRAIT = "$purchase_propensity"


@pytest.fixture
def queued(monkeypatch) -> Iterator[list[tuple[Any, ...]]]:
    """The tasks the page queues, held here instead of the broker: the test is the worker."""
    tasks: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        propensity_tasks.propensity_run_task, "apply_async", lambda args, **options: tasks.append(tuple(args))
    )
    return tasks


def _work(tasks: list[tuple[Any, ...]]) -> None:
    """Take the one queued task and compute it, as a worker would, in a thread of its own."""
    assert len(tasks) == 1

    def work() -> None:
        try:
            propensity_tasks.propensity_run_task(*tasks.pop())
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive()


def _signed_in(browser, watch, live_server, workspace, viewport) -> Page:
    factories.member(workspace, role="member", user=factories.UserFactory(email=EMAIL))
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, EMAIL, factories.PASSWORD)
    page.goto(f"{live_server.url}/insights/propensity/")
    return page


def test_a_purchase_model_from_the_button_to_the_chart_and_the_trait(browser, live_server, watch, workspace, queued):
    keen = propensity_people(workspace)
    page = _signed_in(browser, watch, live_server, workspace, LAPTOP)
    expect(page.get_by_role("link", name="Propensity")).to_have_attribute("aria-current", "page")
    purchase = page.locator('[data-target="purchase"]')
    expect(purchase.locator("[data-empty]")).to_have_text("No purchase model yet.")
    _look(page, "propensity-empty", LAPTOP)

    purchase.get_by_label("Predict the next").fill("30")
    purchase.get_by_role("button", name="Train purchase model").click()

    expect(page.get_by_text("Training started")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Purchase model progress")).to_have_attribute("value", "0")
    expect(page.get_by_text("Purchase, next 30 days")).to_be_visible()
    expect(page.locator("[data-stage]")).to_have_text("Waiting for a worker · 0%")
    expect(purchase.get_by_role("button", name="Train purchase model")).to_be_disabled()
    _look(page, "propensity-progress", LAPTOP)

    _work(queued)  # the page, polling meanwhile, reloads itself into the results

    with workspace_scope(workspace):
        run = PropensityRun.objects.get()
        person = Person.objects.order_by("pk").first()
    assert person is not None
    expect(purchase.locator("[data-auc]")).to_have_text(f"{run.auc:.2f}", timeout=20_000)
    assert run.auc > 0.8
    expect(page.get_by_role("progressbar")).to_have_count(0)
    expect(purchase.get_by_text("Written on 600 people")).to_be_visible()
    expect(purchase.locator("[data-sample]")).to_have_text("600")
    chart = purchase.get_by_role("img", name="Actual rate by tenth of the score")
    expect(chart).to_be_visible()
    expect(chart.locator("rect")).to_have_count(10)
    expect(purchase.get_by_role("button", name="Train again")).to_be_enabled()
    _look(page, "propensity-results", LAPTOP)

    page.goto(f"{live_server.url}/people/{person.pk}/")
    score = person.traits[TRAIT]
    expect(page.locator("dt", has_text=TRAIT)).to_be_visible()
    expect(page.locator(f'dt:text-is("{TRAIT}") + dd')).to_have_text(str(score))
    assert (score >= 50) == keen[person.pk]


def test_an_empty_workspace_gets_the_not_enough_data_explanation_on_a_phone(
    browser, live_server, watch, workspace, queued
):
    page = _signed_in(browser, watch, live_server, workspace, PHONE)
    purchase = page.locator('[data-target="purchase"]')
    purchase.get_by_role("button", name="Train purchase model").click()
    expect(page.get_by_text("Training started")).to_be_visible()

    _work(queued)

    notice = purchase.locator("[data-insufficient]")
    expect(notice).to_contain_text(
        "Not enough data: the training window has 0 people with events before it, and a model needs at least "
        "500 in each window.",
        timeout=20_000,
    )
    expect(purchase.locator("[data-auc]")).to_have_count(0)
    expect(purchase.get_by_role("img")).to_have_count(0)
    expect(page.locator('[data-target="churn"] [data-empty]')).to_have_text("No churn model yet.")
    _look(page, "propensity-insufficient", PHONE)
