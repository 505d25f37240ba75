"""Frequency caps: counted across campaigns in a rolling window, recorded with their rule, never exceeded
by concurrent campaigns."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns import dispatch, fanout
from campaigns.capping import cap_decide, lock_key
from campaigns.models import FrequencyCap, Send, SendState
from tests.campaigns.engine_support import audience, broadcast, cap, sends


def fanned_out(workspace, **kwargs):
    campaign, run = broadcast(workspace, **kwargs)
    with workspace_scope(workspace):
        fanout.run_fan_out(workspace=workspace, run_id=run.pk)
    return campaign


def test_a_rule_counts_messages_in_its_rolling_window_only():
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    daily = FrequencyCap(pk=1, channel="email", max=1, per="1d", per_seconds=86_400)
    weekly = FrequencyCap(pk=2, channel="email", max=3, per="7d", per_seconds=7 * 86_400)
    # one message 24 h and 1 s ago: outside the day
    assert cap_decide([daily], [now - timedelta(days=1, seconds=1)], now) is None
    # one message 23 h 59 min ago: inside
    assert cap_decide([daily], [now - timedelta(hours=23, minutes=59)], now) == daily
    # three this week, none today: the weekly rule breaks, named
    this_week = [now - timedelta(days=d) for d in (2, 3, 4)]
    assert cap_decide([daily, weekly], this_week, now) == weekly


def test_lock_keys_are_per_workspace_and_person_and_fit_a_bigint():
    keys = {lock_key(w, p) for w in (1, 2) for p in (1, 2, 10**15)}
    assert len(keys) == 6
    assert all(-(2**63) <= k < 2**63 for k in keys)


@pytest.mark.django_db
def test_a_person_emailed_today_by_another_campaign_is_capped_with_the_rule(workspace, smtp):
    # Given a cap of 1 email per day; Ann was emailed 2 hours ago by another campaign, Bob 25 hours ago
    rule = cap(workspace, max=1, per="1d", seconds=86_400)
    segment, (ann, bob) = audience(workspace, [{"email": "ann@example.com"}, {"email": "bob@example.com"}])
    earlier = fanned_out(workspace, segments=[segment])
    with workspace_scope(workspace):
        Send.objects.filter(campaign=earlier, person=ann).update(
            state=SendState.SENT, sent_at=timezone.now() - timedelta(hours=2)
        )
        Send.objects.filter(campaign=earlier, person=bob).update(
            state=SendState.SENT, sent_at=timezone.now() - timedelta(hours=25)
        )
    campaign = fanned_out(workspace, segments=[segment])

    # When the new campaign's sends are dispatched
    assert dispatch.dispatch_due() == 2

    # Then Ann's is capped, recorded with the rule that capped it; Bob's is sent
    by_person = {s.person_id: s for s in sends(workspace, campaign)}
    assert by_person[ann.pk].state == SendState.CAPPED
    assert by_person[ann.pk].cap_id == rule.pk
    assert by_person[ann.pk].reason == "frequency cap: at most 1 email per 1d"
    assert by_person[ann.pk].sent_at is None
    assert by_person[bob.pk].state == SendState.SENT
    assert [m["To"] for m in smtp.wait_for(1)] == ["bob@example.com"]


@pytest.mark.django_db
def test_a_person_twice_in_one_chunk_gets_one_message_under_a_cap_of_one(workspace, smtp):
    cap(workspace, max=1)
    segment, _ = audience(workspace, [{"email": "ann@example.com"}])
    first = fanned_out(workspace, segments=[segment])
    second = fanned_out(workspace, segments=[segment])
    assert dispatch.dispatch_due() == 2
    outcomes = sorted([sends(workspace, first)[0].state, sends(workspace, second)[0].state])
    assert outcomes == [SendState.CAPPED, SendState.SENT]
    assert len(smtp.wait_for(1)) == 1


@pytest.mark.django_db
def test_caps_of_another_channel_do_not_apply(workspace, smtp):
    cap(workspace, channel="webhook", max=1)
    segment, _ = audience(workspace, [{"email": "ann@example.com"}])
    first = fanned_out(workspace, segments=[segment])
    second = fanned_out(workspace, segments=[segment])
    dispatch.dispatch_due()
    assert [sends(workspace, c)[0].state for c in (first, second)] == [SendState.SENT, SendState.SENT]


@pytest.mark.django_db(transaction=True)
def test_twenty_campaigns_launched_at_once_at_one_person_with_a_cap_of_one_send_one_message(workspace, smtp):
    # Given a cap of 1 email a day and 20 campaigns fanned out to one person
    cap(workspace, max=1)
    segment, _ = audience(workspace, [{"email": "ann@example.com"}])
    campaigns = [fanned_out(workspace, segments=[segment], name=f"Campaign {n}") for n in range(20)]

    # When five dispatchers race, each claiming one send at a time on its own connection
    start = threading.Barrier(5)
    handled: list[int] = []
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            start.wait()
            handled.append(dispatch.dispatch_due(chunk=1, limit=20))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly one message left, and the 19 others are capped by the rule
    assert errors == []
    assert sum(handled) == 20
    with workspace_scope(workspace):
        states = sorted(Send.objects.filter(campaign__in=campaigns).values_list("state", flat=True))
    assert states == [SendState.CAPPED] * 19 + [SendState.SENT]
    smtp.wait_for(1)
    assert len(smtp.messages) == 1
