"""The dashboard: people, events per day, the largest and fastest-growing segments, ingestion health;
first steps for a new workspace; nothing of another workspace; no promise of what is not built."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import workspace_scope
from segmentation import services
from segmentation.models import SegmentSizeSnapshot
from tests import factories
from tests.accounts.support import logged_in_client
from tests.segmentation.support import reload, shopper
from tests.tracking import builders
from tracking.models import QuarantinedMessage, QuarantineKind

pytestmark = pytest.mark.django_db


def _main(html: str) -> str:
    return html[html.index('<main id="main"') : html.index("</main>")]


def _segment(workspace, name, definition):
    with workspace_scope(workspace):
        segment = services.segment_create(workspace=workspace, actor=None, name=name, definition=definition)
        services.segment_refresh(segment=segment)
        return reload(segment)


def _quarantined(workspace, *, hours_ago, kind=QuarantineKind.REJECTED):
    with workspace_scope(workspace):
        QuarantinedMessage.objects.create(
            workspace=workspace,
            kind=kind,
            raw={"type": "track"},
            reason="event: is required",
            received_at=timezone.now() - timedelta(hours=hours_ago),
        )


def test_a_new_workspace_gets_first_steps_and_no_promise_of_campaigns(workspace, owner):
    response = logged_in_client(owner).get(reverse("dashboard"))

    main = _main(response.content.decode())
    assert response.status_code == 200
    assert "Get started" in main
    assert reverse("settings_install") in main
    assert "No events in the last 30 days" in main
    assert "No segments yet. Start from a template" in main
    assert "campaign" not in main.lower()
    assert response.context["people"] == 0
    assert response.context["health"].last_event_at is None


def test_the_numbers_of_a_workspace_with_data(workspace, owner):
    now = timezone.now()
    today = now.astimezone(UTC).date()
    ann = shopper(workspace, "ann", traits={"plan": "Pro"})
    bob = shopper(workspace, "bob", traits={"plan": "Free"})
    shopper(workspace, "cy", traits={"plan": "Pro"})
    builders.event(workspace, ann, "Login", at=now - timedelta(minutes=10))
    builders.event(workspace, bob, "Login", at=now - timedelta(minutes=20))
    builders.event(workspace, bob, "Login", at=now - timedelta(days=3))
    builders.event(workspace, ann, "Login", at=now - timedelta(days=45))  # outside the 30 days
    _quarantined(workspace, hours_ago=2)
    _quarantined(workspace, hours_ago=30)
    _quarantined(workspace, hours_ago=1, kind=QuarantineKind.WARNED)
    pro = _segment(workspace, "Pro", {"type": "trait", "key": "plan", "operator": "eq", "value": "Pro"})
    _segment(workspace, "Free", {"type": "trait", "key": "plan", "operator": "eq", "value": "Free"})
    _segment(workspace, "Nobody", {"type": "trait", "key": "plan", "operator": "eq", "value": "none"})
    with workspace_scope(workspace):
        SegmentSizeSnapshot.objects.create(workspace=workspace, segment=pro, at=now - timedelta(days=8), size=1)
    # Another workspace's rows count nowhere.
    other = factories.WorkspaceFactory()
    builders.event(other, shopper(other, "zed"), "Login", at=now - timedelta(minutes=5))
    _quarantined(other, hours_ago=1)

    response = logged_in_client(owner).get(reverse("dashboard"))

    context = response.context
    assert context["people"] == 3
    per_day = {bar.day: bar.value for bar in context["events_chart"].bars}
    assert len(per_day) == 30
    assert per_day[today] + per_day[today - timedelta(days=1)] == 2
    assert per_day[today - timedelta(days=3)] == 1
    assert context["events_chart"].total == 3
    health = context["health"]
    assert (health.events_last_hour, health.rejected_last_day, health.rejected_total, health.warned_last_day) == (
        2,
        1,
        2,
        1,
    )
    assert [(h.segment.name, share) for h, share in context["largest"]] == [("Pro", 67), ("Free", 33)]
    assert [(h.segment.name, h.trend.change, h.growth_percent) for h, _ in context["growing"]] == [("Pro", 1, 100)]
    main = _main(response.content.decode())
    assert "Get started" not in main
    assert reverse("quarantine") in main
    assert "67% of people" in main
    assert "zed" not in main


def test_todays_events_are_counted_live_while_earlier_days_are_kept(workspace, owner):
    now = timezone.now()
    ann = shopper(workspace, "ann")
    builders.event(workspace, ann, "Login", at=now - timedelta(days=2))
    client = logged_in_client(owner)
    first = client.get(reverse("dashboard")).context["events_chart"].total

    builders.event(workspace, ann, "Login", at=timezone.now())
    builders.event(workspace, ann, "Late", at=now - timedelta(days=2, minutes=1))  # a late event of an earlier day
    second = client.get(reverse("dashboard")).context

    assert first == 1
    assert second["events_today"] == 1
    assert second["events_chart"].total == 2, "earlier days come from the cache until it expires"


def test_the_dashboard_pins_its_queries(workspace, owner, django_assert_num_queries):
    ann = shopper(workspace, "ann")
    builders.event(workspace, ann, "Login")
    _segment(workspace, "All", {"type": "trait", "key": "plan", "operator": "is_not_set"})
    client = logged_in_client(owner)
    client.get(reverse("dashboard"))  # fills the cache of earlier days

    # session, user, membership, switcher; people; today's events; the hour, the newest event,
    # three quarantine counts; segments, snapshots
    with django_assert_num_queries(13):
        client.get(reverse("dashboard"))
    for n in range(5):
        builders.event(workspace, shopper(workspace, f"p{n}"), "Login")
        _segment(workspace, f"Segment {n}", {"type": "trait", "key": "n", "operator": "eq", "value": n})
    with django_assert_num_queries(13):
        client.get(reverse("dashboard"))


def test_the_events_chart_draws_one_bar_per_day_scaled_to_a_round_top():
    from segmentation.charts import daily_bars

    start = datetime(2026, 1, 1, tzinfo=UTC).date()
    chart = daily_bars([(start + timedelta(days=i), value) for i, value in enumerate([0, 30, 70, 0])])

    assert [bar.value for bar in chart.bars] == [0, 30, 70, 0]
    assert [tick.label for tick in chart.ticks] == ["0", "50", "100"]
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.value == 70
    assert chart.bars[1].height == pytest.approx(tallest.height * 30 / 70)
    assert (chart.total, chart.peak) == (100, 70)
