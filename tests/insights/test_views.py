"""The insights pages: the funnel builder with htmx, jobs and their progress, drop-off and cell segments,
computed traits settings; roles, other workspaces' ids, hostile names."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import workspace_scope
from insights import jobs
from insights.models import ComputedTraitSettings, InsightJob, RunStatus
from segmentation.models import Segment
from tests import factories
from tests.accounts.support import logged_in_client
from tests.insights import test_funnels as fixed
from tests.insights.support import NOW, load

HTMX = {"HX-Request": "true"}
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def shop(db):
    workspace = factories.WorkspaceFactory()
    shift = timezone.now().replace(microsecond=0) - NOW
    events = [(who, name, at + shift, props) for who, name, at, props in fixed.EVENTS]
    people = load(workspace, fixed.PEOPLE, events)
    return workspace, people


@pytest.fixture
def owner_client(shop):
    return logged_in_client(factories.member(shop[0], role="owner"))


def _form(*events: str, **extra: str) -> dict[str, str]:
    data = {"steps": str(len(events)), "within_amount": "48", "within_unit": "h", "window": "30d", **extra}
    for i, event in enumerate(events):
        data[f"step-{i}-event"] = event
        data[f"step-{i}-filters"] = "0"
    return data


def _jobs(workspace) -> list[InsightJob]:
    with workspace_scope(workspace):
        return list(InsightJob.objects.order_by("pk"))


def _run_last_job(workspace) -> InsightJob:
    job = _jobs(workspace)[-1]
    with workspace_scope(workspace):
        jobs.job_run(job=InsightJob.objects.select_related("workspace").get(pk=job.pk))
        return InsightJob.objects.get(pk=job.pk)


def test_insights_opens_on_funnels(owner_client):
    assert owner_client.get("/insights/").url == reverse("insights_funnels")
    page = owner_client.get(reverse("insights_funnels"))
    assert page.status_code == 200
    assert b"Pick the steps and calculate" in page.content


def test_adding_and_removing_steps_and_filters_rerenders_the_form(shop, owner_client):
    url = reverse("insights_funnels")
    page = owner_client.post(url, {**_form("A", "B"), "action": "add_step"}, headers=HTMX)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="step-2-event"' in html
    assert "<html" not in html  # the partial only
    page = owner_client.post(url, {**_form("A", "B", "C"), "action": "add_filter-1"}, headers=HTMX)
    assert 'name="step-1-filter-0-key"' in page.content.decode()
    page = owner_client.post(url, {**_form("A", "B", "C"), "action": "remove_step-0"}, headers=HTMX)
    html = page.content.decode()
    assert 'value="B"' in html
    assert 'name="step-2-event"' not in html
    assert _jobs(shop[0]) == []


def test_invalid_funnels_are_refused_inline_and_nothing_is_queued(shop, owner_client):
    page = owner_client.post(reverse("insights_funnels"), {**_form("A", ""), "action": "run"}, headers=HTMX)
    assert page.status_code == 400
    assert "must not be empty" in page.content.decode()
    data = {**_form("A", "B"), "step-1-filters": "1", "step-1-filter-0-key": "price", "step-1-filter-0-operator": "gt"}
    page = owner_client.post(reverse("insights_funnels"), {**data, "step-1-filter-0-value": "cheap", "action": "run"})
    assert page.status_code == 400
    assert "Give a number." in page.content.decode()
    assert _jobs(shop[0]) == []


def test_a_funnel_runs_as_a_job_then_shows_its_chart_and_dropoff_buttons(
    shop, owner_client, django_capture_on_commit_callbacks
):
    workspace = shop[0]
    with django_capture_on_commit_callbacks() as queued:
        page = owner_client.post(
            reverse("insights_funnels"), {**_form(fixed.VIEW, fixed.ADD, fixed.ORDER), "action": "run"}, headers=HTMX
        )
    assert page.status_code == 200
    assert len(queued) == 1
    job = _jobs(workspace)[-1]
    assert page["HX-Push-Url"] == f"{reverse('insights_funnels')}?job={job.pk}"
    assert 'hx-trigger="every 1s"' in page.content.decode()  # polling while queued
    job = _run_last_job(workspace)
    assert job.status == RunStatus.DONE
    partial = owner_client.get(reverse("insights_job", args=[job.pk]), headers=HTMX).content.decode()
    assert "every 1s" not in partial
    assert '<svg class="chart funnel-chart"' in partial
    assert 'data-dropoff="2"' in partial
    assert "33%" in partial
    whole = owner_client.get(f"{reverse('insights_funnels')}?job={job.pk}").content.decode()
    assert 'value="Product Added"' in whole  # the form is filled back from the job


def test_the_dropoff_button_creates_the_segment_and_opens_it(shop, owner_client, django_capture_on_commit_callbacks):
    workspace = shop[0]
    with django_capture_on_commit_callbacks():
        owner_client.post(reverse("insights_funnels"), {**_form(fixed.VIEW, fixed.ADD, fixed.ORDER), "action": "run"})
    job = _run_last_job(workspace)
    with django_capture_on_commit_callbacks():
        answer = owner_client.post(reverse("insights_funnel_segment"), {"job": job.pk, "dropped_after": "2"})
    with workspace_scope(workspace):
        segment = Segment.objects.get()
    assert answer.url == reverse("segment_detail", args=[segment.pk])
    assert segment.name == "Dropped off after Product Added (step 2, before Order Completed)"
    assert segment.definition["dropped_after"] == 2
    assert segment.definition["completed"] is False
    # Twice: a second name, not a refusal.
    with django_capture_on_commit_callbacks():
        owner_client.post(reverse("insights_funnel_segment"), {"job": job.pk, "dropped_after": "2"})
    with workspace_scope(workspace):
        assert sorted(Segment.objects.values_list("name", flat=True))[-1].endswith("(2)")


def test_viewers_compute_but_cannot_make_segments(shop, django_capture_on_commit_callbacks):
    workspace = shop[0]
    viewer = logged_in_client(factories.member(workspace, role="viewer"))
    with django_capture_on_commit_callbacks():
        page = viewer.post(reverse("insights_funnels"), {**_form(fixed.VIEW, fixed.ADD), "action": "run"})
    assert page.status_code == 302
    job = _run_last_job(workspace)
    partial = viewer.get(reverse("insights_job", args=[job.pk]), headers=HTMX).content.decode()
    assert "Viewers cannot make segments." in partial
    assert viewer.post(reverse("insights_funnel_segment"), {"job": job.pk, "dropped_after": "1"}).status_code == 403
    with workspace_scope(workspace):
        assert not Segment.objects.exists()
    settings_before = viewer.get(reverse("insights_computed_traits"))
    assert settings_before.status_code == 200
    assert viewer.post(reverse("insights_computed_traits"), {"rfm_event": "X"}).status_code == 403
    assert viewer.post(reverse("insights_computed_traits_refresh")).status_code == 403


def test_another_workspaces_job_is_404(shop, owner_client, django_capture_on_commit_callbacks):
    other = factories.WorkspaceFactory()
    theirs = logged_in_client(factories.member(other, role="owner"))
    with django_capture_on_commit_callbacks():
        theirs.post(reverse("insights_funnels"), {**_form("A", "B"), "action": "run"})
    job = _jobs(other)[-1]
    assert owner_client.get(reverse("insights_job", args=[job.pk]), headers=HTMX).status_code == 404
    assert owner_client.get(f"{reverse('insights_funnels')}?job={job.pk}").status_code == 404
    assert owner_client.get(f"{reverse('insights_funnels')}?job=abc").status_code == 404
    assert (
        owner_client.post(reverse("insights_funnel_segment"), {"job": job.pk, "dropped_after": "1"}).status_code == 404
    )
    assert owner_client.post(reverse("insights_retention_segment"), {"job": job.pk, "cell": "x:0"}).status_code == 404


def test_hostile_event_names_stay_text(shop, owner_client, django_capture_on_commit_callbacks):
    workspace = shop[0]
    with django_capture_on_commit_callbacks():
        owner_client.post(reverse("insights_funnels"), {**_form(HOSTILE, fixed.ADD), "action": "run"})
    job = _run_last_job(workspace)
    html = owner_client.get(reverse("insights_job", args=[job.pk]), headers=HTMX).content.decode()
    assert HOSTILE not in html
    assert "&lt;script&gt;" in html


def test_retention_page_heat_map_and_a_cell_segment(shop, owner_client, django_capture_on_commit_callbacks):
    workspace = shop[0]
    data = {"start_event": fixed.VIEW, "return_event": fixed.ADD, "period": "week", "periods": "4", "cohort": "first"}
    with django_capture_on_commit_callbacks():
        answer = owner_client.post(reverse("insights_retention"), data)
    job = _jobs(workspace)[-1]
    assert answer.url == f"{reverse('insights_retention')}?job={job.pk}"
    job = _run_last_job(workspace)
    html = owner_client.get(answer.url).content.decode()
    assert 'class="table heat-table"' in html
    start = job.result["cohorts"][-1]["start"]
    with django_capture_on_commit_callbacks():
        made = owner_client.post(reverse("insights_retention_segment"), {"job": job.pk, "cell": f"{start}:0"})
    with workspace_scope(workspace):
        segment = Segment.objects.get()
    assert made.url == reverse("segment_detail", args=[segment.pk])
    assert segment.definition["type"] == "and"
    bad = owner_client.post(reverse("insights_retention"), {**data, "periods": "99"})
    assert bad.status_code == 400
    assert "must be a whole number from 1 to 52" in bad.content.decode()


def test_computed_traits_settings_page(shop, owner_client, django_capture_on_commit_callbacks):
    workspace = shop[0]
    page = owner_client.get(reverse("insights_computed_traits"))
    assert page.status_code == 200
    assert "Champions" in page.content.decode()
    data = {
        "rfm_event": "Checkout",
        "rfm_revenue_property": "amount",
        "engagement_half_life_days": "10",
        "engagement_default_weight": "0.5",
        "weights": "2",
        "weight-event-0": "Login",
        "weight-value-0": "3",
        "weight-event-1": "",
        "weight-value-1": "",
    }
    assert owner_client.post(reverse("insights_computed_traits"), data).status_code == 302
    with workspace_scope(workspace):
        row = ComputedTraitSettings.objects.get(workspace=workspace)
    assert (row.rfm_event, row.engagement_weights, row.engagement_half_life_days) == ("Checkout", {"Login": 3.0}, 10.0)
    refused = owner_client.post(
        reverse("insights_computed_traits"), {**data, "engagement_half_life_days": "0", "rfm_event": "Other"}
    )
    assert refused.status_code == 400
    assert "from 0.01" in refused.content.decode()
    with workspace_scope(workspace):
        assert ComputedTraitSettings.objects.get(workspace=workspace).rfm_event == "Checkout"
    with django_capture_on_commit_callbacks() as queued:
        owner_client.post(reverse("insights_computed_traits_refresh"))
    assert len(queued) == 1
    busy = owner_client.get(reverse("insights_computed_traits")).content.decode()
    assert 'hx-trigger="every 2s"' in busy
    assert "Waiting for a worker" in busy
