"""campaigns.selectors.campaign_results on a fixed small dataset: counts by outcome, conversions
inside the goal's window only (after the send, or after the holdout's due time), and the rates,
intervals and p-values worked out by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from accounts.tenancy import workspace_scope
from campaigns import selectors
from campaigns.models import Campaign, Send, SendState, Variant
from tests import factories
from tests.tracking import builders

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
Z = 1.959963984540054
_people = iter(range(1_000_000))


def _campaign(workspace, names=("A", "B"), goal="Order Completed"):
    with workspace_scope(workspace):
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=f"Campaign {next(_people)}",
            channel="email",
            kind="broadcast",
            holdout_percent=20,
            goal_event=goal,
            goal_within="1d" if goal else "",
            goal_within_seconds=86400 if goal else None,
        )
        variants = [
            Variant.objects.create(workspace=workspace, campaign=campaign, position=i, name=name, weight=1)
            for i, name in enumerate(names)
        ]
    return campaign, variants


def _send(
    workspace, campaign, variant, state, *, converts_after=None, opened=False, clicked=False, event="Order Completed"
):
    person = builders.person(workspace, user_id=f"p{next(_people)}")
    with workspace_scope(workspace):
        Send.objects.create(
            workspace=workspace,
            campaign=campaign,
            variant=variant,
            person=person,
            occurrence="run:1",
            channel="email",
            state=state,
            due_at=T0,
            sent_at=T0 if state == SendState.SENT else None,
            opened_at=T0 if opened else None,
            clicked_at=T0 if clicked else None,
        )
    if converts_after is not None:
        builders.event(workspace, person, event, at=T0 + converts_after)
    return person


def _wilson(k, n):
    root = Z * math.sqrt(Z * Z + 4 * k * (n - k) / n)
    return [(2 * k + Z * Z - root) / (2 * (n + Z * Z)), (2 * k + Z * Z + root) / (2 * (n + Z * Z))]


def _z_test(k1, n1, k2, n2):
    pooled = (k1 + k2) / (n1 + n2)
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def test_results_of_a_split_with_a_holdout(workspace):
    campaign, (a, b) = _campaign(workspace)
    hour = timedelta(hours=1)
    # A: 10 sent, 3 convert inside the day; one converts after the day, one converted before the send,
    # one did another event; plus 2 capped, 1 suppressed, 1 failed, 1 still pending.
    for _ in range(3):
        _send(workspace, campaign, a, SendState.SENT, converts_after=hour, opened=True)
    _send(workspace, campaign, a, SendState.SENT, converts_after=timedelta(days=2), opened=True, clicked=True)
    _send(workspace, campaign, a, SendState.SENT, converts_after=-hour)
    _send(workspace, campaign, a, SendState.SENT, converts_after=hour, event="Order Refunded")
    for _ in range(4):
        _send(workspace, campaign, a, SendState.SENT)
    for state in (SendState.CAPPED, SendState.CAPPED, SendState.SUPPRESSED, SendState.FAILED, SendState.PENDING):
        _send(workspace, campaign, a, state, converts_after=hour)
    # B: 10 sent, 6 convert (one of them twice: counted once), on the edge of the day too.
    twice = _send(workspace, campaign, b, SendState.SENT, converts_after=hour)
    builders.event(workspace, twice, "Order Completed", at=T0 + 2 * hour)
    for _ in range(4):
        _send(workspace, campaign, b, SendState.SENT, converts_after=hour, clicked=True)
    _send(workspace, campaign, b, SendState.SENT, converts_after=timedelta(days=1))
    for _ in range(4):
        _send(workspace, campaign, b, SendState.SENT)
    # Holdout: 5 held out, 1 converts after the time it would have been sent.
    _send(workspace, campaign, None, SendState.HOLDOUT, converts_after=hour)
    for _ in range(4):
        _send(workspace, campaign, None, SendState.HOLDOUT)
    # Another workspace's events of a person with the same id do not count.
    other = factories.WorkspaceFactory()
    stranger = builders.person(other, user_id="stranger")
    builders.event(other, stranger, "Order Completed", at=T0 + hour)

    with workspace_scope(workspace):
        result = selectors.campaign_results(workspace, campaign)

    got_a, got_b, holdout = (group.as_dict() for group in (*result.variants, result.holdout))
    assert {
        k: got_a[k] for k in ("targeted", "sent", "capped", "suppressed", "failed", "opened", "clicked", "converted")
    } == {
        "targeted": 15,
        "sent": 10,
        "capped": 2,
        "suppressed": 1,
        "failed": 1,
        "opened": 4,
        "clicked": 1,
        "converted": 3,
    }
    assert (got_b["targeted"], got_b["sent"], got_b["clicked"], got_b["converted"]) == (10, 10, 4, 6)
    assert (holdout["name"], holdout["targeted"], holdout["sent"], holdout["converted"]) == ("holdout", 5, 0, 1)
    assert (got_a["conversion_rate"], got_b["conversion_rate"], holdout["conversion_rate"]) == (0.3, 0.6, 0.2)
    assert got_a["interval"] == pytest.approx(_wilson(3, 10), abs=1e-12)
    assert got_b["interval"] == pytest.approx(_wilson(6, 10), abs=1e-12)
    assert holdout["interval"] == pytest.approx(_wilson(1, 5), abs=1e-12)
    assert (got_a["lift"], got_b["lift"], holdout["lift"]) == (pytest.approx(0.5), pytest.approx(2.0), None)
    assert result.test == "two-proportion z-test"
    assert result.p_value == pytest.approx(_z_test(3, 10, 6, 10), rel=1e-9)
    assert result.p_value == pytest.approx(0.1775, abs=1e-4)
    assert result.verdict == "no significant difference yet"
    assert result.goal == {"event": "Order Completed", "within": "1d"}


def test_one_variant_is_tested_against_the_holdout(workspace):
    campaign, (a,) = _campaign(workspace, names=("A",))
    for index in range(100):
        _send(workspace, campaign, a, SendState.SENT, converts_after=timedelta(hours=1) if index < 40 else None)
    for index in range(100):
        _send(workspace, campaign, None, SendState.HOLDOUT, converts_after=timedelta(hours=1) if index < 10 else None)

    with workspace_scope(workspace):
        result = selectors.campaign_results(workspace, campaign)

    assert result.p_value == pytest.approx(_z_test(40, 100, 10, 100), rel=1e-9)
    assert result.p_value < 0.001
    assert result.verdict == "A converts better than holdout: 40.0 % vs 10.0 %, p < 0.001"
    assert result.variants[0].lift == pytest.approx(3.0)


def test_three_variants_take_the_chi_square_test(workspace):
    campaign, variants = _campaign(workspace, names=("A", "B", "C"))
    for variant, converted in zip(variants, (10, 20, 30), strict=True):
        for index in range(100):
            after = timedelta(hours=1) if index < converted else None
            _send(workspace, campaign, variant, SendState.SENT, converts_after=after)

    with workspace_scope(workspace):
        result = selectors.campaign_results(workspace, campaign)

    statistic = 12.5  # Σ (o - e)² / e with e = 20 converted, 80 not, in each group
    assert result.test == "chi-square"
    assert result.p_value == pytest.approx(math.exp(-statistic / 2), rel=1e-9)
    assert result.verdict == "C converts best: 30.0 % vs B 20.0 %, A 10.0 %, p = 0.002"


def test_without_a_goal_nothing_is_measured(workspace):
    campaign, (a, _) = _campaign(workspace, goal="")
    _send(workspace, campaign, a, SendState.SENT, converts_after=timedelta(hours=1))

    with workspace_scope(workspace):
        result = selectors.campaign_results(workspace, campaign)

    assert (result.variants[0].sent, result.variants[0].converted, result.variants[0].conversion_rate) == (1, 0, None)
    assert (result.p_value, result.verdict, result.goal) == (None, "no goal set", None)
