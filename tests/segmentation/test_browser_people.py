"""Segments next to people in a real browser: a person's Segments section and its "why", the people
list by segment, the dashboard, tags, overlap. Headless Debian Chromium against a live server with
the demo shop's data.

Every page fails the test on a JavaScript error, a CSP violation or a static file that does not load
(``watch``), and on sideways scrolling or unreadable contrast (``_look``); each is screenshot at
1440x900 and 390x844 into tests/artifacts/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from segmentation import services
from segmentation.models import Membership, Segment, SegmentSizeSnapshot
from segmentation.playbooks import BY_SLUG
from tests import factories
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.segmentation.test_browser import demo as demo
from tests.segmentation.test_browser import eager_tasks as eager_tasks
from tracking.models import Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TAGS = {
    "big-spenders": ["vip", "revenue"],
    "frequent-buyers": ["revenue"],
    "window-shoppers": ["email"],
    "active-7-days": [],
}


def _segments(workspace: Workspace) -> dict[str, Segment]:
    """Four templates saved and refreshed, with tags, and sizes a week ago for the growth figures."""
    made = {}
    with workspace_scope(workspace):
        for slug, tags in TAGS.items():
            playbook = BY_SLUG[slug]
            segment = services.segment_create(
                workspace=workspace,
                actor=None,
                name=playbook.name,
                definition=playbook.document(),
                description=playbook.summary,
                tags=tags,
            )
            services.segment_refresh(segment=segment)
            segment.refresh_from_db()
            SegmentSizeSnapshot.objects.create(
                workspace=workspace,
                segment=segment,
                at=timezone.now() - timedelta(days=8),
                size=max(segment.size - 10 * (len(made) + 1), 0),
            )
            made[slug] = segment
    return made


def _signed_in_page(browser, watch, live_server, viewport) -> Page:
    from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD

    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, DEMO_EMAIL, DEMO_PASSWORD)
    return page


def _shot(page: Page, name: str, viewport: dict[str, int]) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    _look(page, name, viewport)


def _member_of(workspace: Workspace, member: Segment, not_in: Segment) -> Person:
    with workspace_scope(workspace):
        inside = set(Membership.objects.filter(segment=member).values_list("person_id", flat=True))
        outside = set(Membership.objects.filter(segment=not_in).values_list("person_id", flat=True))
        return Person.objects.filter(pk__in=sorted(inside - outside)).order_by("pk").first()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_a_persons_segments_and_why_they_are_in_one(browser, live_server, watch, demo, viewport):
    made = _segments(demo)
    big, window = made["big-spenders"], made["window-shoppers"]
    person = _member_of(demo, big, window)
    assert person is not None, "the demo has a big spender who is not a window shopper"
    with workspace_scope(demo):
        entered = Membership.objects.get(segment=big, person=person).entered_at
    page = _signed_in_page(browser, watch, live_server, viewport)

    # The section lists the segments the person is in, since when, and their entries
    page.goto(f"{live_server.url}/people/{person.pk}/")
    section = page.locator("#segments")
    expect(section.get_by_role("heading", name="Segments")).to_be_visible()
    current = section.locator(".member-of li").filter(has_text=big.name)
    expect(current).to_contain_text(f"since {entered:%-d %b %Y}")
    expect(section.locator(".change-list li").filter(has_text=big.name).first).to_contain_text("Entered")

    # Choosing a segment explains it in place: each condition met, with the numbers
    section.get_by_label("Why is this person in, or not in…").select_option(label=big.name)
    why = page.locator("#why-result .why")
    expect(why.get_by_role("heading")).to_have_text(f"Why this person is in {big.name}")
    expect(why).to_have_attribute("data-holds", "true")
    expect(why.locator(".why-node").first).to_contain_text("Met")
    expect(why.locator(".why-detail").first).to_contain_text("Total of revenue on Order Completed in the last 90 days:")
    assert page.url.endswith(f"/people/{person.pk}/"), "the page stays; only the section changed"
    _shot(page, "person-segments-why", viewport)

    # And a segment they are not in says what is missing
    section.get_by_label("Why is this person in, or not in…").select_option(label=window.name)
    expect(why.get_by_role("heading")).to_have_text(f"Why this person is not in {window.name}")
    expect(page.locator("#why-result .why")).to_have_attribute("data-member", "false")
    expect(page.locator("#why-result .is-unmet").first).to_be_visible()

    # The segment's link leads to its page, where the person is a member
    section.locator(".member-of").get_by_role("link", name=big.name).click()
    expect(page.locator("h1")).to_have_text(big.name)


def test_the_section_works_without_javascript(browser, live_server, watch, demo):
    made = _segments(demo)
    big = made["big-spenders"]
    person = _member_of(demo, big, made["window-shoppers"])
    from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD

    context = watch.attach(browser.new_context(viewport=LAPTOP, java_script_enabled=False))
    page = context.new_page()
    _log_in(page, live_server.url, DEMO_EMAIL, DEMO_PASSWORD)
    page.goto(f"{live_server.url}/people/{person.pk}/")
    page.get_by_label("Why is this person in, or not in…").select_option(label=big.name)
    page.get_by_role("button", name="Explain").click()

    expect(page.locator("#why-result h3")).to_have_text(f"Why this person is in {big.name}")
    assert f"why={big.pk}" in page.url


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_screens_of_people_dashboard_segments_and_overlap(browser, live_server, watch, demo, eager_tasks, viewport):
    made = _segments(demo)
    big, frequent = made["big-spenders"], made["frequent-buyers"]
    person = _member_of(demo, big, made["window-shoppers"])
    base = live_server.url
    page = _signed_in_page(browser, watch, live_server, viewport)

    # The dashboard: numbers, the events chart, largest and growing segments, ingestion
    people = Person.objects.unscoped().filter(workspace=demo).count()  # the demo's own workspace, counted directly
    expect(page.locator("[data-stat=people]")).to_have_text(f"{people:,}")
    expect(page.locator(".bar-events").first).to_be_attached()
    expect(page.get_by_role("heading", name="Largest segments")).to_be_visible()
    expect(page.locator(".dash-segments .delta.up").first).to_be_visible()
    expect(page.get_by_role("link", name="Open the quarantine")).to_be_visible()
    _shot(page, "dashboard", viewport)

    # People of a segment, chosen from the filter
    page.goto(f"{base}/people/")
    page.get_by_label("Segment").select_option(value=str(big.pk))
    expect(page.locator(".list-count")).to_have_text(f"{big.size} people match")
    assert f"segment={big.pk}" in page.url
    _shot(page, "people-by-segment", viewport)

    # The person's page with the why of a segment opened from its link (no script needed)
    page.goto(f"{base}/people/{person.pk}/?why={frequent.pk}")
    expect(page.locator("#why-result .why")).to_be_visible()
    _shot(page, "person-page", viewport)

    # Segments: tags, the tag filter, templates still at hand
    page.goto(f"{base}/segments/")
    expect(page.locator(".seg-table .tag").filter(has_text="vip")).to_have_count(1)
    page.get_by_label("Tag").select_option(value="revenue")
    expect(page.locator(".seg-table tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Templates").click()
    expect(page.locator("#templates .playbook").first).to_be_visible()
    _shot(page, "segments-by-tag", viewport)

    # A segment's page shows its tags; the builder edits them
    page.goto(f"{base}/segments/{big.pk}/")
    expect(page.locator(".tag-line .tag")).to_have_text(["vip", "revenue"])
    _shot(page, "segment-with-tags", viewport)
    page.goto(f"{base}/segments/{big.pk}/edit/")
    expect(page.get_by_label("Tags")).to_have_value("vip, revenue")
    _shot(page, "builder-tags", viewport)

    # Overlap: counts and % of row; one click makes the intersection and opens it
    page.goto(f"{base}/segments/overlap/?s={big.pk}&s={frequent.pk}")
    expect(page.locator(".overlap-matrix").get_by_text("% of row").first).to_be_visible()
    _shot(page, "overlap", viewport)
    page.get_by_role("button", name=f"New segment: in {big.name} and in {frequent.name}").click()
    expect(page.locator("h1")).to_have_text(f"{big.name} and {frequent.name}")
    with workspace_scope(demo):
        created = Segment.objects.get(name=f"{big.name} and {frequent.name}")
    assert created.definition["conditions"] == [
        {"type": "segment", "segment": big.pk},
        {"type": "segment", "segment": frequent.pk},
    ]


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_dashboard_of_a_new_workspace(browser, live_server, watch, viewport):
    workspace = factories.WorkspaceFactory(name="Fresh Start")
    owner = factories.member(workspace, role="owner")
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, owner.email, factories.PASSWORD)

    expect(page.get_by_role("heading", name="Get started")).to_be_visible()
    expect(page.locator("[data-stat=people]")).to_have_text("0")
    expect(page.get_by_text("No events in the last 30 days.")).to_be_visible()
    assert "campaign" not in page.locator("main").inner_text().lower()
    _shot(page, "dashboard-new-workspace", viewport)
