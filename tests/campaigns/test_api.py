"""The campaigns REST API (rest-api.md, "Campaigns"): every endpoint's happy path, each refusal
with the field it names and nothing written, other workspaces' ids, roles, the schema."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLogEntry, Role
from accounts.tenancy import workspace_scope
from campaigns.models import Campaign, CampaignStatus, Run, Send, SendState
from campaigns.progress import PROGRESS_KEYS
from segmentation.models import Segment
from tests import factories
from tests.accounts.support import api, body_text, logged_in_client
from tests.campaigns.api_support import body, campaign_rows, segment
from tests.tracking import builders

FIELDS = {
    "id",
    "name",
    "description",
    "channel",
    "kind",
    "trigger",
    "audience",
    "variants",
    "holdout_percent",
    "goal",
    "once_per_person",
    "reeligible_after",
    "send_at",
    "local_time",
    "send_time",
    "send_time_control_percent",
    "auto_winner",
    "status",
    "created_at",
    "launched_at",
    "progress",
}


@pytest.fixture
def key(workspace):
    return factories.api_key(workspace)[1]


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def lapsed(workspace):
    return segment(workspace, "Lapsed")


@pytest.fixture
def buyers(workspace):
    return segment(workspace, "Buyers")


def _create(client, key, document):
    return api(client, "POST", reverse("campaign-list"), document, key=key)


def _made(client, key, document):
    response = _create(client, key, document)
    assert response.status_code == 201, response.content
    return response.json()


def _url(name, pk):
    return reverse(name, kwargs={"pk": pk})


# --- create, read, update, delete ---------------------------------------------------------------------


def test_create_answers_the_body_with_what_the_server_keeps(workspace, client, key, lapsed, buyers):
    document = body([lapsed.pk], [buyers.pk])

    response = _create(client, key, document)

    assert response.status_code == 201, response.content
    answer = response.json()
    assert set(answer) == FIELDS
    assert {k: answer[k] for k in document} == document
    assert (answer["status"], answer["launched_at"], answer["reeligible_after"], answer["send_at"]) == (
        "draft",
        None,
        None,
        None,
    )
    assert answer["progress"] == dict.fromkeys(PROGRESS_KEYS, 0)
    assert api(client, "GET", _url("campaign-detail", answer["id"]), key=key).json() == answer
    listed = api(client, "GET", reverse("campaign-list"), key=key).json()
    assert (listed["count"], listed["results"]) == (1, [answer])
    with workspace_scope(workspace):
        assert AuditLogEntry.objects.filter(action="campaign.created", target="Win back").count() == 1


def test_a_triggered_webhook_campaign(workspace, client, key, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    document = {
        "name": "Cart abandoned",
        "channel": "webhook",
        "kind": "triggered",
        "trigger": {"on": "event", "event": "Product Added", "delay": "30m", "exit_event": "Order Completed"},
        "variants": [
            {"name": "Only", "weight": 1, "url": "http://127.0.0.1:9/hook", "body": '{"who": "{{ person.user_id }}"}'}
        ],
        "once_per_person": False,
        "reeligible_after": "7d",
    }

    answer = _made(client, key, document)

    assert answer["trigger"] == document["trigger"]
    assert answer["variants"] == document["variants"]
    assert answer["audience"] == {"segments": [], "exclude": []}
    assert (answer["once_per_person"], answer["reeligible_after"], answer["goal"]) == (False, "7d", None)
    with workspace_scope(workspace):
        row = Campaign.objects.get()
    assert (row.trigger_on, row.trigger_event, row.delay_seconds, row.exit_event) == (
        "event",
        "Product Added",
        1800,
        "Order Completed",
    )
    assert row.reeligible_after_seconds == 7 * 86400


def test_a_segment_entry_trigger_and_a_scheduled_local_time_broadcast(workspace, client, key, lapsed):
    entry = _made(
        client,
        key,
        body([], name="Welcome", kind="triggered", trigger={"on": "segment_entry", "segment": lapsed.pk}),
    )
    later = _made(client, key, body([lapsed.pk], name="Later", send_at="2031-05-01T09:00:00Z", local_time=True))

    assert entry["trigger"] == {"on": "segment_entry", "segment": lapsed.pk}
    assert (later["send_at"], later["local_time"]) == ("2031-05-01T09:00:00Z", True)
    with workspace_scope(workspace):
        assert Campaign.objects.get(name="Welcome").trigger_segment_id == lapsed.pk


def test_patch_changes_what_it_gives(workspace, client, key, lapsed, buyers):
    made = _made(client, key, body([lapsed.pk]))
    url = _url("campaign-detail", made["id"])

    response = api(
        client,
        "PATCH",
        url,
        {
            "name": "Win back, again",
            "audience": {"segments": [buyers.pk]},
            "variants": [{"subject": "Hi", "body": "x"}],
        },
        key=key,
    )

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["name"] == "Win back, again"
    assert answer["audience"] == {"segments": [buyers.pk], "exclude": []}
    assert answer["variants"] == [{"name": "A", "weight": 1, "subject": "Hi", "body": "x"}]
    assert answer["goal"] == made["goal"]


def test_a_launched_campaign_keeps_its_audience_and_split_but_takes_new_content(workspace, client, key, lapsed, buyers):
    made = _made(client, key, body([lapsed.pk]))
    url = _url("campaign-detail", made["id"])
    assert api(client, "POST", _url("campaign-launch", made["id"]), key=key).status_code == 202
    before = campaign_rows(workspace)

    audience = api(client, "PATCH", url, {"audience": {"segments": [buyers.pk]}}, key=key)
    split = api(client, "PATCH", url, {"variants": [made["variants"][0]]}, key=key)
    channel = api(client, "PATCH", url, {"channel": "onsite"}, key=key)

    assert audience.status_code == split.status_code == channel.status_code == 400
    assert list(audience.json()["errors"]) == ["audience"]
    assert list(split.json()["errors"]) == ["variants"]
    assert "channel" in channel.json()["errors"]
    assert campaign_rows(workspace) == before
    variants = [{**made["variants"][0], "subject": "New subject"}, made["variants"][1]]
    content = api(client, "PATCH", url, {"variants": variants, "name": "Renamed"}, key=key)
    assert content.status_code == 200, content.content
    assert (content.json()["variants"], content.json()["name"]) == (variants, "Renamed")


def test_delete_a_draft_and_refuse_a_live_campaign(workspace, client, key, lapsed):
    draft = _made(client, key, body([lapsed.pk]))
    live = _made(client, key, body([lapsed.pk], name="Live"))
    api(client, "POST", _url("campaign-launch", live["id"]), key=key)
    before = campaign_rows(workspace)

    refused = api(client, "DELETE", _url("campaign-detail", live["id"]), key=key)
    deleted = api(client, "DELETE", _url("campaign-detail", draft["id"]), key=key)

    assert refused.status_code == 409
    assert refused.json() == {"detail": "The campaign is sending: pause it before deleting it.", "code": "conflict"}
    assert deleted.status_code == 204
    after = campaign_rows(workspace)
    assert [row[0] for row in after["campaigns"]] == [live["id"]]
    assert after["runs"] == before["runs"]


# --- refusals: the field named, nothing written ----------------------------------------------------------

REFUSALS = [
    ({"channel": "sms"}, "channel"),
    ({"kind": "drip"}, "kind"),
    ({"name": ""}, "name"),
    ({"name": 7}, "name"),
    ({"status": "sending"}, "status"),
    ({"colour": "red"}, "colour"),
    ({"trigger": {"on": "event", "event": "X"}}, "trigger"),
    ({"kind": "triggered"}, "trigger"),
    ({"kind": "triggered", "trigger": {"on": "page_view"}}, "trigger.on"),
    ({"kind": "triggered", "trigger": {"on": "event"}}, "trigger.event"),
    ({"kind": "triggered", "trigger": {"on": "event", "event": "X", "delay": "30 minutes"}}, "trigger.delay"),
    ({"kind": "triggered", "trigger": {"on": "event", "event": "X", "exit_event": ""}}, "trigger.exit_event"),
    ({"kind": "triggered", "trigger": {"on": "segment_entry", "segment": 0}}, "trigger.segment"),
    ({"kind": "triggered", "trigger": {"on": "event", "event": "X", "extra": 1}}, "trigger.extra"),
    ({"audience": {"segments": []}}, "audience.segments"),
    ({"audience": {"segments": ["12"]}}, "audience.segments[0]"),
    ({"audience": {"segments": [999999999]}}, "audience.segments[0]"),
    ({"audience": None}, "audience"),
    ({"variants": []}, "variants"),
    ({"variants": [{"name": str(n), "subject": "s", "body": "b"} for n in range(6)]}, "variants"),
    (
        {"variants": [{"name": "A", "subject": "s", "body": "b"}, {"name": "a", "subject": "s", "body": "b"}]},
        "variants[1].name",
    ),
    ({"variants": [{"name": "A", "weight": 0, "subject": "s", "body": "b"}]}, "variants[0].weight"),
    ({"variants": [{"name": "A", "body": "b"}]}, "variants[0].subject"),
    ({"variants": [{"name": "A", "subject": "s"}]}, "variants[0].body"),
    ({"variants": [{"name": "A", "subject": "s", "body": "b", "url": "https://x.example/"}]}, "variants[0].url"),
    ({"variants": [{"name": "A", "subject": "{{ ''.__class__.__mro__ }}", "body": "b"}]}, "variants[0].subject"),
    ({"variants": [{"name": "A", "subject": "s", "body": "{% load static %}"}]}, "variants[0].body"),
    ({"variants": [{"name": "A", "subject": "s", "body": "{% include 'x.html' %}"}]}, "variants[0].body"),
    ({"holdout_percent": 91}, "holdout_percent"),
    ({"holdout_percent": -1}, "holdout_percent"),
    ({"holdout_percent": "10"}, "holdout_percent"),
    ({"goal": {"event": "Order Completed"}}, "goal.within"),
    ({"goal": {"event": "", "within": "3d"}}, "goal.event"),
    ({"goal": {"event": "X", "within": "3 days"}}, "goal.within"),
    ({"once_per_person": "yes"}, "once_per_person"),
    ({"reeligible_after": "7d"}, "reeligible_after"),
    ({"once_per_person": False, "reeligible_after": "soon"}, "reeligible_after"),
    ({"send_at": "tomorrow"}, "send_at"),
    ({"local_time": True}, "local_time"),
    ({"kind": "triggered", "trigger": {"on": "event", "event": "X"}, "send_at": "2031-01-01T00:00:00Z"}, "send_at"),
]


@pytest.mark.parametrize(("changes", "field"), REFUSALS, ids=[field for _, field in REFUSALS])
def test_a_faulty_body_is_refused_naming_the_field_and_nothing_is_written(
    workspace, client, key, lapsed, changes, field
):
    document = body([lapsed.pk])
    if "audience" in changes and isinstance(changes["audience"], dict):
        changes = {"audience": {"exclude": [], **changes["audience"]}}
    document.update(changes)
    before = campaign_rows(workspace)

    response = _create(client, key, document)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert response.json()["code"] == "invalid"
    assert campaign_rows(workspace) == before


def test_another_workspaces_segment_is_named_by_its_place_in_the_audience(workspace, client, key, lapsed):
    elsewhere = segment(factories.WorkspaceFactory(), "Their segment")
    before = campaign_rows(workspace)

    response = _create(client, key, body([elsewhere.pk]))
    excluded = _create(client, key, body([lapsed.pk], [elsewhere.pk]))

    assert response.status_code == excluded.status_code == 400
    assert response.json()["errors"] == {
        "audience.segments[0]": [f"No segment with id {elsewhere.pk} in this workspace."]
    }
    assert list(excluded.json()["errors"]) == ["audience.exclude[0]"]
    assert b"Their segment" not in response.content
    assert campaign_rows(workspace) == before


def test_a_webhook_to_a_private_address_is_refused(workspace, client, key, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    document = {
        "name": "Hook",
        "channel": "webhook",
        "kind": "triggered",
        "trigger": {"on": "event", "event": "X"},
        "variants": [{"name": "A", "url": "http://127.0.0.1/hook", "body": "{}"}],
    }
    before = campaign_rows(workspace)

    private = _create(client, key, document)
    document["variants"][0].update(url="https://93.184.215.14/{{ person.user_id }}", body='{"a": {{ 1 }')
    template = _create(client, key, document)

    assert private.status_code == template.status_code == 400
    assert "private" in private.json()["errors"]["variants[0].url"][0]
    assert list(template.json()["errors"]) == ["variants[0].body"]
    assert campaign_rows(workspace) == before


def test_a_name_is_unique_in_the_workspace_whatever_its_case_and_spacing(workspace, client, key, lapsed):
    _made(client, key, body([lapsed.pk]))
    before = campaign_rows(workspace)

    response = _create(client, key, body([lapsed.pk], name="  win   BACK "))

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["name"]
    assert campaign_rows(workspace) == before


# --- launch and pause -----------------------------------------------------------------------------------


def test_launch_a_broadcast_now_then_pause_and_resume_it(workspace, client, key, lapsed):
    made = _made(client, key, body([lapsed.pk]))

    launched = api(client, "POST", _url("campaign-launch", made["id"]), key=key)
    again = api(client, "POST", _url("campaign-launch", made["id"]), key=key)
    paused = api(client, "POST", _url("campaign-pause", made["id"]), key=key)
    resumed = api(client, "POST", _url("campaign-launch", made["id"]), key=key)

    assert launched.status_code == again.status_code == resumed.status_code == 202
    assert paused.status_code == 200
    assert [r.json()["status"] for r in (launched, again, paused, resumed)] == [
        "sending",
        "sending",
        "paused",
        "sending",
    ]
    assert launched.json()["launched_at"] is not None
    assert resumed.json()["launched_at"] == launched.json()["launched_at"]
    with workspace_scope(workspace):
        assert Run.objects.filter(campaign_id=made["id"]).count() == 1
        actions = list(AuditLogEntry.objects.filter(action__startswith="campaign.").values_list("action", flat=True))
    assert sorted(actions) == ["campaign.created", "campaign.launched", "campaign.paused", "campaign.resumed"]


def test_launch_a_later_broadcast_and_a_triggered_campaign(workspace, client, key, lapsed):
    later = _made(client, key, body([lapsed.pk], send_at=(timezone.now() + timedelta(days=1)).isoformat()))
    listening = _made(
        client, key, body([], name="On entry", kind="triggered", trigger={"on": "segment_entry", "segment": lapsed.pk})
    )

    scheduled = api(client, "POST", _url("campaign-launch", later["id"]), key=key)
    live = api(client, "POST", _url("campaign-launch", listening["id"]), key=key)

    assert (scheduled.status_code, scheduled.json()["status"]) == (202, "scheduled")
    assert (live.status_code, live.json()["status"]) == (202, "listening")
    with workspace_scope(workspace):
        assert list(Run.objects.values_list("campaign_id", flat=True)) == [later["id"]]


def test_pause_a_draft_or_launch_a_sent_broadcast_is_a_conflict(workspace, client, key, lapsed):
    draft = _made(client, key, body([lapsed.pk]))
    sent = _made(client, key, body([lapsed.pk], name="Sent"))
    with workspace_scope(workspace):
        Campaign.objects.filter(pk=sent["id"]).update(status=CampaignStatus.SENT, launched_at=timezone.now())
    before = campaign_rows(workspace)

    pause = api(client, "POST", _url("campaign-pause", draft["id"]), key=key)
    launch = api(client, "POST", _url("campaign-launch", sent["id"]), key=key)

    assert (pause.status_code, launch.status_code) == (409, 409)
    assert launch.json()["detail"] == "The broadcast has been sent; duplicate it to send it again."
    assert campaign_rows(workspace) == before


def test_launch_succeeds_with_the_broker_down(
    workspace, client, key, lapsed, settings, django_capture_on_commit_callbacks
):
    from celery import current_app

    def forget_pools() -> None:
        # Not closed: a closed pool stays closed for every later test of this process.
        current_app._pool = None
        current_app.amqp._producer_pool = None

    made = _made(client, key, body([lapsed.pk]))
    broker = current_app.conf.broker_url
    current_app.conf.broker_url = "redis://127.0.0.1:1/0"
    forget_pools()
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = api(client, "POST", _url("campaign-launch", made["id"]), key=key)
    finally:
        current_app.conf.broker_url = broker
        forget_pools()

    assert response.status_code == 202
    assert len(callbacks) == 1


# --- progress, results, preview, test ---------------------------------------------------------------------


def _sends(workspace, campaign_id, states):
    person = builders.person(workspace, user_id="p0")
    with workspace_scope(workspace):
        campaign = Campaign.objects.get(pk=campaign_id)
        variant = campaign.variants.first()
        now = timezone.now()
        for index, state in enumerate(states):
            someone = person if index == 0 else builders.person(workspace, user_id=f"p{index}")
            Send.objects.create(
                workspace=workspace,
                campaign=campaign,
                variant=None if state == SendState.HOLDOUT else variant,
                person=someone,
                occurrence="run:1",
                channel=campaign.channel,
                state=state,
                due_at=now,
                sent_at=now if state == SendState.SENT else None,
            )


def test_progress_counts_sent_of_those_to_send(workspace, client, key, lapsed):
    made = _made(client, key, body([lapsed.pk]))
    _sends(workspace, made["id"], ["sent", "sent", "pending", "claimed", "capped", "holdout"])

    progress = api(client, "GET", _url("campaign-progress", made["id"]), key=key)
    detail = api(client, "GET", _url("campaign-detail", made["id"]), key=key)

    assert progress.status_code == 200
    assert progress.json() == {
        "total": 6,
        "sent": 2,
        "capped": 1,
        "suppressed": 0,
        "failed": 0,
        "cancelled": 0,
        "pending": 2,
        "holdout": 1,
    }
    assert detail.json()["progress"] == progress.json()
    listed = api(client, "GET", reverse("campaign-list"), key=key).json()["results"]
    assert listed[0]["progress"] == progress.json()


def test_results_answer_every_group(workspace, client, key, lapsed):
    made = _made(client, key, body([lapsed.pk]))
    _sends(workspace, made["id"], ["sent", "suppressed", "holdout"])

    response = api(client, "GET", _url("campaign-results", made["id"]), key=key)

    assert response.status_code == 200
    answer = response.json()
    assert [group["name"] for group in answer["variants"]] == ["A", "B"]
    assert (answer["variants"][0]["sent"], answer["variants"][0]["suppressed"], answer["holdout"]["targeted"]) == (
        1,
        1,
        1,
    )
    assert answer["goal"] == {"event": "Order Completed", "within": "3d"}
    assert answer["verdict"] == "not enough data yet"


def test_preview_renders_a_variant_for_a_person(workspace, client, key, lapsed):
    made = _made(client, key, body([lapsed.pk]))
    builders.person(workspace, user_id="ada", traits={"first_name": "<Ada>"})

    by_user_id = api(client, "POST", _url("campaign-preview", made["id"]), {"person": "ada"}, key=key)
    nobody = api(client, "POST", _url("campaign-preview", made["id"]), {"person": "ghost"}, key=key)
    variant = api(client, "POST", _url("campaign-preview", made["id"]), {"person": "ada", "variant": "C"}, key=key)

    assert by_user_id.status_code == 200, by_user_id.content
    assert by_user_id.json() == {
        "variant": "A",
        "subject": "Hello <Ada>",
        "html": "<p>Come back</p>",
        "text": "Come back",
    }
    assert (nobody.status_code, list(nobody.json()["errors"])) == (400, ["person"])
    assert (variant.status_code, list(variant.json()["errors"])) == (400, ["variant"])


def test_preview_of_a_webhook_and_an_event_trigger(workspace, client, key, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    made = _made(
        client,
        key,
        {
            "name": "Hook",
            "channel": "webhook",
            "kind": "triggered",
            "trigger": {"on": "event", "event": "Product Added"},
            "variants": [{"name": "A", "url": "http://127.0.0.1:9/h", "body": '{"sku": "{{ event.properties.sku }}"}'}],
        },
    )
    person = builders.person(workspace, user_id="ada")

    response = api(
        client,
        "POST",
        _url("campaign-preview", made["id"]),
        {"person": person.pk, "event": {"properties": {"sku": "X-1"}}},
        key=key,
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"variant": "A", "url": "http://127.0.0.1:9/h", "json": {"sku": "X-1"}}


def test_a_test_message_goes_to_the_sink_and_counts_nowhere(workspace, client, key, lapsed, smtp, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    made = _made(client, key, body([lapsed.pk]))
    builders.person(workspace, user_id="ada", traits={"first_name": "Ada"})
    before = campaign_rows(workspace)

    response = api(
        client, "POST", _url("campaign-test", made["id"]), {"email": "qa@example.com", "person": "ada"}, key=key
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"sent_to": "qa@example.com", "variant": "A", "subject": "[Test] Hello Ada"}
    assert [message["To"] for message in smtp.messages] == ["qa@example.com"]
    assert smtp.messages[0]["Subject"] == "[Test] Hello Ada"
    assert "Come back" in body_text(smtp.messages[0])
    assert campaign_rows(workspace) == before


def test_a_test_message_refusals(workspace, client, key, lapsed):
    made = _made(client, key, body([lapsed.pk]))
    url = _url("campaign-test", made["id"])

    bad_address = api(client, "POST", url, {"email": "not an address"}, key=key)
    missing = api(client, "POST", url, {}, key=key)
    unknown = api(client, "POST", url, {"email": "qa@example.com", "cc": "x@example.com"}, key=key)

    assert [r.status_code for r in (bad_address, missing, unknown)] == [400, 400, 400]
    assert list(bad_address.json()["errors"]) == ["email"]
    assert list(missing.json()["errors"]) == ["email"]
    assert list(unknown.json()["errors"]) == ["cc"]
    assert mail.outbox == []


# --- frequency caps and settings ---------------------------------------------------------------------------


def test_frequency_caps(workspace, client, key):
    created = api(client, "POST", reverse("frequency-cap-list"), {"channel": "email", "max": 1, "per": "1d"}, key=key)

    assert created.status_code == 201, created.content
    cap = created.json()
    assert {k: cap[k] for k in ("channel", "max", "per", "per_seconds")} == {
        "channel": "email",
        "max": 1,
        "per": "1d",
        "per_seconds": 86400,
    }
    assert api(client, "GET", reverse("frequency-cap-list"), key=key).json() == [cap]
    assert api(client, "DELETE", _url("frequency-cap-detail", cap["id"]), key=key).status_code == 204
    assert api(client, "GET", reverse("frequency-cap-list"), key=key).json() == []


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"channel": "sms", "max": 1, "per": "1d"}, "channel"),
        ({"channel": "email", "max": 0, "per": "1d"}, "max"),
        ({"channel": "email", "max": "1", "per": "1d"}, "max"),
        ({"channel": "email", "max": 1, "per": "daily"}, "per"),
        ({"channel": "email", "max": 1}, "per"),
        ({"channel": "email", "max": 1, "per": "1d", "burst": 2}, "burst"),
    ],
)
def test_a_faulty_cap_is_refused(workspace, client, key, document, field):
    before = campaign_rows(workspace)

    response = api(client, "POST", reverse("frequency-cap-list"), document, key=key)

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert campaign_rows(workspace) == before


def test_a_settings_patch_without_a_body_is_refused_and_changes_nothing(workspace, client, key):
    url = reverse("campaign-settings")
    before = api(client, "GET", url, key=key).json()

    refused = api(client, "PATCH", url, key=key)  # no body at all

    assert refused.status_code == 400
    assert "needs a JSON object body" in refused.json()["detail"]
    assert api(client, "GET", url, key=key).json() == before
    # An empty object is a change of nothing, not a mistake.
    nothing = api(client, "PATCH", url, {}, key=key)
    assert nothing.status_code == 200
    assert {**nothing.json(), "updated_at": None} == {**before, "updated_at": None}


def test_settings_read_defaults_then_change(workspace, client, key):
    url = reverse("campaign-settings")

    first = api(client, "GET", url, key=key)
    changed = api(
        client,
        "PATCH",
        url,
        {
            "from_email": "news@shop.example",
            "from_name": "Shop",
            "timezone": "Europe/Paris",
            "quiet_start": "21:00",
            "quiet_end": "08:00",
        },
        key=key,
    )

    assert first.status_code == 200
    assert (first.json()["timezone"], first.json()["quiet_start"], first.json()["updated_at"]) == ("UTC", None, None)
    assert changed.status_code == 200, changed.content
    assert {k: changed.json()[k] for k in ("from_email", "timezone", "quiet_start", "quiet_end")} == {
        "from_email": "news@shop.example",
        "timezone": "Europe/Paris",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
    }
    assert api(client, "GET", url, key=key).json() == changed.json()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"from_email": "nobody"}, "from_email"),
        ({"quiet_start": "21:00"}, "quiet_end"),
        ({"quiet_start": "9pm", "quiet_end": "08:00"}, "quiet_start"),
        ({"emails_per_second": 0}, "emails_per_second"),
        ({"from_name": "a\r\nBcc: x@example.com"}, "from_name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_faulty_settings_are_refused(workspace, client, key, document, field):
    before = campaign_rows(workspace)

    response = api(client, "PATCH", reverse("campaign-settings"), document, key=key)

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert campaign_rows(workspace) == before


# --- other workspaces, roles ----------------------------------------------------------------------------


def test_another_workspaces_campaign_and_cap_answer_404_and_change_nothing(workspace, client, key, lapsed):
    other = factories.WorkspaceFactory()
    theirs_segment = segment(other, "Theirs")
    other_key = factories.api_key(other)[1]
    theirs = _made(client, other_key, body([theirs_segment.pk], name="Their campaign"))
    cap = api(client, "POST", reverse("frequency-cap-list"), {"channel": "email", "max": 1, "per": "1d"}, key=other_key)
    before = campaign_rows(other)

    calls = [
        ("GET", _url("campaign-detail", theirs["id"]), None),
        ("PATCH", _url("campaign-detail", theirs["id"]), {"name": "Mine"}),
        ("DELETE", _url("campaign-detail", theirs["id"]), None),
        ("POST", _url("campaign-launch", theirs["id"]), None),
        ("POST", _url("campaign-pause", theirs["id"]), None),
        ("GET", _url("campaign-results", theirs["id"]), None),
        ("GET", _url("campaign-progress", theirs["id"]), None),
        ("POST", _url("campaign-preview", theirs["id"]), {"person": 1}),
        ("POST", _url("campaign-test", theirs["id"]), {"email": "qa@example.com"}),
        ("GET", _url("frequency-cap-detail", cap.json()["id"]), None),
        ("DELETE", _url("frequency-cap-detail", cap.json()["id"]), None),
    ]
    for method, url, document in calls:
        response = api(client, method, url, document, key=key)
        assert response.status_code == 404, (method, url)
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert campaign_rows(other) == before
    listed = api(client, "GET", reverse("campaign-list"), key=key)
    assert listed.json()["count"] == 0


def test_viewers_read_members_write(workspace, lapsed, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    viewer = logged_in_client(factories.member(workspace, role=Role.VIEWER))
    member = logged_in_client(factories.member(workspace, role=Role.MEMBER))
    made = _made(member, None, body([lapsed.pk]))
    hook = _made(
        member,
        None,
        {
            "name": "Hook",
            "channel": "webhook",
            "kind": "triggered",
            "trigger": {"on": "event", "event": "X"},
            "variants": [{"name": "A", "url": "http://127.0.0.1:9/secret-token"}],
        },
    )
    before = campaign_rows(workspace)

    refused = [
        api(viewer, "POST", reverse("campaign-list"), body([lapsed.pk], name="Viewer's")),
        api(viewer, "PATCH", _url("campaign-detail", made["id"]), {"name": "Viewer's"}),
        api(viewer, "POST", _url("campaign-launch", made["id"])),
        api(viewer, "POST", reverse("frequency-cap-list"), {"channel": "email", "max": 1, "per": "1d"}),
        api(viewer, "PATCH", reverse("campaign-settings"), {"timezone": "Europe/Paris"}),
    ]

    assert [r.status_code for r in refused] == [403] * 5
    assert campaign_rows(workspace) == before
    assert api(viewer, "GET", _url("campaign-results", made["id"])).status_code == 200
    assert api(viewer, "GET", reverse("campaign-settings")).status_code == 200
    assert (
        api(viewer, "GET", _url("campaign-detail", hook["id"])).json()["variants"][0]["url"] == "http://127.0.0.1:9/…"
    )
    assert api(member, "GET", _url("campaign-detail", hook["id"])).json()["variants"][0]["url"].endswith("secret-token")
    # Launching is an admin's unless the workspace lets members launch (tests/campaigns/test_views.py)
    assert api(member, "POST", _url("campaign-launch", made["id"])).status_code == 403
    admin = logged_in_client(factories.member(workspace, role=Role.ADMIN))
    assert api(admin, "PATCH", reverse("campaign-settings"), {"members_can_launch": True}).status_code == 200
    assert api(member, "POST", _url("campaign-launch", made["id"])).status_code == 202


def test_list_query_count_does_not_grow_with_campaigns(workspace, client, key, lapsed, django_assert_max_num_queries):
    for n in range(5):
        _made(client, key, body([lapsed.pk], name=f"Campaign {n}"))

    with django_assert_max_num_queries(12):
        response = api(client, "GET", reverse("campaign-list"), key=key)

    assert response.json()["count"] == 5


# --- segments used by campaigns --------------------------------------------------------------------------


def test_a_segment_in_a_campaigns_audience_cannot_be_deleted(workspace, client, key, lapsed):
    _made(client, key, body([lapsed.pk]))
    page_client = logged_in_client(factories.member(workspace, role=Role.OWNER))

    response = api(client, "DELETE", reverse("segment-detail", kwargs={"pk": lapsed.pk}), key=key)
    page = page_client.post(reverse("segment_delete", kwargs={"pk": lapsed.pk}), follow=True)

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Segment 'Lapsed' is used by campaign audience 'Win back (included)' "
        f"(id {_audience_id(workspace)}).",
        "code": "conflict",
    }
    assert "is used by campaign audience" in page.content.decode()
    with workspace_scope(workspace):
        assert Segment.objects.filter(pk=lapsed.pk).exists()
        assert not AuditLogEntry.objects.filter(action="segment.deleted").exists()


def _audience_id(workspace):
    from campaigns.models import CampaignAudience

    with workspace_scope(workspace):
        return CampaignAudience.objects.get().pk


# --- schema ------------------------------------------------------------------------------------------


def test_the_schema_documents_campaigns(db):
    import yaml

    response = Client().get("/api/schema/")

    schema = yaml.safe_load(response.content)
    assert "/api/v1/campaigns/{id}/launch/" in schema["paths"]
    assert set(schema["components"]["schemas"]["CampaignStatusEnum"]["enum"]) == set(CampaignStatus.values)


def test_a_workspace_with_campaigns_on_its_segments_can_be_deleted(workspace, client, key, lapsed):
    from accounts.models import Workspace

    _made(client, key, body([lapsed.pk]))
    _made(
        client, key, body([], name="On entry", kind="triggered", trigger={"on": "segment_entry", "segment": lapsed.pk})
    )

    Workspace.objects.filter(pk=workspace.pk).delete()

    assert not Campaign.objects.unscoped().filter(workspace_id=workspace.pk).exists()
    assert not Segment.objects.unscoped().filter(workspace_id=workspace.pk).exists()
