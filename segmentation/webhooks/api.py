"""REST API of webhook subscriptions: /api/v1/webhooks/ (admins write, everyone reads).

Viewers read each URL as its scheme and host only (``selectors.url_shown``): the
rest of a webhook URL is often the credential that lets anyone post to it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User, Workspace
from core.api import StrictSerializer
from segmentation.models import Segment, WebhookEvent, WebhookSubscription
from segmentation.webhooks import selectors, services

EVENTS = [WebhookEvent.ENTERED.value, WebhookEvent.EXITED.value]


def _workspace(request: Request) -> Workspace:
    return request._request.workspace  # type: ignore[attr-defined]


def _actor(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _urls_in_full(request: Request) -> bool:
    """Whether the caller reads URLs whole: by the membership's role, when the request acts with one."""
    return selectors.url_readable_in_full(getattr(request._request, "membership", None))


@extend_schema_field(OpenApiTypes.URI)
class UriField(serializers.CharField):
    """An absolute URI (RFC 3986); the service checks it, this says so in the schema."""


class WebhookSerializer(serializers.ModelSerializer[WebhookSubscription]):
    url = serializers.SerializerMethodField(
        help_text="The endpoint. Viewers read only its scheme and host, then /… (e.g. https://hooks.slack.com/…)."
    )
    events = serializers.SerializerMethodField()
    segments = serializers.SerializerMethodField(help_text="ids of the chosen segments; null: every segment")

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "description", "events", "segments", "secret_hint", "secret_rotated_at", "created_at"]

    def get_url(self, subscription: WebhookSubscription) -> str:
        return selectors.url_shown(subscription.url, full=bool(self.context.get("urls_in_full", False)))

    def get_events(self, subscription: WebhookSubscription) -> list[str]:
        return [e for e, on in zip(EVENTS, (subscription.on_entered, subscription.on_exited), strict=True) if on]

    def get_segments(self, subscription: WebhookSubscription) -> list[int] | None:
        if subscription.all_segments:
            return None
        chosen: dict[int, list[Segment]] = self.context.get("chosen", {})
        return [segment.pk for segment in chosen.get(subscription.pk, [])]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret. Shown in this answer only.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookCreateSerializer(StrictSerializer):
    url = UriField(
        max_length=2000,
        # Not trimmed: a line break at the end is refused (``services.webhook_url_check``), not dropped.
        trim_whitespace=False,
        help_text="An absolute http(s) URI (RFC 3986) of a public host: spaces, control characters and "
        "non-ASCII letters must be percent-encoded.",
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENTS), min_length=1, max_length=2, default=EVENTS
    )
    segments = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_null=True,
        required=False,
        default=None,
        help_text="segment ids; null or absent: every segment, including new ones",
    )


class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Any]
):
    """Webhook subscriptions to segment entries and exits. The secret is only in the creation answer."""

    serializer_class = WebhookSerializer
    admin_only = True
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return WebhookSubscription.objects.unscoped().none()
        return selectors.subscriptions_list(_workspace(self.request))

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False):
            context["urls_in_full"] = _urls_in_full(self.request)
            # Every subscription's chosen segments in one query; cheap next to a page of 50.
            ids = list(self.get_queryset().values_list("pk", flat=True))
            context["chosen"] = selectors.subscription_segments(_workspace(self.request), ids)
        return context

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer})
    def create(self, request: Request) -> Response:
        workspace = _workspace(request)
        data = WebhookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        segments = None
        if values["segments"] is not None:
            wanted = set(values["segments"])
            segments = list(selectors.segments_for_choice(workspace).filter(pk__in=wanted))
            missing = sorted(wanted - {segment.pk for segment in segments})
            if missing:
                raise serializers.ValidationError({"segments": [f"No segment with id {pk}." for pk in missing]})
        subscription, secret = services.webhook_create(
            workspace=workspace,
            actor=_actor(request),
            url=values["url"],
            description=values["description"],
            segments=segments,
            on_entered=WebhookEvent.ENTERED in values["events"],
            on_exited=WebhookEvent.EXITED in values["events"],
        )
        subscription.secret = secret  # type: ignore[attr-defined]
        context = {**self.get_serializer_context()}
        return Response(WebhookCreatedSerializer(subscription, context=context).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.webhook_delete(workspace=_workspace(request), subscription=self.get_object(), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
