"""REST endpoints for the workspace, its members, invitations, keys and audit log."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, Role, Workspace
from accounts.requests import request_actor, request_workspace
from core.api import StrictSerializer


def _actor_role(request: Request) -> str:
    """The role the request acts with: the session's, or the key creator's as it is now."""
    membership: Membership = request._request.membership  # type: ignore[attr-defined]
    return membership.role


class WorkspaceSerializer(serializers.ModelSerializer[Workspace]):
    class Meta:
        model = Workspace
        fields = ["id", "name", "write_key", "created_at"]
        read_only_fields = ["id", "write_key", "created_at"]


class WorkspaceUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)


class WorkspaceView(APIView):
    """The workspace of the key or session."""

    admin_only = True

    @extend_schema(responses=WorkspaceSerializer)
    def get(self, request: Request) -> Response:
        return Response(WorkspaceSerializer(request_workspace(request)).data)

    @extend_schema(request=WorkspaceUpdateSerializer, responses=WorkspaceSerializer)
    def patch(self, request: Request) -> Response:
        data = WorkspaceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_rename(
            workspace=request_workspace(request), name=data.validated_data["name"], actor=request_actor(request)
        )
        return Response(WorkspaceSerializer(workspace).data)


class WriteKeyRotateView(APIView):
    admin_only = True

    @extend_schema(request=None, responses=WorkspaceSerializer)
    def post(self, request: Request) -> Response:
        workspace = request_workspace(request)
        services.write_key_rotate(workspace=workspace, actor=request_actor(request))
        return Response(WorkspaceSerializer(workspace).data)


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    created_by: serializers.SlugRelatedField[ApiKey] = serializers.SlugRelatedField(
        slug_field="email",
        read_only=True,
        allow_null=True,
        help_text="Null when a key created it, or its creator's account was deleted.",
    )

    class Meta:
        model = ApiKey
        fields = ["id", "name", "display_prefix", "created_by", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown in this answer only.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)


class ApiKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[ApiKey]
):
    """Secret API keys. DELETE revokes (the row stays, for the audit trail)."""

    serializer_class = ApiKeySerializer
    admin_only = True
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return ApiKey.objects.unscoped().none()
        return selectors.api_keys_list(request_workspace(self.request))

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = services.api_key_create(
            workspace=request_workspace(request), name=data.validated_data["name"], actor=request_actor(request)
        )
        key.key = secret  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.api_key_revoke(
            workspace=request_workspace(request), key=self.get_object(), actor=request_actor(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberSerializer(serializers.ModelSerializer[Membership]):
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at"]
        read_only_fields = ["id", "email", "name", "created_at"]


def _owner_password(needed_to: str) -> serializers.CharField:
    """The owner's password typed again, for the calls that move ownership."""
    return serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        trim_whitespace=False,
        max_length=4096,
        help_text=f"Your current password: needed to {needed_to} (signed in only).",
    )


class MemberUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)
    password = _owner_password("grant, remove or change the owner role")


class MemberRemoveSerializer(StrictSerializer):
    password = _owner_password("remove an owner")


class MemberViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Membership]
):
    serializer_class = MemberSerializer
    admin_only = True
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return Membership.objects.unscoped().none()
        return selectors.members_list(request_workspace(self.request))

    @extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        data = MemberUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_change_role(
            workspace=request_workspace(request),
            membership=membership,
            role=data.validated_data["role"],
            actor=request_actor(request),
            actor_role=_actor_role(request),
            password=data.validated_data.get("password"),
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(request=MemberRemoveSerializer, responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Remove a member; every API key they created in this workspace is revoked with them."""
        membership = self.get_object()
        data = MemberRemoveSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        services.membership_remove(
            workspace=request_workspace(request),
            membership=membership,
            actor=request_actor(request),
            actor_role=_actor_role(request),
            password=data.validated_data.get("password"),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    invited_by: serializers.SlugRelatedField[Invitation] = serializers.SlugRelatedField(
        slug_field="email",
        read_only=True,
        allow_null=True,
        help_text="Null when a key sent it, or its sender's account was deleted.",
    )

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at"]


class InvitationCreatedSerializer(InvitationSerializer):
    link = serializers.CharField(read_only=True, help_text="The acceptance link. Shown in this answer only.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "link"]


class InvitationCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
    password = _owner_password("invite an owner")


class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Invitation]
):
    """Pending invitations. DELETE revokes."""

    serializer_class = InvitationSerializer
    admin_only = True
    lookup_value_converter = "int"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return Invitation.objects.unscoped().none()
        return selectors.invitations_pending(request_workspace(self.request))

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationCreatedSerializer})
    def create(self, request: Request) -> Response:
        data = InvitationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, link = services.invitation_create(
            workspace=request_workspace(request),
            email=data.validated_data["email"],
            role=data.validated_data["role"],
            actor=request_actor(request),
            accept_url_base=request.build_absolute_uri("/"),
            actor_role=_actor_role(request),
            password=data.validated_data.get("password"),
        )
        invitation.link = link  # type: ignore[attr-defined]
        return Response(InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.invitation_revoke(
            workspace=request_workspace(request), invitation=self.get_object(), actor=request_actor(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditLogSerializer(serializers.ModelSerializer[AuditLogEntry]):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditLogEntry
        fields = ["id", "actor", "action", "target", "details", "created_at"]


class AuditLogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[AuditLogEntry]):
    serializer_class = AuditLogSerializer
    admin_only = True

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no workspace
            return AuditLogEntry.objects.unscoped().none()
        return selectors.audit_log(request_workspace(self.request))
