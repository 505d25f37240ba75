"""The sending engine: broadcast fan-out, the dispatcher's outcomes, retries, quiet hours, local time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns import channels, dispatch, fanout
from campaigns.assignment import variant_for
from campaigns.models import Campaign, CampaignSettings, CampaignStatus, Run, Send, SendState, Suppression, Variant
from campaigns.progress import campaign_progress
from tests.campaigns.engine_support import audience, broadcast, join, sends

pytestmark = pytest.mark.django_db


def in_scope(workspace, function):
    """``function`` called inside the workspace's scope (as the tasks call it)."""

    def call(**kwargs):
        with workspace_scope(workspace):
            return function(**kwargs)

    return call


AB = (
    {"name": "A", "weight": 50, "subject": "A {{ person.traits.first_name }}", "body": "<p>A</p>"},
    {"name": "B", "weight": 50, "subject": "B {{ person.traits.first_name }}", "body": "<p>B</p>"},
)


def test_fan_out_writes_one_send_per_audience_person_with_the_assigned_variant(workspace):
    # Given 300 people in two overlapping segments, 40 of them excluded, A/B with a 10 % holdout
    included, people = audience(workspace, [{"email": f"p{n}@example.com"} for n in range(300)])
    other, others = audience(workspace, [{} for _ in range(20)])
    excluded, _ = audience(workspace, [])
    join(workspace, other, people[:50])
    join(workspace, excluded, people[-40:])
    campaign, run = broadcast(workspace, segments=[included, other], exclude=[excluded], variants=AB, holdout=10)

    # When its run fans out
    written = in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk)

    # Then the 260 + 20 people have a send each, due now, with the variant Python assigns
    rows = sends(workspace, campaign)
    assert written == 280
    assert len(rows) == 280
    assert {s.person_id for s in rows} == {p.pk for p in people[:-40] + others}
    with workspace_scope(workspace):
        variants = list(Variant.objects.filter(campaign=campaign).order_by("position"))
        run.refresh_from_db()
    for send in rows:
        expected = variant_for(campaign=campaign, variants=variants, person_id=send.person_id)
        assert send.variant_id == (expected.pk if expected else None)
        assert send.state == (SendState.HOLDOUT if expected is None else SendState.PENDING)
        assert send.occurrence == f"run:{run.pk}"
        assert send.channel == "email"
    assert run.total == 280
    assert run.fanned_out_at is not None

    # When it is fanned out again (a retried task)
    assert in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk) is None
    Run.objects.unscoped().filter(pk=run.pk).update(fanned_out_at=None)
    assert in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk) == 0
    # Then nothing more is written
    assert len(sends(workspace, campaign)) == 280


def test_a_scheduled_run_is_due_at_its_time_and_then_sending(workspace):
    segment, _ = audience(workspace, [{"email": "a@example.com"}])
    at = timezone.now() + timedelta(hours=2)
    campaign, run = broadcast(workspace, segments=[segment], status=CampaignStatus.SCHEDULED, send_at=at)
    # Before its time it is not due
    assert (workspace.pk, run.pk) not in in_scope(workspace, fanout.runs_due)(now=at - timedelta(seconds=1))
    assert (
        in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk, now=at - timedelta(seconds=1))
        is None
    )
    # At its time it is, and fanning out sends at that time
    assert (workspace.pk, run.pk) in in_scope(workspace, fanout.runs_due)(now=at)
    assert in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk, now=at) == 1
    [send] = sends(workspace, campaign)
    assert send.due_at == at
    with workspace_scope(workspace):
        campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING


def test_local_time_sends_at_that_wall_clock_time_in_each_persons_zone(workspace):
    # Given a workspace in Paris, a campaign at 09:00 Paris time on 2030-06-03, people in several zones
    with workspace_scope(workspace):
        CampaignSettings.objects.create(workspace=workspace, timezone="Europe/Paris")
    segment, people = audience(
        workspace,
        [
            {"timezone": "America/New_York"},
            {"timezone": "Asia/Tokyo"},
            {"timezone": "Not/AZone"},
            {},
            {"timezone": 7},
        ],
    )
    send_at = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)  # 09:00 in Paris (summer time)
    campaign, run = broadcast(
        workspace, segments=[segment], status=CampaignStatus.SCHEDULED, send_at=send_at, local_time=True
    )
    # When the tick looks at 23:00 UTC the day before: Kiribati (UTC+14) is at 09:00 then
    assert in_scope(workspace, fanout.runs_due)(now=datetime(2030, 6, 2, 18, 59, tzinfo=UTC)) == []
    now = datetime(2030, 6, 2, 19, 0, tzinfo=UTC)
    assert in_scope(workspace, fanout.runs_due)(now=now) == [(workspace.pk, run.pk)]
    assert in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk, now=now) == 5
    # Then each is due at 09:00 their time; no or bad zone: the workspace's
    due = {s.person_id: s.due_at for s in sends(workspace, campaign)}
    assert due[people[0].pk] == datetime(2030, 6, 3, 13, 0, tzinfo=UTC)
    assert due[people[1].pk] == datetime(2030, 6, 3, 0, 0, tzinfo=UTC)
    assert due[people[2].pk] == due[people[3].pk] == due[people[4].pk] == send_at


def test_local_time_already_past_in_a_zone_is_due_at_once(workspace):
    # Given a local-time campaign launched now for 12:00 UTC wall clock, at 15:00 UTC
    segment, people = audience(workspace, [{"timezone": "Asia/Tokyo"}, {"timezone": "America/Los_Angeles"}])
    campaign, run = broadcast(
        workspace, segments=[segment], send_at=datetime(2030, 1, 10, 12, 0, tzinfo=UTC), local_time=True
    )
    now = datetime(2030, 1, 10, 15, 0, tzinfo=UTC)
    in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk, now=now)
    due = {s.person_id: s.due_at for s in sends(workspace, campaign)}
    # Then Tokyo's 12:00 (03:00 UTC) is past: due now; Los Angeles' is at 20:00 UTC
    assert due[people[0].pk] == now
    assert due[people[1].pk] == datetime(2030, 1, 10, 20, 0, tzinfo=UTC)


# --- the dispatcher ---------------------------------------------------------------------------


def fanned_out(workspace, **kwargs):
    campaign, run = broadcast(workspace, **kwargs)
    with workspace_scope(workspace):
        fanout.run_fan_out(workspace=workspace, run_id=run.pk)
    return campaign, run


def by_email(workspace, campaign) -> dict[str, Send]:
    from tracking.models import Person

    with workspace_scope(workspace):
        emails = dict(Person.objects.values_list("pk", "traits__email"))
    return {str(emails.get(s.person_id)): s for s in sends(workspace, campaign)}


def test_dispatch_sends_each_due_email_once_and_records_why_others_did_not_go(workspace, smtp):
    # Given four people: two reachable, one without an address, one unsubscribed
    segment, _ = audience(
        workspace,
        [
            {"email": "ann@example.com", "first_name": "Ann"},
            {"email": " Bob@Example.com ", "first_name": "Bob"},
            {"first_name": "Nobody"},
            {"email": "gone@example.com", "first_name": "Gone"},
        ],
    )
    with workspace_scope(workspace):
        Suppression.objects.create(workspace=workspace, address="gone@example.com", reason="unsubscribed")
    campaign, _ = fanned_out(
        workspace,
        segments=[segment],
        variants=({"name": "A", "weight": 1, "subject": "Hi {{ person.traits.first_name }}", "body": "<p>Hi</p>"},),
    )

    # When the dispatcher runs
    assert dispatch.dispatch_due() == 4

    # Then the two reachable people got their own message, once
    messages = smtp.wait_for(2)
    assert sorted((m["To"], m["Subject"]) for m in messages) == [
        ("ann@example.com", "Hi Ann"),
        ("bob@example.com", "Hi Bob"),
    ]
    rows = by_email(workspace, campaign)
    assert rows["ann@example.com"].state == SendState.SENT
    assert rows["ann@example.com"].recipient == "ann@example.com"
    assert rows["ann@example.com"].sent_at is not None
    assert {m["Message-ID"] for m in messages} == {
        f"<send-{rows[a].pk}.{workspace.pk}@{channels.public_host()}>" for a in (" Bob@Example.com ", "ann@example.com")
    }
    assert (rows["None"].state, rows["None"].reason) == (SendState.SUPPRESSED, "no email address")
    assert (rows["gone@example.com"].state, rows["gone@example.com"].reason) == (SendState.SUPPRESSED, "unsubscribed")
    with workspace_scope(workspace):
        assert campaign_progress(workspace, campaign) == {
            "total": 4,
            "sent": 2,
            "capped": 0,
            "suppressed": 2,
            "failed": 0,
            "cancelled": 0,
            "pending": 0,
            "holdout": 0,
        }
    # And nothing more is due
    assert dispatch.dispatch_due() == 0
    assert len(smtp.messages) == 2


def test_a_template_failing_for_one_person_fails_that_send_only(workspace, smtp):
    segment, _ = audience(workspace, [{"email": "one@example.com", "n": 1}, {"email": "zero@example.com", "n": 0}])
    campaign, _ = fanned_out(
        workspace,
        segments=[segment],
        variants=({"name": "A", "weight": 1, "subject": "{{ 10 // person.traits.n }}", "body": "<p>x</p>"},),
    )
    dispatch.dispatch_due()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "10"
    rows = by_email(workspace, campaign)
    assert rows["one@example.com"].state == SendState.SENT
    assert rows["zero@example.com"].state == SendState.FAILED
    assert "division" in rows["zero@example.com"].reason
    with workspace_scope(workspace):
        campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING


def test_an_unreachable_mail_server_is_retried_with_backoff_then_fails(workspace, settings):
    # Given a mail server that refuses connections
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    segment, _ = audience(workspace, [{"email": "ann@example.com"}])
    campaign, _ = fanned_out(workspace, segments=[segment])
    now = timezone.now()
    # When it is attempted, it waits 1 min, 5 min, 30 min, 2 h between attempts
    for attempt, delay in enumerate(dispatch.RETRY_DELAYS, start=1):
        assert dispatch.dispatch_due(now=now) == 1
        [send] = sends(workspace, campaign)
        assert (send.state, send.attempts, send.due_at) == (SendState.PENDING, attempt, now + timedelta(seconds=delay))
        assert "cannot reach the mail server" in send.reason
        assert dispatch.dispatch_due(now=send.due_at - timedelta(microseconds=1)) == 0
        now = send.due_at
    # Then the fifth attempt fails it for good
    assert dispatch.dispatch_due(now=now) == 1
    [send] = sends(workspace, campaign)
    assert (send.state, send.attempts) == (SendState.FAILED, dispatch.MAX_ATTEMPTS)


def test_quiet_hours_defer_a_send_to_their_end_in_the_persons_zone(workspace, smtp):
    # Given quiet hours 21:00-08:00 and a person in Tokyo, at 23:30 in Tokyo
    with workspace_scope(workspace):
        CampaignSettings.objects.create(workspace=workspace, quiet_start=time(21), quiet_end=time(8))
    segment, _ = audience(
        workspace, [{"email": "ken@example.com", "timezone": "Asia/Tokyo"}, {"email": "al@example.com"}]
    )
    campaign, _ = fanned_out(workspace, segments=[segment])
    now = datetime(2030, 3, 1, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo, 14:30 in UTC (the workspace's zone)
    Send.objects.unscoped().filter(campaign=campaign).update(due_at=now)

    # When the dispatcher runs then
    assert dispatch.dispatch_due(now=now) == 2

    # Then the person in Tokyo waits until 08:00 Tokyo time; the other is sent
    rows = by_email(workspace, campaign)
    assert rows["al@example.com"].state == SendState.SENT
    ken = rows["ken@example.com"]
    assert (ken.state, ken.due_at, ken.attempts, ken.reason) == (
        SendState.PENDING,
        datetime(2030, 3, 1, 23, 0, tzinfo=UTC),
        0,
        "quiet hours",
    )
    assert [m["To"] for m in smtp.wait_for(1)] == ["al@example.com"]
    # And at 08:00 in Tokyo it goes
    assert dispatch.dispatch_due(now=datetime(2030, 3, 1, 23, 0, tzinfo=UTC)) == 1
    assert sorted(m["To"] for m in smtp.wait_for(2)) == ["al@example.com", "ken@example.com"]


def test_a_paused_campaigns_sends_wait_and_a_finished_run_marks_the_campaign_sent(workspace, smtp):
    segment, _ = audience(workspace, [{"email": "ann@example.com"}])
    campaign, run = fanned_out(workspace, segments=[segment])
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED)
    assert dispatch.dispatch_due() == 0
    assert fanout.runs_finish() == 0
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)
    assert dispatch.dispatch_due() == 1
    assert fanout.runs_finish() == 1
    with workspace_scope(workspace):
        campaign.refresh_from_db()
        run.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    assert run.finished_at is not None
    assert campaign.finished_at == run.finished_at


def test_a_claim_that_expired_is_claimed_again_and_sent_once(workspace, smtp, settings):
    # Given a send claimed by a worker that died (its claim holds 120 s)
    segment, _ = audience(workspace, [{"email": "ann@example.com"}])
    campaign, _ = fanned_out(workspace, segments=[segment])
    now = timezone.now()
    assert [c.send_id for c in dispatch.sends_claim(now=now)] == [s.pk for s in sends(workspace, campaign)]
    # When the dispatcher runs before the claim expires, nothing is taken
    assert dispatch.dispatch_due(now=now + timedelta(seconds=119)) == 0
    # When it runs after, the send is claimed again and sent
    assert dispatch.dispatch_due(now=now + timedelta(seconds=121)) == 1
    [send] = sends(workspace, campaign)
    assert (send.state, send.attempts) == (SendState.SENT, 2)
    assert len(smtp.wait_for(1)) == 1


def test_a_triggered_send_is_cancelled_when_the_exit_event_came_after_its_trigger(workspace, smtp):
    from campaigns.models import CampaignKind
    from tests.tracking import builders

    _, people = audience(workspace, [{"email": "buyer@example.com"}, {"email": "browser@example.com"}])
    with workspace_scope(workspace):
        campaign = Campaign.objects.create(
            workspace=workspace, name="Cart", channel="email", kind=CampaignKind.TRIGGERED, status="listening",
            trigger={"on": "event", "event": "Product Added"}, trigger_on="event", trigger_event="Product Added",
            exit_event="Order Completed", delay_seconds=1800,
        )  # fmt: skip
        variant = Variant.objects.create(
            workspace=workspace, campaign=campaign, position=0, name="A", weight=1, subject="Back?", body="<p>x</p>"
        )
        added = timezone.now() - timedelta(minutes=31)
        for n, person in enumerate(people):
            Send.objects.create(
                workspace=workspace, campaign=campaign, variant=variant, person=person, occurrence=f"event:{n}",
                channel="email", due_at=added + timedelta(minutes=30), triggered_at=added,
            )  # fmt: skip
    builders.event(workspace, people[0], "Order Completed", at=added + timedelta(minutes=10))
    builders.event(workspace, people[1], "Order Completed", at=added - timedelta(minutes=10))
    assert dispatch.dispatch_due() == 2
    rows = by_email(workspace, campaign)
    assert (rows["buyer@example.com"].state, rows["buyer@example.com"].reason) == (SendState.CANCELLED, "exit event")
    assert rows["browser@example.com"].state == SendState.SENT
    assert [m["To"] for m in smtp.wait_for(1)] == ["browser@example.com"]


@pytest.mark.parametrize(("people", "queued"), [(5, True), (4, False)])
def test_a_large_fan_out_queues_the_send_tables_statistics(workspace, monkeypatch, people, queued):
    # Given a run of `people` people, and a fan-out counted large from 5 sends on
    from campaigns import tasks

    segment, _ = audience(workspace, [{"email": f"p{n}@example.com"} for n in range(people)])
    _, run = broadcast(workspace, segments=[segment])
    monkeypatch.setattr(fanout, "ANALYZE_AFTER", 5)
    enqueued: list[str] = []
    monkeypatch.setattr(tasks, "_enqueue", lambda name, args: enqueued.append(name))

    # When the fan-out task runs
    tasks.run_fan_out_task(workspace.pk, run.pk)

    # Then dispatch is kicked, and the statistics refresh queued only for a large one
    assert (tasks.STATISTICS_TASK in enqueued) is queued
    assert tasks.DISPATCH_TASK in enqueued


def test_the_statistics_refresh_analyzes_the_send_table(workspace):
    from django.db import connection

    segment, _ = audience(workspace, [{"email": f"p{n}@example.com"} for n in range(7)])
    _, run = broadcast(workspace, segments=[segment])
    in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk)

    fanout.send_statistics_refresh()

    # The planner's row count of the table is now the table's (this test's sends only: the
    # test runs in a transaction, which ANALYZE reads as it is)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [Send._meta.db_table])
        assert cursor.fetchone()[0] == 7


def test_sends_are_due_only_for_active_campaigns_once_their_time_or_claim_has_passed(workspace):
    # Given a sending campaign with one pending send due in an hour
    segment, _ = audience(workspace, [{"email": "ada@example.com"}])
    campaign, run = broadcast(workspace, segments=[segment])
    in_scope(workspace, fanout.run_fan_out)(workspace=workspace, run_id=run.pk)
    now = timezone.now()
    mine = Send.objects.unscoped().filter(campaign=campaign)
    mine.update(due_at=now + timedelta(hours=1))
    assert dispatch.sends_due_exist(now=now) is False
    # Then it is due once its time has come
    assert dispatch.sends_due_exist(now=now + timedelta(hours=2)) is True
    # but not while its campaign is paused
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED)
    assert dispatch.sends_due_exist(now=now + timedelta(hours=2)) is False
    # and a claimed send only once its claim has expired
    Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)
    mine.update(state=SendState.CLAIMED, due_at=now, claim_expires_at=now + timedelta(minutes=2))
    assert dispatch.sends_due_exist(now=now + timedelta(minutes=1)) is False
    assert dispatch.sends_due_exist(now=now + timedelta(minutes=3)) is True
