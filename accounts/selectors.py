"""Reads for accounts. Lookups by key or token are entry points: they find the
workspace, so they run before any scope exists and say so."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.keys import SECRET_KEY_PREFIX, WRITE_KEY_PREFIX, hash_token
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, User, Workspace

_MEMBERSHIP_COLUMNS = ("id", "role", "created_at")


def api_key_by_secret(secret: str) -> ApiKey | None:
    """The active key whose hash matches ``secret``, with its workspace, its creator and, in the same
    query, the creator's membership in that workspace (``api_key_creator_membership``)."""
    if not secret.startswith(SECRET_KEY_PREFIX):
        return None
    # Entry point: the key is what tells us the workspace (and whose membership to read).
    creator_membership = Membership.objects.unscoped().filter(
        workspace_id=OuterRef("workspace_id"), user_id=OuterRef("created_by_id")
    )
    annotations = {
        f"creator_membership_{column}": Subquery(creator_membership.values(column)[:1])
        for column in _MEMBERSHIP_COLUMNS
    }
    return (
        ApiKey.objects.unscoped()
        .select_related("workspace", "created_by")
        .annotate(**annotations)
        .filter(key_hash=hash_token(secret), revoked_at__isnull=True)
        .first()
    )


def api_key_creator_membership(key: ApiKey) -> Membership | None:
    """The membership a key acts with: its creator's in the key's workspace, as it is now.

    None when the creator has left the workspace, was deleted or deactivated: the
    key then does nothing. Read with the key at each request (``api_key_by_secret``),
    so a creator's new role applies to their keys at once.
    """
    creator = key.created_by
    values = [getattr(key, f"creator_membership_{column}", None) for column in _MEMBERSHIP_COLUMNS]
    if creator is None or not creator.is_active or values[0] is None:
        return None
    membership = Membership.from_db(
        ApiKey.objects.db, ["workspace_id", "user_id", *_MEMBERSHIP_COLUMNS], [key.workspace_id, creator.pk, *values]
    )
    membership.workspace = key.workspace
    membership.user = creator
    return membership


def workspace_by_write_key(write_key: str) -> Workspace | None:
    if not write_key.startswith(WRITE_KEY_PREFIX):
        return None
    return Workspace.objects.filter(write_key=write_key).first()


def is_write_key(value: str) -> bool:
    return workspace_by_write_key(value) is not None


def memberships_for_user(user: User) -> QuerySet[Membership]:
    """Every workspace the user belongs to, for the switcher."""
    # Crosses workspaces on purpose: a user's own memberships, nothing else.
    memberships = Membership.objects.unscoped().filter(user=user).select_related("workspace")
    return memberships.order_by(Lower("workspace__name"), "workspace_id")


def membership_for(user: User, workspace_id: int | None) -> Membership | None:
    """The user's membership in ``workspace_id``, or in their first workspace."""
    memberships = memberships_for_user(user)
    if workspace_id is not None:
        chosen = memberships.filter(workspace_id=workspace_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def invitation_by_token(token: str) -> Invitation | None:
    """The pending invitation that ``token`` opens, whatever its workspace."""
    # Entry point: the token is what tells us the workspace.
    invitation = (
        Invitation.objects.unscoped()
        .select_related("workspace", "invited_by")
        .filter(token_hash=hash_token(token), accepted_at__isnull=True, revoked_at__isnull=True)
        .first()
    )
    if invitation is None or invitation.expires_at <= timezone.now():
        return None
    return invitation


def members_list(workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__email")


def invitations_pending(workspace: Workspace) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(workspace=workspace, accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def api_keys_list(workspace: Workspace) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(workspace=workspace).select_related("created_by").order_by("-created_at")


def audit_log(workspace: Workspace) -> QuerySet[AuditLogEntry]:
    return AuditLogEntry.objects.filter(workspace=workspace).order_by("-created_at", "-id")
