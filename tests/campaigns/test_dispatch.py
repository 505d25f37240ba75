"""The sending engine: broadcast fan-out, the dispatcher's outcomes, retries, quiet hours, local time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns import fanout
from campaigns.assignment import variant_for
from campaigns.models import CampaignSettings, CampaignStatus, Run, SendState, Variant
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
