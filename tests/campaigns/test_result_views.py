"""A campaign's results page: its numbers are campaign_results', its reasons grouped, its charts
drawn; the segments of who converted and who did not; polling while sending; roles, other
workspaces, and refusals that write nothing."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from accounts.tenancy import workspace_scope
from campaigns import result_charts, result_selectors, selectors, stats
from campaigns.models import Campaign, CampaignStatus
from segmentation.models import Membership, Segment
from tests import factories
from tests.accounts.support import logged_in_client, state
from tests.campaigns import results_support

pytestmark = pytest.mark.django_db

DASH = "\u2013"


def _url(campaign):
    return reverse("campaign_results", args=[campaign.pk])


def _segment_url(campaign):
    return reverse("campaign_results_segment", args=[campaign.pk])


def _cells(page: str, group: str) -> dict[str, str]:
    row = re.search(rf'<tr data-group="{re.escape(html.escape(group))}">(.*?)</tr>', page, re.S)
    assert row, group
    return {
        col: html.unescape(re.sub(r"<[^>]+>", "", value)).strip()
        for col, value in re.findall(r'data-col="(\w+)">(.*?)</td>', row.group(1), re.S)
    }


def _rate(value):
    return DASH if value is None else stats.percent(value)


def test_the_page_shows_campaign_results_numbers_verdict_and_lift(workspace, owner):
    # Given an A/B broadcast where B converts 40 % and A 10 %, with a holdout converting 10 %
    planted = results_support.campaign(workspace)
    client = logged_in_client(owner)

    # When the results page is opened
    response = client.get(_url(planted.campaign))

    # Then every number of the table is campaign_results'
    assert response.status_code == 200
    page = response.content.decode()
    with workspace_scope(workspace):
        expected = selectors.campaign_results(workspace, planted.campaign)
    for group in expected.variants:
        low, high = group.interval
        sign = "+" if group.lift >= 0 else "\u2212"
        assert _cells(page, group.name) == {
            "sent": str(group.sent),
            "opened": str(group.opened),
            "clicked": str(group.clicked),
            "converted": str(group.converted),
            "rate": _rate(group.conversion_rate),
            "interval": f"{_rate(low)} {DASH} {_rate(high)}",
            "lift": f"{sign}{abs(group.lift) * 100:.1f} %",
        }
    assert _cells(page, "holdout") == {
        "sent": DASH,
        "opened": DASH,
        "clicked": DASH,
        "converted": "2",
        "rate": "10.0 %",
        "interval": f"{_rate(expected.holdout.interval[0])} {DASH} {_rate(expected.holdout.interval[1])}",
        "lift": "baseline",
    }
    # And the planted numbers, worked by hand: A 4/40, B 16/40; B's lift over 10 % is +300 %
    assert [(g.sent, g.converted) for g in expected.variants] == [(40, 4), (40, 16)]
    assert _cells(page, "B")["lift"] == "+300.0 %"
    # And the verdict is the sentence of campaign_results, with the test and its p-value
    assert expected.verdict.startswith("B converts better than A: 40.0 % vs 10.0 %, p = ")
    verdict = re.search(r"<p class=\"verdict\" data-verdict>(.*?)</p>", page, re.S).group(1)
    assert html.unescape(verdict) == expected.verdict
    assert "Two-proportion z-test, " + stats.p_text(expected.p_value) in html.unescape(page)
    # And the totals and the outcome counts
    assert re.search(r"data-sent>80<", page)
    assert re.search(r"data-converted>20<", page)
    assert re.search(r"data-capped>3<", page)
    assert re.search(r"data-suppressed>2<", page)
    assert re.search(r"data-failed>1<", page)


def test_reasons_are_grouped_with_the_cap_rule_named(workspace, owner):
    planted = results_support.campaign(workspace)

    page = logged_in_client(owner).get(_url(planted.campaign)).content.decode()

    rows = re.findall(r'<tr data-state="(\w+)">.*?<td class="reason">(.*?)</td><td class="num">(\d+)</td>', page, re.S)
    assert rows == [
        ("capped", "at most 2 email per 1d", "3"),
        ("suppressed", "no email address", "2"),
        ("failed", "550 mailbox unavailable", "1"),
    ]


def test_the_charts_are_drawn_from_the_same_numbers(workspace, owner):
    planted = results_support.campaign(workspace)

    response = logged_in_client(owner).get(_url(planted.campaign))

    context = response.context
    # Sends per hour: 5 hours of sends (every send within 09:00-13:59), summing to the 80 sent
    assert context["over_time"].unit == "hour"
    assert [value for _, value in context["over_time"].points] == [16, 16, 16, 16, 16]
    assert sum(bar.value for bar in context["time_chart"].bars) == 80
    # The funnel: per variant, sent/opened/clicked/converted
    funnel = [(bar.name, bar.stage, bar.count) for bar in context["funnel_chart"].bars]
    assert funnel == [
        ("A", "Sent", 40), ("B", "Sent", 40), ("A", "Opened", 20), ("B", "Opened", 20),
        ("A", "Clicked", 10), ("B", "Clicked", 10), ("A", "Converted", 4), ("B", "Converted", 16),
    ]  # fmt: skip
    # The error bars: one row per group with its interval's ends, the holdout last
    rows = context["interval_chart"].rows
    assert [(row.name, row.rate) for row in rows] == [("A", "10 %"), ("B", "40 %"), ("Holdout", "10 %")]
    b = context["results"].variants[1]
    assert (rows[1].low_label, rows[1].high_label) == (
        result_charts.percent_label(b.interval[0]),
        result_charts.percent_label(b.interval[1]),
    )
    assert rows[1].low < rows[1].x < rows[1].high
    page = response.content.decode()
    assert page.count('class="error-bar"') == 6  # a wide chart and a narrow one (phones), 3 groups each
    assert 'data-chart="funnel"' in page
    assert 'data-chart="sends"' in page


def test_a_viewer_reads_results_but_cannot_make_a_segment(workspace):
    planted = results_support.campaign(workspace)
    viewer = factories.member(workspace, role="viewer")
    client = logged_in_client(viewer)

    page = client.get(_url(planted.campaign))
    assert page.status_code == 200
    assert "Viewers cannot make segments." in page.content.decode()
    assert page.content.decode().count('data-segment="converted" disabled') == 1

    before = state()
    refused = client.post(_segment_url(planted.campaign), {"kind": "converted"})
    assert refused.status_code == 403
    assert state() == before


def test_another_workspaces_campaign_is_404_for_page_and_segment(workspace, owner):
    other = factories.WorkspaceFactory()
    theirs = results_support.campaign(other, name="Theirs")
    client = logged_in_client(owner)
    before = state()

    assert client.get(_url(theirs.campaign)).status_code == 404
    assert client.post(_segment_url(theirs.campaign), {"kind": "converted"}).status_code == 404
    assert client.get(reverse("campaign_results", args=[987654321])).status_code == 404
    assert state() == before


def test_the_converted_segment_holds_exactly_the_converted_recipients(workspace, owner):
    # Given results with 20 converted recipients and one anonymous one
    planted = results_support.campaign(workspace, anonymous_converted=1)
    client = logged_in_client(owner)

    # When the "converted" segment is made
    response = client.post(_segment_url(planted.campaign), {"kind": "converted"})

    # Then a static segment named after the campaign holds the identified converters
    with workspace_scope(workspace):
        segment = Segment.objects.get(workspace=workspace, name="Spring win-back — converted")
        members = set(
            Membership.objects.filter(workspace=workspace, segment=segment).values_list("person_id", flat=True)
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("segment_detail", args=[segment.pk])
    assert segment.is_static
    assert segment.size == 20
    assert members == {p.pk for p in planted.converted}
    assert "1 anonymous recipients are left out." in segment.description

    # And made again, the name is numbered
    client.post(_segment_url(planted.campaign), {"kind": "converted"})
    with workspace_scope(workspace):
        assert Segment.objects.filter(workspace=workspace, name="Spring win-back — converted (2)").count() == 1


def test_the_not_converted_segment_holds_the_other_recipients(workspace, owner):
    planted = results_support.campaign(workspace)
    client = logged_in_client(owner)

    client.post(_segment_url(planted.campaign), {"kind": "not_converted"})

    with workspace_scope(workspace):
        segment = Segment.objects.get(workspace=workspace, name="Spring win-back — did not convert")
        members = set(
            Membership.objects.filter(workspace=workspace, segment=segment).values_list("person_id", flat=True)
        )
        recipients = result_selectors.recipients(workspace, planted.campaign, converted=False)
    assert members == {p.pk for p in planted.not_converted}
    assert segment.size == 60 == len(recipients.user_ids)


def test_refusals_say_why_and_write_nothing(workspace, owner):
    planted = results_support.campaign(workspace)
    with workspace_scope(workspace):
        Campaign.objects.filter(pk=planted.campaign.pk).update(goal_event="", goal_within="", goal_within_seconds=None)
    client = logged_in_client(owner)
    before = state()

    no_goal = client.post(_segment_url(planted.campaign), {"kind": "converted"}, follow=True)
    bad_kind = client.post(_segment_url(planted.campaign), {"kind": "everyone"}, follow=True)

    assert state() == before
    assert "No segment made. This campaign has no goal, so nobody converts: set a goal first." in html.unescape(
        no_goal.content.decode()
    )
    assert "Choose the people who converted or those who did not." in bad_kind.content.decode()
    assert no_goal.redirect_chain == [(_url(planted.campaign), 302)]


def test_nobody_identified_converted_is_refused(workspace, owner):
    planted = results_support.campaign(workspace, plan={"A": (5, 0)}, holdout=(0, 0), anonymous_converted=2)
    client = logged_in_client(owner)
    before = state()

    response = client.post(_segment_url(planted.campaign), {"kind": "converted"}, follow=True)

    assert state() == before
    assert "Nobody with a user id converted (2 anonymous)" in response.content.decode()


def test_while_sending_the_page_polls_and_answers_204_until_something_changes(workspace, owner):
    planted = results_support.campaign(workspace, status=CampaignStatus.SENDING, pending=4)
    client = logged_in_client(owner)
    page = client.get(_url(planted.campaign))
    assert page.context["busy"] is True
    assert page.context["progress"]["pending"] == 4
    seen = page.context["live_state"]
    assert 'id="results-poll"' in page.content.decode()
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "results-poll"}

    unchanged = client.get(_url(planted.campaign), {"seen": seen}, **headers)
    assert unchanged.status_code == 204

    with workspace_scope(workspace):
        from campaigns.models import Send, SendState

        Send.objects.filter(workspace=workspace, campaign=planted.campaign, state=SendState.PENDING).update(
            state=SendState.SENT, sent_at=results_support.T0
        )
        Campaign.objects.filter(pk=planted.campaign.pk).update(status=CampaignStatus.SENT)
    changed = client.get(_url(planted.campaign), {"seen": seen}, **headers)
    assert changed.status_code == 200
    assert changed["HX-Retarget"] == "#results-live"
    body = changed.content.decode()
    assert body.strip().startswith('<div id="results-live"')
    assert 'id="results-poll"' not in body  # done: polling stops
    assert re.search(r"data-sent>84<", body)


def test_a_campaign_without_sends_shows_empty_charts(workspace, owner):
    with workspace_scope(workspace):
        made = Campaign.objects.create(workspace=workspace, name="Draft", channel="email", kind="broadcast")

    page = logged_in_client(owner).get(_url(made)).content.decode()

    assert "No goal set: set a goal event on the campaign to measure conversions." in page
    assert "Nothing sent yet." in page
    assert "The funnel fills in as messages are sent." in page
