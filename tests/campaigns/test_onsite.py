"""On-site messages: the snippet's endpoints (``/v1/messages``), by write key, for the visitor's person.

People are made as the snippet makes them (through ``/v1/batch``), the campaign goes through the
real engine (fan-out, dispatch with its caps), and the answers are read as the snippet reads them.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone

from accounts.tenancy import workspace_scope
from campaigns import dispatch, fanout, selectors
from campaigns.models import Campaign, CampaignStatus, Channel, Send, SendState
from segmentation import realtime
from segmentation.models import Membership, Segment
from tests import factories
from tests.accounts.support import api
from tests.campaigns.api_support import body, segment
from tests.campaigns.engine_support import broadcast, cap
from tracking.models import Event, Identity, IdentityKind, Person

MODAL = {
    "name": "A",
    "weight": 1,
    "subject": "Hi {{ person.traits.first_name }}",
    "body": "Your {{ person.traits.plan }} plan ends soon. <b>Renew</b>",
    "url": "https://shop.example/renew?u={{ person.user_id }}",
    "text": "Renew now",
    "format": "modal",
}


def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@pytest.fixture(autouse=True)
def _queue(settings):
    """Real-time kicks of recorded events go to a queue of the test's own, emptied after."""
    realtime.notifier.reset()
    name = f"test-onsite-{uuid.uuid4().hex}"
    settings.SEGMENTS_REALTIME_QUEUE = name
    yield
    redis.Redis.from_url(settings.REDIS_URL).delete(name)
    realtime.notifier.reset()


def _visit(client: Client, workspace, anonymous_id: str, *, user_id: str | None = None, traits=None) -> int:
    """The snippet's first calls for a visitor (an identify when ``user_id``); answers their person id."""
    message: dict[str, Any] = {"type": "identify", "anonymousId": anonymous_id, "traits": traits or {}}
    if user_id is not None:
        message["userId"] = user_id
    answer = client.generic(
        "POST",
        "/v1/batch",
        json.dumps({"batch": [message], "writeKey": workspace.write_key}),
        content_type="text/plain",
    )
    assert answer.status_code == 200, answer.content
    with workspace_scope(workspace):
        return Identity.objects.get(kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id).person_id


def _audience(workspace, person_ids: list[int]) -> Segment:
    with workspace_scope(workspace):
        target = Segment.objects.create(workspace=workspace, name=f"Members {uuid.uuid4().hex[:6]}", is_static=True)
        Membership.objects.bulk_create(
            [
                Membership(workspace=workspace, segment=target, person_id=pk, entered_at=timezone.now())
                for pk in person_ids
            ]
        )
    return target


def _launched(workspace, target: Segment, *, variant: dict[str, Any] = MODAL, name: str | None = None):
    campaign, run = broadcast(workspace, segments=[target], variants=[variant], channel=Channel.ONSITE, name=name)
    with workspace_scope(workspace):
        fanout.run_fan_out(workspace=workspace, run_id=run.pk)
    dispatch.dispatch_due()
    return campaign


def _messages(client: Client, write_key: str | None, anonymous_id: str | None, user_id: str | None = None, **extra):
    payload: dict[str, Any] = {}
    if write_key is not None:
        payload["writeKey"] = write_key
    if anonymous_id is not None:
        payload["anonymousId"] = anonymous_id
    if user_id is not None:
        payload["userId"] = user_id
    return client.generic("POST", "/v1/messages", json.dumps(payload), content_type="text/plain", **extra)


def _act(client: Client, write_key: str, anonymous_id: str, send_id: int, action: str):
    payload = {"writeKey": write_key, "anonymousId": anonymous_id}
    return client.generic("POST", f"/v1/messages/{send_id}/{action}", json.dumps(payload), content_type="text/plain")


def _sends(workspace) -> list[tuple[Any, ...]]:
    with workspace_scope(workspace):
        return sorted(Send.objects.values_list("id", "person_id", "state", "opened_at", "clicked_at", "dismissed_at"))


def _events(workspace, person_id: int) -> list[tuple[str, dict]]:
    with workspace_scope(workspace):
        return list(
            Event.objects.filter(person_id=person_id, name__startswith="Message ")
            .order_by("timestamp", "id")
            .values_list("name", "properties")
        )


def _traits(workspace, person_id: int, **traits: Any) -> None:
    with workspace_scope(workspace):
        person = Person.objects.get(pk=person_id)
        person.traits = {**person.traits, **traits}
        person.save(update_fields=["traits"])


@pytest.fixture
def shop(db, workspace):
    """Ada (a member of the audience, identified) and Bob (a visitor outside it), and the campaign."""
    client = Client()
    ada = _visit(client, workspace, "anon-ada", user_id="ada", traits={"first_name": "<Ada>", "plan": "Pro"})
    bob = _visit(client, workspace, "anon-bob", traits={"first_name": "Bob"})
    campaign = _launched(workspace, _audience(workspace, [ada]), name="Renewal")
    with workspace_scope(workspace):
        [send] = Send.objects.filter(campaign=campaign)
    return {"client": client, "ada": ada, "bob": bob, "campaign": campaign, "send": send}


def test_a_member_gets_the_message_rendered_as_plain_text_and_others_nothing(workspace, shop):
    client, send = shop["client"], shop["send"]

    answer = _messages(client, workspace.write_key, "anon-ada")

    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == "*"
    assert answer["Cache-Control"] == "no-store"
    assert answer.json() == {
        "messages": [
            {
                "id": send.pk,
                "campaign_id": shop["campaign"].pk,
                "format": "modal",
                "title": "Hi <Ada>",
                "body": "Your Pro plan ends soon. <b>Renew</b>",
                "link_url": "https://shop.example/renew?u=ada",
                "link_text": "Renew now",
            }
        ]
    }
    assert send.state == SendState.SENT
    # Bob is a known visitor outside the audience; a stranger is nobody yet.
    assert _messages(client, workspace.write_key, "anon-bob").json() == {"messages": []}
    assert _messages(client, workspace.write_key, "anon-nobody").json() == {"messages": []}


def test_the_visitor_is_matched_by_anonymous_id_and_a_user_id_must_name_the_same_person(workspace, shop):
    client, key = shop["client"], workspace.write_key

    by_both = _messages(client, key, "anon-ada", "ada").json()["messages"]
    another_user = _messages(client, key, "anon-ada", "bob").json()["messages"]
    unknown_user = _messages(client, key, "anon-ada", "nobody").json()["messages"]
    user_on_someone_elses_browser = _messages(client, key, "anon-bob", "ada").json()["messages"]
    # A user id alone is not enough: the write key is public.
    user_alone = _messages(client, key, None, "ada")

    assert [m["id"] for m in by_both] == [shop["send"].pk]
    assert another_user == unknown_user == user_on_someone_elses_browser == []
    assert user_alone.status_code == 400
    assert user_alone.json()["errors"] == {"anonymousId": ["anonymousId must be a non-empty string."]}


def test_a_new_browser_sees_the_message_once_identify_linked_it_to_the_user(workspace, shop):
    client, key = shop["client"], workspace.write_key
    assert _messages(client, key, "anon-ada-phone", "ada").json() == {"messages": []}

    _visit(client, workspace, "anon-ada-phone", user_id="ada")

    assert [m["id"] for m in _messages(client, key, "anon-ada-phone", "ada").json()["messages"]] == [shop["send"].pk]


@pytest.mark.parametrize(
    ("write_key", "code"),
    [(None, "no_write_key"), ("cly_wk_unknown", "invalid_write_key"), ("cly_sk_secret", "secret_key")],
)
def test_a_missing_unknown_or_secret_key_is_refused_with_401_json(workspace, shop, write_key, code):
    before = _sends(workspace)

    answer = _messages(shop["client"], write_key, "anon-ada")
    acted = _act(shop["client"], write_key or "", "anon-ada", shop["send"].pk, "dismissed")

    assert answer.status_code == acted.status_code == 401
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["code"] == code
    assert _sends(workspace) == before


def test_the_key_is_also_taken_from_http_basic_and_bad_bodies_are_refused_by_field(workspace, shop):
    client = shop["client"]
    basic = client.generic(
        "POST",
        "/v1/messages",
        json.dumps({"anonymousId": "anon-ada"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(workspace.write_key),
    )
    not_json = client.generic("POST", "/v1/messages", "{", content_type="text/plain")
    not_object = client.generic("POST", "/v1/messages", "[]", content_type="text/plain")
    object_id = client.generic(
        "POST",
        "/v1/messages",
        json.dumps({"writeKey": workspace.write_key, "anonymousId": {"id": 1}}),
        content_type="text/plain",
    )
    bad_user = client.generic(
        "POST",
        "/v1/messages",
        json.dumps({"writeKey": workspace.write_key, "anonymousId": "anon-ada", "userId": ["ada"]}),
        content_type="text/plain",
    )
    as_get = client.get("/v1/messages")
    preflight = client.options("/v1/messages", HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type")

    assert [m["id"] for m in basic.json()["messages"]] == [shop["send"].pk]
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_json")
    assert (not_object.status_code, not_object.json()["code"]) == (400, "invalid_body")
    assert object_id.json()["errors"] == {"anonymousId": ["anonymousId must be a non-empty string."]}
    assert bad_user.json()["errors"] == {"userId": ["userId must be a non-empty string."]}
    assert (as_get.status_code, as_get["Allow"]) == (405, "POST, OPTIONS")
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert preflight["Access-Control-Allow-Headers"] == "content-type"


def test_viewing_then_dismissing_records_each_once_and_the_message_is_not_shown_again(workspace, shop):
    client, key, send, ada = shop["client"], workspace.write_key, shop["send"], shop["ada"]

    viewed = _act(client, key, "anon-ada", send.pk, "viewed")
    viewed_again = _act(client, key, "anon-ada", send.pk, "viewed")
    still_shown = _messages(client, key, "anon-ada").json()["messages"]
    dismissed = _act(client, key, "anon-ada", send.pk, "dismissed")
    dismissed_again = _act(client, key, "anon-ada", send.pk, "dismissed")

    assert [viewed.json(), viewed_again.json()] == [{"recorded": True}, {"recorded": False}]
    assert [m["id"] for m in still_shown] == [send.pk]
    assert [dismissed.json(), dismissed_again.json()] == [{"recorded": True}, {"recorded": False}]
    assert _messages(client, key, "anon-ada").json() == {"messages": []}
    [(_, _, state, opened_at, clicked_at, dismissed_at)] = [row for row in _sends(workspace) if row[0] == send.pk]
    assert (state, opened_at is None, clicked_at is None, dismissed_at is None) == (SendState.SENT, False, True, False)
    properties = {
        "campaign_id": shop["campaign"].pk,
        "campaign": "Renewal",
        "variant": "A",
        "send_id": send.pk,
        "channel": "onsite",
    }
    assert [(name, {k: props[k] for k in properties}) for name, props in _events(workspace, ada)] == [
        ("Message Viewed", properties),
        ("Message Dismissed", properties),
    ]


def test_a_click_is_recorded_with_the_link_and_counts_as_opened_and_clicked_in_the_results(workspace, shop):
    client, key, send, ada = shop["client"], workspace.write_key, shop["send"], shop["ada"]

    clicked = _act(client, key, "anon-ada", send.pk, "clicked")

    assert clicked.json() == {"recorded": True}
    # The click proves the view the snippet may not have reported.
    names = [(name, props.get("url")) for name, props in _events(workspace, ada)]
    assert names == [("Message Viewed", None), ("Message Clicked", "https://shop.example/renew?u=ada")]
    assert _messages(client, key, "anon-ada").json() == {"messages": []}
    with workspace_scope(workspace):
        results = selectors.campaign_results(workspace, shop["campaign"])
    [variant] = results.variants
    assert (variant.targeted, variant.sent, variant.opened, variant.clicked) == (1, 1, 1, 1)


def test_a_visitor_cannot_act_on_another_persons_message_nor_use_an_unknown_action(workspace, shop):
    client, key, send = shop["client"], workspace.write_key, shop["send"]
    before = _sends(workspace)

    someone_else = _act(client, key, "anon-bob", send.pk, "dismissed")
    nobody = _act(client, key, "anon-nobody", send.pk, "clicked")
    missing = _act(client, key, "anon-ada", send.pk + 1000, "viewed")
    unknown = _act(client, key, "anon-ada", send.pk, "liked")

    assert [r.status_code for r in (someone_else, nobody, missing, unknown)] == [404, 404, 404, 404]
    assert someone_else.json()["code"] == "not_found"
    assert _sends(workspace) == before
    assert _events(workspace, shop["ada"]) == []


def test_another_workspaces_key_sees_and_changes_nothing(workspace, shop):
    other = factories.WorkspaceFactory()
    client = shop["client"]
    # The same anonymous id is a person in the other workspace too.
    _visit(client, other, "anon-ada", user_id="ada")
    before = _sends(workspace)

    listed = _messages(client, other.write_key, "anon-ada", "ada")
    acted = _act(client, other.write_key, "anon-ada", shop["send"].pk, "dismissed")

    assert listed.json() == {"messages": []}
    assert acted.status_code == 404
    assert _sends(workspace) == before
    assert [m["id"] for m in _messages(client, workspace.write_key, "anon-ada").json()["messages"]] == [shop["send"].pk]


def test_frequency_caps_apply_at_dispatch(workspace, shop):
    # Given at most one on-site message a day, and Ada's first one sent already
    cap(workspace, channel=Channel.ONSITE, max=1, per="1d", seconds=86_400)
    target = _audience(workspace, [shop["ada"]])

    # When a second on-site campaign reaches her
    second = _launched(workspace, target, name="Second")

    # Then it is capped at dispatch, and she is shown the first only
    with workspace_scope(workspace):
        [capped] = Send.objects.filter(campaign=second)
    assert capped.state == SendState.CAPPED
    listed = _messages(shop["client"], workspace.write_key, "anon-ada").json()["messages"]
    assert [m["id"] for m in listed] == [shop["send"].pk]
    assert _act(shop["client"], workspace.write_key, "anon-ada", capped.pk, "viewed").status_code == 404


def test_newest_first_a_paused_campaigns_message_is_not_shown_and_a_failing_template_leaves_it_out(workspace, shop):
    client, key = shop["client"], workspace.write_key
    target = _audience(workspace, [shop["ada"]])
    banner = {"name": "A", "weight": 1, "subject": "", "body": "Free shipping today"}
    newer = _launched(workspace, target, variant=banner, name="Shipping")
    _traits(workspace, shop["ada"], n=2)
    broken = _launched(workspace, target, variant={**banner, "body": "{{ 10 / person.traits.n }}"}, name="Broken")
    with workspace_scope(workspace):
        assert [s.state for s in Send.objects.filter(campaign__in=[newer, broken])] == ["sent", "sent"]
    # Rendered when asked for: a trait that changed since the dispatch makes it fail for her now.
    _traits(workspace, shop["ada"], n=0)

    listed = _messages(client, key, "anon-ada").json()["messages"]
    with workspace_scope(workspace):
        Campaign.objects.filter(pk=shop["campaign"].pk).update(status=CampaignStatus.PAUSED)
    after_pause = _messages(client, key, "anon-ada").json()["messages"]

    assert [(m["campaign_id"], m["format"], m["title"], m["link_url"]) for m in listed] == [
        (newer.pk, "banner", "", ""),
        (shop["campaign"].pk, "modal", "Hi <Ada>", "https://shop.example/renew?u=ada"),
    ]
    assert [m["campaign_id"] for m in after_pause] == [newer.pk]


def test_requests_over_the_write_keys_rate_are_refused_with_429(workspace, shop, settings):
    settings.INGEST_RATE_PER_WRITE_KEY = 2
    client = shop["client"]

    answers = [_messages(client, workspace.write_key, "anon-ada") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2]["Retry-After"] == "1"
    assert answers[2].json()["code"] == "throttled"


def test_on_site_variants_take_a_format_and_an_http_link_only(db, workspace):
    key = factories.api_key(workspace)[1]
    client = Client()
    target = segment(workspace)

    def create(variant: dict[str, Any], name: str):
        document = body([target.pk], name=name, channel="onsite", variants=[variant], goal=None)
        return api(client, "POST", "/api/v1/campaigns/", document, key=key)

    refused = create({"body": "Hi", "url": "javascript:alert(1)", "format": "popup"}, "Bad")
    created = create({"subject": "Sale", "body": "20 % off", "url": "https://shop.example/{{ person.id }}"}, "Ok")

    assert refused.status_code == 400
    assert set(refused.json()["errors"]) == {"variants[0].url", "variants[0].format"}
    assert created.status_code == 201, created.json()
    assert created.json()["variants"] == [
        {
            "name": "A",
            "weight": 1,
            "subject": "Sale",
            "body": "20 % off",
            "url": "https://shop.example/{{ person.id }}",
            "format": "banner",
        }
    ]


def test_the_preview_of_an_on_site_variant_is_what_the_snippet_receives(db, workspace):
    key = factories.api_key(workspace)[1]
    client = Client()
    ada = _visit(client, workspace, "anon-ada", user_id="ada", traits={"first_name": "<Ada>", "plan": "Pro"})
    document = body([segment(workspace).pk], name="Renewal", channel="onsite", variants=[MODAL], goal=None)
    created = api(client, "POST", "/api/v1/campaigns/", document, key=key).json()

    preview = api(client, "POST", f"/api/v1/campaigns/{created['id']}/preview/", {"person": ada}, key=key)

    assert preview.status_code == 200
    assert preview.json() == {
        "variant": "A",
        "format": "modal",
        "title": "Hi <Ada>",
        "body": "Your Pro plan ends soon. <b>Renew</b>",
        "link_url": "https://shop.example/renew?u=ada",
        "link_text": "Renew now",
    }
