"""Send-time optimisation (docs/campaigns.md, "Send-time optimisation and automatic winners"):
people's most active hour of the week learned from planted events, a best-hour broadcast due and
sent within each person's hour in their timezone (the clock moved by the test), the random-hour
control share, the results' comparison, the person page, merges, erasures, exports, the API."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tenancy import workspace_scope
from campaigns import active_hours, people, selectors
from campaigns.active_hours import MIN_EVENTS, active_hours_refresh, hour_of_week, person_active_hours
from campaigns.assignment import bucket
from campaigns.dispatch import dispatch_due
from campaigns.fanout import CONTROL_HOUR_SALT, CONTROL_SALT, run_fan_out
from campaigns.models import ActiveHours, Campaign, CampaignSettings, Send, SendState, WorkspaceActiveHours
from tests import factories
from tests.accounts.support import api, logged_in_client
from tests.accounts.test_browser import LAPTOP, PHONE, _log_in, _look, _new_context
from tests.accounts.test_browser import watch as watch
from tests.campaigns.api_support import body, campaign_rows, segment
from tests.campaigns.engine_support import audience, broadcast
from tracking.events import ErasedPerson
from tracking.models import Event, Person

# A Wednesday, 09:30 UTC.
NOW = datetime(2030, 3, 6, 9, 30, tzinfo=UTC)
WORKSPACE_ZONE = "America/New_York"
ZONES = ["Europe/Paris", "Asia/Tokyo", "America/Los_Angeles", None, "Australia/Sydney", "Not/AZone"]
GOAL = "Order Completed"


def _zone(traits: dict) -> ZoneInfo:
    name = traits.get("timezone")
    return ZoneInfo(name if name in ZONES and name not in (None, "Not/AZone") else WORKSPACE_ZONE)


def _at_hour_of_week(zone: ZoneInfo, hour: int, weeks_back: int, minute: int) -> datetime:
    """A time at that hour of the week in ``zone``, ``weeks_back`` weeks before NOW's week."""
    local_now = NOW.astimezone(zone)
    monday = (local_now - timedelta(days=local_now.weekday())).date()
    day = monday - timedelta(weeks=weeks_back) + timedelta(days=hour // 24)
    return datetime(day.year, day.month, day.day, hour % 24, minute, tzinfo=zone).astimezone(UTC)


def _hour_meant(due_at: datetime, zone: ZoneInfo, meant: int) -> int:
    """The hour of the week ``due_at`` reads in ``zone``, except that a send meant for an hour the
    clock skips (spring forward) falls at the instant that hour would have had, which the wall
    clock reads as the hour after: that reading is taken as the hour meant."""
    local = due_at.astimezone(zone)
    reading = hour_of_week(local)
    skipped = (local - timedelta(hours=1)).replace(tzinfo=None)
    exists = skipped.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == skipped
    return meant if reading == (meant + 1) % 168 and not exists else reading


def _events(workspace, rows: list[tuple[Person, datetime]], name: str = "Page Viewed") -> None:
    with workspace_scope(workspace):
        Event.objects.bulk_create(
            [
                Event(
                    workspace=workspace,
                    person_id=person.pk,
                    name=name,
                    properties={},
                    context={},
                    timestamp=at,
                    received_at=at,
                    message_id=f"m-{person.pk}-{index}-{name}",
                    user_id=person.user_id,
                    warnings=[],
                )
                for index, (person, at) in enumerate(rows)
            ],
            batch_size=5000,
        )


def _planted(workspace, count: int = 240, sparse: int = 12):
    """People with a planted hour of the week (10 events at it over 10 weeks, 4 at random hours),
    and ``sparse`` people with too little history (3 events)."""
    with workspace_scope(workspace):
        CampaignSettings.objects.create(workspace=workspace, timezone=WORKSPACE_ZONE)
    rng = random.Random(17)
    traits = []
    for index in range(count + sparse):
        zone = ZONES[index % len(ZONES)]
        entry = {"email": f"p{index}@example.com"}
        if zone is not None:
            entry["timezone"] = zone
        traits.append(entry)
    segment_, everyone = audience(workspace, traits)
    planted: dict[int, int] = {}
    rows: list[tuple[Person, datetime]] = []
    for index, person in enumerate(everyone):
        zone = _zone(person.traits)
        hour = rng.randrange(168)
        if index < count:
            planted[person.pk] = hour
            rows += [(person, _at_hour_of_week(zone, hour, week, rng.randrange(60))) for week in range(1, 11)]
            rows += [(person, _at_hour_of_week(zone, rng.randrange(168), rng.randrange(1, 11), 5)) for _ in range(4)]
        else:
            rows += [(person, _at_hour_of_week(zone, hour, week, 10)) for week in range(1, 4)]
    _events(workspace, rows)
    return segment_, everyone, planted


def test_people_are_assigned_their_planted_active_hour(workspace):
    # Given people with planted active hours in several timezones, and a few with little history
    _segment, everyone, planted = _planted(workspace)

    # When the refresh counts their events
    with workspace_scope(workspace):
        refreshed = active_hours_refresh(workspace=workspace, now=NOW)
        rows = {row.person_id: row for row in ActiveHours.objects.all()}

    # Then at least 90 % of them get their planted hour, in their own timezone
    assert refreshed.people == len(everyone)
    right = sum(1 for pk, hour in planted.items() if rows[pk].best_hour == hour)
    assert right / len(planted) >= 0.9, right
    assert all(rows[pk].events == 14 for pk in planted)
    # And the people with too little history get the workspace's best hour
    sparse = [p for p in everyone if p.pk not in planted]
    with workspace_scope(workspace):
        state = WorkspaceActiveHours.objects.get()
        for person in sparse:
            found = person_active_hours(workspace.pk, person.pk)
            assert (found.own, found.best_hour, found.events) == (False, state.best_hour, 3)
    assert state.best_hour is not None
    assert state.through == NOW
    assert MIN_EVENTS > 3


def test_the_refresh_is_incremental_and_recent_habits_win(workspace):
    # Given a person active on Mondays at 08:00 (UTC workspace), counted once
    _segment, (person,) = audience(workspace, [{"email": "a@example.com"}])
    old = [(person, _at_hour_of_week(ZoneInfo("UTC"), 8, week, 0)) for week in range(20, 26)]
    _events(workspace, old)
    with workspace_scope(workspace):
        active_hours_refresh(workspace=workspace, now=NOW)
        assert ActiveHours.objects.get().best_hour == 8

    # When a second refresh at the same time runs, nothing is counted twice
    with workspace_scope(workspace):
        again = active_hours_refresh(workspace=workspace, now=NOW)
        assert (again.people, ActiveHours.objects.get().events) == (0, 6)

    # And when later the person is active on Fridays at 18:00, as often but recently
    later = NOW + timedelta(days=14)
    recent = [(person, _at_hour_of_week(ZoneInfo("UTC"), 4 * 24 + 18, 0, i)) for i in range(6)]
    recent = [(p, at + timedelta(weeks=1)) for p, at in recent]
    _events(workspace, recent)
    with workspace_scope(workspace):
        step = active_hours_refresh(workspace=workspace, now=later)
        row = ActiveHours.objects.get()

    # Then only the new events are read, and the decay makes the recent hour the best one
    assert step.people == 1
    assert (row.best_hour, row.events, row.as_of) == (4 * 24 + 18, 12, later)
    assert 0.5 < row.confidence < 1


def _best_hour_campaign(workspace, segment_, **fields):
    campaign, run = broadcast(
        workspace,
        segments=[segment_],
        variants=({"name": "A", "weight": 1, "subject": "Hi", "body": "<p>Hi</p>"},),
        send_at=NOW,
    )
    with workspace_scope(workspace):
        Campaign.objects.filter(pk=campaign.pk).update(
            **{
                "send_time": "best_hour",
                "send_time_control_percent": 10,
                "goal_event": GOAL,
                "goal_within": "1d",
                "goal_within_seconds": 86_400,
                **fields,
            }
        )
        campaign.refresh_from_db()
    return campaign, run


def test_a_best_hour_broadcast_sends_each_person_within_their_hour_in_their_timezone(workspace, smtp):
    # Given people with planted hours, their active hours learned, and a best-hour broadcast at NOW
    segment_, everyone, planted = _planted(workspace)
    with workspace_scope(workspace):
        active_hours_refresh(workspace=workspace, now=NOW)
        learned = dict(ActiveHours.objects.values_list("person_id", "best_hour"))
        workspace_hour = WorkspaceActiveHours.objects.get().best_hour
    campaign, run = _best_hour_campaign(workspace, segment_)
    people_by_id = {p.pk: p for p in everyone}

    # When the run is fanned out at NOW
    with workspace_scope(workspace):
        written = run_fan_out(workspace=workspace, run_id=run.pk, now=NOW)
        sends = list(Send.objects.filter(campaign=campaign))
    assert written == len(everyone)

    # Then each send is due at the next occurrence of its hour of the week (within 7 days), in the
    # person's zone: their learned hour, the workspace's without history, a random one in the control
    control_hours = {}
    for send in sends:
        person = people_by_id[send.person_id]
        zone = _zone(person.traits)
        if bucket(campaign.pk, person.pk, CONTROL_SALT) < 0.1:
            expected = int(bucket(campaign.pk, person.pk, CONTROL_HOUR_SALT) * 168)
            control_hours[person.pk] = expected
        elif person.pk in planted:
            expected = learned[person.pk]
        else:
            expected = workspace_hour
        assert NOW <= send.due_at < NOW + timedelta(days=7)
        assert _hour_meant(send.due_at, zone, expected) == expected, (person.traits, send.due_at)
    assert 10 <= len(control_hours) <= 40  # about 10 % of 252
    on_planted = sum(
        1
        for s in sends
        if s.person_id in planted
        and s.person_id not in control_hours
        and _hour_meant(s.due_at, _zone(people_by_id[s.person_id].traits), planted[s.person_id]) == planted[s.person_id]
    )
    assert on_planted / len([pk for pk in planted if pk not in control_hours]) >= 0.9

    # When the clock moves through the week hour by hour, dispatching what is due
    start = NOW.replace(minute=0)
    for step in range(24 * 7 + 1):
        dispatch_due(now=start + timedelta(hours=step, minutes=59, seconds=59))

    # Then every message went, each within the hour it was due, in the person's zone
    with workspace_scope(workspace):
        done = list(Send.objects.filter(campaign=campaign))
    assert {s.state for s in done} == {SendState.SENT}
    assert len(smtp.messages) == len(everyone)
    for send in done:
        zone = _zone(people_by_id[send.person_id].traits)
        assert send.sent_at is not None
        assert send.sent_at - send.due_at < timedelta(hours=1)
        assert hour_of_week(send.sent_at.astimezone(zone)) == hour_of_week(send.due_at.astimezone(zone))

    # And the results compare the best-hour sends with the random-hour control
    converting = [s for s in done if s.person_id % 3 == 0]
    assert converting
    _events(workspace, [(people_by_id[s.person_id], s.sent_at + timedelta(hours=2)) for s in converting], GOAL)
    with workspace_scope(workspace):
        block = selectors.send_time_results(workspace, Campaign.objects.get(pk=campaign.pk))
    assert block is not None
    control_ids = set(control_hours)
    expected_control = sum(1 for s in converting if s.person_id in control_ids)
    assert block["control"]["sent"] == len(control_ids)
    assert block["best_hour"]["sent"] == len(everyone) - len(control_ids)
    assert block["control"]["converted"] == expected_control
    assert block["best_hour"]["converted"] == len(converting) - expected_control
    assert block["control_percent"] == 10
    assert block["verdict"]


def test_without_any_history_everyone_is_sent_at_the_default_best_hour(workspace):
    # Given nobody has any history: everyone gets the default best hour (Tuesday 10:00)
    segment_, (_ada,) = audience(workspace, [{"email": "ada@example.com", "timezone": "Europe/Paris"}])
    campaign, run = _best_hour_campaign(workspace, segment_, send_time_control_percent=0)
    with workspace_scope(workspace):
        run_fan_out(workspace=workspace, run_id=run.pk, now=NOW)
        send = Send.objects.get(campaign=campaign)
    # Then it is due next Tuesday between 10:00 and 11:00 in Paris
    local = send.due_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour) == (1, 10)
    assert NOW < send.due_at < NOW + timedelta(days=7)


def test_a_best_hour_the_clock_skips_is_sent_at_the_instant_it_would_have_had(workspace):
    # Given a person in New York usually active on Sundays 02:00-03:00, and a best-hour broadcast in
    # the week that the clock springs forward at 02:00 on Sunday (10 March 2030)
    new_york = ZoneInfo(WORKSPACE_ZONE)
    segment_, (ada,) = audience(workspace, [{"email": "ada@example.com", "timezone": WORKSPACE_ZONE}])
    _events(workspace, [(ada, _at_hour_of_week(new_york, 6 * 24 + 2, week, 0)) for week in range(1, 7)])
    with workspace_scope(workspace):
        active_hours_refresh(workspace=workspace, now=NOW)
        assert ActiveHours.objects.get().best_hour == 6 * 24 + 2
    campaign, run = _best_hour_campaign(workspace, segment_, send_time_control_percent=0)

    # When the run is fanned out
    with workspace_scope(workspace):
        run_fan_out(workspace=workspace, run_id=run.pk, now=NOW)
        send = Send.objects.get(campaign=campaign)

    # Then it is due on that Sunday between 07:00 and 08:00 UTC, 02:00-03:00 by the standard-time
    # offset, which the wall clock reads as 03:00-04:00
    assert (send.due_at.date().isoformat(), send.due_at.astimezone(UTC).hour) == ("2030-03-10", 7)
    assert send.due_at.astimezone(new_york).hour == 3
    assert _hour_meant(send.due_at, new_york, 6 * 24 + 2) == 6 * 24 + 2
    assert _hour_meant(send.due_at, new_york, 6 * 24 + 3) == 6 * 24 + 3


def test_the_person_page_and_api_show_when_they_are_usually_active(workspace):
    _segment, (ada, bob) = audience(
        workspace, [{"email": "ada@example.com", "timezone": "Europe/Paris"}, {"email": "bob@example.com"}]
    )
    paris = ZoneInfo("Europe/Paris")
    _events(workspace, [(ada, _at_hour_of_week(paris, 24 + 10, week, 0)) for week in range(1, 7)])
    with workspace_scope(workspace):
        active_hours_refresh(workspace=workspace, now=NOW)
    user = factories.member(workspace, role="viewer")
    client = logged_in_client(user, workspace=workspace)

    page = client.get(reverse("person_detail", kwargs={"pk": ada.pk}))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Usually active" in text
    assert "Tuesday 10:00-11:00" in text
    assert "Europe/Paris" in text
    assert "100 % of their recent activity" in text

    other = client.get(reverse("person_detail", kwargs={"pk": bob.pk})).content.decode()
    assert "too little history yet (0 events counted, 5 needed)" in other

    key = factories.api_key(workspace)[1]
    answer = api(Client(), "GET", f"/api/v1/people/{ada.pk}/", key=key).json()
    assert answer["active_hours"] == {
        "best_hour": 34,
        "in_words": "Tuesday 10:00-11:00",
        "confidence": 1.0,
        "events": 6,
        "own": True,
    }


def test_merge_erase_and_export_carry_active_hours(workspace):
    _segment, (ada, bob, cy) = audience(
        workspace, [{"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "c@example.com"}]
    )
    utc = ZoneInfo("UTC")
    _events(workspace, [(ada, _at_hour_of_week(utc, 5, w, 0)) for w in range(1, 4)])
    _events(workspace, [(bob, _at_hour_of_week(utc, 5, w, 0)) for w in range(1, 3)])
    _events(workspace, [(bob, _at_hour_of_week(utc, 7, 1, 0))])
    _events(workspace, [(cy, _at_hour_of_week(utc, 9, 1, 0))])
    with workspace_scope(workspace):
        active_hours_refresh(workspace=workspace, now=NOW)

        # When bob is merged into ada, their histograms add up
        people.person_merged(workspace.pk, bob.pk, ada.pk)
        merged = ActiveHours.objects.get(person_id=ada.pk)
        assert (merged.events, merged.best_hour) == (6, 5)
        assert not ActiveHours.objects.filter(person_id=bob.pk).exists()
        assert merged.histogram[7] > 0

        # And the export carries them
        section = people.person_export(workspace, Person.objects.get(pk=ada.pk))
        assert section["active_hours"]["best_hour"] == 5
        assert section["active_hours"]["events"] == 6
        assert len(section["active_hours"]["histogram"]) == 168

        # And an erasure removes them
        counts = people.person_erased(ErasedPerson(workspace=workspace, person_id=cy.pk, identities=[]))
        assert counts["active_hours"] == 1
        assert not ActiveHours.objects.filter(person_id=cy.pk).exists()


# --- the API ---------------------------------------------------------------------------------------------


@pytest.fixture
def key(workspace):
    return factories.api_key(workspace)[1]


def test_the_api_takes_a_best_hour_schedule(workspace, key):
    lapsed = segment(workspace)
    document = body([lapsed.pk], send_time="best_hour", send_time_control_percent=15)
    response = api(Client(), "POST", reverse("campaign-list"), document, key=key)
    assert response.status_code == 201, response.content
    made = response.json()
    assert (made["send_time"], made["send_time_control_percent"], made["auto_winner"]) == ("best_hour", 15, None)

    plain = api(Client(), "POST", reverse("campaign-list"), body([lapsed.pk], name="Plain"), key=key).json()
    assert (plain["send_time"], plain["send_time_control_percent"]) == (None, 10)

    results = api(Client(), "GET", reverse("campaign-results", kwargs={"pk": made["id"]}), key=key).json()
    assert results["send_time"]["control_percent"] == 15
    assert results["send_time"]["best_hour"]["sent"] == 0
    assert results["auto_winner"] is None


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"send_time": "noon"}, "send_time", 'null (at send_at, or at launch) or "best_hour"'),
        ({"send_time": "best_hour", "local_time": True, "send_at": "2030-01-01T09:00:00Z"}, "send_time", "Either"),
        ({"send_time": "best_hour", "send_time_control_percent": 60}, "send_time_control_percent", "from 0 to 50"),
        ({"send_time_control_percent": True}, "send_time_control_percent", "whole number"),
        (
            {"send_time": "best_hour", "kind": "triggered", "trigger": {"on": "event", "event": "Signed Up"}},
            "send_time",
            "Only a broadcast",
        ),
    ],
)
def test_the_api_refuses_a_bad_schedule_and_writes_nothing(workspace, key, changes, path, message):
    lapsed = segment(workspace)
    before = campaign_rows(workspace)
    response = api(Client(), "POST", reverse("campaign-list"), body([lapsed.pk], **changes), key=key)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert list(errors) == [path], errors
    assert message.lower() in " ".join(errors[path]).lower(), errors
    assert campaign_rows(workspace) == before


def test_the_hour_label_and_hour_of_week():
    assert active_hours.hour_label(0) == "Monday 00:00-01:00"
    assert active_hours.hour_label(167) == "Sunday 23:00-00:00"
    assert hour_of_week(datetime(2030, 3, 6, 9, 30)) == 2 * 24 + 9


# --- the person page in a browser ---------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_screens_of_the_person_page_with_when_they_are_usually_active(live_server, browser, watch, viewport):
    # Given a person usually active on Tuesdays at 10:00 in Paris, with a long name and email
    workspace = factories.WorkspaceFactory(name="Acme Shop")
    user = factories.member(workspace, role="owner")
    long_email = "someone.with.a.remarkably.long.address.for.testing.layouts@example-shop.example"
    _segment, (ada,) = audience(workspace, [{"email": long_email, "timezone": "Europe/Paris", "name": "Ada"}])
    paris = ZoneInfo("Europe/Paris")
    _events(workspace, [(ada, _at_hour_of_week(paris, 24 + 10, week, 0)) for week in range(1, 8)])
    _events(workspace, [(ada, _at_hour_of_week(paris, 5 * 24 + 20, 1, 0))])
    with workspace_scope(workspace):
        active_hours_refresh(workspace=workspace, now=NOW)

    # When their page is opened
    page = _new_context(browser, watch, viewport).new_page()
    _log_in(page, live_server.url, user.email, factories.PASSWORD)
    page.goto(f"{live_server.url}/people/{ada.pk}/")

    # Then the "Usually active" section says when, in their timezone, without sideways scrolling
    section = page.locator("#active-hours")
    expect(section).to_contain_text("Tuesday 10:00-11:00")
    expect(section).to_contain_text("Europe/Paris")
    expect(section).to_contain_text("of their recent activity falls in this hour; 8 events counted")
    _look(page, "campaigns-person-active-hours", viewport)


def test_the_refresh_is_on_the_beat_hourly_and_its_task_runs_in_the_workspaces_scope(settings, workspace):
    from campaigns.tasks import ACTIVE_HOURS_TASK, WINNER_TASK, active_hours_refresh_task
    from config.celery import app as celery_app

    celery_app.loader.import_default_modules()
    assert {ACTIVE_HOURS_TASK, WINNER_TASK} <= set(celery_app.tasks)
    entry = settings.CELERY_BEAT_SCHEDULE["campaigns-active-hours"]
    assert (entry["task"], entry["schedule"]) == ("campaigns.tasks.active_hours_tick", 3600.0)

    _segment, (ada,) = audience(workspace, [{"email": "a@example.com"}])
    real_now = timezone.now()  # the task reads the real clock
    _events(workspace, [(ada, real_now - timedelta(hours=h)) for h in range(1, 4)])
    assert active_hours_refresh_task.apply(args=(workspace.pk,)).get() == 1
    with workspace_scope(workspace):
        assert ActiveHours.objects.get().events == 3
