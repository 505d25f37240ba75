"""Automatic winner (docs/campaigns.md, "Send-time optimisation and automatic winners"): the
variants go to a test share first, the rest waits; after the wait the planted better variant is
chosen and sent to the remaining audience only; without a significant difference the default
wins; the decision is kept, answered in the results and audited; the API's refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from campaigns.assignment import bucket, variant_for
from campaigns.dispatch import dispatch_due
from campaigns.fanout import WINNER_TEST_SALT, run_fan_out, runs_finish
from campaigns.models import Campaign, CampaignStatus, Run, Send, SendState, Variant
from campaigns.winner import AUDIT_ACTION, AUDIT_LABEL, winner_decide, winners_due
from tests import factories
from tests.accounts.support import api
from tests.campaigns.api_support import body, campaign_rows, segment
from tests.campaigns.engine_support import audience, broadcast
from tracking.models import Event

T0 = datetime(2030, 4, 2, 9, 0, tzinfo=UTC)
GOAL = "Order Completed"
VARIANTS = (
    {"name": "A", "weight": 1, "subject": "Hi", "body": "<p>A</p>"},
    {"name": "B", "weight": 1, "subject": "Hello", "body": "<p>B</p>"},
)


def _campaign(workspace, people_count=1000, **auto):
    segment_, people = audience(workspace, [{"email": f"w{i}@example.com"} for i in range(people_count)])
    campaign, run = broadcast(workspace, segments=[segment_], variants=VARIANTS, holdout=10, send_at=T0)
    with workspace_scope(workspace):
        Campaign.objects.filter(pk=campaign.pk).update(
            auto_winner={"test_percent": 20, "wait": "4h", "default_variant": "A", **auto},
            goal_event=GOAL,
            goal_within="1d",
            goal_within_seconds=86_400,
        )
        campaign.refresh_from_db()
        variants = list(Variant.objects.filter(campaign=campaign).order_by("position"))
    return campaign, run, people, variants


def _convert(workspace, sends, every: dict[str, int], names: dict[int, str]) -> None:
    """Goal events an hour after the send for every n-th recipient of each variant."""
    seen: dict[str, int] = {}
    rows = []
    for send in sorted(sends, key=lambda s: s.person_id):
        name = names[send.variant_id]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] % every[name] == 0:
            rows.append(send)
    with workspace_scope(workspace):
        Event.objects.bulk_create(
            [
                Event(
                    workspace=workspace,
                    person_id=s.person_id,
                    name=GOAL,
                    properties={},
                    context={},
                    timestamp=s.sent_at + timedelta(hours=1),
                    received_at=s.sent_at + timedelta(hours=1),
                    message_id=f"goal-{s.pk}",
                    warnings=[],
                )
                for s in rows
            ]
        )


def test_the_planted_better_variant_is_sent_to_the_remaining_audience_only(workspace, smtp):
    # Given a 1,000-person A/B broadcast with a 10 % holdout, testing on 20 % for 4 hours
    campaign, run, people, (a, b) = _campaign(workspace)
    names = {a.pk: "A", b.pk: "B"}
    held = {p.pk for p in people if variant_for(campaign=campaign, variants=[a, b], person_id=p.pk) is None}
    test_share = {p.pk for p in people if p.pk not in held and bucket(campaign.pk, p.pk, WINNER_TEST_SALT) < 0.2}
    rest = {p.pk for p in people} - held - test_share

    # When the run is fanned out at its time
    with workspace_scope(workspace):
        written = run_fan_out(workspace=workspace, run_id=run.pk, now=T0)
        first = list(Send.objects.filter(campaign=campaign))

    # Then only the holdout and the test share have sends, each test person with their usual variant
    assert written == len(held) + len(test_share)
    assert {s.person_id for s in first if s.state == SendState.HOLDOUT} == held
    assert {s.person_id for s in first if s.state == SendState.PENDING} == test_share
    for send in first:
        if send.state == SendState.PENDING:
            assert send.variant_id == variant_for(campaign=campaign, variants=[a, b], person_id=send.person_id).pk
    assert 150 < len(test_share) < 220

    # When the test sends go out and B converts far better (every 2nd) than A (every 10th)
    dispatch_due(now=T0)
    with workspace_scope(workspace):
        sent = list(Send.objects.filter(campaign=campaign, state=SendState.SENT))
    assert {s.person_id for s in sent} == test_share
    _convert(workspace, sent, {"A": 10, "B": 2}, names)

    # Then nothing is decided before the wait is over, and the run stays open meanwhile
    runs_finish(now=T0 + timedelta(hours=1))
    assert winners_due(now=T0 + timedelta(hours=3, minutes=59)) == []
    with workspace_scope(workspace):
        assert winner_decide(workspace=workspace, campaign_id=campaign.pk, now=T0 + timedelta(hours=3)) is None
        assert Run.objects.get(pk=run.pk).finished_at is None
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENDING

    # When the wait is over
    decided_at = T0 + timedelta(hours=4)
    assert winners_due(now=decided_at) == [(workspace.pk, campaign.pk)]
    with workspace_scope(workspace):
        decision = winner_decide(workspace=workspace, campaign_id=campaign.pk, now=decided_at)
        after = list(Send.objects.filter(campaign=campaign))

    # Then B wins on the numbers, and is sent to the rest only, due at once
    assert decision is not None
    assert (decision["winner"], decision["significant"], decision["test"]) == ("B", True, "two-proportion z-test")
    assert decision["p_value"] < 0.05
    assert decision["remaining_sends"] == len(rest)
    by_name = {v["name"]: v for v in decision["variants"]}
    sent_b = sum(1 for s in sent if s.variant_id == b.pk)
    assert (by_name["B"]["sent"], by_name["B"]["converted"]) == (sent_b, sent_b // 2)
    new = [s for s in after if s.pk not in {f.pk for f in first}]
    assert {s.person_id for s in new} == rest
    assert {(s.variant_id, s.state, s.due_at) for s in new} == {(b.pk, SendState.PENDING, decided_at)}
    assert len(after) == len(people)  # one row per person: nobody of the test share twice
    with workspace_scope(workspace):
        assert Run.objects.get(pk=run.pk).total == len(people)
        stored = Campaign.objects.get(pk=campaign.pk)
        entry = AuditLogEntry.objects.get(action=AUDIT_ACTION)
    assert stored.winner_decided_at == decided_at
    assert stored.winner_decision == decision
    assert (entry.target, entry.actor_label, entry.details["winner"]) == (campaign.name, AUDIT_LABEL, "B")

    # And deciding again does nothing
    assert winners_due(now=decided_at + timedelta(hours=1)) == []
    with workspace_scope(workspace):
        assert winner_decide(workspace=workspace, campaign_id=campaign.pk, now=decided_at) is None
        assert Send.objects.filter(campaign=campaign).count() == len(people)

    # And the rest is sent, the run finishes, the results show the decision
    dispatch_due(now=decided_at)
    runs_finish(now=decided_at)
    with workspace_scope(workspace):
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT
        assert Send.objects.filter(campaign=campaign, state=SendState.SENT, variant=b).count() == sent_b + len(rest)
    assert len(smtp.messages) == len(test_share) + len(rest)
    key = factories.api_key(workspace)[1]
    results = api(Client(), "GET", reverse("campaign-results", kwargs={"pk": campaign.pk}), key=key).json()
    block = results["auto_winner"]
    assert (block["state"], block["test_percent"], block["wait"], block["default_variant"]) == (
        "decided",
        20,
        "4h",
        "A",
    )
    assert block["decision"]["winner"] == "B"
    assert block["decides_at"] is None
    assert results["send_time"] is None


def test_without_a_significant_difference_the_default_variant_wins(workspace, smtp):
    # Given a test where both variants convert alike (every 5th), B the default
    campaign, run, _people, (a, b) = _campaign(workspace, people_count=400, default_variant="B")
    with workspace_scope(workspace):
        run_fan_out(workspace=workspace, run_id=run.pk, now=T0)
    dispatch_due(now=T0)
    with workspace_scope(workspace):
        sent = list(Send.objects.filter(campaign=campaign, state=SendState.SENT))
    _convert(workspace, sent, {"A": 5, "B": 5}, {a.pk: "A", b.pk: "B"})

    # When the wait is over
    with workspace_scope(workspace):
        decision = winner_decide(workspace=workspace, campaign_id=campaign.pk, now=T0 + timedelta(hours=4))
        rest = Send.objects.filter(campaign=campaign).exclude(pk__in=[s.pk for s in sent])
        rest_variants = set(rest.exclude(state=SendState.HOLDOUT).values_list("variant_id", flat=True))

    # Then the default is sent to the rest, and the decision says why
    assert decision is not None
    assert (decision["winner"], decision["significant"]) == ("B", False)
    assert decision["p_value"] >= 0.05
    assert "the default, B, is sent" in decision["reason"]
    assert rest_variants == {b.pk}


def test_a_paused_campaign_is_decided_only_once_resumed(workspace):
    campaign, run, _people, _variants = _campaign(workspace, people_count=50)
    with workspace_scope(workspace):
        run_fan_out(workspace=workspace, run_id=run.pk, now=T0)
        Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED)
        assert winner_decide(workspace=workspace, campaign_id=campaign.pk, now=T0 + timedelta(days=1)) is None
    assert winners_due(now=T0 + timedelta(days=1)) == []


# --- the API ---------------------------------------------------------------------------------------------


@pytest.fixture
def key(workspace):
    return factories.api_key(workspace)[1]


def test_the_api_takes_an_automatic_winner(workspace, key):
    lapsed = segment(workspace)
    document = body([lapsed.pk], auto_winner={"test_percent": 25, "wait": "240m"})
    response = api(Client(), "POST", reverse("campaign-list"), document, key=key)
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["auto_winner"] == {"test_percent": 25, "wait": "240m", "default_variant": "A"}

    results = api(Client(), "GET", reverse("campaign-results", kwargs={"pk": made["id"]}), key=key).json()
    assert results["auto_winner"] == {
        "test_percent": 25,
        "wait": "240m",
        "default_variant": "A",
        "state": "testing",
        "decides_at": None,
        "decision": None,
    }

    # And once launched it cannot change
    launched = api(Client(), "POST", reverse("campaign-launch", kwargs={"pk": made["id"]}), key=key)
    assert launched.status_code == 202, launched.content
    changed = api(
        Client(),
        "PATCH",
        reverse("campaign-detail", kwargs={"pk": made["id"]}),
        {"auto_winner": {"test_percent": 50, "wait": "1h"}},
        key=key,
    )
    assert changed.status_code == 400
    assert list(changed.json()["errors"]) == ["auto_winner"]


ONE_VARIANT = [{"name": "A", "weight": 1, "subject": "Hi", "body": "<p>Hi</p>"}]


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"auto_winner": {"test_percent": 20}}, "auto_winner.wait", "Required"),
        ({"auto_winner": {"wait": "soon"}}, "auto_winner.wait", "Expected a duration"),
        ({"auto_winner": {"wait": "31d"}}, "auto_winner.wait", "From 1 minute"),
        ({"auto_winner": {"wait": "4h", "test_percent": 95}}, "auto_winner.test_percent", "from 1 to 90"),
        ({"auto_winner": {"wait": "4h", "default_variant": "Z"}}, "auto_winner.default_variant", "one of the variants"),
        ({"auto_winner": {"wait": "4h", "colour": "red"}}, "auto_winner.colour", "Unknown field"),
        ({"auto_winner": "yes"}, "auto_winner", "Expected an object"),
        ({"auto_winner": {"wait": "4h"}, "variants": ONE_VARIANT}, "auto_winner", "2 or more variants"),
        ({"auto_winner": {"wait": "4h"}, "goal": None}, "auto_winner", "Needs a goal"),
        ({"auto_winner": {"wait": "4h"}, "send_time": "best_hour"}, "auto_winner", "Not with local_time or best_hour"),
    ],
)
def test_the_api_refuses_a_bad_automatic_winner_and_writes_nothing(workspace, key, changes, path, message):
    lapsed = segment(workspace)
    before = campaign_rows(workspace)
    response = api(Client(), "POST", reverse("campaign-list"), body([lapsed.pk], **changes), key=key)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert list(errors) == [path], errors
    assert message.lower() in " ".join(errors[path]).lower(), errors
    assert campaign_rows(workspace) == before
