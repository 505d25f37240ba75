"""Another workspace's objects answer 404 on every URL, and nothing of theirs changes.

The route list comes from the URL resolver; ``REGISTRY`` says, for each route
name, how to point it at a workspace's object (and which methods to try), or
why the URL holds no workspace object. A route missing from the registry
fails ``test_every_route_is_in_the_registry``, so a new URL cannot ship
without saying how it is kept inside its workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import services
from accounts.models import ApiKey, Invitation, Membership, Role, User, Workspace
from accounts.tenancy import workspace_scope
from campaigns import services as campaign_services
from campaigns.models import Campaign, FrequencyCap
from core import signing
from segmentation import services as segment_services
from segmentation.models import Segment, WebhookSubscription
from tests import factories
from tests.accounts.support import api, logged_in_client, state
from tests.tracking import builders as tracking_builders
from tracking import plan, plan_services
from tracking import services as tracking_services
from tracking.models import Person, TrackingTrigger


@dataclass
class Side:
    """One workspace with an owner, a second member, a key and a pending invitation."""

    workspace: Workspace
    owner: User
    other: User
    membership: Membership
    key: ApiKey
    secret: str
    invitation: Invitation
    person: Person
    trigger: TrackingTrigger
    webhook: WebhookSubscription
    segment: Segment
    static_segment: Segment
    # An event of its tracking plan (Settings -> Data).
    plan_event: str
    # A draft broadcast to ``static_segment``, a live triggered campaign, an email cap.
    campaign: Campaign
    live_campaign: Campaign
    cap: FrequencyCap

    def markers(self) -> list[str]:
        """Strings that only this workspace's data contains."""
        return [
            self.workspace.name,
            self.workspace.write_key,
            self.owner.email,
            self.other.email,
            self.key.name,
            self.key.display_prefix,
            self.invitation.email,
            self.person.user_id or "",
            self.person.traits["email"],
            self.trigger.selector,
            self.webhook.url,
            self.webhook.secret_hint,
            self.segment.name,
            self.static_segment.name,
            self.plan_event,
            self.campaign.name,
            self.live_campaign.name,
        ]


def build_side(label: str) -> Side:
    workspace = factories.WorkspaceFactory(name=f"{label} Holdings")
    owner = factories.member(workspace, role=Role.OWNER, user=factories.UserFactory(email=f"owner-{label}@example.com"))
    other = factories.member(
        workspace, role=Role.MEMBER, user=factories.UserFactory(email=f"staff-{label}@example.com")
    )
    key, secret = factories.api_key(workspace, name=f"{label} sync key")
    with workspace_scope(workspace):
        invitation, _ = services.invitation_create(
            workspace=workspace,
            email=f"invitee-{label}@example.com",
            role=Role.MEMBER,
            actor=owner,
            accept_url_base="http://testserver/",
        )
        membership = Membership.objects.get(user=other)
    person = tracking_builders.person(
        workspace,
        user_id=f"shopper-{label}",
        anonymous_ids=(f"anon-{label}",),
        traits={"email": f"shopper-{label}@example.com"},
    )
    tracking_builders.event(workspace, person, "Order Completed", properties={"order": f"order-{label}"})
    with workspace_scope(workspace):
        trigger = tracking_services.trigger_create(
            workspace=workspace, actor=owner, kind="click", selector=f"#buy-{label.lower()}"
        )
        salt = signing.new_secret_salt()
        webhook = WebhookSubscription.objects.create(
            workspace=workspace,
            url=f"https://hooks.{label.lower()}.example/segments",
            secret_salt=salt,
            secret_hint=signing.subscription_secret(salt)[: signing.HINT_LENGTH],
        )
        segment = segment_services.segment_create(
            workspace=workspace,
            actor=owner,
            name=f"{label} shoppers",
            definition={"type": "trait", "key": "email", "operator": "ends_with", "value": "@example.com"},
        )
        static_segment = segment_services.segment_create(
            workspace=workspace, actor=owner, name=f"{label} beta list", definition=None, static=True
        )
        segment_services.segment_static_change(segment=static_segment, actor=owner, add=[f"shopper-{label}"], remove=[])
        segment_services.segment_refresh(segment=segment)
        plan_event = f"{label} Checkout Viewed"
        plan_services.tracking_plan_replace(
            workspace=workspace,
            actor=owner,
            document=plan.parse({"events": {plan_event: {"properties": {"total": {"type": "number"}}}}}),
        )
        campaign = campaign_services.campaign_create(
            workspace=workspace,
            actor=owner,
            data={
                "name": f"{label} win-back",
                "channel": "email",
                "kind": "broadcast",
                "audience": {"segments": [static_segment.pk]},
                "variants": [{"name": "A", "subject": f"{label} news", "body": "<p>Hello</p>"}],
            },
        )
        live_campaign = campaign_services.campaign_create(
            workspace=workspace,
            actor=owner,
            data={
                "name": f"{label} cart reminder",
                "channel": "email",
                "kind": "triggered",
                "trigger": {"on": "event", "event": "Product Added", "delay": "30m"},
                "variants": [{"name": "A", "subject": "Your cart", "body": "<p>Still there</p>"}],
            },
        )
        live_campaign = campaign_services.campaign_launch(campaign=live_campaign, actor=owner)
        cap = campaign_services.frequency_cap_create(workspace=workspace, actor=owner, channel="email", max=1, per="1d")
    return Side(
        workspace,
        owner,
        other,
        membership,
        key,
        secret,
        invitation,
        person,
        trigger,
        webhook,
        segment,
        static_segment,
        plan_event,
        campaign,
        live_campaign,
        cap,
    )


@dataclass(frozen=True)
class Route:
    """How the cross-workspace test treats one route name.

    ``kwargs`` builds the URL kwargs naming a workspace's object; ``data`` the body
    naming it (or needed to act). Without ``kwargs`` and ``data`` the route holds no
    workspace object, and ``reason`` says why; its ``methods`` are still sent with
    workspace B's credentials and must leave A untouched and unseen.
    """

    methods: tuple[str, ...] = ("GET",)
    kwargs: Callable[[Side], dict[str, Any]] | None = None
    data: Callable[[Side], dict[str, Any]] | None = None
    reason: str = ""
    names_object: bool = False


NONE = "no object in the URL: answers about the caller's own workspace or none"
OWN_PLAN = "changes the caller's own tracking plan"
PLAN_NAMES = (
    "names an event of the caller's own tracking plan; another workspace's names are only names not in it "
    "(tests/tracking/test_plan_views.py)"
)

REGISTRY: dict[str, Route] = {
    # Web pages.
    "dashboard": Route(reason=NONE),
    "live_events": Route(reason=NONE),
    "people": Route(reason=NONE),
    "segments": Route(reason=NONE),
    "campaigns": Route(reason=NONE),
    "insights": Route(reason=NONE),
    "signup": Route(reason="public sign-up page; a signed-in user is sent to the dashboard"),
    "signup_sent": Route(reason="static confirmation page"),
    "signup_confirm": Route(
        methods=(), reason="the secret token of a mailed sign-up link, not a workspace's object; covered in test_views"
    ),
    "login": Route(reason="public sign-in page"),
    "logout": Route(methods=(), reason="ends the caller's own session; covered in test_security"),
    "password_reset": Route(reason="public page; mails the address typed in"),
    "password_reset_done": Route(reason="static confirmation page"),
    "password_reset_confirm": Route(
        methods=(), reason="uid and token of a mailed link, not a workspace's object; covered in test_views"
    ),
    "password_reset_complete": Route(reason="static confirmation page"),
    "invite_accept": Route(
        methods=(),
        reason="the secret token is the capability to join, not an id; used/revoked/expired covered in test_views",
    ),
    "workspace_new": Route(reason="creates a workspace of the caller's own"),
    "workspace_switch": Route(methods=("POST",), data=lambda s: {"workspace": s.workspace.pk}, names_object=True),
    "settings_workspace": Route(reason=NONE),
    "settings_members": Route(reason=NONE),
    "settings_member_role": Route(
        methods=("POST",), kwargs=lambda s: {"pk": s.membership.pk}, data=lambda s: {"role": Role.VIEWER}
    ),
    "settings_member_remove": Route(methods=("POST",), kwargs=lambda s: {"pk": s.membership.pk}),
    "settings_invitations": Route(reason=NONE),
    "settings_invitation_revoke": Route(methods=("POST",), kwargs=lambda s: {"pk": s.invitation.pk}),
    "settings_api_keys": Route(reason=NONE),
    "settings_api_key_revoke": Route(methods=("POST",), kwargs=lambda s: {"pk": s.key.pk}),
    "settings_write_key": Route(reason=NONE),
    "settings_audit_log": Route(reason=NONE),
    "settings_webhooks": Route(reason=NONE),
    "settings_webhook_detail": Route(kwargs=lambda s: {"pk": s.webhook.pk}),
    "settings_webhook_test": Route(methods=("POST",), kwargs=lambda s: {"pk": s.webhook.pk}),
    "settings_webhook_rotate": Route(methods=("POST",), kwargs=lambda s: {"pk": s.webhook.pk}),
    "settings_webhook_delete": Route(methods=("POST",), kwargs=lambda s: {"pk": s.webhook.pk}),
    # REST API.
    "api-workspace": Route(methods=("GET", "PATCH"), data=lambda s: {"name": "Renamed by B"}, reason=NONE),
    "api-workspace-rotate-write-key": Route(methods=("POST",), reason="rotates the caller's own write key"),
    "api-key-list": Route(reason=NONE),
    "api-key-detail": Route(methods=("GET", "DELETE"), kwargs=lambda s: {"pk": s.key.pk}),
    "member-list": Route(reason=NONE),
    "member-detail": Route(
        methods=("GET", "PATCH", "DELETE"), kwargs=lambda s: {"pk": s.membership.pk}, data=lambda s: {"role": "viewer"}
    ),
    "invitation-list": Route(reason=NONE),
    "invitation-detail": Route(methods=("GET", "DELETE"), kwargs=lambda s: {"pk": s.invitation.pk}),
    "audit-log-list": Route(reason=NONE),
    # Tracking: people and events (pages and REST).
    "quarantine": Route(reason=NONE),
    "person_detail": Route(kwargs=lambda s: {"pk": s.person.pk}),
    "person_erase": Route(methods=("POST",), kwargs=lambda s: {"pk": s.person.pk}),
    "person-list": Route(reason=NONE),
    "person-detail": Route(methods=("GET", "DELETE"), kwargs=lambda s: {"pk": s.person.pk}),
    "person-events": Route(kwargs=lambda s: {"pk": s.person.pk}),
    "event-list": Route(reason=NONE),
    "quarantine-list": Route(reason=NONE),
    "person-export-detail": Route(kwargs=lambda s: {"pk": s.person.pk}),
    # The snippet: public files and configuration, and its settings pages.
    "snippet": Route(reason="the public snippet file; no workspace data"),
    "snippet_versioned": Route(methods=(), reason="the public snippet file by version; no workspace data"),
    "snippet_config": Route(methods=(), reason="public configuration found by write key (tests/tracking)"),
    "settings_install": Route(reason=NONE),
    "settings_triggers": Route(reason=NONE),
    "settings_trigger_edit": Route(
        methods=("GET", "POST"),
        kwargs=lambda s: {"pk": s.trigger.pk},
        data=lambda s: {"kind": "click", "selector": "#taken", "event_name": "Taken", "enabled": "on"},
    ),
    "settings_trigger_delete": Route(methods=("POST",), kwargs=lambda s: {"pk": s.trigger.pk}),
    # The tracking plan (Settings -> Data), and the events catalogue with its plan status.
    "settings_data": Route(reason=NONE),
    "settings_data_export": Route(reason=NONE),
    "settings_data_import": Route(methods=("POST",), data=lambda s: {"text": '{"events": {}}'}, reason=OWN_PLAN),
    "settings_data_settings": Route(
        methods=("POST",), data=lambda s: {"block_unplanned_events": "on"}, reason=OWN_PLAN
    ),
    "settings_data_event_add": Route(methods=("POST",), data=lambda s: {"name": "Added by B"}, reason=OWN_PLAN),
    "settings_data_event_update": Route(
        methods=("POST",), data=lambda s: {"event": s.plan_event, "description": "by B"}, reason=PLAN_NAMES
    ),
    "settings_data_event_remove": Route(methods=("POST",), data=lambda s: {"event": s.plan_event}, reason=PLAN_NAMES),
    "settings_data_property_set": Route(
        methods=("POST",), data=lambda s: {"event": s.plan_event, "name": "added", "type": "list"}, reason=PLAN_NAMES
    ),
    "settings_data_property_change": Route(
        methods=("POST",), data=lambda s: {"event": s.plan_event, "name": "total", "type": "list"}, reason=PLAN_NAMES
    ),
    "settings_data_property_remove": Route(
        methods=("POST",), data=lambda s: {"event": s.plan_event, "name": "total"}, reason=PLAN_NAMES
    ),
    "api-tracking-plan": Route(methods=("GET", "PUT"), data=lambda s: {"events": {}}, reason=OWN_PLAN),
    "event_catalogue": Route(reason=NONE),
    # The tracking API: the public write key names the workspace (tests/tracking/test_ingest.py).
    **{
        f"ingest-{kind}": Route(methods=(), reason="ingestion by write key, never by session or secret key")
        for kind in ("batch", "track", "identify", "page", "screen", "group", "alias")
    },
    # Campaign emails' links: the signed token names the send (tests/campaigns/test_engagement.py).
    **{
        f"campaign_{kind}": Route(methods=(), reason="a signed token of one send, never a session or key")
        for kind in ("open", "click", "unsubscribe")
    },
    "campaign_esp_tracking": Route(
        methods=(), reason="an ESP's webhook, authenticated by ANYMAIL_WEBHOOK_SECRET (tests/campaigns)"
    ),
    # On-site messages: the public write key names the workspace (tests/campaigns/test_onsite.py).
    "onsite_messages": Route(methods=(), reason="the snippet's messages, by write key and anonymous id"),
    "onsite_message_event": Route(
        methods=(), reason="a visitor's own on-site send, by write key and anonymous id (tests/campaigns)"
    ),
    "webhook-list": Route(reason=NONE),
    "webhook-detail": Route(methods=("GET", "DELETE"), kwargs=lambda s: {"pk": s.webhook.pk}),
    # Segments.
    "segment-list": Route(reason=NONE),
    "segment-detail": Route(
        methods=("GET", "PATCH", "DELETE"),
        kwargs=lambda s: {"pk": s.segment.pk},
        data=lambda s: {"name": "Renamed by B"},
    ),
    "segment-preview": Route(
        methods=("POST",),
        data=lambda s: {"definition": {"type": "trait", "key": "email", "operator": "is_set"}},
        reason="evaluates a definition in the caller's own workspace; references are checked in tests/segmentation",
    ),
    "segment-refresh": Route(methods=("POST",), kwargs=lambda s: {"pk": s.segment.pk}),
    "segment-members": Route(
        methods=("GET", "POST"),
        kwargs=lambda s: {"pk": s.static_segment.pk},
        data=lambda s: {"add": [], "remove": [s.person.user_id]},
    ),
    "segment-members-csv": Route(kwargs=lambda s: {"pk": s.segment.pk}),
    "segment-history": Route(kwargs=lambda s: {"pk": s.segment.pk}),
    # Segment pages and the builder's helpers.
    "segment_new": Route(
        methods=("GET", "POST"),
        data=lambda s: {"name": "Made by B", "definition": '{"type": "trait", "key": "plan", "operator": "is_set"}'},
        reason="creates a segment in the caller's own workspace; references to others' segments: tests/segmentation",
    ),
    "segment_overlap": Route(data=lambda s: {"s": [s.segment.pk, s.static_segment.pk]}, names_object=True),
    "segment_overlap_create": Route(
        methods=("POST",),
        data=lambda s: {"row": s.segment.pk, "column": s.static_segment.pk, "kind": "both"},
        names_object=True,
    ),
    "segment_why": Route(data=lambda s: {"person": s.person.pk, "why": s.segment.pk}, names_object=True),
    "segment_builder_preview": Route(
        methods=(),
        reason="a JSON POST evaluated in the caller's workspace; others' ids: tests/segmentation/test_views",
    ),
    "segment_catalogue": Route(reason=NONE),
    "segment_detail": Route(kwargs=lambda s: {"pk": s.segment.pk}),
    "segment_edit": Route(
        methods=("GET", "POST"),
        kwargs=lambda s: {"pk": s.segment.pk},
        data=lambda s: {"name": "Renamed by B", "definition": '{"type": "trait", "key": "plan", "operator": "is_set"}'},
    ),
    "segment_members_csv": Route(kwargs=lambda s: {"pk": s.segment.pk}),
    "segment_refresh": Route(methods=("POST",), kwargs=lambda s: {"pk": s.segment.pk}),
    "segment_duplicate": Route(methods=("POST",), kwargs=lambda s: {"pk": s.segment.pk}),
    "segment_delete": Route(methods=("POST",), kwargs=lambda s: {"pk": s.segment.pk}),
    # Insights: computed over the caller's own workspace; runs and jobs by id are covered where they live.
    "insights-funnel": Route(
        methods=("POST",),
        data=lambda s: {"steps": [{"event": "Order Completed"}, {"event": "Order Completed"}]},
        reason=NONE,
    ),
    "insights-funnel-segment": Route(
        methods=(), reason="creates a segment in the caller's own workspace (201): tests/insights/test_api.py"
    ),
    "insights-retention": Route(
        methods=("POST",),
        data=lambda s: {"start_event": "Order Completed", "return_event": "Order Completed"},
        reason=NONE,
    ),
    "insights-retention-segment": Route(
        methods=(), reason="creates a segment in the caller's own workspace (201): tests/insights/test_api.py"
    ),
    "insights-computed-traits": Route(methods=("GET", "PATCH"), data=lambda s: {"rfm_event": "Taken"}, reason=NONE),
    "insights-computed-traits-refresh": Route(methods=(), reason="queues the caller's own recompute (202)"),
    "api-insights-clusters": Route(methods=(), reason="the caller's latest run, 404 before one: tests/insights"),
    "api-insights-clusters-run": Route(methods=(), reason="starts a run of the caller's own workspace (202)"),
    "api-insights-clusters-run-detail": Route(
        methods=(), reason="another workspace's run answers 404: tests/insights/test_clustering_api.py"
    ),
    "api-insights-clusters-run-segments": Route(
        methods=(), reason="another workspace's run answers 404: tests/insights/test_clustering_api.py"
    ),
    "api-insights-propensity": Route(methods=(), reason="the caller's latest runs: tests/insights"),
    "api-insights-propensity-run": Route(methods=(), reason="starts a run of the caller's own workspace (202)"),
    "api-insights-propensity-run-detail": Route(
        methods=(), reason="another workspace's run answers 404: tests/insights/test_propensity_web.py"
    ),
    "insights_funnels": Route(reason=NONE),
    "insights_funnel_segment": Route(
        methods=(), reason="another workspace's job answers 404: tests/insights/test_views.py"
    ),
    "insights_retention": Route(reason=NONE),
    "insights_retention_segment": Route(
        methods=(), reason="another workspace's job answers 404: tests/insights/test_views.py"
    ),
    "insights_job": Route(
        methods=(),
        kwargs=lambda s: {"pk": 0},
        reason="another workspace's job answers 404: tests/insights/test_views.py",
    ),
    "insights_computed_traits": Route(reason=NONE),
    "insights_computed_traits_refresh": Route(methods=("POST",), reason=NONE),
    "insights_clusters": Route(reason=NONE),
    "insights_clusters_run": Route(methods=("POST",), reason=NONE),
    "insights_cluster_segment": Route(
        methods=(),
        kwargs=lambda s: {"pk": 0},
        reason="another workspace's run answers 404: tests/insights/test_clustering_views.py",
    ),
    "insights_propensity": Route(reason=NONE),
    "insights_propensity_run": Route(methods=("POST",), reason=NONE),
    # Campaigns.
    "campaign-list": Route(reason=NONE),
    "campaign-detail": Route(
        methods=("GET", "PATCH", "DELETE"),
        kwargs=lambda s: {"pk": s.campaign.pk},
        data=lambda s: {"name": "Renamed by B"},
    ),
    "campaign-launch": Route(methods=("POST",), kwargs=lambda s: {"pk": s.campaign.pk}),
    "campaign-pause": Route(methods=("POST",), kwargs=lambda s: {"pk": s.live_campaign.pk}),
    "campaign-results": Route(kwargs=lambda s: {"pk": s.campaign.pk}),
    "campaign-progress": Route(kwargs=lambda s: {"pk": s.campaign.pk}),
    "campaign-preview": Route(
        methods=("POST",), kwargs=lambda s: {"pk": s.campaign.pk}, data=lambda s: {"person": s.person.pk}
    ),
    "campaign-test": Route(
        methods=("POST",),
        kwargs=lambda s: {"pk": s.campaign.pk},
        data=lambda s: {"email": "qa@example.com", "person": s.person.pk},
    ),
    "campaign-estimate": Route(
        methods=("POST",),
        data=lambda s: {"channel": "email", "audience": {"segments": [s.static_segment.pk]}},
        reason="counts the caller's own segments; others' ids are refused by name: tests/campaigns/test_views.py",
    ),
    # Campaign pages and the editor's helpers.
    "campaign_new": Route(
        reason="creates a campaign in the caller's own workspace; others' segment ids: tests/campaigns/test_views.py"
    ),
    "campaign_estimate": Route(
        methods=(), reason="a POST counted in the caller's workspace; others' ids: tests/campaigns/test_views.py"
    ),
    "campaign_from_playbook": Route(
        methods=(), reason="a draft and a segment of the caller's own from a fixed template: tests/campaigns"
    ),
    "campaign_edit": Route(
        methods=("GET", "POST"),
        kwargs=lambda s: {"pk": s.campaign.pk},
        data=lambda s: {
            "name": "Renamed by B",
            "channel": "email",
            "kind": "broadcast",
            "include": [s.static_segment.pk],
            "schedule": "now",
            "holdout_percent": "0",
            "variant_count": "1",
            "v0-name": "A",
            "v0-weight": "1",
            "v0-subject": "Hi",
            "v0-body": "<p>Hi</p>",
        },
    ),
    "campaign_people": Route(kwargs=lambda s: {"pk": s.campaign.pk}, data=lambda s: {"q": "shopper"}),
    "campaign_preview": Route(
        methods=("POST",), kwargs=lambda s: {"pk": s.campaign.pk}, data=lambda s: {"preview_person": s.person.pk}
    ),
    "campaign_test": Route(
        methods=("POST",), kwargs=lambda s: {"pk": s.campaign.pk}, data=lambda s: {"test_email": "qa@example.com"}
    ),
    "campaign_launch": Route(
        methods=("POST",), kwargs=lambda s: {"pk": s.campaign.pk}, data=lambda s: {"confirmed": "yes"}
    ),
    "campaign_pause": Route(methods=("POST",), kwargs=lambda s: {"pk": s.live_campaign.pk}),
    "campaign_progress": Route(kwargs=lambda s: {"pk": s.campaign.pk}),
    "frequency-cap-list": Route(reason=NONE),
    "frequency-cap-detail": Route(methods=("GET", "DELETE"), kwargs=lambda s: {"pk": s.cap.pk}),
    "campaign-settings": Route(
        methods=("GET", "PATCH"), data=lambda s: {"timezone": "Europe/Paris"}, reason="the caller's own settings"
    ),
    # Campaign pages: a campaign's results and its segments; Settings -> Campaigns and the outbox.
    "campaign_results": Route(kwargs=lambda s: {"pk": s.campaign.pk}),
    "campaign_results_segment": Route(
        methods=("POST",), kwargs=lambda s: {"pk": s.campaign.pk}, data=lambda s: {"kind": "converted"}
    ),
    "settings_campaigns": Route(
        methods=("GET", "POST"),
        data=lambda s: {"timezone": "Europe/Paris", "emails_per_second": "10", "webhooks_per_second": "10"},
        reason="the caller's own settings",
    ),
    "settings_campaign_cap_add": Route(
        methods=("POST",), data=lambda s: {"channel": "email", "max": "1", "per": "1d"}, reason="adds a cap of its own"
    ),
    "settings_campaign_cap_delete": Route(methods=("POST",), kwargs=lambda s: {"pk": s.cap.pk}),
    "settings_campaign_outbox": Route(reason="the caller's own workspace's messages (tests/campaigns)"),
    "api-schema": Route(reason="the OpenAPI document; no workspace data"),
    "api-docs": Route(reason="the API docs page; no workspace data"),
}


@dataclass(frozen=True)
class Resolved:
    name: str
    pattern: str
    kwargs: frozenset[str]
    callback: Any = field(compare=False, hash=False, repr=False, default=None)

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/")

    def api_methods(self) -> set[str]:
        """The HTTP methods a DRF route answers, read from its view."""
        actions = getattr(self.callback, "actions", None)
        if actions:
            methods = {method.upper() for method in actions}
        else:
            view_class = self.callback.view_class
            methods = {m.upper() for m in view_class.http_method_names if hasattr(view_class, m)}
        return methods - {"OPTIONS", "HEAD"}


def walk(resolver: URLResolver, prefix: str = "") -> Iterator[Resolved]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry, prefix + str(entry.pattern))
        else:
            assert isinstance(entry, URLPattern)
            pattern = prefix + str(entry.pattern)
            converters = getattr(entry.pattern, "converters", None)
            kwargs = set(converters) if converters is not None else set(entry.pattern.regex.groupindex)
            yield Resolved(entry.name or f"<unnamed {pattern}>", pattern, frozenset(kwargs), entry.callback)


ROUTES = sorted(set(walk(get_resolver())), key=lambda r: r.pattern)


def url_for(route: Resolved, side: Side) -> str:
    spec = REGISTRY[route.name]
    kwargs = spec.kwargs(side) if spec.kwargs else {}
    if "format" in route.kwargs:
        kwargs["format"] = "json"
    return reverse(route.name, kwargs=kwargs) if kwargs else reverse(route.name)


def test_every_route_is_in_the_registry():
    problems = []
    for route in ROUTES:
        spec = REGISTRY.get(route.name)
        if spec is None:
            problems.append(f"{route.name} ({route.pattern}): add it to REGISTRY")
            continue
        object_kwargs = set(route.kwargs) - {"format"}
        if spec.kwargs is None and object_kwargs and spec.methods:
            problems.append(f"{route.name}: the URL takes {sorted(object_kwargs)} but REGISTRY builds none")
        if spec.kwargs is None and spec.data is None and not spec.reason:
            problems.append(f"{route.name}: a route without an object needs a reason")
        if spec.kwargs is not None and not object_kwargs:
            problems.append(f"{route.name}: REGISTRY builds URL kwargs but the URL takes none")
        if route.is_api and spec.kwargs is not None and set(spec.methods) != route.api_methods():
            problems.append(f"{route.name}: answers {sorted(route.api_methods())}, REGISTRY tries {spec.methods}")
    stale = set(REGISTRY) - {route.name for route in ROUTES}
    problems.extend(f"{name}: in REGISTRY but no longer a route" for name in sorted(stale))
    assert problems == []


def _principals(route: Resolved) -> list[str]:
    return ["key", "session"] if route.is_api else ["session"]


OBJECT_CASES = [
    pytest.param(route, method, principal, id=f"{route.pattern}-{method}-{principal}")
    for route in ROUTES
    if route.name in REGISTRY and (REGISTRY[route.name].kwargs or REGISTRY[route.name].names_object)
    for method in REGISTRY[route.name].methods
    for principal in _principals(route)
]

OTHER_CASES = [
    pytest.param(route, method, principal, id=f"{route.pattern}-{method}-{principal}")
    for route in ROUTES
    if route.name in REGISTRY and not (REGISTRY[route.name].kwargs or REGISTRY[route.name].names_object)
    for method in REGISTRY[route.name].methods
    for principal in _principals(route)
]


def _send(route: Resolved, method: str, principal: str, target: Side, caller: Side, client: Client) -> Any:
    url = url_for(route, target)
    spec = REGISTRY[route.name]
    data = spec.data(target) if spec.data else None
    if route.is_api:
        return api(client, method, url, data, key=caller.secret if principal == "key" else None)
    return getattr(client, method.lower())(url, data=data or {})


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method", "principal"), OBJECT_CASES)
def test_other_workspaces_object_answers_404_and_changes_nothing(route, method, principal):
    # Given workspaces A and B, and B's owner (session) or B's secret key
    a, b = build_side("Alpha"), build_side("Bravo")
    client = Client() if principal == "key" else logged_in_client(b.owner, workspace=b.workspace)
    before = state(a.workspace)

    # When B asks for A's object
    response = _send(route, method, principal, target=a, caller=b, client=client)

    # Then the answer is a plain 404, nothing of A changed and nothing of A shows
    assert response.status_code == 404, response.content[:300]
    if route.is_api:
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    else:
        assert response["Content-Type"].startswith("text/html")
    assert state(a.workspace) == before
    for marker in a.markers():
        assert marker.encode() not in response.content

    # And the same request on B's own object is not a 404: the 404 above is the workspace's doing
    own = _send(route, method, principal, target=b, caller=b, client=client)
    assert own.status_code in (200, 202, 204, 302), own.content[:300]
    assert state(a.workspace) == before


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method", "principal"), OTHER_CASES)
def test_routes_without_object_show_and_change_nothing_of_another_workspace(route, method, principal):
    # Given workspaces A and B, and B's owner (session) or B's secret key
    a, b = build_side("Alpha"), build_side("Bravo")
    client = Client() if principal == "key" else logged_in_client(b.owner, workspace=b.workspace)
    before = state(a.workspace)

    # When B calls a route that acts on its own workspace
    response = _send(route, method, principal, target=b, caller=b, client=client)

    # Then it answers B without error, and A is neither shown nor touched
    assert response.status_code in (200, 302), response.content[:300]
    for marker in a.markers():
        assert marker.encode() not in response.content
    assert state(a.workspace) == before


@pytest.mark.django_db
def test_workspace_switch_to_a_foreign_workspace_keeps_the_current_one():
    a, b = build_side("Alpha"), build_side("Bravo")
    client = logged_in_client(b.owner, workspace=b.workspace)

    response = client.post(reverse("workspace_switch"), {"workspace": a.workspace.pk})

    assert response.status_code == 404
    assert client.session["workspace_id"] == b.workspace.pk
    page = client.get(reverse("settings_workspace"))
    assert page.context["workspace"] == b.workspace


@pytest.mark.django_db
def test_revoked_key_answers_401_and_stays_revoked(client):
    side = build_side("Alpha")
    with workspace_scope(side.workspace):
        services.api_key_revoke(workspace=side.workspace, key=side.key, actor=None)
    before = state(side.workspace)

    response = api(client, "GET", reverse("api-workspace"), key=side.secret)

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API key.", "code": "authentication_failed"}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert state(side.workspace) == before
