"""The segment builder in a real browser, against a live server with the demo shop's data.

Headless Debian Chromium through Playwright. Every page fails the test on a JavaScript error, a
static file that does not load, or any dialog (alert, confirm): hostile event names and trait
values must stay text. Screenshots land in tests/artifacts/ for review.

Saving a segment queues its first refresh; here Celery runs tasks eagerly, in the live server's
request, so the list shows the size as it would a moment after saving with a worker running.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Workspace
from accounts.tenancy import workspace_scope
from config.celery import app as celery_app
from demo.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD
from segmentation.catalogue.services import catalogue_update
from segmentation.compiler import compile_count
from segmentation.definition import parse
from segmentation.models import Segment, SegmentSizeSnapshot
from tests.accounts.test_browser import CONTRAST_PROBLEMS_JS, LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.segmentation import oracle
from tests.tracking import builders
from tracking.models import Event, Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS_EVENT = "<img src=x onerror=alert(1)>"
XSS_TRAIT = "<script>alert(1)</script>"
SHOE_FANS = {
    "type": "and",
    "conditions": [
        {
            "type": "event",
            "event": "Product Viewed",
            "filters": [{"key": "category", "operator": "eq", "value": "shoes"}],
            "count": {"operator": "gte", "value": 3},
            "window": {"since": "30d"},
        },
        {"type": "trait", "key": "plan", "operator": "in", "value": ["Enterprise", "Strategic"]},
    ],
}


@pytest.fixture
def demo() -> Workspace:
    call_command("seed_demo", people=160, days=45, no_progress=True, stdout=io.StringIO(), stderr=io.StringIO())
    # Planner statistics as autovacuum keeps them in a running installation; a freshly filled
    # table without them gets plans slow enough to hit the preview's statement timeout.
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
    """Popups closed, focus off the controls and the page at its top, then screenshot and checks."""
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    _look(page, name, viewport)


def _definition(page: Page) -> dict:
    return json.loads(page.locator("#id_definition").input_value())


def _pick(page: Page, combobox, text: str) -> None:
    """Type into a picker, then walk the suggestions with the arrow keys to the one reading ``text``
    and choose it with Enter."""
    combobox.click()
    page.keyboard.type(text)
    listbox = page.locator(f"#{combobox.get_attribute('aria-controls')}")
    expect(listbox.get_by_role("option").filter(has_text=text).first).to_be_visible()
    for _ in range(20):
        page.keyboard.press("ArrowDown")
        active = combobox.evaluate(
            "el => { const o = document.getElementById(el.getAttribute('aria-activedescendant') || '');"
            " return o ? o.querySelector('.combo-value').textContent : null; }"
        )
        if active == text:
            break
    else:
        pytest.fail(f"no suggestion reads {text!r}")
    page.keyboard.press("Enter")
    expect(listbox).to_be_hidden()
    expect(combobox).to_have_value(text)


def _choose(page: Page, select, label: str) -> None:
    """Pick an option of a select from the keyboard: focus it and type the start of its label."""
    select.focus()
    page.keyboard.type(label)
    expect(select.locator("option:checked")).to_have_text(label)


def _live_count(page: Page) -> int:
    expect(page.locator(".builder")).to_have_attribute("data-state", "valid")
    expect(page.locator("#preview-status")).to_have_text("Up to date")
    return int(page.locator("#preview-count").get_attribute("data-count"))


def _api_preview(page: Page, definition: dict) -> int:
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    response = page.request.post(
        page.url.split("/segments/")[0] + "/api/v1/segments/preview/",
        data=json.dumps({"definition": definition}),
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert response.status == 200, response.text()
    return response.json()["count"]


def test_build_by_mouse_and_keyboard_preview_equals_the_api_then_save(browser, live_server, watch, demo, eager_tasks):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/")
    expect(page.get_by_text("No conditions yet.")).to_be_visible()

    # did Product Viewed with category = shoes at least 3 times in the last 30 days
    page.get_by_role("button", name="+ Condition").click()
    expect(page.get_by_label("Condition", exact=True)).to_be_focused()
    _pick(page, page.get_by_role("combobox", name="Event"), "Product Viewed")
    page.get_by_label("How often: number").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    _choose(page, page.get_by_label("When"), "in the last")
    page.get_by_role("button", name="+ where…").click()
    key = page.get_by_role("combobox", name="Property of Product Viewed")
    expect(key).to_be_focused()
    _pick(page, key, "category")
    _pick(page, page.get_by_role("combobox", name="Value of category"), "shoes")

    # AND plan is one of Enterprise, Strategic
    page.get_by_role("button", name="+ Condition").last.click()
    _choose(page, page.get_by_label("Condition", exact=True).last, "has a trait")
    _pick(page, page.get_by_role("combobox", name="Trait"), "plan")
    _choose(page, page.get_by_label("Comparison for plan"), "is one of")
    chips = page.get_by_role("combobox", name="Add a value for plan")
    chips.click()
    page.keyboard.type("Enterprise")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.keyboard.type("Strategic")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")

    # Then the document is exactly that, and the live count is the API's preview of it
    expect(page.locator(".chip-text")).to_have_text(["Enterprise", "Strategic"])
    assert _definition(page) == SHOE_FANS
    count = _live_count(page)
    assert count == _api_preview(page, SHOE_FANS)
    assert count > 0
    expect(page.locator("#builder-sentence")).to_have_text(
        "People who performed Product Viewed where category is shoes at least 3 times in the last 30 days"
        " and whose plan is Enterprise or Strategic"
    )
    assert page.locator("#preview-sample a").count() == min(count, 6)
    assert page.locator("#preview-sample a").first.get_attribute("href").startswith("/people/")
    _shot(page, "segment-builder", LAPTOP)

    # When saved under a name
    page.get_by_label("Name").click()
    page.keyboard.type("Shoe fans")
    page.get_by_role("button", name="Save segment").click()

    # Then the segment page and the list show it with its size
    expect(page.locator("h1")).to_have_text("Shoe fans")
    expect(page.locator("[data-size]")).to_have_text(str(count))
    _shot(page, "segment-page", LAPTOP)
    page.get_by_role("link", name="Segments", exact=True).first.click()
    row = page.locator("tbody tr").filter(has_text="Shoe fans")
    expect(row.locator(".count")).to_have_text(str(count))
    expect(row.get_by_text("Fresh")).to_be_visible()
    _shot(page, "segment-list", LAPTOP)
    with workspace_scope(demo):
        saved = Segment.objects.get(name="Shoe fans")
    assert (saved.definition, saved.size) == (SHOE_FANS, count)


def test_cart_abandoners_template_adjusted_to_24_hours(browser, live_server, watch, demo, eager_tasks):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/")
    page.get_by_role("link", name="Cart abandoners (48 h)").click()
    expect(page.locator("#builder-sentence")).to_contain_text("within 48 hours")

    within = page.get_by_label("Within (number)")
    within.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("24")
    expect(page.locator("#builder-sentence")).to_contain_text("within 24 hours")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("h1")).to_have_text("Cart abandoners (48 h)")

    with workspace_scope(demo):
        saved = Segment.objects.get(name="Cart abandoners (48 h)")
    assert saved.definition == {
        "type": "sequence",
        "steps": [{"event": "Product Added"}, {"event": "Order Completed"}],
        "within": "24h",
        "window": {"since": "7d"},
        "completed": False,
    }

    # Deleting asks first: Escape keeps it, the dialog's button deletes it
    delete = page.get_by_role("button", name="Delete", exact=True)
    delete.click()
    dialog = page.get_by_role("dialog", name="Delete “Cart abandoners (48 h)”?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    delete.click()
    dialog.get_by_role("button", name="Delete segment").click()
    expect(page.get_by_text("Segment “Cart abandoners (48 h)” deleted.")).to_be_visible()
    with workspace_scope(demo):
        assert not Segment.objects.filter(pk=saved.pk).exists()


def test_json_view_round_trips_with_the_visual_editor(browser, live_server, watch, demo):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/?template=window-shoppers")
    document = {
        "type": "or",
        "conditions": [
            {"type": "last_performed", "event": "Order Completed", "window": {"until": "90d"}},
            {
                "type": "not",
                "condition": {
                    "type": "or",
                    "conditions": [{"type": "trait", "key": "plan", "operator": "eq", "value": "Free"}],
                },
            },
            {"type": "regular", "event": "Login", "period": "7d", "periods": 4, "min_periods": 3},
        ],
    }

    page.get_by_role("tab", name="JSON").click()
    page.get_by_label("Definition as JSON").fill(json.dumps(document))
    page.get_by_role("tab", name="Visual").click()

    expect(page.get_by_label("Condition", exact=True)).to_have_count(3)
    expect(page.get_by_label("Condition", exact=True).first).to_have_value("last")
    expect(page.get_by_label("This group matches")).to_have_value("none")
    expect(page.locator("#builder-sentence")).to_have_text(
        "People who last performed Order Completed more than 90 days ago or whose plan is not Free"
        " or who performed Login in at least 3 of the last 4 weeks"
    )
    page.get_by_role("tab", name="JSON").click()
    assert json.loads(page.get_by_label("Definition as JSON").input_value()) == document
    assert _definition(page) == document

    # A broken document stays in the JSON view with the reason
    page.get_by_label("Definition as JSON").fill('{"type": ')
    page.get_by_role("tab", name="Visual").click()
    expect(page.locator("#builder-json-error")).to_contain_text("not valid JSON")
    expect(page.get_by_label("Definition as JSON")).to_be_visible()


def test_conditions_move_between_groups_by_buttons(browser, live_server, watch, demo):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/")
    a = {"type": "event", "event": "Login"}
    b = {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"}
    c = {"type": "event", "event": "Order Completed"}
    page.get_by_role("tab", name="JSON").click()
    page.get_by_label("Definition as JSON").fill(
        json.dumps({"type": "and", "conditions": [a, {"type": "or", "conditions": [b, c]}]})
    )
    page.get_by_role("tab", name="Visual").click()

    page.get_by_role("button", name="Move out of this group").last.click()
    assert _definition(page) == {"type": "and", "conditions": [a, {"type": "or", "conditions": [b]}, c]}
    expect(page.get_by_label("Condition", exact=True).last).to_be_focused()
    page.keyboard.press("Tab")  # focus moves on from the moved condition, the document stays
    page.get_by_role("button", name="Move into the group above").click()
    assert _definition(page) == {"type": "and", "conditions": [a, {"type": "or", "conditions": [b, c]}]}
    page.get_by_role("button", name="Group this condition").first.click()
    assert _definition(page) == {
        "type": "and",
        "conditions": [{"type": "or", "conditions": [a]}, {"type": "or", "conditions": [b, c]}],
    }
    page.get_by_role("button", name="Ungroup").last.click()
    assert _definition(page) == {"type": "and", "conditions": [{"type": "or", "conditions": [a]}, b, c]}
    page.get_by_role("button", name="Move down").first.click()
    assert _definition(page) == {"type": "and", "conditions": [b, {"type": "or", "conditions": [a]}, c]}
    expect(page.locator("#builder-sentence")).to_have_text(
        "People whose plan is Pro and who performed Login and who performed Order Completed"
    )


def test_invalid_input_shows_the_message_next_to_the_field_and_saves_nothing(browser, live_server, watch, demo):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/")
    page.get_by_label("Name").fill("Not yet")

    # An empty group
    with page.expect_navigation():
        page.get_by_role("button", name="Save segment").click()
    message = page.locator('.bgroup .slot-errors > .builder-error[data-error-path="conditions"]')
    expect(message).to_have_text("must hold 1 to 50 conditions, not 0")

    # A missing event name: the message sits right after the event field
    page.get_by_role("button", name="+ Condition").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#preview-status")).to_have_text("1 field to fix")  # the page's own preview is in
    message = page.locator('.bf[data-path="conditions[0].event"] + .builder-error')
    expect(message).to_have_text("must not be empty")
    expect(message).to_have_attribute("data-error-path", "conditions[0].event")
    event = page.get_by_role("combobox", name="Event")
    expect(event).to_have_attribute("aria-invalid", "true")
    expect(event).to_have_attribute("aria-describedby", message.get_attribute("id"))
    _shot(page, "segment-builder-errors", LAPTOP)
    with workspace_scope(demo):
        assert not Segment.objects.exists()


def test_hostile_event_and_trait_render_as_text_everywhere(browser, live_server, watch, demo, eager_tasks):
    person = builders.person(demo, user_id="mallory", traits={"plan": XSS_TRAIT, "name": XSS_TRAIT})
    builders.event(demo, person, XSS_EVENT, properties={"via": XSS_TRAIT})
    with workspace_scope(demo):
        catalogue_update(workspace=demo, settle_seconds=0, recount_traits=True)
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/")

    page.get_by_role("button", name="+ Condition").click()
    _pick(page, page.get_by_role("combobox", name="Event"), XSS_EVENT)
    page.get_by_role("button", name="+ Condition").last.click()
    # The second condition is drawn before it is changed (else "last" is still the first one).
    expect(page.get_by_label("Condition", exact=True)).to_have_count(2)
    page.get_by_label("Condition", exact=True).last.select_option("trait")
    _pick(page, page.get_by_role("combobox", name="Trait"), "plan")
    _pick(page, page.get_by_role("combobox", name="Value of plan"), XSS_TRAIT)
    expect(page.locator("#builder-sentence")).to_have_text(
        f"People who performed {XSS_EVENT} and whose plan is {XSS_TRAIT}"
    )
    assert _live_count(page) == 1
    expect(page.locator("#preview-sample a")).to_have_text([XSS_TRAIT])
    page.get_by_label("Name").fill(XSS_TRAIT)
    page.get_by_role("button", name="Save segment").click()

    expect(page.locator("h1")).to_have_text(XSS_TRAIT)
    expect(page.locator(".sentence .s-event")).to_have_text(XSS_EVENT)
    expect(page.locator("#members .person-link")).to_have_text([XSS_TRAIT])
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator(".seg-name")).to_have_text([XSS_TRAIT])
    page.goto(f"{live_server.url}/people/{person.pk}/")
    expect(page.get_by_text(XSS_EVENT).first).to_be_visible()
    page.goto(f"{live_server.url}/people/?q=mallory")
    expect(page.locator(".person-link")).to_have_text([XSS_TRAIT])
    assert page.evaluate("document.querySelectorAll('img[src=x], script:not([src])').length") == 0


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_screens_of_the_list_the_builder_and_a_segment(browser, live_server, watch, demo, eager_tasks, viewport):
    page = _signed_in(browser, watch, live_server, viewport)
    page.goto(f"{live_server.url}/segments/")
    _shot(page, "segment-list-empty", viewport)
    for slug in ("frequent-buyers", "window-shoppers", "big-spenders"):
        page.goto(f"{live_server.url}/segments/new/?template={slug}")
        _live_count(page)
        page.get_by_role("button", name="Save segment").click()
        expect(page.locator("[data-size]")).to_be_visible()
    # Three weeks of earlier refreshes, so that the charts have a history to draw.
    with workspace_scope(demo):
        segment = Segment.objects.get(name="Big spenders")
        now = timezone.now()
        SegmentSizeSnapshot.objects.bulk_create(
            SegmentSizeSnapshot(workspace=demo, segment=segment, at=now - timedelta(days=day), size=size)
            for day, size in zip(
                range(21, 0, -1),
                [8, 9, 9, 11, 12, 12, 14, 13, 15, 16, 16, 18, 17, 19, 20, 21, 21, 22, 22, 23, 23],
                strict=True,
            )
        )
    page.reload()
    _shot(page, "segment-page", viewport)
    page.goto(f"{live_server.url}/segments/new/?template=window-shoppers")
    _live_count(page)
    _shot(page, "segment-builder", viewport)
    page.goto(f"{live_server.url}/segments/")
    _shot(page, "segment-list", viewport)
    page.goto(
        f"{live_server.url}/segments/overlap/?"
        + "&".join(
            f"s={pk}"
            for pk in Segment.objects.unscoped()
            .filter(workspace=demo)
            .values_list("pk", flat=True)  # the test's own demo workspace
        )
    )
    _shot(page, "segment-overlap", viewport)
    assert page.evaluate(CONTRAST_PROBLEMS_JS) == []


# --- drop-off after a step, and "is not in segment" (issue 15) ---------------------------------------

FUNNEL_STEPS = [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}]
ADDED_NOT_ORDERED = {
    "type": "and",
    "conditions": [
        {"type": "sequence", "steps": FUNNEL_STEPS, "within": "3d", "completed": False, "dropped_after": 2},
    ],
}


def _arrow_to(page: Page, select, value: str) -> None:
    """Move a select to the option of ``value`` with the arrow keys (each change may redraw the
    condition; the builder puts the focus back on the redrawn select)."""
    select.focus()
    for _ in range(20):
        focused = page.locator(":focus")
        position = focused.evaluate(
            "(el, value) => [...el.options].findIndex((o) => o.value === value) - el.selectedIndex", value
        )
        if position == 0:
            return
        page.keyboard.press("ArrowDown" if position > 0 else "ArrowUp")
    pytest.fail(f"no option {value!r}")


def _oracle_count(workspace: Workspace, document: dict) -> tuple[int, int]:
    """At one instant: the compiled SQL's count and the plain-Python oracle's, over the demo's data."""
    now = timezone.now()
    with workspace_scope(workspace):
        people = dict(Person.objects.filter(workspace=workspace).values_list("pk", "traits"))
        rows = Event.objects.filter(workspace=workspace).values_list(
            "pk", "person_id", "name", "timestamp", "properties"
        )
        events = [oracle.OEvent(person, name, at, properties, pk) for pk, person, name, at, properties in rows]
        query = compile_count(parse(document, now=now), workspace_id=workspace.pk, now=now)
        with connection.cursor() as cursor:
            query.execute(cursor)
            compiled = cursor.fetchone()[0]
    return compiled, len(oracle.members(document, people=people, events=events, memberships={}, now=now))


def test_dropped_off_after_step_2_built_by_keyboard_counts_viewed_added_not_ordered(
    browser, live_server, watch, demo, eager_tasks
):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/")

    # Viewed -> Added -> Ordered, dropped off after step 2, within 3 days
    page.get_by_role("button", name="+ Condition").click()
    _arrow_to(page, page.get_by_label("Condition", exact=True), "dropped")
    _pick(page, page.get_by_role("combobox", name="Step 1 event"), "Product Viewed")
    _pick(page, page.get_by_role("combobox", name="Step 2 event"), "Product Added")
    page.get_by_role("button", name="+ step").click()
    step3 = page.get_by_role("combobox", name="Step 3 event")
    expect(step3).to_be_focused()
    _pick(page, step3, "Order Completed")
    page.get_by_label("Within (number)").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    where = page.get_by_label("Dropped off where")
    expect(where.locator("option")).to_have_text(
        ["at any step", "after step 1: Product Viewed", "after step 2: Product Added"]
    )
    _arrow_to(page, where, "2")
    expect(where.locator("option:checked")).to_have_text("after step 2: Product Added")

    # Then the steps read as the sentence does, and the document says exactly that
    expect(page.locator(".step-word")).to_have_text(["performed", "then", "but did not perform"])
    assert _definition(page) == ADDED_NOT_ORDERED
    expect(page.locator("#builder-sentence")).to_have_text(
        "People who performed Product Viewed, then Product Added, but did not perform Order Completed"
        " within 3 days (dropped off after step 2: Product Added)"
    )
    count = _live_count(page)
    assert count == _api_preview(page, ADDED_NOT_ORDERED)
    # the compiler's count is the oracle's over the same data, and fewer than every drop-off
    compiled, expected = _oracle_count(demo, ADDED_NOT_ORDERED)
    assert compiled == expected
    assert 0 < count < _api_preview(page, {**ADDED_NOT_ORDERED["conditions"][0], "dropped_after": None})

    # dropped off after step 1 reads "viewed, never added", the step after it "nor then"
    _arrow_to(page, where, "1")
    expect(page.locator(".step-word")).to_have_text(["performed", "but did not perform", "nor then"])
    viewed_only = _live_count(page)
    assert viewed_only == _api_preview(page, {**ADDED_NOT_ORDERED["conditions"][0], "dropped_after": 1})
    _arrow_to(page, where, "2")
    assert _live_count(page) == count
    _shot(page, "segment-builder-dropped-after-2", LAPTOP)

    # When saved, the segment's size is that count
    page.get_by_label("Name").click()
    page.keyboard.type("Added, not ordered")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("h1")).to_have_text("Added, not ordered")
    expect(page.locator("[data-size]")).to_have_text(str(count))
    with workspace_scope(demo):
        saved = Segment.objects.get(name="Added, not ordered")
    assert (saved.definition, saved.size) == (ADDED_NOT_ORDERED, count)

    # And reopened, the builder shows the same choice
    page.goto(f"{live_server.url}/segments/{saved.pk}/edit/")
    expect(page.get_by_label("Dropped off where")).to_have_value("2")
    expect(page.locator(".step-word")).to_have_text(["performed", "then", "but did not perform"])


def test_is_not_in_segment_round_trips(browser, live_server, watch, demo, eager_tasks):
    page = _signed_in(browser, watch, live_server)
    page.goto(f"{live_server.url}/segments/new/?template=big-spenders")
    big_spenders = _live_count(page)
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("[data-size]")).to_have_text(str(big_spenders))
    with workspace_scope(demo):
        spenders = Segment.objects.get(name="Big spenders")
        everyone = Person.objects.filter(workspace=demo).count()

    # A condition "is not in segment" Big spenders, chosen from the keyboard
    page.goto(f"{live_server.url}/segments/new/")
    page.get_by_role("button", name="+ Condition").click()
    _arrow_to(page, page.get_by_label("Condition", exact=True), "not_segment")
    expect(page.get_by_label("Segment", exact=True)).to_have_value(str(spenders.pk))
    expected = {
        "type": "and",
        "conditions": [{"type": "not", "condition": {"type": "segment", "segment": spenders.pk}}],
    }
    assert _definition(page) == expected
    expect(page.locator("#builder-sentence")).to_have_text("People who are not in Big spenders")
    assert _live_count(page) == everyone - big_spenders
    page.get_by_label("Name").fill("Not big spenders")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("[data-size]")).to_have_text(str(everyone - big_spenders))
    with workspace_scope(demo):
        saved = Segment.objects.get(name="Not big spenders")
    assert saved.definition == expected

    # Reopened, it is the same kind of condition (not a "none of" group), and saving keeps it
    page.goto(f"{live_server.url}/segments/{saved.pk}/edit/")
    expect(page.get_by_label("Condition", exact=True)).to_have_value("not_segment")
    expect(page.get_by_label("Segment", exact=True)).to_have_value(str(spenders.pk))
    expect(page.get_by_label("This group matches")).to_have_count(0)
    assert _definition(page) == expected
    # switching between "is in" and "is not in" keeps the segment
    _arrow_to(page, page.get_by_label("Condition", exact=True), "not_segment")
    page.keyboard.press("ArrowUp")
    assert _definition(page) == {"type": "and", "conditions": [{"type": "segment", "segment": spenders.pk}]}
    page.keyboard.press("ArrowDown")
    assert _definition(page) == expected
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("h1")).to_have_text("Not big spenders")
    with workspace_scope(demo):
        assert Segment.objects.get(pk=saved.pk).definition == expected


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_screens_of_the_builder_with_drop_off_and_not_in_segment(browser, live_server, watch, demo, viewport):
    with workspace_scope(demo):
        spenders = Segment.objects.create(workspace=demo, name="Big spenders", is_static=True)
    document = {
        "type": "and",
        "conditions": [
            {
                "type": "sequence",
                "steps": [
                    {"event": "Product Viewed", "filters": [{"key": "category", "operator": "eq", "value": "shoes"}]},
                    *FUNNEL_STEPS[1:],
                ],
                "within": "3d",
                "window": {"since": "30d"},
                "completed": False,
                "dropped_after": 1,
            },
            {"type": "not", "condition": {"type": "segment", "segment": spenders.pk}},
        ],
    }
    page = _signed_in(browser, watch, live_server, viewport)
    page.goto(f"{live_server.url}/segments/new/")
    page.get_by_role("tab", name="JSON").click()
    page.get_by_label("Definition as JSON").fill(json.dumps(document))
    page.get_by_role("tab", name="Visual").click()
    expect(page.locator(".step-word")).to_have_text(["performed", "but did not perform", "nor then"])
    expect(page.get_by_label("Condition", exact=True).last).to_have_value("not_segment")
    expect(page.locator("#builder-sentence")).to_have_text(
        "People who performed Product Viewed where category is shoes but did not perform Product Added"
        " within 3 days in the last 30 days (dropped off after step 1: Product Viewed) and are not in Big spenders"
    )
    _live_count(page)
    assert _definition(page) == document
    _shot(page, "segment-builder-drop-off", viewport)
