"""REST endpoints of campaigns (rest-api.md, "Campaigns"): /api/v1/campaigns/, /api/v1/frequency-caps/,
/api/v1/campaign-settings/.

Members of the workspace write, viewers read (viewers read a webhook variant's URL as its
scheme and host only, as segment webhooks'). A campaign body is read whole by
``campaigns.validation`` in the service, which names every faulty field by its path
(``audience.segments[0]``, ``variants[1].subject``); the serializers below document it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import request_actor, request_body_required, request_workspace
from campaigns import rendering, selectors, services, winner
from campaigns.estimate import audience_estimate, estimate_audience_errors
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignSettings,
    CampaignStatus,
    Channel,
    FrequencyCap,
    OnsiteFormat,
    TriggerOn,
)
from campaigns.progress import campaign_progress
from campaigns.validation import MAX_AUDIENCE_SEGMENTS, MAX_HOLDOUT_PERCENT, MAX_VARIANTS
from core.api import Pagination, StrictSerializer
from segmentation.definition import DURATION_PATTERN
from segmentation.webhooks.selectors import url_readable_in_full, url_shown

_DURATION: dict[str, Any] = {"type": "string", "pattern": DURATION_PATTERN, "description": 'e.g. "30m", "1d", "4w"'}


@extend_schema_field(_DURATION)
class DurationField(serializers.CharField):
    """A duration as segment definitions write it."""


class CampaignTriggerSerializer(serializers.Serializer[Any]):
    on = serializers.ChoiceField(choices=TriggerOn.choices)
    segment = serializers.IntegerField(required=False, help_text='With "on": "segment_entry".')
    event = serializers.CharField(required=False, help_text='With "on": "event".')
    delay = DurationField(required=False, help_text="Wait this long after the trigger.")
    exit_event = serializers.CharField(required=False, help_text="Doing it during the delay cancels the message.")


class CampaignAudienceSerializer(serializers.Serializer[Any]):
    segments = serializers.ListField(child=serializers.IntegerField(), help_text="Segments sent to (ids).")
    exclude = serializers.ListField(child=serializers.IntegerField(), required=False, help_text="Segments left out.")


class CampaignVariantSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=50)
    weight = serializers.IntegerField(min_value=1, required=False, default=1)
    subject = serializers.CharField(required=False, help_text="Email and on-site: a template (text).")
    body = serializers.CharField(
        required=False,
        help_text="Email: an HTML template; webhook: a JSON template (empty: the default); on-site: the message "
        "(a text template).",
    )
    text = serializers.CharField(
        required=False,
        help_text="Email: the plain-text part (empty: taken from the HTML); on-site: the link's label.",
    )
    url = serializers.CharField(
        required=False,
        help_text="Webhook: where to POST; on-site: the link (http or https). Templates only after the host.",
    )
    format = serializers.ChoiceField(
        choices=OnsiteFormat.choices, required=False, help_text="On-site: banner (default) or modal."
    )


class CampaignGoalSerializer(serializers.Serializer[Any]):
    event = serializers.CharField()
    within = DurationField()


class CampaignAutoWinnerSerializer(serializers.Serializer[Any]):
    test_percent = serializers.IntegerField(min_value=1, max_value=90, required=False, default=20)
    wait = DurationField(help_text='How long the test runs before the choice, e.g. "4h".')
    default_variant = serializers.CharField(required=False, help_text="Sent when no variant wins (default: the first).")


class CampaignBodySerializer(serializers.Serializer[Any]):
    """The body that creates a campaign; PATCH takes any part of it (a field given replaces it whole)."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    channel = serializers.ChoiceField(choices=Channel.choices)
    kind = serializers.ChoiceField(choices=CampaignKind.choices)
    trigger = CampaignTriggerSerializer(
        allow_null=True, required=False, help_text="Required for, and only for, triggered."
    )
    audience = CampaignAudienceSerializer()
    variants = CampaignVariantSerializer(many=True, help_text=f"1 to {MAX_VARIANTS}; 2 or more make an A/B split.")
    holdout_percent = serializers.IntegerField(min_value=0, max_value=MAX_HOLDOUT_PERCENT, required=False, default=0)
    goal = CampaignGoalSerializer(allow_null=True, required=False)
    once_per_person = serializers.BooleanField(required=False, default=True)
    reeligible_after = DurationField(required=False, allow_null=True, help_text="With once_per_person false.")
    send_at = serializers.DateTimeField(required=False, allow_null=True, help_text="A broadcast's time (null: now).")
    local_time = serializers.BooleanField(required=False, default=False, help_text="send_at in each person's zone.")
    send_time = serializers.ChoiceField(
        choices=["best_hour"],
        required=False,
        allow_null=True,
        help_text="best_hour: each person at their most active hour of the week, the first from send_at on.",
    )
    send_time_control_percent = serializers.IntegerField(
        min_value=0, max_value=50, required=False, default=10, help_text="best_hour: the random-hour control share."
    )
    auto_winner = CampaignAutoWinnerSerializer(
        allow_null=True, required=False, help_text="Test the variants on a share, wait, send the best to the rest."
    )


class CampaignProgressSerializer(serializers.Serializer[Any]):
    total = serializers.IntegerField(help_text="Sends written (the holdout's included).")
    sent = serializers.IntegerField()
    capped = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Waiting or being sent.")
    holdout = serializers.IntegerField()


class CampaignSerializer(CampaignBodySerializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=CampaignStatus.choices)
    created_at = serializers.DateTimeField()
    launched_at = serializers.DateTimeField(allow_null=True)
    progress = CampaignProgressSerializer()


class CampaignGroupResultSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text='The variant\'s name, or "holdout".')
    targeted = serializers.IntegerField()
    sent = serializers.IntegerField()
    capped = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    failed = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True, help_text="converted / sent (holdout: / targeted)")
    interval = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="The rate's 95 % Wilson interval [low, high]."
    )
    lift = serializers.FloatField(allow_null=True, help_text="(rate - holdout's) / holdout's")


class SendTimeGroupSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text='"best hour" or "random hour".')
    targeted = serializers.IntegerField()
    sent = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)


class SendTimeResultsSerializer(serializers.Serializer[Any]):
    control_percent = serializers.IntegerField()
    best_hour = SendTimeGroupSerializer()
    control = SendTimeGroupSerializer()
    p_value = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField()


class WinnerVariantSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    sent = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)


class WinnerDecisionSerializer(serializers.Serializer[Any]):
    winner = serializers.CharField()
    significant = serializers.BooleanField(help_text="False: no significant difference, the default was sent.")
    reason = serializers.CharField()
    test = serializers.CharField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField()
    variants = WinnerVariantSerializer(many=True, help_text="The test share's numbers the choice was made on.")
    remaining_sends = serializers.IntegerField(help_text="Sends of the winner written for the rest of the audience.")
    decided_at = serializers.DateTimeField()


class AutoWinnerResultsSerializer(serializers.Serializer[Any]):
    test_percent = serializers.IntegerField()
    wait = serializers.CharField()
    default_variant = serializers.CharField()
    state = serializers.ChoiceField(choices=["testing", "decided"])
    decides_at = serializers.DateTimeField(allow_null=True)
    decision = WinnerDecisionSerializer(allow_null=True)


class CampaignResultsSerializer(serializers.Serializer[Any]):
    goal = CampaignGoalSerializer(allow_null=True)
    variants = CampaignGroupResultSerializer(many=True)
    holdout = CampaignGroupResultSerializer()
    test = serializers.CharField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField()
    send_time = SendTimeResultsSerializer(allow_null=True, help_text="best_hour campaigns: best hour vs control.")
    auto_winner = AutoWinnerResultsSerializer(allow_null=True, help_text="Automatic winner: settings and decision.")


class CampaignPreviewRequestSerializer(StrictSerializer):
    person = serializers.JSONField(help_text="A person's id (a number) or user id (a string).")
    variant = serializers.CharField(required=False, help_text="A variant's name (default: the first).")
    event = serializers.JSONField(required=False, help_text='{"properties": {...}} as an event trigger passes.')


class CampaignPreviewSerializer(serializers.Serializer[Any]):
    variant = serializers.CharField()
    subject = serializers.CharField(required=False)
    html = serializers.CharField(required=False)
    text = serializers.CharField(required=False)
    url = serializers.CharField(required=False)
    json = serializers.JSONField(required=False)
    # On-site: what the snippet receives (docs/campaigns.md, "On-site messages").
    format = serializers.CharField(required=False)
    title = serializers.CharField(required=False)
    body = serializers.CharField(required=False)
    link_url = serializers.CharField(required=False)
    link_text = serializers.CharField(required=False)


class CampaignTestRequestSerializer(StrictSerializer):
    email = serializers.CharField(help_text="Where the test message goes.")
    person = serializers.JSONField(required=False, help_text="Whose data fills the templates (id or user id).")
    variant = serializers.CharField(required=False)
    event = serializers.JSONField(required=False)


class CampaignTestResultSerializer(serializers.Serializer[Any]):
    sent_to = serializers.CharField()
    variant = serializers.CharField()
    subject = serializers.CharField()


class CampaignEstimateAudienceSerializer(StrictSerializer):
    segments = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=MAX_AUDIENCE_SEGMENTS)
    exclude = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=MAX_AUDIENCE_SEGMENTS, required=False
    )


class CampaignEstimateRequestSerializer(StrictSerializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    audience = CampaignEstimateAudienceSerializer(
        help_text="Ids of the workspace's segments; a segment may not be both included and excluded."
    )


class CampaignEstimateSerializer(serializers.Serializer[Any]):
    audience = serializers.IntegerField()
    after_exclusions = serializers.IntegerField()
    no_email = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    capped_now = serializers.IntegerField()
    will_receive = serializers.IntegerField()


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The campaign's state does not allow this."


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "not_sent"
    default_detail = "The message could not be sent."


def _urls_in_full(request: Request) -> bool:
    return url_readable_in_full(getattr(request._request, "membership", None))


def _shown(document: dict[str, Any], *, full: bool) -> dict[str, Any]:
    if not full and document["channel"] == Channel.WEBHOOK:
        document["variants"] = [{**v, "url": url_shown(v["url"], full=False)} for v in document["variants"]]
    return document


def _event_properties(data: dict[str, Any]) -> dict[str, Any] | None:
    event = data.get("event")
    if event is None:
        return None
    properties = event.get("properties") if isinstance(event, dict) else None
    if not isinstance(event, dict) or set(event) - {"properties"} or not isinstance(properties, dict):
        raise serializers.ValidationError({"event": ['Expected {"properties": {...}}.']})
    return properties


def _person(workspace: Any, data: dict[str, Any], *, required: bool) -> rendering.PersonContext | None:
    if "person" not in data:
        if required:
            raise serializers.ValidationError({"person": ["This field is required."]})
        return None
    person = selectors.person_find(workspace, data["person"])
    if person is None:
        raise serializers.ValidationError({"person": [f"No person with id or user id {data['person']!r} here."]})
    return selectors.person_context(person)


class CampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Campaign],
):
    """Campaigns of the workspace: broadcast or triggered, by email, webhook or on-site message."""

    serializer_class = CampaignSerializer
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return Campaign.objects.unscoped().none()
        return selectors.campaign_list(request_workspace(self.request))

    def _documents(self, campaigns: list[Campaign]) -> list[dict[str, Any]]:
        progress = selectors.campaigns_progress(request_workspace(self.request), [c.pk for c in campaigns])
        full = _urls_in_full(self.request)
        return [_shown(selectors.campaign_document(c, progress[c.pk]), full=full) for c in campaigns]

    def _answer(self, campaign: Campaign, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.campaign_get(request_workspace(self.request), campaign.pk)
        assert fresh is not None
        return Response(self._documents([fresh])[0], status=code)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        paginator = Pagination()
        page: list[Campaign] | None = paginator.paginate_queryset(self.get_queryset(), request, view=self)
        return paginator.get_paginated_response(self._documents(list(page or [])))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self._documents([self.get_object()])[0])

    @extend_schema(request=CampaignBodySerializer, responses={201: CampaignSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        campaign = services.campaign_create(
            workspace=request_workspace(request), actor=request_actor(request), data=request.data
        )
        return self._answer(campaign, status.HTTP_201_CREATED)

    @extend_schema(request=CampaignBodySerializer, responses=CampaignSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        campaign = self.get_object()
        try:
            services.campaign_update(campaign=campaign, actor=request_actor(request), data=request.data)
        except services.CampaignConflict as error:
            raise Conflict(str(error)) from error
        return self._answer(campaign)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="the campaign is live: pause it first")})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            services.campaign_delete(campaign=self.get_object(), actor=request_actor(request))
        except services.CampaignConflict as error:
            raise Conflict(str(error)) from error
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: CampaignSerializer, 409: OpenApiResponse(description="already sent")})
    @action(detail=True, methods=["post"])
    def launch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start sending (a broadcast) or listening (a triggered campaign); a paused one resumes.
        Admins launch; members too when the workspace's ``members_can_launch`` is set (else 403)."""
        refusal = services.launch_refusal(
            workspace=request_workspace(request),
            membership=request._request.membership,  # type: ignore[attr-defined]
        )
        if refusal is not None:
            raise exceptions.PermissionDenied(refusal)
        try:
            campaign = services.campaign_launch(campaign=self.get_object(), actor=request_actor(request))
        except services.CampaignConflict as error:
            raise Conflict(str(error)) from error
        return self._answer(campaign, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: CampaignSerializer, 409: OpenApiResponse(description="not live")})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Stop sending: pending messages wait until the campaign is launched again."""
        try:
            campaign = services.campaign_pause(campaign=self.get_object(), actor=request_actor(request))
        except services.CampaignConflict as error:
            raise Conflict(str(error)) from error
        return self._answer(campaign)

    @extend_schema(request=CampaignEstimateRequestSerializer, responses=CampaignEstimateSerializer)
    @action(detail=False, methods=["post"], pagination_class=None)
    def estimate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Who a campaign to these segments would reach now: the audience, after exclusions, without
        an email address, unsubscribed, capped now, and who will receive it. Nothing is written."""
        workspace = request_workspace(request)
        data = CampaignEstimateRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        audience = values.get("audience") or {}
        include, exclude = list(audience.get("segments", [])), list(audience.get("exclude", []))
        errors = estimate_audience_errors(workspace, include, exclude)
        if errors:
            raise serializers.ValidationError(errors)
        return Response(audience_estimate(workspace, include, exclude, values["channel"]).as_dict())

    @extend_schema(responses=CampaignResultsSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def results(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Per variant and for the holdout: outcomes, conversions with their interval and lift, the test's verdict."""
        workspace = request_workspace(request)
        campaign = self.get_object()
        result = selectors.campaign_results(workspace, campaign)
        return Response(
            {
                "goal": result.goal,
                "variants": [group.as_dict() for group in result.variants],
                "holdout": result.holdout.as_dict(),
                "test": result.test,
                "p_value": result.p_value,
                "verdict": result.verdict,
                "send_time": selectors.send_time_results(workspace, campaign),
                "auto_winner": winner.auto_winner_document(campaign),
            }
        )

    @extend_schema(responses=CampaignProgressSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def progress(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Messages sent of those to send."""
        return Response(campaign_progress(request_workspace(request), self.get_object()))

    @extend_schema(request=CampaignPreviewRequestSerializer, responses=CampaignPreviewSerializer)
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A variant rendered for one person, nothing sent or written."""
        campaign = self.get_object()
        data = CampaignPreviewRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        variant = self._variant(campaign, values)
        properties = _event_properties(values)
        person = _person(request_workspace(request), values, required=True)
        assert person is not None
        try:
            rendered = selectors.campaign_preview(campaign, variant, person, properties)
        except rendering.RenderFailed as error:
            raise serializers.ValidationError({f"variants[{variant.position}]": [error.reason]}) from error
        return Response({"variant": variant.name, **rendered})

    @extend_schema(
        request=CampaignTestRequestSerializer, responses={200: CampaignTestResultSerializer, 502: OpenApiResponse()}
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Send one message now to an address, rendered for a person (or for nobody: empty traits)."""
        campaign = self.get_object()
        data = CampaignTestRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        address = values["email"].strip()
        try:
            validate_email(address)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"email": [f"Not an email address: {address!r}."]}) from error
        variant = self._variant(campaign, values)
        properties = _event_properties(values)
        person = _person(request_workspace(request), values, required=False)
        person = person or rendering.PersonContext(id=0, user_id=None, traits={"email": address})
        try:
            subject = services.campaign_test_send(
                campaign=campaign,
                actor=request_actor(request),
                address=address,
                variant=variant,
                person=person,
                event_properties=properties,
            )
        except rendering.RenderFailed as error:
            raise serializers.ValidationError({f"variants[{variant.position}]": [error.reason]}) from error
        except services.TestSendFailed as error:
            raise BadGateway(str(error)) from error
        return Response({"sent_to": address, "variant": variant.name, "subject": subject})

    def _variant(self, campaign: Campaign, values: dict[str, Any]) -> Any:
        variant = selectors.variant_pick(campaign, values.get("variant"))
        if variant is None:
            raise serializers.ValidationError({"variant": [f"No variant named {values.get('variant')!r}."]})
        return variant


# --- frequency caps ----------------------------------------------------------------------------------


class FrequencyCapSerializer(serializers.ModelSerializer[FrequencyCap]):
    per = DurationField(read_only=True)

    class Meta:
        model = FrequencyCap
        fields = ["id", "channel", "max", "per", "per_seconds", "created_at"]
        read_only_fields = fields


class FrequencyCapCreateSerializer(StrictSerializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    max = serializers.IntegerField(min_value=1, max_value=services.MAX_CAP)
    per = DurationField()


class FrequencyCapViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[FrequencyCap],
):
    """Workspace-wide rules: at most ``max`` messages of a channel per person in any rolling ``per``."""

    serializer_class = FrequencyCapSerializer
    lookup_value_converter = "int"
    pagination_class = None

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return FrequencyCap.objects.unscoped().none()
        return selectors.frequency_cap_list(request_workspace(self.request))

    @extend_schema(request=FrequencyCapCreateSerializer, responses={201: FrequencyCapSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        unknown = sorted(set(body) - {"channel", "max", "per"})
        if not isinstance(request.data, dict) or unknown:
            raise serializers.ValidationError({key: ["Unknown field."] for key in unknown} or ["Expected an object."])
        cap = services.frequency_cap_create(
            workspace=request_workspace(request),
            actor=request_actor(request),
            channel=body.get("channel"),
            max=body.get("max"),
            per=body.get("per"),
        )
        return Response(FrequencyCapSerializer(cap).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.frequency_cap_delete(cap=self.get_object(), actor=request_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- settings ------------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "time", "nullable": True, "example": "21:00"})
class TimeOfDayField(serializers.TimeField):
    pass


class CampaignSettingsSerializer(serializers.ModelSerializer[CampaignSettings]):
    quiet_start = TimeOfDayField(allow_null=True, format="%H:%M")
    quiet_end = TimeOfDayField(allow_null=True, format="%H:%M")

    class Meta:
        model = CampaignSettings
        fields = [
            "from_email",
            "from_name",
            "reply_to",
            "timezone",
            "quiet_start",
            "quiet_end",
            "emails_per_second",
            "webhooks_per_second",
            "members_can_launch",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]
        extra_kwargs = {"updated_at": {"allow_null": True}}


class CampaignSettingsView(APIView):
    """The workspace's sending settings: sender, timezone, quiet hours, per-channel rates."""

    @extend_schema(responses=CampaignSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(CampaignSettingsSerializer(selectors.campaign_settings_get(request_workspace(request))).data)

    @extend_schema(request=CampaignSettingsSerializer, responses=CampaignSettingsSerializer)
    def patch(self, request: Request) -> Response:
        request_body_required(request)
        membership = request._request.membership  # type: ignore[attr-defined]
        if isinstance(request.data, dict) and "members_can_launch" in request.data and not membership.can_admin:
            raise exceptions.PermissionDenied(services.SETTING_ADMIN_ONLY)
        row = services.campaign_settings_update(
            workspace=request_workspace(request), actor=request_actor(request), data=request.data
        )
        return Response(CampaignSettingsSerializer(row).data)
