"""Writes for accounts: workspaces, members, invitations, keys, the audit log.

Every administrative action records an ``AuditLogEntry`` in the same
transaction as the change it describes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.keys import DISPLAY_LENGTH, hash_token, new_invitation_token, new_secret_key, new_write_key
from accounts.models import ApiKey, AuditLogEntry, Invitation, Membership, Role, User, Workspace
from accounts.tenancy import workspace_scope


def audit_record(
    *, workspace: Workspace, actor: User | None, action: str, target: str = "", details: dict[str, Any] | None = None
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        workspace=workspace,
        actor=actor,
        actor_label=actor.email if actor else "API key",
        action=action,
        target=target,
        details=details or {},
    )


@transaction.atomic
def workspace_create(*, name: str, owner: User) -> Workspace:
    """A new workspace with ``owner`` as its owner."""
    workspace = Workspace.objects.create(name=name)
    with workspace_scope(workspace):
        Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
        audit_record(workspace=workspace, actor=owner, action="workspace.created", target=name)
    return workspace


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "", workspace_name: str) -> tuple[User, Workspace]:
    """Sign-up: a user and their first workspace."""
    user = User.objects.create_user(email=email, password=password, name=name)
    return user, workspace_create(name=workspace_name, owner=user)


def workspace_rename(*, workspace: Workspace, name: str, actor: User | None) -> Workspace:
    with transaction.atomic():
        old = workspace.name
        workspace.name = name
        workspace.save(update_fields=["name"])
        audit_record(workspace=workspace, actor=actor, action="workspace.renamed", target=name, details={"from": old})
    return workspace


def write_key_rotate(*, workspace: Workspace, actor: User | None) -> str:
    """A new public write key; the old one stops working at once."""
    with transaction.atomic():
        workspace.write_key = new_write_key()
        workspace.save(update_fields=["write_key"])
        audit_record(workspace=workspace, actor=actor, action="write_key.rotated")
    return workspace.write_key


def api_key_create(*, workspace: Workspace, name: str, actor: User | None) -> tuple[ApiKey, str]:
    """A secret key. The returned plaintext is shown once and never stored."""
    secret = new_secret_key()
    with transaction.atomic():
        key = ApiKey.objects.create(
            workspace=workspace,
            name=name,
            display_prefix=secret[:DISPLAY_LENGTH],
            key_hash=hash_token(secret),
            created_by=actor,
        )
        audit_record(workspace=workspace, actor=actor, action="api_key.created", target=name)
    return key, secret


def api_key_revoke(*, workspace: Workspace, key: ApiKey, actor: User | None) -> ApiKey:
    if key.revoked_at is not None:
        return key
    with transaction.atomic():
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(workspace=workspace, actor=actor, action="api_key.revoked", target=key.name)
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Record use, at most once a minute per key so reads stay reads."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.unscoped().filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def invitation_create(
    *, workspace: Workspace, email: str, role: str, actor: User | None, accept_url_base: str
) -> tuple[Invitation, str]:
    """An invitation by link; mailed too when email is configured.

    Returns the invitation and its link, shown once to the inviter.
    """
    email = email.strip().lower()
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of this workspace."})
    token = new_invitation_token()
    link = f"{accept_url_base.rstrip('/')}/invite/{token}/"
    with transaction.atomic():
        invitation = Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=actor,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        audit_record(
            workspace=workspace, actor=actor, action="invitation.created", target=email, details={"role": role}
        )
        if settings.EMAIL_CONFIGURED:
            inviter = actor.email if actor else "A teammate"
            transaction.on_commit(
                lambda: send_mail(
                    subject=f"You are invited to {workspace.name} on Cohortly",
                    message=f"{inviter} invited you to join {workspace.name} as {role}.\n\nAccept: {link}\n",
                    from_email=None,
                    recipient_list=[email],
                    fail_silently=True,
                )
            )
    return invitation, link


def invitation_revoke(*, workspace: Workspace, invitation: Invitation, actor: User | None) -> Invitation:
    if invitation.revoked_at is not None or invitation.accepted_at is not None:
        return invitation
    with transaction.atomic():
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(workspace=workspace, actor=actor, action="invitation.revoked", target=invitation.email)
    return invitation


def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the invitation's workspace with its role (idempotent for existing members)."""
    workspace = invitation.workspace
    with transaction.atomic(), workspace_scope(workspace):
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is not None or locked.revoked_at is not None:
            raise ValidationError("This invitation has already been used or was revoked.")
        membership, created = Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": locked.role}
        )
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        if created:
            audit_record(
                workspace=workspace,
                actor=user,
                action="member.joined",
                target=user.email,
                details={"role": locked.role},
            )
    return membership


def _owners_left(workspace: Workspace, excluding: Membership) -> int:
    return Membership.objects.filter(workspace=workspace, role=Role.OWNER).exclude(pk=excluding.pk).count()


def membership_change_role(
    *, workspace: Workspace, membership: Membership, role: str, actor: User | None, actor_role: str | None
) -> Membership:
    """Change a member's role. Only owners grant or take away ownership; the last owner stays."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; one of {', '.join(Role.values)}."})
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner and actor_role not in (Role.OWNER, None):
        raise PermissionDenied("Only an owner can grant or remove the owner role.")
    if membership.role == Role.OWNER and role != Role.OWNER and _owners_left(workspace, membership) == 0:
        raise ValidationError({"role": "A workspace needs at least one owner."})
    if membership.role == role:
        return membership
    with transaction.atomic():
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            workspace=workspace,
            actor=actor,
            action="member.role_changed",
            target=membership.user.email,
            details={"from": old, "to": role},
        )
    return membership


def membership_remove(
    *, workspace: Workspace, membership: Membership, actor: User | None, actor_role: str | None
) -> None:
    if membership.role == Role.OWNER and actor_role not in (Role.OWNER, None):
        raise PermissionDenied("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and _owners_left(workspace, membership) == 0:
        raise ValidationError("A workspace needs at least one owner.")
    with transaction.atomic():
        email = membership.user.email
        membership.delete()
        audit_record(workspace=workspace, actor=actor, action="member.removed", target=email)
