"""Writes for accounts: workspaces, members, invitations, keys, the audit log.

Every administrative action records an ``AuditLogEntry`` in the same
transaction as the change it describes. When a secret key acts
(``accounts.principal``), the entry names the key and the member who created
it, and the rules for keys apply: no key grants, removes or changes the owner
role, or changes or removes the member who created it. Ownership moves only by
an owner, signed in, who types their password again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts import throttle
from accounts.keys import DISPLAY_LENGTH, hash_token, new_invitation_token, new_secret_key, new_write_key
from accounts.models import (
    API_KEY_NAME_CONSTRAINT,
    API_KEY_NAME_MAX_LENGTH,
    WORKSPACE_NAME_MAX_LENGTH,
    ApiKey,
    AuditLogEntry,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
)
from accounts.principal import acting_api_key
from accounts.tenancy import workspace_scope
from core import ratelimit
from core.names import name_clean, name_constraint_violated, name_taken_message

OWNER_PASSWORD_REQUIRED = "Type your current password to grant, remove or change the owner role."
OWNER_PASSWORD_WRONG = "That is not your current password."


def owner_password_wait(seconds: int) -> str:
    return f"Too many wrong passwords. Wait {ratelimit.wait_text(seconds)} before typing it again."


KEY_CANNOT_TOUCH_OWNERS = (
    "An API key cannot grant, remove or change the owner role: an owner does that signed in, with their password."
)


def audit_record(
    *, workspace: Workspace, actor: User | None, action: str, target: str = "", details: dict[str, Any] | None = None
) -> AuditLogEntry:
    """One audit entry. With no ``actor`` while a key acts, the entry names the key and its creator."""
    label = actor.email if actor else "API key"
    details = dict(details or {})
    key = acting_api_key()
    if actor is None and key is not None:
        actor = key.created_by
        creator = actor.email if actor else "a former member"
        label = f"API key {key.display_prefix} (#{key.pk}) of {creator}"
        details["api_key"] = {"id": key.pk, "prefix": key.display_prefix, "creator": actor.email if actor else None}
    return AuditLogEntry.objects.create(
        workspace=workspace,
        actor=actor,
        actor_label=label[: AuditLogEntry._meta.get_field("actor_label").max_length],
        action=action,
        target=target,
        details=details,
    )


def _owner_role_change_permitted(*, actor: User | None, actor_role: str | None, refusal: str) -> None:
    """Raise unless an owner acts, signed in; ``refusal`` says so to anyone but an owner."""
    if acting_api_key() is not None:
        raise PermissionDenied(KEY_CANNOT_TOUCH_OWNERS)
    if actor is None or actor_role != Role.OWNER:
        raise PermissionDenied(refusal)


def _password_confirmed(*, actor: User | None, password: str | None) -> None:
    """Raise unless ``password`` is the acting user's: ownership moves only when it is typed again."""
    if not password:
        raise ValidationError({"password": OWNER_PASSWORD_REQUIRED})
    if actor is None:
        raise ValidationError({"password": OWNER_PASSWORD_WRONG})
    if wait := throttle.password_confirm_wait(email=actor.email):
        raise ValidationError({"password": owner_password_wait(wait)})
    if not actor.check_password(password):
        throttle.password_confirm_failed(email=actor.email)
        raise ValidationError({"password": OWNER_PASSWORD_WRONG})


def workspace_name_clean(name: str) -> str:
    """The stored form of a workspace name (``core.names``). Workspace names need not be unique:
    two companies may both be "Acme"."""
    return name_clean(name, noun="A workspace", max_length=WORKSPACE_NAME_MAX_LENGTH)


def api_key_name_clean(*, workspace: Workspace, name: str) -> str:
    """The stored form of a key name, refused when an active key of the workspace has the same
    name (a revoked key's name may be given again)."""
    active = ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True)
    return name_clean(
        name, noun="An API key", max_length=API_KEY_NAME_MAX_LENGTH, existing=active.values_list("name", flat=True)
    )


@transaction.atomic
def workspace_create(*, name: str, owner: User) -> Workspace:
    """A new workspace with ``owner`` as its owner."""
    name = workspace_name_clean(name)
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
    name = workspace_name_clean(name)
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
    """A secret key. The returned plaintext is shown once and never stored.

    The key acts with its creator's role, read at each request. A key made by a
    key belongs to the same creator, so it never outlives their membership.
    """
    name = api_key_name_clean(workspace=workspace, name=name)
    secret = new_secret_key()
    acting = acting_api_key()
    creator = actor if actor is not None or acting is None else acting.created_by
    try:
        with transaction.atomic():
            key = ApiKey.objects.create(
                workspace=workspace,
                name=name,
                display_prefix=secret[:DISPLAY_LENGTH],
                key_hash=hash_token(secret),
                created_by=creator,
            )
            audit_record(workspace=workspace, actor=actor, action="api_key.created", target=name)
    except IntegrityError as error:
        if not name_constraint_violated(error, API_KEY_NAME_CONSTRAINT):
            raise
        raise ValidationError({"name": [name_taken_message("An API key", name)]}) from error
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
    *,
    workspace: Workspace,
    email: str,
    role: str,
    actor: User | None,
    accept_url_base: str,
    actor_role: str | None = None,
    password: str | None = None,
) -> tuple[Invitation, str]:
    """An invitation by link; mailed too when email is configured.

    Inviting an owner takes an owner, signed in (``actor_role``), with their
    ``password`` typed again. Returns the invitation and its link, shown once to
    the inviter.
    """
    email = email.strip().lower()
    if role == Role.OWNER:
        refusal = "Only an owner can invite another owner."
        if acting_api_key() is None and actor_role != Role.OWNER:
            raise ValidationError({"role": refusal})
        _owner_role_change_permitted(actor=actor, actor_role=actor_role, refusal=refusal)
        _password_confirmed(actor=actor, password=password)
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


def _active_keys_of(workspace: Workspace, user_id: int) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(workspace=workspace, created_by_id=user_id, revoked_at__isnull=True)


def membership_change_role(
    *,
    workspace: Workspace,
    membership: Membership,
    role: str,
    actor: User | None,
    actor_role: str,
    password: str | None = None,
) -> Membership:
    """Change a member's role. Only owners grant or take away ownership, with their
    ``password`` typed again; the last owner stays. The member's keys follow the new
    role from their next request (it is read each time), as the audit entry says."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; one of {', '.join(Role.values)}."})
    key = acting_api_key()
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner:
        _owner_role_change_permitted(
            actor=actor, actor_role=actor_role, refusal="Only an owner can grant or remove the owner role."
        )
    if key is not None and membership.user_id == key.created_by_id:
        raise PermissionDenied("An API key cannot change the role of the member who created it.")
    if membership.role == Role.OWNER and role != Role.OWNER and _owners_left(workspace, membership) == 0:
        raise ValidationError({"role": "A workspace needs at least one owner."})
    if membership.role == role:
        return membership
    if touches_owner:
        _password_confirmed(actor=actor, password=password)
    with transaction.atomic():
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        details: dict[str, Any] = {"from": old, "to": role}
        keys = list(_active_keys_of(workspace, membership.user_id).order_by("pk").values_list("pk", flat=True))
        if keys:
            # Nothing to rewrite: a key's rights are its creator's role, read at each request.
            details["api_keys_now_act_as"] = {"role": role, "ids": keys}
        audit_record(
            workspace=workspace,
            actor=actor,
            action="member.role_changed",
            target=membership.user.email,
            details=details,
        )
    return membership


def membership_remove(
    *,
    workspace: Workspace,
    membership: Membership,
    actor: User | None,
    actor_role: str,
    password: str | None = None,
) -> int:
    """Remove a member and, in the same transaction, revoke every key they created in
    the workspace and every invitation they sent that is still pending. Removing an
    owner takes an owner's ``password``. Returns how many keys were revoked."""
    key = acting_api_key()
    if membership.role == Role.OWNER:
        _owner_role_change_permitted(actor=actor, actor_role=actor_role, refusal="Only an owner can remove an owner.")
    if key is not None and membership.user_id == key.created_by_id:
        raise PermissionDenied("An API key cannot remove the member who created it.")
    if membership.role == Role.OWNER and _owners_left(workspace, membership) == 0:
        raise ValidationError("A workspace needs at least one owner.")
    if membership.role == Role.OWNER:
        _password_confirmed(actor=actor, password=password)
    with transaction.atomic():
        email = membership.user.email
        active = _active_keys_of(workspace, membership.user_id).select_for_update().order_by("pk")
        keys = list(active.values_list("pk", flat=True))
        ApiKey.objects.filter(workspace=workspace, pk__in=keys).update(revoked_at=timezone.now())
        invitations = list(
            Invitation.objects.filter(
                workspace=workspace, invited_by_id=membership.user_id, accepted_at__isnull=True, revoked_at__isnull=True
            ).values_list("pk", flat=True)
        )
        Invitation.objects.filter(workspace=workspace, pk__in=invitations).update(revoked_at=timezone.now())
        membership.delete()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="member.removed",
            target=email,
            details={"role": membership.role, "api_keys_revoked": keys, "invitations_revoked": invitations},
        )
    return len(keys)
