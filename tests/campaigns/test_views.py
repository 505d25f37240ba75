"""The campaign pages: the list (filters, playbooks), the editor (saving, refusals shown inline with
nothing written), the audience estimate (equal to the API's), preview, test send, launch and pause,
roles (viewers read; members launch only when the workspace allows), other workspaces' 404s."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.tenancy import workspace_scope
from campaigns import services
from campaigns.estimate import audience_estimate
from campaigns.models import Campaign, CampaignSettings, CampaignStatus, Run, Send, SendState, Suppression
from segmentation.models import Segment
from tests import factories
from tests.accounts.support import api, logged_in_client
from tests.campaigns.api_support import campaign_rows
from tests.campaigns.engine_support import audience, broadcast, cap

pytestmark = pytest.mark.django_db


def _people() -> list[dict[str, Any]]:
    """Ten people: 0-1 without an address, 2 unsubscribed, 3 emailed an hour ago (capped by 1 a day)."""
    return [{"name": f"P{n}"} if n < 2 else {"name": f"P{n}", "email": f"p{n}@example.com"} for n in range(10)]


@pytest.fixture
def shop(workspace):
    segment, people = audience(workspace, _people(), name="Lapsed customers")
    vips, _ = audience(workspace, [{"email": "vip@example.com"}], name="VIPs")
    # two of the lapsed people are VIPs too, excluded below
    from tests.campaigns.engine_support import join

    join(workspace, vips, people[8:10])
    cap(workspace, max=1, per="1d", seconds=86_400)
    earlier, _ = broadcast(workspace, segments=[segment], status=CampaignStatus.SENT, name="Earlier")
    with workspace_scope(workspace):
        Suppression.objects.create(workspace=workspace, address="p2@example.com", reason="unsubscribed")
        Send.objects.create(
            workspace=workspace,
            campaign=earlier,
            person=people[3],
            occurrence="run:0",
            channel="email",
            state=SendState.SENT,
            due_at=timezone.now(),
            sent_at=timezone.now() - timedelta(hours=1),
        )
    return {"segment": segment, "vips": vips, "people": people, "earlier": earlier}


def _client(workspace, role: str = "owner") -> Client:
    return logged_in_client(factories.member(workspace, role=role), workspace=workspace)


def _form(segment: Segment, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "Win them back",
        "description": "",
        "channel": "email",
        "kind": "broadcast",
        "include": [str(segment.pk)],
        "schedule": "now",
        "holdout_percent": "10",
        "variant_count": "2",
        "v0-name": "A",
        "v0-weight": "1",
        "v0-subject": "Hello {{ person.traits.name }}",
        "v0-body": "<p>Come back, {{ person.traits.name }}</p>",
        "v1-name": "B",
        "v1-weight": "1",
        "v1-subject": "We miss you",
        "v1-body": "<p>20 % off</p>",
        "goal_event": "Order Completed",
        "goal_within": "3d",
    }
    data.update(changes)
    return data


def _draft(workspace, segment: Segment, name: str = "Draft") -> Campaign:
    with workspace_scope(workspace):
        return services.campaign_create(
            workspace=workspace,
            actor=None,
            data={
                "name": name,
                "channel": "email",
                "kind": "broadcast",
                "audience": {"segments": [segment.pk], "exclude": []},
                "variants": [
                    {"name": "A", "weight": 1, "subject": "Hi {{ person.traits.name }}", "body": "<p>Hi</p>"},
                    {"name": "B", "weight": 1, "subject": "Hello", "body": "<p>Hello</p>"},
                ],
            },
        )


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- the list ------------------------------------------------------------------------------------------


def test_an_empty_list_starts_from_a_playbook_that_makes_its_segment_and_a_draft(workspace):
    # Given a workspace without campaigns or segments
    client = _client(workspace)
    # When the list is opened
    page = client.get(reverse("campaigns"))
    # Then it offers the four playbooks
    assert page.status_code == 200
    for name in ("Win back lapsed customers", "Cart abandonment", "Welcome new sign-ups", "VIP offer for big spenders"):
        assert name in page.content.decode()
    # When the win-back playbook is picked twice
    first = client.post(reverse("campaign_from_playbook", args=["win-back"]))
    second = client.post(reverse("campaign_from_playbook", args=["win-back"]))
    # Then the segment template was made once and each pick made a draft to it
    with workspace_scope(workspace):
        segments = list(Segment.objects.values_list("name", flat=True))
        campaigns = list(Campaign.objects.order_by("pk"))
        audiences = [[a.segment.name for a in c.audience.all()] for c in campaigns]
    assert segments == ["Lapsed customers"]
    assert [c.name for c in campaigns] == ["Win back lapsed customers", "Win back lapsed customers (2)"]
    assert [c.status for c in campaigns] == ["draft", "draft"]
    assert audiences == [["Lapsed customers"], ["Lapsed customers"]]
    assert first.status_code == second.status_code == 302
    assert first["Location"] == reverse("campaign_edit", args=[campaigns[0].pk])
    assert client.post(reverse("campaign_from_playbook", args=["nope"])).status_code == 404


def test_the_list_shows_status_progress_audience_and_filters(workspace, shop):
    # Given a sending broadcast (3 of 5 done, 1 held out) excluding VIPs, and a draft webhook
    sending, run = broadcast(
        workspace, segments=[shop["segment"]], exclude=[shop["vips"]], name="Spring sale", holdout=10
    )
    with workspace_scope(workspace):
        for n, state in enumerate(["sent", "sent", "suppressed", "pending", "pending", "holdout"]):
            Send.objects.create(
                workspace=workspace,
                campaign=sending,
                person=shop["people"][n],
                occurrence=f"run:{run.pk}",
                channel="email",
                state=state,
                due_at=timezone.now(),
            )
    client = _client(workspace, role="viewer")
    # When the list is read
    text = _text(client.get(reverse("campaigns")))
    # Then the sending campaign shows its progress and its audience "but not" the VIPs
    assert "Sent 3 of 5" in text
    assert 'Lapsed customers <span class="muted">but not</span> VIPs' in text
    assert '<span class="badge status-busy">Sending</span>' in text
    assert '<span class="badge ok">Sent</span>' in text
    # a viewer has no New button
    assert reverse("campaign_new") not in text
    # And search and filters narrow it
    assert "Spring sale" in _text(client.get(reverse("campaigns"), {"q": "spring"}))
    assert "Spring sale" not in _text(client.get(reverse("campaigns"), {"q": "earl"}))
    assert "Spring sale" not in _text(client.get(reverse("campaigns"), {"status": "sent"}))
    assert "Earlier" in _text(client.get(reverse("campaigns"), {"status": "sent"}))
    assert "No campaign matches" in _text(client.get(reverse("campaigns"), {"channel": "webhook"}))
    htmx = client.get(reverse("campaigns"), {"q": "spring"}, headers={"HX-Request": "true"})
    assert htmx.status_code == 200
    assert "<html" not in htmx.content.decode()


def test_the_list_pages(workspace, shop):
    for n in range(23):
        _draft(workspace, shop["segment"], name=f"Draft {n:02d}")
    client = _client(workspace)
    first = _text(client.get(reverse("campaigns")))
    second = _text(client.get(reverse("campaigns"), {"page": 2}))
    assert "Page 1 of 2" in first
    assert "Draft 22" in first
    assert "Draft 00" not in first
    assert "Draft 00" in second
    assert "Earlier" in second


# --- the estimate ------------------------------------------------------------------------------------------


def test_the_estimate_counts_each_step_and_equals_the_apis(workspace, shop):
    # Given the ten lapsed people, two of them VIPs (excluded)
    include, exclude = [shop["segment"].pk], [shop["vips"].pk]
    # When the estimate is computed
    with workspace_scope(workspace):
        estimate = audience_estimate(workspace, include, exclude, "email").as_dict()
    # Then: 10 in the segment, 8 after exclusions, 2 without an address, 1 unsubscribed, 1 capped, 4 receive
    assert estimate == {
        "audience": 10,
        "after_exclusions": 8,
        "no_email": 2,
        "unsubscribed": 1,
        "capped_now": 1,
        "will_receive": 4,
    }
    # And the API answers the same numbers
    key = factories.api_key(workspace)[1]
    response = api(
        Client(),
        "POST",
        reverse("campaign-estimate"),
        {"channel": "email", "audience": {"segments": include, "exclude": exclude}},
        key=key,
    )
    assert response.status_code == 200
    assert response.json() == estimate
    # And so does the editor's partial
    page = _client(workspace).post(
        reverse("campaign_estimate"),
        {"include": [str(include[0])], "exclude": [str(exclude[0])], "channel": "email"},
    )
    text = _text(page)
    for name, value in estimate.items():
        assert re.search(rf'id="est-{name}">\u2212?{value}<', text), name
    # A webhook campaign has no addresses to miss: everyone after exclusions receives it
    with workspace_scope(workspace):
        assert audience_estimate(workspace, include, exclude, "webhook").will_receive == 8


def test_the_estimate_api_refuses_what_it_cannot_count(workspace, shop):
    other = factories.WorkspaceFactory()
    foreign, _ = audience(other, [{"email": "x@example.com"}])
    key = factories.api_key(workspace)[1]
    url = reverse("campaign-estimate")
    cases = [
        ({"channel": "sms", "audience": {"segments": [shop["segment"].pk]}}, "channel"),
        ({"channel": "email", "audience": {"segments": [foreign.pk]}}, "audience.segments[0]"),
        ({"channel": "email", "audience": {"segments": ["x"]}}, "audience"),
        ({"channel": "email", "audience": {"segments": [shop["segment"].pk], "exclude": [shop["segment"].pk]}},
         "audience.exclude[0]"),
        ({"channel": "email"}, "audience"),
        ({"channel": "email", "audience": {"segments": []}, "extra": 1}, "extra"),
    ]  # fmt: skip
    for document, field in cases:
        response = api(Client(), "POST", url, document, key=key)
        assert response.status_code == 400, document
        assert field in response.content.decode(), (field, response.content)
    viewer_key = factories.api_key(workspace, creator=factories.member(workspace, role="viewer"))[1]
    denied = api(Client(), "POST", url, {"channel": "email", "audience": {"segments": []}}, key=viewer_key)
    assert denied.status_code == 403


# --- the editor -------------------------------------------------------------------------------------------


def test_a_new_ab_campaign_is_saved_from_the_form(workspace, shop):
    client = _client(workspace)
    assert client.get(reverse("campaign_new")).status_code == 200
    response = client.post(reverse("campaign_new"), _form(shop["segment"], exclude=[str(shop["vips"].pk)]))
    with workspace_scope(workspace):
        campaign = Campaign.objects.get(name="Win them back")
        variants = list(campaign.variants.values_list("name", "weight", "subject"))
        audience_rows = sorted(campaign.audience.values_list("segment_id", "exclude"))
    assert response.status_code == 302
    assert response["Location"] == reverse("campaign_edit", args=[campaign.pk])
    assert variants == [("A", 1, "Hello {{ person.traits.name }}"), ("B", 1, "We miss you")]
    assert audience_rows == sorted([(shop["segment"].pk, False), (shop["vips"].pk, True)])
    assert (campaign.holdout_percent, campaign.goal_event, campaign.goal_within) == (10, "Order Completed", "3d")
    # And the editor shows it back
    text = _text(client.get(reverse("campaign_edit", args=[campaign.pk])))
    assert 'value="Win them back"' in text
    assert "We miss you" in text


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"name": ""}, ('id="c-name"', "This field may not be blank.")),
        ({"include": []}, ("Send to people in any of", "A broadcast needs at least one segment to send to.")),
        ({"v1-weight": "heavy"}, ('id="v1-weight"', "Expected a whole number, got a string.")),
        ({"v0-subject": "{% include 'x' %}"}, ('id="v0-subject"', "include")),
        ({"holdout_percent": "95"}, ('id="c-holdout"', "Must be from 0 to 90, not 95.")),
        ({"goal_within": "soon"}, ('id="c-goal"', "Expected a duration such as")),
        ({"schedule": "at", "send_at": ""}, ("Date and time", "Pick a date and time to send at.")),
        ({"name": "Earlier"}, ('id="c-name"', "already")),
    ],
)
def test_a_refused_form_shows_each_error_next_to_its_field_and_writes_nothing(workspace, shop, changes, shown):
    client = _client(workspace)
    before = campaign_rows(workspace)
    response = client.post(reverse("campaign_new"), _form(shop["segment"], **changes))
    assert response.status_code == 400
    text = _text(response)
    near, message = shown
    # the message follows its field (within the same field block)
    start = text.index(near)
    assert message in text[start : start + 2500], text[start : start + 2500]
    assert "The campaign was not saved" in text
    assert campaign_rows(workspace) == before


def test_adding_a_variant_changes_nothing_until_saved(workspace, shop):
    client = _client(workspace)
    before = campaign_rows(workspace)
    response = client.post(reverse("campaign_new"), _form(shop["segment"], op="add_variant"))
    assert response.status_code == 200
    assert 'id="v2-name"' in response.content.decode()
    assert 'value="C"' in response.content.decode()
    removed = client.post(reverse("campaign_new"), _form(shop["segment"], op="remove_variant:0"))
    assert 'id="v1-name"' not in removed.content.decode()
    assert 'value="We miss you"' in removed.content.decode()
    assert campaign_rows(workspace) == before


def test_a_triggered_campaign_says_its_trigger_in_words(workspace, shop):
    client = _client(workspace)
    data = _form(
        shop["segment"],
        kind="triggered",
        include=[],
        trigger_on="event",
        trigger_event="Product Added",
        delay="30m",
        exit_event="Order Completed",
        holdout_percent="0",
    )
    response = client.post(reverse("campaign_new"), data)
    assert response.status_code == 302, _text(response)[:3000]
    text = _text(client.get(response["Location"]))
    assert "30 minutes after Product Added, unless Order Completed." in text


def test_a_launched_campaign_takes_new_content_and_keeps_its_audience(workspace, shop):
    campaign = _draft(workspace, shop["segment"])
    client = _client(workspace)
    with workspace_scope(workspace):
        services.campaign_launch(campaign=campaign, actor=None)
    # The disabled fields are not posted: the editor keeps them as saved
    data = _form(shop["segment"], name="Draft", include=[], channel="webhook", holdout_percent="50")
    data["v1-subject"] = "A better subject"
    response = client.post(reverse("campaign_edit", args=[campaign.pk]), data)
    assert response.status_code == 302, _text(response)[:2000]
    with workspace_scope(workspace):
        campaign.refresh_from_db()
        assert campaign.variants.get(name="B").subject == "A better subject"
        assert list(campaign.audience.values_list("segment_id", flat=True)) == [shop["segment"].pk]
    assert (campaign.channel, campaign.holdout_percent) == ("email", 0)


# --- preview, test send ------------------------------------------------------------------------------------


def test_preview_for_a_person_found_by_search_and_a_test_send(workspace, shop, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    campaign = _draft(workspace, shop["segment"])
    person = shop["people"][5]
    client = _client(workspace)
    found = client.get(reverse("campaign_people", args=[campaign.pk]), {"q": "p5@"})
    assert found.status_code == 200
    assert f'value="{person.pk}"' in found.content.decode()
    data = _form(shop["segment"], preview_person=str(person.pk), preview_variant="0")
    data["v0-subject"] = "Unsaved {{ person.traits.name }}"
    preview = client.post(reverse("campaign_preview", args=[campaign.pk]), data)
    assert preview.status_code == 200
    assert 'id="preview-subject">Unsaved P5<' in preview.content.decode()
    nobody = client.post(reverse("campaign_preview", args=[campaign.pk]), _form(shop["segment"]))
    assert "Pick a person to preview for." in nobody.content.decode()
    sent = client.post(
        reverse("campaign_test", args=[campaign.pk]),
        {"test_email": "me@example.com", "preview_person": str(person.pk), "preview_variant": "0"},
    )
    assert sent.status_code == 200, sent.content
    assert [(m.to, m.subject) for m in mail.outbox] == [(["me@example.com"], "[Test] Hi P5")]
    bad = client.post(reverse("campaign_test", args=[campaign.pk]), {"test_email": "not an address"})
    assert bad.status_code == 400
    assert "Not an email address" in bad.content.decode()
    assert len(mail.outbox) == 1
    with workspace_scope(workspace):
        assert not Send.objects.filter(campaign=campaign).exists()


# --- launch, pause, roles ------------------------------------------------------------------------------------


def test_launch_asks_first_repeating_the_audience_size_then_launches_and_pauses(workspace, shop):
    campaign = _draft(workspace, shop["segment"])
    client = _client(workspace)
    ask = client.post(reverse("campaign_launch", args=[campaign.pk]), headers={"HX-Request": "true"})
    assert ask.status_code == 200
    assert "Send to 6 people?" in _text(ask)  # 10, less 2 without an address, 1 unsubscribed, 1 capped
    with workspace_scope(workspace):
        campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT
    done = client.post(
        reverse("campaign_launch", args=[campaign.pk]), {"confirmed": "yes"}, headers={"HX-Request": "true"}
    )
    assert done.status_code == 204
    assert done["HX-Redirect"] == reverse("campaign_edit", args=[campaign.pk])
    with workspace_scope(workspace):
        campaign.refresh_from_db()
        assert Run.objects.filter(campaign=campaign).count() == 1
    assert campaign.status == CampaignStatus.SENDING
    page = _text(client.get(reverse("campaign_edit", args=[campaign.pk])))
    assert 'id="pause-button"' in page
    assert 'hx-trigger="every 2s"' in page
    progress = client.get(reverse("campaign_progress", args=[campaign.pk]))
    assert progress.status_code == 200
    assert "sent of" in progress.content.decode()
    paused = client.post(reverse("campaign_pause", args=[campaign.pk]))
    assert paused.status_code == 302
    with workspace_scope(workspace):
        campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED


def _allow_members(workspace, allowed: bool) -> None:
    with workspace_scope(workspace):
        CampaignSettings.objects.update_or_create(workspace=workspace, defaults={"members_can_launch": allowed})


@pytest.mark.parametrize("allowed", [False, True])
def test_members_launch_only_when_the_workspace_allows_it_in_the_ui_and_the_api(workspace, shop, allowed):
    _allow_members(workspace, allowed)
    member = factories.member(workspace, role=Role.MEMBER)
    ui_campaign = _draft(workspace, shop["segment"], name="By the UI")
    api_campaign = _draft(workspace, shop["segment"], name="By the API")
    client = logged_in_client(member, workspace=workspace)
    page = _text(client.get(reverse("campaign_edit", args=[ui_campaign.pk])))
    ui = client.post(reverse("campaign_launch", args=[ui_campaign.pk]), {"confirmed": "yes"})
    key = factories.api_key(workspace, creator=member)[1]
    by_api = api(Client(), "POST", reverse("campaign-launch", kwargs={"pk": api_campaign.pk}), key=key)
    with workspace_scope(workspace):
        statuses = dict(Campaign.objects.filter(name__startswith="By the").values_list("name", "status"))
    if allowed:
        assert (ui.status_code, by_api.status_code) == (302, 202)
        assert statuses == {"By the UI": "sending", "By the API": "sending"}
        assert 'id="launch-button"' in page
    else:
        assert (ui.status_code, by_api.status_code) == (403, 403)
        assert by_api.json()["detail"] == services.LAUNCH_REFUSED
        assert statuses == {"By the UI": "draft", "By the API": "draft"}
        assert 'id="launch-button"' not in page
        assert services.LAUNCH_REFUSED in page
    # Admins launch either way
    admin_key = factories.api_key(workspace, creator=factories.member(workspace, role=Role.ADMIN))[1]
    other = _draft(workspace, shop["segment"], name="By an admin")
    assert api(Client(), "POST", reverse("campaign-launch", kwargs={"pk": other.pk}), key=admin_key).status_code == 202


def test_only_admins_change_who_launches(workspace):
    url = reverse("campaign-settings")
    member_key = factories.api_key(workspace, creator=factories.member(workspace, role=Role.MEMBER))[1]
    admin_key = factories.api_key(workspace, creator=factories.member(workspace, role=Role.ADMIN))[1]
    before = campaign_rows(workspace)
    refused = api(Client(), "PATCH", url, {"members_can_launch": True}, key=member_key)
    assert refused.status_code == 403
    assert refused.json()["detail"] == services.SETTING_ADMIN_ONLY
    assert campaign_rows(workspace) == before
    assert api(Client(), "PATCH", url, {"members_can_launch": "yes"}, key=admin_key).status_code == 400
    done = api(Client(), "PATCH", url, {"members_can_launch": True}, key=admin_key)
    assert done.status_code == 200
    assert done.json()["members_can_launch"] is True


def test_viewers_read_campaigns_and_change_nothing(workspace, shop):
    campaign = _draft(workspace, shop["segment"])
    client = _client(workspace, role="viewer")
    page = client.get(reverse("campaign_edit", args=[campaign.pk]))
    assert page.status_code == 200
    text = _text(page)
    assert '<fieldset class="camp-columns" disabled>' in text
    assert 'id="save-button"' not in text
    assert 'id="launch-button"' not in text
    before = campaign_rows(workspace)
    posts = [
        (reverse("campaign_new"), _form(shop["segment"])),
        (reverse("campaign_edit", args=[campaign.pk]), _form(shop["segment"])),
        (reverse("campaign_launch", args=[campaign.pk]), {"confirmed": "yes"}),
        (reverse("campaign_pause", args=[campaign.pk]), {}),
        (reverse("campaign_test", args=[campaign.pk]), {"test_email": "me@example.com"}),
        (reverse("campaign_preview", args=[campaign.pk]), _form(shop["segment"])),
        (reverse("campaign_estimate"), {"include": [str(shop["segment"].pk)], "channel": "email"}),
        (reverse("campaign_from_playbook", args=["welcome"]), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert campaign_rows(workspace) == before


def test_another_workspaces_campaign_is_not_found(workspace, shop):
    campaign = _draft(workspace, shop["segment"])
    other = factories.WorkspaceFactory()
    client = _client(other)
    before = campaign_rows(workspace)
    for name in ("campaign_edit", "campaign_people", "campaign_progress"):
        assert client.get(reverse(name, args=[campaign.pk])).status_code == 404, name
    for name in ("campaign_edit", "campaign_preview", "campaign_test", "campaign_launch", "campaign_pause"):
        assert client.post(reverse(name, args=[campaign.pk]), _form(shop["segment"])).status_code == 404, name
    # Another workspace's segment in the estimate is refused by name, not counted
    estimate = client.post(reverse("campaign_estimate"), {"include": [str(shop["segment"].pk)], "channel": "email"})
    assert "No segment with id" in estimate.content.decode()
    assert campaign_rows(workspace) == before
